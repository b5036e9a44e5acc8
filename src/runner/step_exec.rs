//! Running one attempt of a step on a worker thread, so the runner stays free to enforce
//! its timeout and to notice Ctrl-C: SIGTERM to the step's process groups (and its
//! cancel hooks), a grace period, then SIGKILL (`Cancel::stop`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::log::LogSink;
use crate::operator::Operator;
use crate::playbook::Step;
use crate::proc::{Cancel, Stopped, signals};
use crate::resources::Resources;
use crate::steps::{self, StepCtx, StepOutcome};

/// Between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(3);
/// After SIGKILL (or the grace period), how long to wait for the worker before giving up
/// on it.
const ABANDON_AFTER: Duration = Duration::from_secs(5);
const TICK: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Finished,
    /// Stopped at its timeout: how (SIGTERM sufficed, or SIGKILL was needed).
    TimedOut(Stopped),
    Interrupted,
    /// Told to stop at its timeout (`timed_out`) or by an interrupt, the step ignored
    /// it; its thread was left behind.
    Abandoned {
        timed_out: bool,
    },
}

/// What a step's worker owns.
pub struct StepEnv {
    pub step_id: String,
    pub workdir: PathBuf,
    pub log: LogSink,
    pub sources: crate::guard::Sources,
    pub operator: Option<Operator>,
    pub resources: Resources,
    /// The run's registry of process groups, for this step.
    pub procs: crate::proc::Registry,
}

/// `interrupts_allowed`: how many interrupting signals the step lives through: 0 for the
/// drill's steps, 1 for cleanup (only a second Ctrl-C cuts cleanup short). A threshold,
/// not a count sampled here, so a signal that lands while the step is being announced
/// still stops it.
pub fn execute(
    step: Step,
    env: StepEnv,
    timeout: Option<Duration>,
    interrupts_allowed: usize,
    on_progress: &mut dyn FnMut(u64, u64),
) -> (StepOutcome, Ending) {
    let cancel = Arc::new(Cancel::tracking(env.procs.clone(), step.kind.as_str()));
    let (progress_tx, progress_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let ctx = StepCtx {
        step_id: env.step_id,
        workdir: env.workdir,
        cancel: Arc::clone(&cancel),
        log: env.log,
        sources: env.sources,
        operator: env.operator,
        resources: env.resources,
        procs: env.procs,
        progress: progress_tx,
        warnings: Default::default(),
    };
    let spawned = std::thread::Builder::new()
        .name(format!("step-{}", ctx.step_id))
        .spawn(move || {
            let outcome = steps::execute(&step, &ctx);
            let _ = done_tx.send(outcome);
        });
    if let Err(e) = spawned {
        return (
            StepOutcome::failed(format!("cannot start the step: {e}")),
            Ending::Finished,
        );
    }

    let started = Instant::now();
    let timed_out = loop {
        let mut last = None;
        while let Ok(p) = progress_rx.try_recv() {
            last = Some(p);
        }
        if let Some(p) = last {
            on_progress(p.done, p.total);
        }
        match done_rx.recv_timeout(TICK) {
            Ok(outcome) => return (outcome, Ending::Finished),
            Err(RecvTimeoutError::Disconnected) => return (panicked(), Ending::Finished),
            Err(RecvTimeoutError::Timeout) => {}
        }
        if signals::count() > interrupts_allowed {
            break false;
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            break true;
        }
    };
    let since = Instant::now();
    let how = cancel.stop(GRACE);
    let ending = if timed_out {
        Ending::TimedOut(how)
    } else {
        Ending::Interrupted
    };
    let abandon_at = Instant::now().max(since + GRACE) + ABANDON_AFTER;
    match done_rx.recv_timeout(abandon_at.saturating_duration_since(Instant::now())) {
        Ok(outcome) => (outcome, ending),
        Err(RecvTimeoutError::Disconnected) => (panicked(), ending),
        Err(RecvTimeoutError::Timeout) => (
            StepOutcome::failed("the step did not stop"),
            Ending::Abandoned { timed_out },
        ),
    }
}

/// The error of a step stopped at its `timeout`: how long, and how it was stopped.
pub fn timed_out(timeout: Option<Duration>, how: Stopped) -> String {
    let after = crate::fmt::fmt_secs(timeout.map_or(0.0, |t| t.as_secs_f64()));
    let how = match how {
        Stopped::Term => "stopped by SIGTERM",
        Stopped::Kill => "SIGKILL was needed",
        Stopped::Gone => "its work was cancelled",
    };
    format!("timed out after {after}; {how}")
}

/// The error of a step that did not stop when told to: at its timeout, or interrupted.
pub fn abandoned(timed_out_after: Option<Duration>) -> String {
    let why = match timed_out_after {
        Some(t) => format!("timed out after {}", crate::fmt::fmt_secs(t.as_secs_f64())),
        None => "interrupted".into(),
    };
    format!("{why}; the step did not stop when told to and was abandoned")
}

fn panicked() -> StepOutcome {
    StepOutcome::failed("the step crashed (panicked)")
}
