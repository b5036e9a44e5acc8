//! Health probes, services, timeouts, interruption, teardown and the drill lock, with
//! real processes and real HTTP servers on 127.0.0.1.
//!
//! Every drill here runs with a unique `RESTORE_DRILL_TEST_MARKER` in its environment,
//! which every process it starts inherits; `Marker::assert_none_left` then scans /proc
//! for it, proving that nothing the drill started outlived it.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;

const DEMO: &str = env!("CARGO_BIN_EXE_restore-drill-demo-service");

// ---------------------------------------------------------------------------------------
// Helpers

/// A marker inherited by everything a drill starts.
struct Marker(String);

impl Marker {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        Self(format!(
            "rdt-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ))
    }

    fn on(&self, drill: Drill) -> Drill {
        drill.env("RESTORE_DRILL_TEST_MARKER", &self.0)
    }

    /// Pids of live processes carrying the marker.
    fn live(&self) -> Vec<i32> {
        let needle = format!("RESTORE_DRILL_TEST_MARKER={}\0", self.0);
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle.as_bytes()))
            })
            .collect()
    }

    /// Fails when a process started by the drill is still there (after a moment for
    /// killed processes to vanish).
    fn assert_none_left(&self) {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let live = self.live();
            if live.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                let cmds: Vec<String> = live
                    .iter()
                    .map(|p| {
                        let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                        format!("{p}: {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
                    })
                    .collect();
                for p in &live {
                    // SAFETY: kill(2) on a pid this test's drill started.
                    unsafe { libc::kill(*p, libc::SIGKILL) };
                }
                panic!("processes left behind: {cmds:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A tiny HTTP server on 127.0.0.1: `respond(path, time since start)` gives the status
/// and body of each answer. Stops when dropped.
struct TestServer {
    port: u16,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    fn start(respond: impl Fn(&str, Duration) -> (u16, String) + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let (stop2, hits2) = (Arc::clone(&stop), Arc::clone(&hits));
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        hits2.fetch_add(1, Ordering::SeqCst);
                        let _ = answer(stream, |path| respond(path, started.elapsed()));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self {
            port,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(stream: TcpStream, respond: impl Fn(&str) -> (u16, String)) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (status, body) = respond(&path);
    let mut out = &stream;
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A drill with a single http step (plus `extra` fields) probing `url`.
fn probe(url: &str, extra: &str) -> String {
    format!(
        r#"
version = 1
[drill]
name = "probe"
[[steps]]
id = "probe"
kind = "http"
url = "{url}"
{extra}
"#
    )
}

/// A drill running in the background, to be signalled.
struct Running {
    child: Child,
    dir: tempfile::TempDir,
}

impl Running {
    fn start(drill: Drill) -> Self {
        let child = drill
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start restore-drill");
        Self {
            child,
            dir: drill.dir,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The newest record, once one was written.
    fn record(&self) -> Option<Value> {
        let dir = self.dir.path().join("artifacts");
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .ok()?
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        found.sort();
        serde_json::from_str(&std::fs::read_to_string(found.pop()?).ok()?).ok()
    }

    /// Waits until step `id` is running (as the record says).
    fn wait_running(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let running = self.record().is_some_and(|r| {
                r["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["id"] == id && s["status"] == "running")
            });
            if running {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("step {id} never started running");
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the child this test started.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    /// Waits for the drill to end (at most a minute: a hung drill fails the test instead
    /// of hanging it).
    fn finish(mut self) -> Outcome {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("the drill did not end within a minute of being signalled");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = self.child.wait_with_output().unwrap();
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            dir: self.dir,
        }
    }
}

fn pid_alive(pid: i64) -> bool {
    // A zombie has no environ and is as good as gone; /proc/<pid>/stat says which.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn resource<'r>(record: &'r Value, kind: &str) -> &'r Value {
    record["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} resource: {}", record["resources"]))
}

// ---------------------------------------------------------------------------------------
// http

#[test]
fn http_probe_passes_on_the_expected_answer() {
    let server =
        TestServer::start(|_, _| (200, r#"{"ok":true,"db":{"state":"up","lag":0}}"#.into()));
    let extra = r#"expect_status = [200, 204]
expect_json = { ok = true, db = { state = "up" } }
expect_body_contains = "lag"
headers = { Authorization = "Bearer {{ secrets.token }}" }
[secrets]
token = { env = "PROBE_TOKEN" }"#;
    let out = Drill::new(&probe(&server.url("/healthz"), extra))
        .env("PROBE_TOKEN", "s3cr3t-t0ken")
        .run()
        .expect_code(0);
    let step = out.step("probe");
    assert_eq!(step["outputs"]["status"], 200);
    assert_eq!(step["outputs"]["probes"], 1);
    assert!(step["outputs"]["latency_ms"].is_u64());
    assert!(step["outputs"]["body"].as_str().unwrap().contains("\"up\""));
    assert!(
        !out.log().contains("s3cr3t-t0ken"),
        "a header secret reached the log"
    );
}

#[test]
fn http_500_fails_with_the_last_response() {
    let server = TestServer::start(|_, _| {
        (
            500,
            r#"{"error":"database connection pool exhausted"}"#.into(),
        )
    });
    let out = Drill::new(&probe(&server.url("/healthz"), ""))
        .run()
        .expect_code(1);
    let step = out.step("probe");
    assert_eq!(step["status"], "failed");
    let error = step["error"].as_str().unwrap();
    assert!(error.contains("status 500 is not 2xx"), "{error}");
    assert!(error.contains("after 1 attempt"), "{error}");
    assert!(
        error.contains("HTTP 500") && error.contains("pool exhausted"),
        "{error}"
    );
    let report = out.report();
    assert!(
        report.contains("HTTP 500") && report.contains("pool exhausted"),
        "{report}"
    );
}

#[test]
fn http_wrong_json_fails_naming_the_field() {
    let server = TestServer::start(|_, _| (200, r#"{"ok":true,"db":"down"}"#.into()));
    let bad = Drill::new(&probe(
        &server.url("/readyz"),
        r#"expect_json = { ok = true, db = "up" }"#,
    ))
    .run()
    .expect_code(1);
    let error = bad.step("probe")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains(r#"$.db is "down", expected "up""#),
        "{error}"
    );
    assert!(
        bad.report().contains(r#"{"ok":true,"db":"down"}"#),
        "{}",
        bad.report()
    );

    let not_json = TestServer::start(|_, _| (200, "<html>oops</html>".into()));
    let out = Drill::new(&probe(&not_json.url("/"), "expect_json = { ok = true }"))
        .run()
        .expect_code(1);
    assert!(
        out.step("probe")["error"]
            .as_str()
            .unwrap()
            .contains("not JSON")
    );

    let body = Drill::new(&probe(
        &server.url("/"),
        r#"expect_body_contains = "\"db\":\"up\"""#,
    ))
    .run()
    .expect_code(1);
    assert!(
        body.step("probe")["error"]
            .as_str()
            .unwrap()
            .contains("does not contain")
    );
}

#[test]
fn http_status_expectations_are_checked() {
    let server = TestServer::start(|path, _| match path {
        "/created" => (201, "{}".into()),
        _ => (404, "{}".into()),
    });
    Drill::new(&probe(&server.url("/created"), "expect_status = 201"))
        .run()
        .expect_code(0);
    Drill::new(&probe(&server.url("/created"), r#"expect_status = "2xx""#))
        .run()
        .expect_code(0);
    let out = Drill::new(&probe(
        &server.url("/created"),
        "expect_status = [200, 204]",
    ))
    .run()
    .expect_code(1);
    assert!(
        out.step("probe")["error"]
            .as_str()
            .unwrap()
            .contains("status 201 is not 200 or 204")
    );
    Drill::new(&probe(&server.url("/missing"), "expect_status = 404"))
        .run()
        .expect_code(0);
    // A malformed expectation is an invalid playbook: nothing runs.
    let out = Drill::new(&probe(&server.url("/created"), r#"expect_status = "2x""#))
        .run()
        .expect_code(2);
    assert!(
        out.stderr.contains("`2x` is not a status code"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("playbook.toml:"), "{}", out.stderr);
    // A templated one can only be judged when it is rendered.
    let templated = "expect_status = \"{{ vars.code }}\"\n[vars]\ncode = \"2x\"";
    let out = Drill::new(&probe(&server.url("/created"), templated))
        .run()
        .expect_code(1);
    assert!(
        out.step("probe")["error"]
            .as_str()
            .unwrap()
            .contains("not a status code")
    );
}

#[test]
fn http_never_listening_fails_with_the_connection_error_and_attempts() {
    let url = format!("http://127.0.0.1:{}/healthz", closed_port());
    let out = Drill::new(&probe(&url, "retry_until = \"1s\"\ninterval = \"200ms\""))
        .run()
        .expect_code(1);
    let step = out.step("probe");
    let error = step["error"].as_str().unwrap();
    assert!(error.to_lowercase().contains("refused"), "{error}");
    let probes = step["outputs"]["probes"].as_u64().unwrap();
    assert!(
        probes >= 3,
        "kept probing until retry_until: {probes} attempts"
    );
    assert!(
        error.contains(&format!("after {probes} attempt(s)")),
        "{error}"
    );
    assert!(out.report().to_lowercase().contains("refused"));
    assert!(step["duration_s"].as_f64().unwrap() < 3.0);
}

#[test]
fn http_probe_that_becomes_healthy_passes_within_retry_until() {
    let becomes_healthy = || {
        TestServer::start(|_, since| {
            if since < Duration::from_secs(2) {
                (503, r#"{"ok":false}"#.into())
            } else {
                (200, r#"{"ok":true}"#.into())
            }
        })
    };
    let server = becomes_healthy();
    let extra = "retry_until = \"8s\"\ninterval = \"250ms\"\nexpect_json = { ok = true }";
    let out = Drill::new(&probe(&server.url("/healthz"), extra))
        .run()
        .expect_code(0);
    let step = out.step("probe");
    assert!(step["outputs"]["probes"].as_u64().unwrap() > 1, "{step}");
    assert!(server.hits() > 1);

    // The same server, probed with too short a deadline, fails.
    let server = becomes_healthy();
    let extra = "retry_until = \"700ms\"\ninterval = \"250ms\"";
    let out = Drill::new(&probe(&server.url("/healthz"), extra))
        .run()
        .expect_code(1);
    assert!(
        out.step("probe")["error"]
            .as_str()
            .unwrap()
            .contains("HTTP 503")
    );
}

// ---------------------------------------------------------------------------------------
// service

/// A drill that starts the demo service on `db` and probes it.
fn demo_drill(db: &str, readyz_expect: &str) -> String {
    format!(
        r#"
version = 1
[drill]
name = "svc"
[vars]
port = "{{{{ free_port() }}}}"
[[steps]]
id = "app"
kind = "service"
argv = ["{DEMO}", "--db", "{db}", "--port", "{{{{ vars.port }}}}"]
ready = {{ url = "http://127.0.0.1:{{{{ vars.port }}}}/healthz", timeout = "20s" }}
[[steps]]
id = "healthz"
kind = "http"
url = "http://127.0.0.1:{{{{ vars.port }}}}/healthz"
expect_json = {{ ok = true }}
[[steps]]
id = "readyz"
kind = "http"
url = "http://127.0.0.1:{{{{ vars.port }}}}/readyz"
{readyz_expect}
"#
    )
}

#[test]
fn healthy_service_passes_and_is_stopped_at_teardown() {
    let marker = Marker::new();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("restored.db");
    make_db(&db, 50);
    let toml = demo_drill(
        db.to_str().unwrap(),
        r#"expect_json = { ok = true, db = "up" }"#,
    );
    let out = marker.on(Drill::new(&toml)).run().expect_code(0);
    let app = out.step("app");
    assert_eq!(app["phase"], "restart");
    let pid = app["outputs"]["pid"].as_i64().unwrap();
    assert!(!pid_alive(pid), "the service still runs after the drill");
    let record = out.record();
    let svc = resource(&record, "service");
    assert_eq!(svc["id"], pid.to_string());
    assert_eq!(svc["removed"], true);
    assert_eq!(out.step("readyz")["outputs"]["status"], 200);
    let log = out.log();
    assert!(
        log.contains("[app] stdout: listening on"),
        "service output streamed into the log:\n{log}"
    );
    assert!(log.contains("stopped by SIGTERM"), "{log}");
    marker.assert_none_left();
}

#[test]
fn readyz_fails_when_the_service_cannot_read_the_database() {
    let marker = Marker::new();
    let toml = demo_drill(
        "/nonexistent/restored.db",
        r#"expect_json = { ok = true, db = "up" }"#,
    );
    let out = marker.on(Drill::new(&toml)).run().expect_code(1);
    assert_eq!(out.step("healthz")["status"], "passed");
    let error = out.step("readyz")["error"].as_str().unwrap().to_string();
    assert!(error.contains("status 503"), "{error}");
    assert!(
        out.report().contains("unable to open database file"),
        "{}",
        out.report()
    );
    assert_eq!(resource(&out.record(), "service")["removed"], true);
    marker.assert_none_left();
}

fn service_drill(service: &str, after: &str) -> String {
    format!(
        r#"
version = 1
[drill]
name = "svc"
[[steps]]
id = "app"
kind = "service"
{service}
{after}
[[cleanup]]
id = "mark"
kind = "exec"
run = "touch cleaned"
"#
    )
}

#[test]
fn crashing_service_is_reported_with_exit_status_and_log_tail() {
    let marker = Marker::new();
    let service = r#"run = "echo 'starting cortex'; echo 'fatal: state db is corrupt' >&2; exit 3"
ready = { log_line = "listening", timeout = "10s" }"#;
    let out = marker
        .on(Drill::new(&service_drill(service, "")))
        .run()
        .expect_code(1);
    let app = out.step("app");
    let error = app["error"].as_str().unwrap();
    assert!(
        error.contains("exited before it was ready: exit status 3"),
        "{error}"
    );
    let tail = app["log_tail"].as_str().unwrap();
    assert!(
        tail.contains("fatal: state db is corrupt") && tail.contains("starting cortex"),
        "{tail}"
    );
    let report = out.report();
    assert!(report.contains("fatal: state db is corrupt"), "{report}");
    assert!(out.path().join("cleaned").exists(), "cleanup ran");
    marker.assert_none_left();
}

#[test]
fn missing_service_program_fails_naming_it() {
    let service = r#"argv = ["/nonexistent/cortex", "--db", "x.db"]"#;
    let out = Drill::new(&service_drill(service, "")).run().expect_code(1);
    let error = out.step("app")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("cannot start the service `/nonexistent/cortex`"),
        "{error}"
    );
    assert!(
        out.record()["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["kind"] != "service")
    );
}

#[test]
fn service_ready_by_log_line_passes_and_one_that_never_gets_ready_fails() {
    let marker = Marker::new();
    let good = r#"run = "echo booting; sleep 0.3; echo 'listening on :8080'; exec sleep 1000"
ready = { log_line = "listening on", timeout = "10s" }"#;
    let out = marker
        .on(Drill::new(&service_drill(good, "")))
        .run()
        .expect_code(0);
    assert!(out.step("app")["outputs"]["ready_s"].as_f64().unwrap() >= 0.3);
    marker.assert_none_left();

    let marker = Marker::new();
    let never = r#"run = "echo booting; sleep 1000 & sleep 1000"
ready = { log_line = "listening on", timeout = "1s" }"#;
    let out = marker
        .on(Drill::new(&service_drill(never, "")))
        .run()
        .expect_code(1);
    let app = out.step("app");
    assert!(
        app["error"]
            .as_str()
            .unwrap()
            .contains(r#"never printed "listening on""#),
        "{app}"
    );
    assert!(app["log_tail"].as_str().unwrap().contains("booting"));
    marker.assert_none_left();

    let marker = Marker::new();
    let url = format!("http://127.0.0.1:{}/healthz", closed_port());
    let never =
        format!("run = \"exec sleep 1000\"\nready = {{ url = \"{url}\", timeout = \"1s\" }}");
    let out = marker
        .on(Drill::new(&service_drill(&never, "")))
        .run()
        .expect_code(1);
    let error = out.step("app")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("never answered 2xx") && error.to_lowercase().contains("refused"),
        "{error}"
    );
    marker.assert_none_left();
}

#[test]
fn service_ignoring_sigterm_is_killed_after_its_grace() {
    let marker = Marker::new();
    let stubborn = r#"run = "trap '' TERM; echo up; while true; do sleep 0.1; done"
ready = { log_line = "up" }
stop_grace = "1s""#;
    let out = marker
        .on(Drill::new(&service_drill(stubborn, "")))
        .run()
        .expect_code(0);
    assert!(
        out.log()
            .contains("killed with SIGKILL after ignoring SIGTERM for 1"),
        "{}",
        out.log()
    );
    assert_eq!(resource(&out.record(), "service")["removed"], true);
    marker.assert_none_left();
}

// ---------------------------------------------------------------------------------------
// timeouts and interruption

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let marker = Marker::new();
    let toml = r#"
version = 1
[drill]
name = "to"
[[steps]]
id = "hang"
kind = "exec"
run = "sleep 1000 & sleep 1000"
timeout = "1s"
"#;
    let started = Instant::now();
    let out = marker.on(Drill::new(toml)).run().expect_code(1);
    assert_eq!(out.step("hang")["status"], "timed_out");
    assert!(started.elapsed() < Duration::from_secs(10));
    marker.assert_none_left();

    // The same command with room to finish is not killed: the check can pass.
    let marker = Marker::new();
    let quick = toml
        .replace("sleep 1000 & sleep 1000", "sleep 0.2 & sleep 0.2")
        .replace("1s", "10s");
    marker.on(Drill::new(&quick)).run().expect_code(0);
    marker.assert_none_left();
}

#[test]
fn a_timed_out_step_says_whether_sigterm_sufficed_or_sigkill_was_needed() {
    let toml = |run: &str| {
        format!(
            r#"
version = 1
[drill]
name = "to"
[[steps]]
id = "hang"
kind = "exec"
run = "{run}"
timeout = "1s"
"#
        )
    };
    let marker = Marker::new();
    let out = marker
        .on(Drill::new(&toml("sleep 100")))
        .run()
        .expect_code(1);
    let error = out.step("hang")["error"].as_str().unwrap().to_string();
    assert_eq!(error, "timed out after 1.0s; stopped by SIGTERM");
    marker.assert_none_left();

    // It ignores SIGTERM (and so does the sleep it starts): 3 s of grace, then SIGKILL.
    let marker = Marker::new();
    let started = Instant::now();
    let out = marker
        .on(Drill::new(&toml("trap '' TERM; sleep 100")))
        .run()
        .expect_code(1);
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert_eq!(out.step("hang")["status"], "timed_out");
    let error = out.step("hang")["error"].as_str().unwrap().to_string();
    assert_eq!(error, "timed out after 1.0s; SIGKILL was needed");
    marker.assert_none_left();
}

/// A service, then a long step to interrupt, then cleanup.
fn interruptible(cleanup: &str) -> String {
    format!(
        r#"
version = 1
[drill]
name = "intr"
[[steps]]
id = "app"
kind = "service"
run = "echo ready; exec sleep 1000"
ready = {{ log_line = "ready" }}
[[steps]]
id = "long"
kind = "exec"
run = "sleep 1000 & sleep 1000"
[[steps]]
id = "after"
kind = "exec"
run = "touch after"
{cleanup}
[[cleanup]]
id = "mark"
kind = "exec"
run = "touch cleaned"
"#
    )
}

fn interrupt_with(signal: i32) {
    let marker = Marker::new();
    let run = Running::start(marker.on(Drill::new(&interruptible(""))));
    run.wait_running("long");
    run.signal(signal);
    let out = run.finish().expect_code(130);
    let record = out.record();
    assert_eq!(record["status"], "aborted");
    assert_eq!(out.step("long")["error"], "interrupted");
    assert_eq!(out.step("after")["status"], "not_run");
    assert_eq!(out.step("mark")["status"], "passed");
    assert!(out.path().join("cleaned").exists(), "cleanup ran");
    assert!(!out.path().join("after").exists());
    assert_eq!(resource(&record, "service")["removed"], true);
    assert_eq!(resource(&record, "workdir")["removed"], true);
    assert!(!Path::new(record["workdir"].as_str().unwrap()).exists());
    assert!(out.report().contains("ABORTED"));
    marker.assert_none_left();
}

#[test]
fn sigint_stops_the_step_runs_cleanup_and_exits_130() {
    interrupt_with(libc::SIGINT);
}

#[test]
fn sigterm_is_handled_like_sigint() {
    interrupt_with(libc::SIGTERM);
}

#[test]
fn sigint_while_a_service_starts_or_a_probe_retries_stops_promptly() {
    let url = format!("http://127.0.0.1:{}/healthz", closed_port());
    let cases = [
        ("app", "run = \"echo booting; exec sleep 1000\"\nready = { log_line = \"never\", timeout = \"60s\" }".to_string()),
        ("probe", format!("run = \"echo ready; exec sleep 1000\"\nready = {{ log_line = \"ready\" }}\n[[steps]]\nid = \"probe\"\nkind = \"http\"\nurl = \"{url}\"\nretry_until = \"60s\"")),
    ];
    for (step, service) in cases {
        let marker = Marker::new();
        let run = Running::start(marker.on(Drill::new(&service_drill(&service, ""))));
        run.wait_running(step);
        std::thread::sleep(Duration::from_millis(300));
        let signalled = Instant::now();
        run.signal(libc::SIGINT);
        let out = run.finish().expect_code(130);
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "{step}: took {:?}",
            signalled.elapsed()
        );
        assert_eq!(out.step(step)["error"], "interrupted");
        assert_eq!(out.record()["status"], "aborted");
        assert!(out.path().join("cleaned").exists());
        assert_eq!(resource(&out.record(), "service")["removed"], true);
        marker.assert_none_left();
    }
}

#[test]
fn a_second_interrupt_skips_cleanup_and_reports_what_was_left() {
    let marker = Marker::new();
    let slow_cleanup = r#"[[cleanup]]
id = "slow"
kind = "exec"
run = "sleep 1000""#;
    let run = Running::start(marker.on(Drill::new(&interruptible(slow_cleanup))));
    run.wait_running("long");
    run.signal(libc::SIGINT);
    run.wait_running("slow");
    run.signal(libc::SIGINT);
    let out = run.finish().expect_code(130);
    let record = out.record();
    assert_eq!(record["status"], "aborted");
    assert_eq!(
        out.step("mark")["status"],
        "not_run",
        "the rest of cleanup was skipped"
    );
    // Services stop before the cleanup steps, so the application was already gone.
    assert_eq!(resource(&record, "service")["removed"], true);
    let warnings = record["warnings"].to_string();
    assert!(
        warnings.contains("second interrupt: cleanup step `mark` and those after it skipped"),
        "{warnings}"
    );
    let report = out.report();
    assert!(
        report.contains("## Warnings") && report.contains("cleanup step `mark`"),
        "{report}"
    );
    marker.assert_none_left();
}

#[test]
fn kept_workdir_is_recorded_and_reported_as_a_leftover() {
    let toml = r#"
version = 1
[drill]
name = "keep"
[[steps]]
id = "w"
kind = "exec"
run = "touch '{{ drill.workdir }}/x'"
"#;
    let out = Drill::new(toml).arg("--keep-workdir").run().expect_code(0);
    let record = out.record();
    let workdir = resource(&record, "workdir");
    assert_eq!(workdir["removed"], false);
    let path = workdir["id"].as_str().unwrap();
    assert!(Path::new(path).join("x").exists());
    assert!(
        out.report()
            .contains(&format!("workdir `{path}` was not removed")),
        "{}",
        out.report()
    );
    std::fs::remove_dir_all(path).unwrap();

    let out = Drill::new(toml).run().expect_code(0);
    assert_eq!(resource(&out.record(), "workdir")["removed"], true);
    assert!(!out.report().contains("## Warnings"));
}

// ---------------------------------------------------------------------------------------
// lock

const LOCKED: &str = r#"
version = 1
[drill]
name = "locked"
[[steps]]
id = "long"
kind = "exec"
run = "sleep 1000"
"#;

#[test]
fn a_second_concurrent_run_exits_2_naming_the_holder() {
    let marker = Marker::new();
    let first = Running::start(marker.on(Drill::new(LOCKED)));
    first.wait_running("long");
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_restore-drill"));
    second.current_dir(first.dir.path()).args([
        "run",
        "playbook.toml",
        "--artifacts",
        "artifacts",
        "--quiet",
    ]);
    let out = second.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another run of drill `locked` is in progress"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("pid {}", first.pid())), "{stderr}");
    assert!(stderr.contains("started at"), "{stderr}");
    let jsons = std::fs::read_dir(first.dir.path().join("artifacts"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(jsons, 1, "the refused run wrote nothing");

    first.signal(libc::SIGINT);
    let dir = first.finish().expect_code(130).dir;
    // Once the first is done, the lock is free: the same drill runs again.
    std::fs::write(
        dir.path().join("playbook.toml"),
        LOCKED.replace("sleep 1000", "true"),
    )
    .unwrap();
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_restore-drill"))
        .current_dir(dir.path())
        .args([
            "run",
            "playbook.toml",
            "--artifacts",
            "artifacts",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    marker.assert_none_left();
}

#[test]
fn a_stale_lock_from_a_dead_run_is_taken_over() {
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let lock = format!(
        r#"{{"pid":{dead_pid},"host":"h","started_at":"2026-01-01T00:00:00Z","run_id":"old"}}"#
    );
    let toml = LOCKED.replace("sleep 1000", "true");
    let out = Drill::new(&toml)
        .file("artifacts/.restore-drill-locked.lock", lock.as_bytes())
        .run()
        .expect_code(0);
    let warnings = out.record()["warnings"].to_string();
    assert!(
        warnings.contains(&format!("left by a run that died (pid {dead_pid}")),
        "{warnings}"
    );
    assert!(out.report().contains("took over the lock"));
}

// ---------------------------------------------------------------------------------------
// the default playbook

#[test]
fn default_sqlite_playbook_starts_the_demo_service_and_probes_it() {
    let marker = Marker::new();
    let toml = include_str!("../../playbooks/sqlite.toml");
    let out = marker
        .on(Drill::new(toml))
        .arg("--var")
        .arg("source_db=cortex.db")
        .arg("--var")
        .arg(&format!("demo_service={DEMO}"))
        .run()
        .expect_code(0);
    assert_eq!(out.step("service")["status"], "passed");
    assert_eq!(out.step("healthz")["outputs"]["body"], r#"{"ok":true}"#);
    let readyz = out.step("readyz");
    assert_eq!(readyz["phase"], "verify");
    assert!(
        readyz["outputs"]["body"]
            .as_str()
            .unwrap()
            .contains(r#""db":"up""#)
    );
    assert_eq!(resource(&out.record(), "service")["removed"], true);
    marker.assert_none_left();
}
