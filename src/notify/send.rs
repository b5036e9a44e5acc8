//! One notification over HTTP: a POST, each attempt bounded by the timeout, retried
//! when the receiver is down, slow or answers 5xx or 429.

use std::io::Read as _;
use std::time::Duration;

use super::Message;

/// Attempts per notification.
pub const ATTEMPTS: u32 = 3;

pub(super) struct Sent {
    pub attempts: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// Sends `message`, unless more than `interrupts` interrupting signals have come (then
/// it stops at once, even in the middle of an attempt, and says so).
pub(super) fn deliver(message: &Message, timeout: Duration, interrupts: usize) -> Sent {
    let interrupted = || crate::proc::signals::count() > interrupts;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut sent = Sent {
        attempts: 0,
        status: None,
        error: None,
    };
    while sent.attempts < ATTEMPTS {
        if sent.attempts > 0 {
            std::thread::sleep(Duration::from_millis(250 * u64::from(sent.attempts)));
        }
        if interrupted() {
            let last = sent.error.take().map(|e| format!(" (last: {e})"));
            let n = sent.attempts;
            sent.error = Some(format!(
                "interrupted after {n} attempt(s){}",
                last.unwrap_or_default()
            ));
            return sent;
        }
        sent.attempts += 1;
        match post_unless(&agent, message, &interrupted) {
            Ok(status) if (200..300).contains(&status) => {
                sent.status = Some(status);
                sent.error = None;
                return sent;
            }
            Ok(status) => {
                sent.status = Some(status);
                sent.error = Some(format!("the receiver answered {status}"));
                if status < 500 && status != 429 {
                    return sent;
                }
            }
            Err(e) if interrupted() => {
                sent.error = Some(e);
                return sent;
            }
            Err(e) => sent.error = Some(e),
        }
    }
    if let Some(e) = sent.error.take() {
        sent.error = Some(format!("{e} (after {ATTEMPTS} attempts)"));
    }
    sent
}

/// One POST on a thread of its own, given up on (the thread left to its timeout) once
/// `interrupted` says so: a blocking request cannot be cut short.
fn post_unless(
    agent: &ureq::Agent,
    message: &Message,
    interrupted: &dyn Fn() -> bool,
) -> Result<u16, String> {
    let (agent, message) = (agent.clone(), message.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("notify".into())
        .spawn(move || {
            let _ = tx.send(post(&agent, &message));
        })
        .map_err(|e| format!("cannot send: {e}"))?;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(result) => return result,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err("the request crashed".into());
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if interrupted() => {
                return Err("interrupted while waiting for the receiver".into());
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

/// One POST; the status, or why there was none.
fn post(agent: &ureq::Agent, message: &Message) -> Result<u16, String> {
    let mut request = ureq::http::Request::builder()
        .method("POST")
        .uri(&message.url);
    for (name, value) in &message.headers {
        request = request.header(name, value);
    }
    let request = request
        .body(message.body.clone())
        .map_err(|e| format!("bad request: {e}"))?;
    let mut response = agent.run(request).map_err(|e| e.to_string())?;
    // Drain a little of the answer so the connection ends cleanly.
    let mut sink = Vec::new();
    let _ = response
        .body_mut()
        .as_reader()
        .take(64 << 10)
        .read_to_end(&mut sink);
    Ok(response.status().as_u16())
}
