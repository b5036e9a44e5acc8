//! Alerts (`[notify]`): an observer of the drill's events that pings healthchecks, posts
//! a webhook and publishes to ntfy when the drill starts, passes or fails. A
//! notification is retried a few times, each attempt bounded by a timeout; one that is
//! not delivered is recorded (`notifications`, and a warning) and never changes the
//! verdict. Urls are recorded redacted; header values are never recorded.
//!
//! Below the runner: it knows the record, the events, the playbook's settings.

mod send;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::artifact::{NotificationRecord, RunRecord, RunStatus};
use crate::events::{Event, Observer};
use crate::playbook::NotifyOn;
use crate::redact::Redactor;

pub use send::ATTEMPTS;

/// The `[notify]` settings, rendered (secrets in them are real values).
#[derive(Debug, Clone, Default)]
pub struct Channels {
    pub on: Vec<NotifyOn>,
    pub healthchecks: Option<String>,
    pub webhook: Option<(String, Vec<(String, String)>)>,
    pub ntfy: Option<String>,
    pub timeout: Duration,
}

impl Channels {
    pub fn is_empty(&self) -> bool {
        self.healthchecks.is_none() && self.webhook.is_none() && self.ntfy.is_none()
    }
}

/// One request of a notification.
#[derive(Clone)]
struct Message {
    channel: &'static str,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

pub struct Notifier {
    channels: Channels,
    redactor: Arc<Redactor>,
    /// What was sent at the last event, for `amend`.
    sent: Vec<NotificationRecord>,
}

impl Notifier {
    pub fn new(channels: Channels, redactor: Arc<Redactor>) -> Self {
        Self {
            channels,
            redactor,
            sent: Vec::new(),
        }
    }

    /// The requests `event` makes of the drill in `record`.
    fn messages(&self, event: NotifyOn, record: &RunRecord) -> Vec<Message> {
        let c = &self.channels;
        let name = &record.drill.name;
        let summary = match event {
            NotifyOn::Start => format!("restore drill {name} started ({})", record.run_id),
            _ => record.summary.clone(),
        };
        let mut out = Vec::new();
        if let Some(url) = &c.healthchecks {
            let url = url.trim_end_matches('/');
            let url = match event {
                NotifyOn::Start => format!("{url}/start"),
                NotifyOn::Failure => format!("{url}/fail"),
                NotifyOn::Success => url.to_string(),
            };
            out.push(Message::text("healthchecks", url, Vec::new(), &summary));
        }
        if let Some((url, headers)) = &c.webhook {
            let report = ["html", "markdown", "json"]
                .iter()
                .find_map(|k| record.artifacts.get(*k));
            let body = json!({
                "text": format!("restore drill `{name}`: {summary}"),
                "drill": name,
                "status": record.status.as_str(),
                "summary": summary,
                "report": report,
                "run_id": record.run_id,
                "event": event.as_str(),
            });
            let mut headers = headers.clone();
            headers.push(("Content-Type".into(), "application/json".into()));
            out.push(Message {
                channel: "webhook",
                url: url.clone(),
                headers,
                body: body.to_string().into_bytes(),
            });
        }
        if let Some(url) = &c.ntfy {
            let (priority, tag) = match event {
                NotifyOn::Failure => ("high", "warning"),
                NotifyOn::Success => ("default", "white_check_mark"),
                NotifyOn::Start => ("low", "hourglass_flowing_sand"),
            };
            let headers = vec![
                (
                    "Title".into(),
                    format!("restore drill {name}: {}", event.as_str()),
                ),
                ("Priority".into(), priority.into()),
                ("Tags".into(), tag.into()),
            ];
            out.push(Message::text("ntfy", url.clone(), headers, &summary));
        }
        out
    }
}

impl Message {
    fn text(
        channel: &'static str,
        url: String,
        headers: Vec<(String, String)>,
        body: &str,
    ) -> Self {
        let mut headers = headers;
        headers.push(("Content-Type".into(), "text/plain; charset=utf-8".into()));
        Self {
            channel,
            url,
            headers,
            body: body.as_bytes().to_vec(),
        }
    }
}

/// Which notification an event is: the start, or the end as the verdict says.
fn which(event: &Event<'_>, record: &RunRecord) -> Option<NotifyOn> {
    match event {
        Event::DrillStarted => Some(NotifyOn::Start),
        Event::DrillFinished if record.status == RunStatus::Passed => Some(NotifyOn::Success),
        Event::DrillFinished => Some(NotifyOn::Failure),
        _ => None,
    }
}

impl Observer for Notifier {
    fn on_event(&mut self, event: &Event<'_>, record: &RunRecord) -> io::Result<()> {
        let Some(kind) = which(event, record).filter(|k| self.channels.on.contains(k)) else {
            return Ok(());
        };
        // A Ctrl-C (or SIGTERM) stops the sending: what is left is recorded as not
        // delivered. Those that aborted the drill do not: its failure is still sent.
        let interrupts = match record.status {
            RunStatus::Aborted => crate::proc::signals::count(),
            _ => 0,
        };
        for message in self.messages(kind, record) {
            let sent = send::deliver(&message, self.channels.timeout, interrupts);
            self.sent.push(NotificationRecord {
                channel: message.channel.into(),
                event: kind.as_str().into(),
                url: self.redactor.redact(&message.url),
                delivered: sent.error.is_none(),
                attempts: sent.attempts,
                status: sent.status,
                error: sent.error.map(|e| self.redactor.redact(&e)),
            });
        }
        Ok(())
    }

    fn amend(&mut self, record: &mut RunRecord) {
        for sent in self.sent.drain(..) {
            if let Some(error) = &sent.error {
                let warning = format!(
                    "the {} notification ({}) to {} was not delivered: {error}",
                    sent.channel, sent.event, sent.url
                );
                record.warnings.push(warning);
            }
            record.notifications.push(sent);
        }
    }
}
