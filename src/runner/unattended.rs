//! What runs a drill unattended needs from the playbook, rendered before anything runs:
//! the signer of `[evidence]` and the channels of `[notify]` (their templates read
//! secrets), and where their observers go.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::RunError;
use super::context::Context;
use super::observers::Observers;
use crate::evidence::{SignatureWriter, Signer};
use crate::notify::{Channels, Notifier};
use crate::playbook::LoadedPlaybook;
use crate::redact::Redactor;

/// The default time one attempt of a notification may take.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct Unattended {
    signer: Option<Signer>,
    channels: Channels,
}

/// Renders `[evidence]` and `[notify]`; a key that cannot be used or a template that does
/// not render stops the run before anything ran.
pub(super) fn load(pb: &LoadedPlaybook, ctx: &Context) -> Result<Unattended, RunError> {
    let render = |field: &str, src: &str| {
        crate::template::render(src, &ctx.jinja()).map_err(|e| {
            let why = crate::template::describe_in(src, false, &e);
            RunError::Usage(format!("{field}: {why}"))
        })
    };
    let render_opt = |field: &str, src: &Option<String>| match src {
        Some(src) => render(field, src).map(Some),
        None => Ok(None),
    };
    let evidence = &pb.playbook.evidence;
    let signer = match render_opt("evidence.sign_key", &evidence.sign_key)? {
        Some(key) => {
            let password = render_opt("evidence.sign_key_password", &evidence.sign_key_password)?;
            Some(Signer::load(&key, password.as_deref()).map_err(RunError::Usage)?)
        }
        None => None,
    };
    let notify = &pb.playbook.notify;
    let webhook = match &notify.webhook {
        Some(hook) => {
            let url = render("notify.webhook.url", &hook.url)?;
            let mut headers = Vec::new();
            for (name, value) in &hook.headers {
                headers.push((
                    name.clone(),
                    render(&format!("notify.webhook.headers.{name}"), value)?,
                ));
            }
            Some((url, headers))
        }
        None => None,
    };
    let timeout = match &notify.timeout {
        Some(t) => crate::limits::parse_duration(t)
            .map_err(|e| RunError::Usage(format!("notify.timeout: `{t}`: {e}")))?,
        None => NOTIFY_TIMEOUT,
    };
    let channels = Channels {
        on: notify.on.clone(),
        healthchecks: render_opt("notify.healthchecks", &notify.healthchecks)?,
        webhook,
        ntfy: render_opt("notify.ntfy", &notify.ntfy)?,
        timeout,
    };
    Ok(Unattended { signer, channels })
}

impl Unattended {
    /// The notifier before the record writer (what it sent is in the record it writes),
    /// the signer right after it (it signs what was written).
    pub fn install(self, observers: &mut Observers, json: &Path, redactor: &Arc<Redactor>) {
        if !self.channels.is_empty() {
            let notifier = Notifier::new(self.channels, Arc::clone(redactor));
            observers.amend_with(Box::new(notifier));
        }
        if let Some(signer) = self.signer {
            observers.seal_with(Box::new(SignatureWriter::new(signer, json)));
        }
    }
}
