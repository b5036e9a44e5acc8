//! `http`: a health probe. One request, or repeated requests until the expectations hold
//! or `retry_until` has gone by (like Goss's `--retry-timeout`). A failure names the last
//! response (status and a body excerpt) or the connection error, and the attempt count.

use std::io::Read as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::Value;

use super::{StepCtx, StepOutcome, duration, required};
use crate::outputs;
use crate::playbook::{ExpectStatus, Step};
use crate::proc::{Cancel, Detached, Waited};

/// Default per-request limit: a probe must be short enough to stop soon after Ctrl-C,
/// because a blocking request cannot be interrupted.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// The shortest pause between attempts: `interval = "0s"` against a refusing port would
/// otherwise spin, writing a log line per attempt as fast as the disk takes them.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Most of a body read for matching; a health endpoint answering more is not a health endpoint.
const READ_LIMIT: u64 = 1024 * 1024;
/// How much of the body the record keeps.
const KEEP_BODY: usize = 2048;
/// How much of the body a failure message quotes.
const EXCERPT: usize = 300;

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let request = Request::of(step)?;
    let expect = Expect::of(step)?;
    let interval = duration(step.interval.as_deref(), "interval")?
        .unwrap_or(DEFAULT_INTERVAL)
        .max(MIN_INTERVAL);
    let retry_until = duration(step.retry_until.as_deref(), "retry_until")?;
    let started = Instant::now();
    let deadline = retry_until.map(|d| started + d);
    let agent = agent();
    let mut probes = 0u32;
    loop {
        probes += 1;
        let timeout = per_attempt_timeout(request.timeout, deadline);
        let Some(answer) = request.send_unless_cancelled(&agent, timeout, &ctx.cancel) else {
            let url = &request.url;
            ctx.log.write(
                &ctx.step_id,
                &format!("attempt {probes}: cancelled before {url} answered"),
            );
            return Ok(StepOutcome::failed(format!(
                "cancelled during attempt {probes}, before {url} answered"
            )));
        };
        let verdict = answer
            .as_ref()
            .map_err(String::clone)
            .and_then(|r| expect.check(r));
        log_attempt(ctx, &request, probes, &answer, &verdict);
        let finished = match deadline {
            Some(d) => verdict.is_ok() || Instant::now() >= d,
            None => true,
        };
        if finished {
            return Ok(conclude(ctx, &request, probes, started, answer, verdict));
        }
        let left = deadline.map_or(interval, |d| d.saturating_duration_since(Instant::now()));
        if !ctx.cancel.sleep(interval.min(left)) {
            let outcome = conclude(ctx, &request, probes, started, answer, verdict);
            return Ok(outcome.fail(format!("cancelled after {probes} attempt(s)")));
        }
    }
}

/// `request_timeout`, but never running far past the retry deadline.
fn per_attempt_timeout(timeout: Duration, deadline: Option<Instant>) -> Duration {
    match deadline {
        Some(d) => timeout.min(
            d.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(500)),
        ),
        None => timeout,
    }
}

/// An agent that reports every status as a response (the expectation judges it), follows
/// no redirects (the probe checks what this url answers) and ignores proxy variables
/// (health endpoints are local; a proxy would probe something else).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .build()
        .into()
}

/// A rendered request.
#[derive(Clone)]
pub struct Request {
    pub method: String,
    pub url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    timeout: Duration,
}

/// What the server said.
pub struct Response {
    pub status: u16,
    pub body: String,
    pub latency: Duration,
}

impl Request {
    fn of(step: &Step) -> anyhow::Result<Self> {
        let url = required(step.url.as_deref(), "url")?.to_string();
        // A body without a method is a POST, as with curl's `-d`.
        let default_method = if step.body.is_some() { "POST" } else { "GET" };
        Ok(Self {
            method: step
                .method
                .as_deref()
                .unwrap_or(default_method)
                .to_ascii_uppercase(),
            url,
            headers: step
                .headers
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            body: step.body.clone(),
            timeout: duration(step.request_timeout.as_deref(), "request_timeout")?
                .unwrap_or(DEFAULT_REQUEST_TIMEOUT),
        })
    }

