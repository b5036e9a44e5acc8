//! One module per step kind; each turns a rendered step into a `StepOutcome`.
//!
//! A step's failure is a value (`StepOutcome` with `passed = false`), never a panic or an
//! early return of the runner, so the record and report are always written.

mod backup;
mod checksum;
mod copy;
mod exec;
mod files;
pub mod http;
mod locate;
mod manual;
mod output;
mod restore;
mod service;
pub mod sql;
mod sql_content;
mod sql_records;
#[cfg(test)]
mod testing;
mod wait;

use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};

use crate::artifact::{CheckRecord, FileRecord};
use crate::log::LogSink;
use crate::playbook::{Step, StepKind};
use crate::proc::Cancel;

/// What a running step may use.
pub struct StepCtx {
    pub step_id: String,
    pub workdir: PathBuf,
    pub cancel: Arc<Cancel>,
    pub log: LogSink,
    /// What the playbook reads from: every path a step writes or removes is checked
    /// against them first (`sources.check`).
    pub sources: crate::guard::Sources,
    /// The operator of a walkthrough (None in automated runs).
    pub operator: Option<crate::operator::Operator>,
    /// Register here what the step creates outside the workdir, with its teardown.
    pub resources: crate::resources::Resources,
    /// Register here the process groups and clusters the step starts, until they are
    /// stopped: the next run stops them if this one dies.
    pub procs: crate::proc::Registry,
    pub progress: Sender<Progress>,
    /// The step's warnings so far (its engine's `warn`), given to its outcome.
    pub warnings: Mutex<Vec<String>>,
}

/// Bytes done out of a total, for the progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

impl StepCtx {
    pub fn progress(&self, done: u64, total: u64) {
        let _ = self.progress.send(Progress { done, total });
    }

    /// What the step's engine may use (`engines::Ctx`), for the duration of `f`.
    pub fn with_engine<R>(&self, f: impl FnOnce(&crate::engines::Ctx<'_>) -> R) -> R {
        let progress = |done, total| self.progress(done, total);
        f(&crate::engines::Ctx {
            step_id: &self.step_id,
            workdir: &self.workdir,
            cancel: &self.cancel,
            log: &self.log,
            sources: &self.sources,
            resources: &self.resources,
            procs: &self.procs,
            progress: &progress,
            warnings: &self.warnings,
        })
    }
}

#[derive(Debug, Default, Clone)]
pub struct StepOutcome {
    pub passed: bool,
    pub error: Option<String>,
    /// What the step did beyond its work that the record's warnings tell.
    pub warnings: Vec<String>,
    pub outputs: Map<String, Value>,
    pub metrics: Map<String, Value>,
    pub checks: Vec<CheckRecord>,
    pub files: Vec<FileRecord>,
    pub log_tail: Option<String>,
    /// Seconds to count in the RTO instead of the measured duration (assumed manual work).
    pub assumed_s: Option<f64>,
}

impl StepOutcome {
    pub fn passed(outputs: Map<String, Value>) -> Self {
        Self {
            passed: true,
            outputs,
            ..Self::default()
        }
    }

    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            passed: false,
            error: Some(error.into()),
            ..Self::default()
        }
    }

    /// Marks the outcome failed with `error`, keeping what was gathered.
    pub fn fail(mut self, error: impl Into<String>) -> Self {
        self.passed = false;
        self.error = Some(error.into());
        self
    }
}

/// Runs a rendered step.
pub fn execute(step: &Step, ctx: &StepCtx) -> StepOutcome {
    let result = match step.kind {
        StepKind::Backup => backup::run(step, ctx),
        StepKind::Locate => locate::run(step, ctx),
        StepKind::Checksum => checksum::run(step, ctx),
        StepKind::Restore => restore::run(step, ctx),
        StepKind::Sql => sql::run(step, ctx),
        StepKind::Exec => exec::run(step, ctx),
        StepKind::Manual => manual::run(step, ctx),
        StepKind::Wait => wait::run(step, ctx),
        StepKind::Files => files::verify(step, ctx),
        StepKind::Http => http::run(step, ctx),
        StepKind::Service => service::run(step, ctx),
        StepKind::Copy => copy::run(step, ctx),
    };
    let mut outcome = result.unwrap_or_else(|e| StepOutcome::failed(format!("{e:#}")));
    let warnings = ctx.warnings.lock().unwrap_or_else(PoisonError::into_inner);
    outcome.warnings.extend(warnings.iter().cloned());
    outcome
}

pub use crate::playbook::required;

/// Parses a humantime duration field, at most `limits::MAX_DURATION` (a templated value can
/// render to anything, so the bound holds at run time too, not only in `validate`).
pub fn duration(value: Option<&str>, field: &str) -> anyhow::Result<Option<std::time::Duration>> {
    value
        .map(|s| {
            crate::limits::parse_duration(s)
                .map_err(|e| anyhow::anyhow!("bad duration in `{field}` (`{s}`): {e}"))
        })
        .transpose()
}

/// An object from `key = value` pairs.
#[macro_export]
macro_rules! outputs {
    ($($key:expr => $value:expr),* $(,)?) => {{
        let mut map = serde_json::Map::new();
        $(map.insert($key.to_string(), serde_json::json!($value));)*
        map
    }};
}
