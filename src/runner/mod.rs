//! Sequencing a drill: setup → steps → cleanup (always), with timeouts, retries, gates,
//! interruption, and the record rewritten after every step.
//!
//! - `setup.rs`: before the first step: the lock, secrets, vars, the work directory,
//!   the run's files and its initial record, the observers.
//! - `attempt.rs`: one step: `when`, rendering, the walkthrough's confirmation, its
//!   attempts and retries (each on a worker thread, `step_exec.rs`), its record.
//! - `cleanup.rs`: cleanup steps, tearing down what steps registered, the work directory.
//! - `verdict.rs`: the drill's gates (`gates.rs` measures them), its status and summary.
//! - `observers.rs`: who hears of every change of the record (the record writer, the
//!   report writers, the progress display) and what becomes of their errors.

mod attempt;
mod cleanup;
mod context;
pub mod gates;
mod leftovers;
mod lock;
mod observers;
mod plan;
mod setup;
mod step_exec;
mod unattended;
mod verdict;

pub use plan::plan;
pub use verdict::summary;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::artifact::{RunRecord, RunStatus, StepRecord};
use crate::events::{Event, Observer};
use crate::log::LogSink;
use crate::operator;
use crate::playbook::{LoadedPlaybook, Section, Step};
use crate::proc::signals;
use crate::redact::Redactor;
use crate::resources;
use context::Context;
use observers::Observers;

pub use crate::exit::ExitCode;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub vars: Vec<(String, String)>,
    pub artifacts_dir: PathBuf,
    pub walkthrough: bool,
    pub operators: Vec<String>,
    pub keep_workdir: bool,
    pub quiet: bool,
    pub junit: Option<PathBuf>,
    pub metrics: Option<PathBuf>,
    /// Where the files of `artifacts_dir` end up (`run --artifacts s3://...` uploads
    /// them there when the run ends): the record names them there.
    pub artifacts_url: Option<String>,
}

impl RunOptions {
    /// Names the files of `artifacts_dir` listed in `artifacts` by their url once
    /// uploaded (with `artifacts_url`; others, `--junit` say, stay paths).
    fn relocate(&self, artifacts: &mut serde_json::Map<String, serde_json::Value>) {
        let Some(url) = &self.artifacts_url else {
            return;
        };
        for value in artifacts.values_mut() {
            let path = std::path::Path::new(value.as_str().unwrap_or_default());
            if let Ok(name) = path.strip_prefix(&self.artifacts_dir) {
                *value = format!("{url}{}", name.display()).into();
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Nothing was run: a missing secret, a var that does not render.
    #[error("{0}")]
    Usage(String),
    /// The runner could not even start (artifacts directory not writable).
    #[error("{0}")]
    Broken(String),
}

pub struct RunResult {
    pub record: RunRecord,
    pub json_path: PathBuf,
    /// What the drill read, as the run came to know it (a located bucket area is known
    /// once its step ran): what the run's artifacts must not be written into.
    pub sources: crate::guard::Sources,
}

impl RunResult {
    pub fn exit_code(&self) -> ExitCode {
        match self.record.status {
            RunStatus::Passed => ExitCode::Passed,
            RunStatus::Failed => ExitCode::Failed,
            RunStatus::Aborted => ExitCode::Interrupted,
            RunStatus::Error | RunStatus::Running => ExitCode::Broken,
        }
    }
}

/// Runs the drill; `observers` (the progress display) hear of every change of its record
/// after the record writer has written it.
pub fn run(
    pb: &LoadedPlaybook,
    opts: &RunOptions,
    observers: Vec<Box<dyn Observer>>,
) -> Result<RunResult, RunError> {
    let mut runner = Runner::prepare(pb, opts, observers)?;
    runner.drive();
    Ok(runner.finish())
}

struct Runner<'a> {
    pb: &'a LoadedPlaybook,
    opts: &'a RunOptions,
    record: RunRecord,
    ctx: Context,
    redactor: Arc<Redactor>,
    log: LogSink,
    workdir: PathBuf,
    json_path: PathBuf,
    /// The record writer, the report writers and the caller's observers, and the first
    /// error writing an artifact (which ends the run as `error`).
    observers: Observers,
    /// What the playbook reads from: no step may write or remove them.
    sources: crate::guard::Sources,
    started: Instant,
    started_at: jiff::Timestamp,
    interrupted: bool,
    resources: resources::Resources,
    /// The process groups and clusters running now, written into the lock file.
    procs: crate::proc::Registry,
    operator: Option<operator::Operator>,
    /// Held until the runner is dropped, after the last artifact is written.
    lock: lock::DrillLock,
}

impl Runner<'_> {
    /// Setup, then the drill's steps if setup passed, then cleanup whatever happened.
    fn drive(&mut self) {
        let book = &self.pb.playbook;
        let stopped = self.run_section(Section::Setup, &book.setup);
        if !stopped {
            self.run_section(Section::Steps, &book.steps);
        }
        self.run_cleanup(&book.cleanup);
    }

    /// Runs steps in order; returns true when the drill must stop (failure or interrupt).
    fn run_section(&mut self, section: Section, steps: &[Step]) -> bool {
        for step in steps {
            if self.interrupted || signals::count() > 0 {
                self.interrupted = true;
                return true;
            }
            let status = self.run_step(section, step);
            if status.is_failure() && !step.continue_on_failure {
                return true;
            }
        }
        false
    }

    /// The gates, the verdict, then the last event: the reports and the final record are
    /// written, and the display shows the summary.
    fn finish(mut self) -> RunResult {
        if let Some(e) = self.log.error() {
            self.observers.broken(&mut self.record, e);
        }
        self.evaluate_drill_gates();
        // A signal that came while cleanup ran (it goes on through the first): the run
        // was interrupted all the same, whatever its gates measured.
        self.interrupted |= signals::count() > 0;
        let finished = jiff::Timestamp::now();
        self.record.finished_at = Some(finished.to_string());
        self.record.duration_s = self.started.elapsed().as_secs_f64();
        self.record.status = self.verdict();
        self.observers.list_reports(&mut self.record);
        self.opts.relocate(&mut self.record.artifacts);
        self.observers.conclude(&mut self.record);
        self.emit(Event::DrillFinished);
        RunResult {
            record: self.record,
            json_path: self.json_path,
            sources: self.sources,
        }
    }

    /// Something the operator must know now: logged, and told to the observers.
    fn notice(&mut self, message: &str) {
        let message = self.redactor.redact(message);
        self.log.write("restore-drill", &message);
        self.emit(Event::Notice(&message));
    }

    /// Tells every observer of `event` (one that does not borrow the record).
    fn emit(&mut self, event: Event<'_>) {
        self.observers.emit(&mut self.record, event);
    }

    /// Tells every observer of an event about step `index`.
    fn emit_step(&mut self, index: usize, make: impl Fn(&StepRecord) -> Event<'_>) {
        self.observers
            .emit_with(&mut self.record, |r| make(&r.steps[index]));
    }
}