    /// A GET of `url` expecting nothing in particular (service readiness).
    pub fn get(url: &str, timeout: Duration) -> Self {
        Self {
            method: "GET".into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout,
        }
    }

    /// One attempt, given up the moment `cancel` fires (None): a blocked request cannot
    /// be interrupted, so it runs on a thread of its own, left to end at its timeout,
    /// and the step stops when told to (at its `timeout`, on Ctrl-C) rather than being
    /// abandoned by the runner seconds later.
    pub fn send_unless_cancelled(
        &self,
        agent: &ureq::Agent,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Option<Result<Response, String>> {
        let (request, agent) = (self.clone(), agent.clone());
        let sending = match Detached::start("http-request", move || request.send(&agent, timeout)) {
            Ok(sending) => sending,
            Err(e) => return Some(Err(format!("cannot start the request: {e}"))),
        };
        match sending.wait(None, Some(cancel)) {
            Waited::Done(answer) => Some(answer),
            Waited::Cancelled | Waited::TimedOut => None,
            Waited::Crashed => Some(Err("the request ended without an answer".into())),
        }
    }

    /// One attempt; a transport failure (refused, timed out, bad url) is the error text.
    pub fn send(&self, agent: &ureq::Agent, timeout: Duration) -> Result<Response, String> {
        let started = Instant::now();
        let result = self.build().and_then(|req| {
            let req = agent
                .configure_request(req)
                .timeout_global(Some(timeout))
                .build();
            let mut response = agent.run(req).map_err(|e| anyhow::anyhow!(e))?;
            let status = response.status().as_u16();
            let mut bytes = Vec::new();
            response
                .body_mut()
                .as_reader()
                .take(READ_LIMIT)
                .read_to_end(&mut bytes)
                .context("reading the response body")?;
            Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
        });
        result
            .map(|(status, body)| Response {
                status,
                body,
                latency: started.elapsed(),
            })
            .map_err(|e| format!("{e:#}"))
    }

    fn build(&self) -> anyhow::Result<ureq::http::Request<Vec<u8>>> {
        let mut builder = ureq::http::Request::builder()
            .method(self.method.as_str())
            .uri(&self.url);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let body = self.body.clone().unwrap_or_default().into_bytes();
        builder
            .body(body)
            .with_context(|| format!("bad request to {}", self.url))
    }
}

/// `expect_status`, `expect_json`, `expect_body_contains`.
struct Expect {
    status: ExpectStatus,
    json: Option<Value>,
    contains: Option<String>,
}

impl Expect {
    fn of(step: &Step) -> anyhow::Result<Self> {
        Ok(Self {
            status: ExpectStatus::of(step.expect_status.as_ref())?,
            json: step.expect_json.clone(),
            contains: step.expect_body_contains.clone(),
        })
    }

    /// The first expectation the response misses.
    fn check(&self, response: &Response) -> Result<(), String> {
        if !self.status.matches(response.status) {
            return Err(format!("status {} is not {}", response.status, self.status));
        }
        if let Some(want) = &self.json {
            let got: Value = serde_json::from_str(&response.body)
                .map_err(|e| format!("the body is not JSON ({e})"))?;
            json_subset(want, &got, "$")?;
        }
        if let Some(needle) = &self.contains
            && !response.body.contains(needle.as_str())
        {
            return Err(format!("the body does not contain {needle:?}"));
        }
        Ok(())
    }
}

/// `want` is contained in `got`: objects may have more keys, arrays must have the same
/// length with each element contained, numbers compare by value. Errors name the path.
fn json_subset(want: &Value, got: &Value, path: &str) -> Result<(), String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w.iter().try_for_each(|(k, wv)| match g.get(k) {
            Some(gv) => json_subset(wv, gv, &format!("{path}.{k}")),
            None => Err(format!("{path}.{k} is missing")),
        }),
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => w
            .iter()
            .zip(g)
            .enumerate()
            .try_for_each(|(i, (wv, gv))| json_subset(wv, gv, &format!("{path}[{i}]"))),
        (Value::Number(w), Value::Number(g)) if w.as_f64() == g.as_f64() => Ok(()),
        (w, g) if w == g => Ok(()),
        (w, g) => Err(format!("{path} is {g}, expected {w}")),
    }
}

