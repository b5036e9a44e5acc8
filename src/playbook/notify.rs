//! `[notify]`: who hears when a drill starts, passes or fails.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Alerts sent when the drill starts, passes or fails. A notification that cannot be
/// delivered is retried, recorded in the record's `notifications`, and never changes
/// the verdict. Every string is a template (`{{ secrets.x }}` in a url or header).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// When to notify: `failure` (failed, error or aborted), `success`, `start`.
    #[serde(default = "default_on")]
    pub on: Vec<NotifyOn>,
    /// A healthchecks.io-style ping url: start → `<url>/start`, failure → `<url>/fail`,
    /// success → `<url>`; the body is the summary.
    pub healthchecks: Option<String>,
    /// A JSON POST (`text`, so Slack and Mattermost accept it, plus `drill`, `status`,
    /// `summary`, `report`, `run_id`, `event`).
    pub webhook: Option<Webhook>,
    /// An ntfy topic url (`https://ntfy.sh/<topic>`): the summary, with a title.
    pub ntfy: Option<String>,
    /// How long one attempt may take (default 5s); each notification gets 3 attempts.
    pub timeout: Option<String>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            on: default_on(),
            healthchecks: None,
            webhook: None,
            ntfy: None,
            timeout: None,
        }
    }
}

fn default_on() -> Vec<NotifyOn> {
    vec![NotifyOn::Failure]
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    /// Extra request headers (`Authorization = "Bearer {{ secrets.token }}"`).
    #[serde(default)]
    pub headers: IndexMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotifyOn {
    Start,
    Success,
    Failure,
}

impl NotifyOn {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyOn::Start => "start",
            NotifyOn::Success => "success",
            NotifyOn::Failure => "failure",
        }
    }
}
