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

pub(super) fn deliver(message: &Message, timeout: Duration) -> Sent {
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
        sent.attempts += 1;
        match post(&agent, message) {
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
            Err(e) => sent.error = Some(e),
        }
    }
    if let Some(e) = sent.error.take() {
        sent.error = Some(format!("{e} (after {ATTEMPTS} attempts)"));
    }
    sent
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
