//! The `http` probe against a real server on 127.0.0.1: what passes, what fails and how
//! each failure is told, retries, and what is sent.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::super::testing::{assert_between, ctx, log, step};
use super::*;

/// A server answering request `n` (from 1) with `respond(n)`: status and body. It keeps
/// every request (head and body) as text.
struct Server {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn serve(respond: impl Fn(usize) -> (u16, String) + Send + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&requests);
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(&stream);
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = n.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            kept.lock()
                .unwrap()
                .push(format!("{head}\n{}", String::from_utf8_lossy(&body)));
            let (status, body) = respond(i + 1);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Server { url, requests }
}

fn probe(dir: &std::path::Path, url: &str, fields: &str) -> StepOutcome {
    let toml = format!("id = \"t\"\nkind = \"http\"\nurl = {url:?}\n{fields}");
    super::super::execute(&step(&toml), &ctx(dir))
}

fn ok(body: &str) -> impl Fn(usize) -> (u16, String) + Send + 'static {
    let body = body.to_string();
    move |_| (200, body.clone())
}

#[test]
fn a_healthy_answer_passes_with_its_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(ok(r#"{"ok":true}"#));
    let out = probe(dir.path(), &server.url, "");
    assert!(out.passed, "{:?}", out.error);
    assert_eq!(out.outputs["status"], json!(200));
    assert_eq!(out.outputs["probes"], json!(1));
    assert_eq!(out.outputs["body"], json!(r#"{"ok":true}"#));
    assert_eq!(out.outputs["url"], json!(server.url));
    assert!(out.outputs["latency_ms"].is_u64());
    assert!(out.log_tail.is_none());
    let logged = log(dir.path());
    assert!(
        logged.contains(&format!("attempt 1: GET {} → HTTP 200 in ", server.url)),
        "{logged}"
    );
    assert!(logged.contains("ms: ok"), "{logged}");
    let sent = server.requests.lock().unwrap()[0].clone();
    assert!(sent.starts_with("GET /health HTTP/1.1"), "{sent}");
}

#[test]
fn a_status_outside_the_expected_fails_naming_it_and_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(|_| (503, "pool   exhausted\nnow".into()));
    let out = probe(dir.path(), &server.url, "");
    assert!(!out.passed);
    let error = out.error.unwrap();
    assert_between(
        &error,
        "status 503 is not 2xx after 1 attempt(s) over ",
        "; last response: HTTP 503: pool exhausted now",
    );
    let tail = out.log_tail.unwrap();
    let start = format!("GET {}\nHTTP 503 (", server.url);
    assert_between(&tail, &start, "ms)\npool   exhausted\nnow");
    assert_eq!(out.outputs["status"], json!(503));
    assert!(log(dir.path()).contains("status 503 is not 2xx"));
}

#[test]
fn expect_status_takes_codes_and_classes() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(|_| (204, String::new()));
    for (fields, passes) in [
        ("expect_status = 204", true),
        ("expect_status = \"2XX\"", true),
        ("expect_status = [200, 204]", true),
        ("expect_status = [200, \"3xx\"]", false),
        ("expect_status = 200", false),
    ] {
        let out = probe(dir.path(), &server.url, fields);
        assert_eq!(out.passed, passes, "{fields}: {:?}", out.error);
        if !passes {
            assert!(
                out.error.unwrap().contains("status 204 is not 200"),
                "{fields}"
            );
        }
    }
    let out = probe(dir.path(), &server.url, "expect_status = []");
    assert!(out.error.unwrap().contains("empty list"));
    let out = probe(dir.path(), &server.url, "expect_status = \"200-ish\"");
    assert!(
        out.error
            .unwrap()
            .contains("`200-ish` is not a status code")
    );
}

#[test]
fn body_expectations_fail_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(ok(r#"{"ok":true,"db":{"state":"up"}}"#));
    let passes = |fields: &str| probe(dir.path(), &server.url, fields);
    assert!(passes("expect_json = { db = { state = \"up\" } }").passed);
    assert!(passes("expect_body_contains = \"state\"").passed);
    let out = passes("expect_json = { db = { state = \"down\" } }");
    assert!(
        out.error
            .unwrap()
            .starts_with(r#"$.db.state is "up", expected "down""#)
    );
    let out = passes("expect_body_contains = \"ready\"");
    assert!(
        out.error
            .unwrap()
            .starts_with("the body does not contain \"ready\"")
    );
    let html = serve(ok("<html>"));
    let out = probe(dir.path(), &html.url, "expect_json = { ok = true }");
    assert!(out.error.unwrap().starts_with("the body is not JSON"));
    // The status is judged first.
    let failing = serve(|_| (500, r#"{"ok":true}"#.into()));
    let out = probe(dir.path(), &failing.url, "expect_json = { ok = true }");
    assert!(out.error.unwrap().starts_with("status 500"));
}

/// Issue 16: a number in `expect_json` must equal the body's, by value (5 = 5.0); any
/// other number fails naming both.
#[test]
fn expect_json_numbers_compare_by_value() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(ok(r#"{"rows":5,"ratio":0.5}"#));
    let expect = |fields: &str| probe(dir.path(), &server.url, fields);
    let out = expect("expect_json = { rows = 5.0, ratio = 0.5 }");
    assert!(out.passed, "{:?}", out.error);
    let out = expect("expect_json = { rows = 4 }");
    assert!(!out.passed);
    assert_between(
        &out.error.unwrap(),
        "$.rows is 5, expected 4 after 1 attempt(s)",
        "",
    );
    let out = expect("expect_json = { ratio = 0.25 }");
    assert_between(&out.error.unwrap(), "$.ratio is 0.5, expected 0.25", "");
}

#[test]
fn method_headers_and_body_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(ok("{}"));
    let out = probe(
        dir.path(),
        &server.url,
        "body = \"ping\"\nheaders = { X-Drill = \"yes\" }",
    );
    assert!(out.passed, "{:?}", out.error);
    let out = probe(dir.path(), &server.url, "method = \"put\"");
    assert!(out.passed, "{:?}", out.error);
    assert!(log(dir.path()).contains("attempt 1: PUT "));
    let sent = server.requests.lock().unwrap().clone();
    assert!(sent[0].starts_with("POST /health"), "{}", sent[0]);
    assert!(
        sent[0].to_ascii_lowercase().contains("x-drill: yes"),
        "{}",
        sent[0]
    );
    assert!(sent[0].ends_with("\nping"), "{}", sent[0]);
    assert!(sent[1].starts_with("PUT /health"), "{}", sent[1]);
}

#[test]
fn retry_until_probes_again_until_the_answer_is_right() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(|n| {
        if n < 3 {
            (503, "starting".into())
        } else {
            (200, "{}".into())
        }
    });
    let out = probe(
        dir.path(),
        &server.url,
        "retry_until = \"10s\"\ninterval = \"10ms\"",
    );
    assert!(out.passed, "{:?}", out.error);
    assert_eq!(out.outputs["probes"], json!(3));
    let logged = log(dir.path());
    assert!(logged.contains("attempt 2: GET") && logged.contains("attempt 3: GET"));
}

#[test]
fn retry_until_gives_up_at_its_deadline_with_the_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(|_| (503, "starting".into()));
    let started = Instant::now();
    let out = probe(
        dir.path(),
        &server.url,
        "retry_until = \"300ms\"\ninterval = \"50ms\"",
    );
    let took = started.elapsed();
    assert!(!out.passed);
    let probes = out.outputs["probes"].as_u64().unwrap();
    assert!((3..=8).contains(&probes), "{probes} probes");
    assert!(
        out.error
            .unwrap()
            .contains(&format!("after {probes} attempt(s)"))
    );
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn no_server_fails_with_the_connection_error() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let out = probe(dir.path(), &url, "");
    assert!(!out.passed);
    let error = out.error.unwrap();
    assert!(
        error.starts_with("no response after 1 attempt(s) over "),
        "{error}"
    );
    assert_eq!(out.outputs["status"], json!(null));
    assert_eq!(out.outputs["body"], json!(null));
    assert!(out.log_tail.unwrap().starts_with(&format!("GET {url}\n")));
    let bad = probe(dir.path(), "http://exa mple/", "");
    assert!(bad.error.unwrap().starts_with("no response"));
}

/// A probe cancelled while it waits to try again stops at once, counting its attempts.
/// The cancel comes once the first answer is in the log: cancelled earlier, the first
/// attempt itself is given up (`a_request_in_flight_is_given_up_when_cancelled`).
#[test]
fn a_cancelled_probe_stops_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(|_| (503, String::new()));
    let c = ctx(dir.path());
    let cancel = Arc::clone(&c.cancel);
    let logged = dir.path().to_path_buf();
    let stopper = std::thread::spawn(move || {
        let waiting = Instant::now();
        while !log(&logged).contains("→ HTTP 503") && waiting.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        cancel.stop(Duration::ZERO);
    });
    let toml = format!(
        "id = \"t\"\nkind = \"http\"\nurl = {:?}\nretry_until = \"1h\"\ninterval = \"1h\"",
        server.url
    );
    let started = Instant::now();
    let out = super::super::execute(&step(&toml), &c);
    stopper.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(out.error.as_deref(), Some("cancelled after 1 attempt(s)"));
}

/// A request blocked on a server that accepts and never answers is given up the moment
/// the step is cancelled, not at its `request_timeout`.
#[test]
fn a_request_in_flight_is_given_up_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", silent.local_addr().unwrap());
    let c = ctx(dir.path());
    let cancel = Arc::clone(&c.cancel);
    // Holds the connection (returned) until the step has ended.
    let stopper = std::thread::spawn(move || {
        let held = silent.accept();
        std::thread::sleep(Duration::from_millis(200));
        cancel.stop(Duration::ZERO);
        held
    });
    let toml = format!("id = \"t\"\nkind = \"http\"\nurl = {url:?}\nrequest_timeout = \"1h\"");
    let out = super::super::execute(&step(&toml), &c);
    let error = out.error.unwrap();
    assert_eq!(
        error,
        format!("cancelled during attempt 1, before {url} answered")
    );
    drop(stopper.join().unwrap());
}

#[test]
fn a_long_body_is_kept_cut() {
    let dir = tempfile::tempdir().unwrap();
    let long = "é".repeat(3000);
    let server = serve(move |_| (500, long.clone()));
    let out = probe(dir.path(), &server.url, "");
    let body = out.outputs["body"].as_str().unwrap();
    assert_eq!(body.len(), KEEP_BODY + "…".len());
    let error = out.error.unwrap();
    let quoted = error.rsplit("HTTP 500: ").next().unwrap();
    assert_eq!(quoted.len(), EXCERPT + "…".len());
    let tail = out.log_tail.unwrap();
    assert!(
        tail.ends_with(&format!("{}…", "é".repeat(512))),
        "{}",
        tail.len()
    );
}

#[test]
fn each_attempt_ends_by_the_deadline_but_gets_half_a_second() {
    let t = Duration::from_secs(5);
    assert_eq!(per_attempt_timeout(t, None), t);
    let far = Instant::now() + Duration::from_secs(60);
    assert_eq!(per_attempt_timeout(t, Some(far)), t);
    let near = per_attempt_timeout(t, Some(Instant::now() + Duration::from_secs(2)));
    assert!(
        near <= Duration::from_secs(2) && near > Duration::from_millis(1500),
        "{near:?}"
    );
    let past = per_attempt_timeout(t, Some(Instant::now()));
    assert_eq!(past, Duration::from_millis(500));
}

#[test]
fn text_helpers() {
    assert_eq!(one_line(" a \n\t b  c "), "a b c");
    assert_eq!(truncate("abcdef", 3), "abc…");
    assert_eq!(truncate("abc", 3), "abc");
}

#[test]
fn a_get_request_for_readiness() {
    let server = serve(|_| (404, "nope".into()));
    let r = Request::get(&server.url, Duration::from_secs(2));
    assert_eq!(r.method, "GET");
    let answer = r.send(&agent(), Duration::from_secs(2)).unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (404, "nope"));
}
