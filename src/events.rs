//! What the runner tells the outside world. The progress display, the artifact writer
//! and the reports only consume these; none of them drives the drill.

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
    DrillFinished,
}

pub trait Observer {
    /// Sees every event with the record as it stands after it.
    fn on_event(&mut self, event: &Event<'_>, record: &RunRecord) -> std::io::Result<()>;
}
