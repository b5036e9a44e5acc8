//! What the runner tells the outside world. The progress display, the record writer
//! and the report writers only consume these; none of them drives the drill.

use std::path::Path;

use crate::artifact::{GateRecord, RunRecord, StepRecord};

pub enum Event<'a> {
    DrillStarted,
    StepStarted(&'a StepRecord),
    StepProgress {
        step: &'a StepRecord,
        done: u64,
        total: u64,
    },
    StepFinished(&'a StepRecord),
    GateEvaluated(&'a GateRecord),
    /// Something the operator must know now (an interruption, what cleanup left behind).
    Notice(&'a str),
    /// What steps registered (services, scratch databases, clusters) was torn down, or
    /// some of it; the record's `resources` say how that went.
    TornDown,
    DrillFinished,
}

pub trait Observer {
    /// Sees every event with the record as it stands after it. An error (a file that
    /// cannot be written; its message names the path) ends the run as `error`.
    fn on_event(&mut self, event: &Event<'_>, record: &RunRecord) -> std::io::Result<()>;

    /// What this observer adds to the record after an event (the notifications it
    /// sent), before the next observer sees it. Its text must already be redacted.
    fn amend(&mut self, _record: &mut RunRecord) {}

    /// The file this observer writes when the drill finishes, listed in the record's
    /// `artifacts` under this name (and taken out again if it cannot be written).
    fn artifact(&self) -> Option<(&'static str, &Path)> {
        None
    }
}
