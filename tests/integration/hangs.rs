//! Waits that must end: a server that accepts connections and never speaks, a step that
//! does not stop when told to. Each run is bounded; the record says what timed out.

use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::hostile::{Bounded, run_bounded};
use super::*;

/// A real socket on 127.0.0.1 that accepts every connection and never sends a byte
/// (a hung server, or the wrong service on the port). Connections stay open while the
/// test runs.
struct Silent {
    port: u16,
    _held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Silent {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let keep = Arc::clone(&held);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                keep.lock().unwrap().push(stream);
            }
        });
        Self { port, _held: held }
    }
}

/// Runs `playbook`, killing it after `limit`: it must end on its own, exit 1, and leave a
/// record whose step `id` is returned.
fn ends_failed(playbook: &Playbook, id: &str, limit: Duration) -> Value {
    let drill = playbook.drill();
    let ran: Bounded = run_bounded(drill.command(), limit);
    ran.assert_sane("run");
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    let record = latest_record(drill.path()).expect("a record");
    let step = record["steps"].as_array().unwrap().iter();
    step.clone()
        .find(|s| s["id"] == id)
        .expect("the step")
        .clone()
}

/// A `sql` step whose server accepts the connection and never answers fails within the
/// connect limit (15 s) naming the server, instead of waiting for ever; with no step
/// `timeout` set, nothing else would stop it.
#[test]
fn a_sql_step_against_a_server_that_never_answers_fails_instead_of_hanging() {
    let silent = Silent::start();
    let urls = [
        (
            "postgres",
            format!("postgres://u:pw@127.0.0.1:{}/db", silent.port),
        ),
        (
            "mysql",
            format!("mysql://u:pw@127.0.0.1:{}/db", silent.port),
        ),
    ];
    let runs: Vec<_> = urls
        .into_iter()
        .map(|(engine, url)| {
            std::thread::spawn(move || {
                let playbook = pb(&format!("silent-{engine}"))
                    .step(sql("verify", engine, &url).checks([query("one", "SELECT 1", 1)]));
                (
                    url,
                    ends_failed(&playbook, "verify", Duration::from_secs(60)),
                )
            })
        })
        .collect();
    for run in runs {
        let (url, step) = run.join().unwrap();
        let error = step["error"].as_str().unwrap_or_default();
        let shown = url.replace(":pw", "");
        assert_eq!(step["status"], "failed", "{step}");
        assert!(
            error.contains("no answer within 15") && error.contains(&shown),
            "{error}"
        );
        assert!(!error.contains("pw@"), "{error}");
    }
}

