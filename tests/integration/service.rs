//! Health probes, services, timeouts, interruption, teardown and the drill lock, with
//! real processes and real HTTP servers on 127.0.0.1.
//!
//! Every drill here runs with a unique `RESTORE_DRILL_TEST_MARKER` in its environment,
//! which every process it starts inherits; `Marker::assert_none_left` then scans /proc
//! for it, proving that nothing the drill started outlived it.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
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
    let mut lines = BufReader::new(&stream).lines();
    let line = lines.next().transpose()?.unwrap_or_default();
    // The headers, up to the empty line: read so that the client is not cut off.
    for header in lines.by_ref() {
        if header?.trim().is_empty() {
            break;
        }
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

/// A drill with a single http step `probe` of `url` (plus `fields`, `key = value` lines).
fn probe(url: &str, fields: &str) -> Playbook {
    pb("probe").step(http("probe", url).fields(fields))
}

/// A url nothing answers.
fn nobody_listening() -> String {
    format!("http://127.0.0.1:{}/healthz", free_port())
}

fn pid_alive(pid: i64) -> bool {
    // A zombie has no environ and is as good as gone; /proc/<pid>/stat says which.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

// ---------------------------------------------------------------------------------------
// http

#[test]
fn http_probe_passes_on_the_expected_answer() {
    let server =
        TestServer::start(|_, _| (200, r#"{"ok":true,"db":{"state":"up","lag":0}}"#.into()));
    let fields = r#"expect_status = [200, 204]
expect_json = { ok = true, db = { state = "up" } }
expect_body_contains = "lag"
headers = { Authorization = "Bearer {{ secrets.token }}" }"#;
    let playbook = probe(&server.url("/healthz"), fields).secret("token", "PROBE_TOKEN");
    let d = playbook.drill().env("PROBE_TOKEN", "s3cr3t-t0ken");
    let out = d.run().expect_code(0);
    let step = out.step("probe");
    assert_eq!(step.output("status"), 200);
    assert_eq!(step.output("probes"), 1);
    assert!(step.output("latency_ms").is_u64());
    step.output_has("body", "\"up\"");
    assert!(
        !out.log().contains("s3cr3t-t0ken"),
        "a header secret reached the log"
    );
}

#[test]
fn http_500_fails_with_the_last_response() {
    let body = r#"{"error":"database connection pool exhausted"}"#;
    let server = TestServer::start(move |_, _| (500, body.into()));
    let out = probe(&server.url("/healthz"), "").run().expect_code(1);
    let step = out.step("probe");
    step.failed_with("status 500 is not 2xx")
        .says("after 1 attempt");
    step.says("HTTP 500").says("pool exhausted");
    out.report_has("HTTP 500").report_has("pool exhausted");
}

#[test]
fn http_wrong_json_fails_naming_the_field() {
    let server = TestServer::start(|_, _| (200, r#"{"ok":true,"db":"down"}"#.into()));
    let expect_up = r#"expect_json = { ok = true, db = "up" }"#;
    let bad = probe(&server.url("/readyz"), expect_up)
        .run()
        .expect_code(1);
    bad.step("probe").says(r#"$.db is "down", expected "up""#);
    bad.report_has(r#"{"ok":true,"db":"down"}"#);

    let not_json = TestServer::start(|_, _| (200, "<html>oops</html>".into()));
    let out = probe(&not_json.url("/"), "expect_json = { ok = true }").run();
    out.expect_code(1).step("probe").says("not JSON");

    let up = r#"expect_body_contains = "\"db\":\"up\"""#;
    let body = probe(&server.url("/"), up).run().expect_code(1);
    body.step("probe").says("does not contain");
}

#[test]
fn http_status_expectations_are_checked() {
    let server = TestServer::start(|path, _| match path {
        "/created" => (201, "{}".into()),
        _ => (404, "{}".into()),
    });
    let created = server.url("/created");
    for (url, expect) in [
        (&created, "201"),
        (&created, r#""2xx""#),
        (&server.url("/missing"), "404"),
    ] {
        probe(url, &format!("expect_status = {expect}"))
            .run()
            .expect_code(0);
    }
    let out = probe(&created, "expect_status = [200, 204]").run();
    out.expect_code(1)
        .step("probe")
        .says("status 201 is not 200 or 204");
    // A malformed expectation is an invalid playbook: nothing runs.
    let out = probe(&created, r#"expect_status = "2x""#)
        .run()
        .expect_code(2);
    out.stderr_has("`2x` is not a status code")
        .stderr_has("playbook.toml:");
    // A templated one can only be judged when it is rendered.
    let templated = probe(&created, r#"expect_status = "{{ vars.code }}""#).var("code", "2x");
    let out = templated.run().expect_code(1);
    out.step("probe").says("not a status code");
}

#[test]
fn http_never_listening_fails_with_the_connection_error_and_attempts() {
    let retrying = "retry_until = \"1s\"\ninterval = \"200ms\"";
    let out = probe(&nobody_listening(), retrying).run().expect_code(1);
    let step = out.step("probe");
    let error = step.message();
    assert!(error.to_lowercase().contains("refused"), "{error}");
    let probes = step.output("probes").as_u64().unwrap();
    assert!(
        probes >= 3,
        "kept probing until retry_until: {probes} attempts"
    );
    step.says(&format!("after {probes} attempt(s)"));
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
    let fields = "retry_until = \"8s\"\ninterval = \"250ms\"\nexpect_json = { ok = true }";
    let out = probe(&server.url("/healthz"), fields).run().expect_code(0);
    let step = out.step("probe");
    assert!(step.output("probes").as_u64().unwrap() > 1, "{step}");
    assert!(server.hits() > 1);

    // The same server, probed with too short a deadline, fails.
    let server = becomes_healthy();
    let fields = "retry_until = \"700ms\"\ninterval = \"250ms\"";
    let out = probe(&server.url("/healthz"), fields).run().expect_code(1);
    out.step("probe").says("HTTP 503");
}

// ---------------------------------------------------------------------------------------
// service

/// A drill that starts the demo service on `db` and probes it (`readyz` with `expect`).
fn demo_drill(db: &str, expect: &str) -> Drill {
    let base = "http://127.0.0.1:{{ vars.port }}";
    let argv = format!(r#"["{DEMO}", "--db", "{db}", "--port", "{{{{ vars.port }}}}"]"#);
    let ready = format!(r#"{{ url = "{base}/healthz", timeout = "20s" }}"#);
    pb("svc")
        .var("port", "{{ free_port() }}")
        .step(
            service("app")
                .set("argv", raw(argv))
                .set("ready", raw(ready)),
        )
        .step(http("healthz", &format!("{base}/healthz")).fields("expect_json = { ok = true }"))
        .step(http("readyz", &format!("{base}/readyz")).fields(expect))
        .drill()
}

const DB_UP: &str = r#"expect_json = { ok = true, db = "up" }"#;

#[test]
fn healthy_service_passes_and_is_stopped_at_teardown() {
    let marker = Marker::new();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("restored.db");
    make_db(&db, 50);
    let out = marker.on(demo_drill(db.to_str().unwrap(), DB_UP)).run();
    let out = out.expect_code(0);
    let app = out.step("app");
    assert_eq!(app["phase"], "restart");
    let pid = app.output("pid").as_i64().unwrap();
    assert!(!pid_alive(pid), "the service still runs after the drill");
    let svc = out.resource("service");
    assert_eq!(svc["id"], pid.to_string());
    assert_eq!(svc["removed"], true);
    assert_eq!(out.output("readyz", "status"), 200);
    // Service output streamed into the log.
    out.log_has("[app] stdout: listening on")
        .log_has("stopped by SIGTERM");
    marker.assert_none_left();
}

#[test]
fn readyz_fails_when_the_service_cannot_read_the_database() {
    let marker = Marker::new();
    let out = marker
        .on(demo_drill("/nonexistent/restored.db", DB_UP))
        .run();
    let out = out.expect_code(1);
    out.step("healthz").passed();
    out.step("readyz").says("status 503");
    out.report_has("unable to open database file");
    assert_eq!(out.resource("service")["removed"], true);
    marker.assert_none_left();
    super::names::outputs_are_declared(&out);
}

/// A drill with the service `app` (its `fields`), then the given steps, and a cleanup
/// step that leaves `cleaned`.
fn service_drill(fields: &str, then: Option<Step>) -> Drill {
    let app = pb("svc").step(service("app").fields(fields));
    app.step(then).step(mark_cleaned()).drill()
}

#[test]
fn crashing_service_is_reported_with_exit_status_and_log_tail() {
    let marker = Marker::new();
    let service = r#"run = "echo 'starting cortex'; echo 'fatal: state db is corrupt' >&2; exit 3"
ready = { log_line = "listening", timeout = "10s" }"#;
    let out = marker.on(service_drill(service, None)).run().expect_code(1);
    let app = out.step("app");
    app.says("exited before it was ready: exit status 3");
    let tail = app["log_tail"].as_str().unwrap();
    assert!(
        tail.contains("fatal: state db is corrupt") && tail.contains("starting cortex"),
        "{tail}"
    );
    out.report_has("fatal: state db is corrupt");
    assert!(out.cleaned(), "cleanup ran");
    marker.assert_none_left();
}

#[test]
fn missing_service_program_fails_naming_it() {
    let service = r#"argv = ["/nonexistent/cortex", "--db", "x.db"]"#;
    let out = service_drill(service, None).run().expect_code(1);
    out.step("app")
        .says("cannot start the service `/nonexistent/cortex`");
    let record = out.record();
    let resources = record["resources"].as_array().unwrap();
    assert!(resources.iter().all(|r| r["kind"] != "service"));
}

#[test]
fn service_ready_by_log_line_passes_and_one_that_never_gets_ready_fails() {
    let marker = Marker::new();
    let good = r#"run = "echo booting; sleep 0.3; echo 'listening on :8080'; exec sleep 1000"
ready = { log_line = "listening on", timeout = "10s" }"#;
    let out = marker.on(service_drill(good, None)).run().expect_code(0);
    assert!(out.output("app", "ready_s").as_f64().unwrap() >= 0.3);
    marker.assert_none_left();

    let marker = Marker::new();
    let never = r#"run = "echo booting; sleep 1000 & sleep 1000"
ready = { log_line = "listening on", timeout = "1s" }"#;
    let out = marker.on(service_drill(never, None)).run().expect_code(1);
    let app = out.step("app");
    app.says(r#"never printed "listening on""#);
    assert!(app["log_tail"].as_str().unwrap().contains("booting"));
    marker.assert_none_left();

    let marker = Marker::new();
    let url = nobody_listening();
    let never =
        format!("run = \"exec sleep 1000\"\nready = {{ url = \"{url}\", timeout = \"1s\" }}");
    let out = marker.on(service_drill(&never, None)).run().expect_code(1);
    let error = out.step("app").says("never answered 2xx").message();
    assert!(error.to_lowercase().contains("refused"), "{error}");
    marker.assert_none_left();
}

#[test]
fn service_ignoring_sigterm_is_killed_after_its_grace() {
    let marker = Marker::new();
    let stubborn = r#"run = "trap '' TERM; echo up; while true; do sleep 0.1; done"
ready = { log_line = "up" }
stop_grace = "1s""#;
    let out = marker
        .on(service_drill(stubborn, None))
        .run()
        .expect_code(0);
    out.log_has("killed with SIGKILL after ignoring SIGTERM for 1");
    assert_eq!(out.resource("service")["removed"], true);
    marker.assert_none_left();
}

// ---------------------------------------------------------------------------------------
// timeouts and interruption

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let hang = |run: &str, timeout: &str| {
        pb("to")
            .step(exec("hang", run).set("timeout", timeout))
            .drill()
    };
    let marker = Marker::new();
    let started = Instant::now();
    let out = marker.on(hang("sleep 1000 & sleep 1000", "1s")).run();
    out.expect_code(1).step("hang").status("timed_out");
    assert!(started.elapsed() < Duration::from_secs(10));
    marker.assert_none_left();

    // The same command with room to finish is not killed: the check can pass.
    let marker = Marker::new();
    let quick = hang("sleep 0.2 & sleep 0.2", "10s");
    marker.on(quick).run().expect_code(0);
    marker.assert_none_left();
}

#[test]
fn a_timed_out_step_says_whether_sigterm_sufficed_or_sigkill_was_needed() {
    let hang = |run: &str| {
        pb("to")
            .step(exec("hang", run).set("timeout", "1s"))
            .drill()
    };
    let marker = Marker::new();
    let out = marker.on(hang("sleep 100")).run().expect_code(1);
    out.step("hang").status("timed_out");
    let error = out.step("hang")["error"].as_str().unwrap().to_string();
    assert_eq!(error, "timed out after 1.0s; stopped by SIGTERM");
    marker.assert_none_left();

    // It ignores SIGTERM (and so does the sleep it starts): 3 s of grace, then SIGKILL.
    let marker = Marker::new();
    let started = Instant::now();
    let out = marker
        .on(hang("trap '' TERM; sleep 100"))
        .run()
        .expect_code(1);
    assert!(started.elapsed() >= Duration::from_secs(4));
    out.step("hang").status("timed_out");
    let error = out.step("hang")["error"].as_str().unwrap().to_string();
    assert_eq!(error, "timed out after 1.0s; SIGKILL was needed");
    marker.assert_none_left();
}

/// A service, then a long step to interrupt, then cleanup (`slow_cleanup` first).
fn interruptible(slow_cleanup: Option<Step>) -> Drill {
    let app = service("app").set("run", "echo ready; exec sleep 1000");
    pb("intr")
        .step(app.set("ready", raw(r#"{ log_line = "ready" }"#)))
        .step(exec("long", "sleep 1000 & sleep 1000"))
        .step(exec("after", "touch after"))
        .step(slow_cleanup)
        .step(mark_cleaned())
        .drill()
}

fn interrupt_with(signal: i32) {
    let marker = Marker::new();
    let mut run = marker.on(interruptible(None)).start();
    run.wait_running("long");
    run.signal(signal);
    let out = run.finish().expect_code(130);
    out.status("aborted");
    assert_eq!(out.step("long")["error"], "interrupted");
    out.step("after").status("not_run");
    out.step("mark").passed();
    assert!(out.cleaned(), "cleanup ran");
    assert!(!out.path().join("after").exists());
    assert_eq!(out.resource("service")["removed"], true);
    assert_eq!(out.resource("workdir")["removed"], true);
    assert!(!Path::new(out.record()["workdir"].as_str().unwrap()).exists());
    out.report_has("ABORTED");
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
    let retrying = http("probe", &nobody_listening()).set("retry_until", "60s");
    let cases = [
        (
            "app",
            "run = \"echo booting; exec sleep 1000\"\nready = { log_line = \"never\", timeout = \"60s\" }",
            None,
        ),
        (
            "probe",
            "run = \"echo ready; exec sleep 1000\"\nready = { log_line = \"ready\" }",
            Some(retrying),
        ),
    ];
    for (step, service, then) in cases {
        let marker = Marker::new();
        let mut run = marker.on(service_drill(service, then)).start();
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
        out.status("aborted");
        assert!(out.cleaned());
        assert_eq!(out.resource("service")["removed"], true);
        marker.assert_none_left();
    }
}

#[test]
fn a_second_interrupt_skips_cleanup_and_reports_what_was_left() {
    let marker = Marker::new();
    let slow = exec("slow", "sleep 1000").in_cleanup();
    let run = marker.on(interruptible(Some(slow))).start();
    let out = run.interrupt_twice("long", "slow");
    // The rest of cleanup was skipped.
    out.step("mark").status("not_run");
    // Services stop before the cleanup steps, so the application was already gone.
    assert_eq!(out.resource("service")["removed"], true);
    let warnings = out.record()["warnings"].to_string();
    assert!(
        warnings.contains("second interrupt: cleanup step `mark` and those after it skipped"),
        "{warnings}"
    );
    out.report_has("## Warnings")
        .report_has("cleanup step `mark`");
    marker.assert_none_left();
}

#[test]
fn kept_workdir_is_recorded_and_reported_as_a_leftover() {
    let keep = pb("keep").step(exec("w", "touch '{{ drill.workdir }}/x'"));
    let out = keep.drill().arg("--keep-workdir").run().expect_code(0);
    let workdir = out.resource("workdir");
    assert_eq!(workdir["removed"], false);
    let path = workdir["id"].as_str().unwrap();
    assert!(Path::new(path).join("x").exists());
    out.report_has(&format!("workdir `{path}` was not removed"));
    std::fs::remove_dir_all(path).unwrap();

    let out = keep.run().expect_code(0);
    assert_eq!(out.resource("workdir")["removed"], true);
    assert!(!out.report().contains("## Warnings"));
}

// ---------------------------------------------------------------------------------------
// lock

/// The drill `locked`, whose one step runs `run`.
fn locked(run: &str) -> Playbook {
    pb("locked").step(exec("long", run))
}

#[test]
fn a_second_concurrent_run_exits_2_naming_the_holder() {
    let marker = Marker::new();
    let mut first = marker.on(locked("sleep 1000").drill()).start();
    first.wait_running("long");
    let args = [
        "run",
        "playbook.toml",
        "--artifacts",
        "artifacts",
        "--quiet",
    ];
    let second = restore_drill(first.path(), &args).expect_code(2);
    let stderr = &second.stderr;
    assert!(
        stderr.contains("another run of drill `locked` is in progress"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("pid {}", first.pid())), "{stderr}");
    assert!(stderr.contains("started at"), "{stderr}");
    let artifacts = listing(&first.path().join("artifacts"));
    let jsons = artifacts.iter().filter(|n| n.ends_with(".json")).count();
    assert_eq!(jsons, 1, "the refused run wrote nothing");

    first.signal(libc::SIGINT);
    let dir = first.finish().expect_code(130).dir;
    // Once the first is done, the lock is free: the same drill runs again.
    std::fs::write(dir.path().join("playbook.toml"), locked("true").toml()).unwrap();
    restore_drill(dir.path(), &args).expect_code(0);
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
    let d = locked("true").drill();
    let d = d.file("artifacts/.restore-drill-locked.lock", lock.as_bytes());
    let out = d.run().expect_code(0);
    let warnings = out.record()["warnings"].to_string();
    assert!(
        warnings.contains(&format!("left by a run that died (pid {dead_pid}")),
        "{warnings}"
    );
    out.report_has("took over the lock");
}

// ---------------------------------------------------------------------------------------
// the default playbook

#[test]
fn default_sqlite_playbook_starts_the_demo_service_and_probes_it() {
    let marker = Marker::new();
    let toml = include_str!("../../playbooks/sqlite.toml");
    let d = marker.on(Drill::new(toml));
    let d = d.arg("--var").arg("source_db=cortex.db");
    let out = d.arg("--var").arg(&format!("demo_service={DEMO}")).run();
    let out = out.expect_code(0);
    out.step("service").passed();
    assert_eq!(out.output("healthz", "body"), r#"{"ok":true}"#);
    let readyz = out.step("readyz");
    assert_eq!(readyz["phase"], "verify");
    readyz.output_has("body", r#""db":"up""#);
    assert_eq!(out.resource("service")["removed"], true);
    marker.assert_none_left();
}