fn log_attempt(
    ctx: &StepCtx,
    request: &Request,
    n: u32,
    answer: &Result<Response, String>,
    verdict: &Result<(), String>,
) {
    let what = match answer {
        Ok(r) => format!("HTTP {} in {} ms", r.status, r.latency.as_millis()),
        Err(e) => e.clone(),
    };
    let judged = match verdict {
        Ok(()) => "ok".to_string(),
        Err(why) => why.clone(),
    };
    // Headers are never logged: they may carry credentials.
    ctx.log.write(
        &ctx.step_id,
        &format!(
            "attempt {n}: {} {} → {what}: {judged}",
            request.method, request.url
        ),
    );
}

fn conclude(
    ctx: &StepCtx,
    request: &Request,
    probes: u32,
    started: Instant,
    answer: Result<Response, String>,
    verdict: Result<(), String>,
) -> StepOutcome {
    let redact = |s: &str| ctx.log.redactor().redact(s);
    let (status, latency_ms, body) = match &answer {
        Ok(r) => (
            Some(r.status),
            Some(r.latency.as_millis() as u64),
            Some(redact(&truncate(&r.body, KEEP_BODY))),
        ),
        Err(_) => (None, None, None),
    };
    let mut outcome = StepOutcome::passed(outputs! {
        "url" => redact(&request.url),
        "status" => status,
        "latency_ms" => latency_ms,
        "body" => body,
        "probes" => probes,
    });
    let Err(why) = verdict else { return outcome };
    let over = crate::fmt::fmt_secs(started.elapsed().as_secs_f64());
    outcome.log_tail = Some(match &answer {
        Ok(r) => format!(
            "{} {}\nHTTP {} ({} ms)\n{}",
            request.method,
            redact(&request.url),
            r.status,
            r.latency.as_millis(),
            redact(&truncate(&r.body, 1024))
        ),
        Err(e) => format!("{} {}\n{}", request.method, redact(&request.url), redact(e)),
    });
    let attempts = format!("after {probes} attempt(s) over {over}");
    outcome.fail(match &answer {
        Ok(r) => format!(
            "{why} {attempts}; last response: HTTP {}: {}",
            r.status,
            redact(&one_line(&truncate(&r.body, EXCERPT)))
        ),
        Err(e) => format!("no response {attempts}: {}", redact(e)),
    })
}

/// At most `max` bytes of `s`, cut on a character boundary, marked when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_subset_matches_and_names_the_mismatch() {
        let got = json!({"ok": true, "db": "up", "n": 3, "list": [1, {"a": 1, "b": 2}]});
        assert!(json_subset(&json!({"ok": true}), &got, "$").is_ok());
        assert!(json_subset(&json!({"n": 3.0, "list": [1, {"b": 2}]}), &got, "$").is_ok());
        assert_eq!(
            json_subset(&json!({"db": "down"}), &got, "$").unwrap_err(),
            r#"$.db is "up", expected "down""#
        );
        assert_eq!(
            json_subset(&json!({"x": 1}), &got, "$").unwrap_err(),
            "$.x is missing"
        );
        assert!(json_subset(&json!({"list": [1]}), &got, "$").is_err());
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("abc", 5), "abc");
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod more_tests;