/// A step that does not stop when its timeout tells it to (a `sql` step whose client is
/// blocked in a handshake with a server that never answers, under a long
/// `connect_timeout`) is abandoned, and recorded as timed out, with its timeout: not as a
/// plain failure.
#[test]
fn a_step_abandoned_at_its_timeout_is_recorded_as_timed_out() {
    let silent = Silent::start();
    let url = format!(
        "postgres://u@127.0.0.1:{}/db?connect_timeout=3600",
        silent.port
    );
    let playbook = pb("abandoned").step(
        sql("verify", "postgres", &url)
            .checks([query("one", "SELECT 1", 1)])
            .set("timeout", "2s"),
    );
    let step = ends_failed(&playbook, "verify", Duration::from_secs(90));
    assert_eq!(step["status"], "timed_out", "{step}");
    let error = step["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("timed out after 2.0s"), "{error}");
    assert!(error.ends_with("was abandoned"), "{error}");
}

/// An http probe blocked on a server that never answers (a long `request_timeout`) stops
/// at the step's `timeout`, as told: the request is given up, not the step abandoned.
#[test]
fn an_http_probe_blocked_on_a_silent_server_stops_at_its_timeout() {
    let silent = Silent::start();
    let url = format!("http://127.0.0.1:{}/healthz", silent.port);
    let playbook = pb("probe-stops").step(
        http("probe", &url)
            .set("request_timeout", "1h")
            .set("timeout", "2s"),
    );
    let step = ends_failed(&playbook, "probe", Duration::from_secs(90));
    assert_eq!(step["status"], "timed_out", "{step}");
    let error = step["error"].as_str().unwrap_or_default();
    assert_eq!(
        error, "timed out after 2.0s; its work was cancelled",
        "{step}"
    );
}

/// A FIFO named like a record (or a signature) among the records is refused at once by
/// `status`, `history` and `verify`, naming it, and passed over by a run's HTML report
/// (its history chart); opening it waited for a writer for ever.
#[test]
fn a_fifo_among_the_records_is_refused_not_waited_on() {
    let drill = pb("fifo")
        .table("report", "formats", raw(r#"["html"]"#))
        .step(wait("pause", "0s"))
        .drill();
    let dir = drill.path().to_path_buf();
    drill.run_again().expect_code(0);
    let artifacts = dir.join("artifacts");
    let record = newest_artifact(&artifacts, ".json");
    for fifo in [
        artifacts.join("restore_drill_20991231T000000Z.json"),
        record.with_extension("json.sig"),
    ] {
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }
    for command in ["status", "history", "verify"] {
        let ran = run_bounded(
            hostile::tool(&dir, &[command, "artifacts"]),
            Duration::from_secs(30),
        );
        ran.assert_sane(command);
        assert!(
            ran.stderr.contains("not a regular file") || ran.stdout.contains("not a regular file"),
            "{command}: {}\n{}",
            ran.stderr,
            ran.stdout
        );
    }
    let again = run_bounded(drill.command(), Duration::from_secs(30));
    again.assert_sane("run");
    assert_eq!(again.code, Some(0), "{}", again.stderr);
}

/// The verdict is on disk before the notification of the end is sent: while a webhook
/// receiver that never answers is tried (3 attempts of `timeout`), the record already
/// says `passed`, so a run killed meanwhile (a CI or systemd time limit) keeps it. It
/// said `running` until every receiver had been tried.
#[test]
fn the_record_holds_the_verdict_while_a_receiver_never_answers() {
    let silent = Silent::start();
    let (mut running, status) = notifying_a_receiver_that_never_answers(&silent);
    let still_notifying = running.child.try_wait().unwrap().is_none();
    running.child.kill().unwrap();
    running.child.wait().unwrap();
    assert!(still_notifying, "the run ended before the test looked");
    assert_eq!(status, Some("passed".into()));
}

/// A drill that passes and notifies its end to `silent` (`timeout = "60s"`, so 3 minutes
/// of trying), once its record on disk is no longer `running` (or after 30 s): that
/// status.
fn notifying_a_receiver_that_never_answers(silent: &Silent) -> (Running, Option<Value>) {
    let url = format!("http://127.0.0.1:{}/hook", silent.port);
    let running = pb("notified")
        .table("notify", "on", raw(r#"["success"]"#))
        .table("notify", "webhook", raw(format!("{{ url = \"{url}\" }}")))
        .table("notify", "timeout", "60s")
        .step(wait("pause", "0s"))
        .drill()
        .start();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = running.record().map(|r| r["status"].clone());
        let done = status.as_ref().is_some_and(|s| s != "running");
        if done || std::time::Instant::now() >= deadline {
            return (running, status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ctrl-C while the end is being notified stops the sending at once (the request in
/// flight is given up on): the run ends, its record saying which notification was
/// interrupted. It was ignored until every receiver had been tried 3 times.
#[test]
fn ctrl_c_while_a_receiver_never_answers_ends_the_run() {
    let silent = Silent::start();
    let (mut running, _) = notifying_a_receiver_that_never_answers(&silent);
    running.signal(libc::SIGINT);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let ended = loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            running.child.kill().unwrap();
            running.child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(ended.is_some(), "still notifying 30 s after Ctrl-C");
    let record = running.record().unwrap();
    let sent = &record["notifications"][0];
    assert_eq!(sent["delivered"], false, "{sent}");
    assert!(
        sent["error"].as_str().unwrap().contains("interrupted"),
        "{sent}"
    );
}
