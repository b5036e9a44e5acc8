//! What an engine may use while it runs a step: handed out by the step's context, so that
//! engines know nothing of steps nor of the runner.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::guard::{self, Sources};
use crate::log::LogSink;
use crate::playbook::{Step, required};
use crate::proc::Cancel;
use crate::proc::Registry;
use crate::resources::Resources;

/// The running step, as an engine sees it.
pub struct Ctx<'a> {
    pub step_id: &'a str,
    /// The run's private work directory, removed at the end of the run.
    pub workdir: &'a Path,
    pub cancel: &'a Arc<Cancel>,
    pub log: &'a LogSink,
    /// What the playbook reads from: every path the engine writes or removes is checked
    /// against them first (`sources.check`).
    pub sources: &'a Sources,
    /// Register here what the step creates outside the work directory, with its teardown,
    /// the moment it exists.
    pub resources: &'a Resources,
    /// Register here the process groups and clusters the step starts, until they are
    /// stopped: the next run stops them if this one dies.
    pub procs: &'a Registry,
    /// Bytes done out of a total, for the progress bar.
    pub progress: &'a (dyn Fn(u64, u64) + Sync),
    /// What the step did that the record's warnings should tell (see `warn`).
    pub warnings: &'a Mutex<Vec<String>>,
}

impl Ctx<'_> {
    /// A line in the drill's log, under the step's id.
    pub fn log(&self, line: &str) {
        self.log.write(self.step_id, line);
    }

    /// Something the step did beyond its work that whoever reads the record must know
    /// (it dropped what a killed drill left): a warning of the run, and a log line.
    pub fn warn(&self, warning: &str) {
        self.log(warning);
        self.warnings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(warning.to_string());
    }

    pub fn progress(&self, done: u64, total: u64) {
        (self.progress)(done, total);
    }

    /// A backup step's `output` as the playbook gives it, and where it really leads,
    /// checked against the sources before anything is created.
    pub fn backup_output<'s>(&self, step: &'s Step) -> anyhow::Result<(&'s Path, PathBuf)> {
        let given = Path::new(required(step.output.as_deref(), "output")?);
        Ok((given, self.sources.check("output", given)?))
    }

    /// How to copy into `dest`: synced only when it outlives the run, i.e. lies outside
    /// the work directory.
    pub fn copying(&self, dest: &Path) -> Copying<'_> {
        Copying {
            cancel: self.cancel,
            progress: self.progress,
            durable: !self.is_throwaway(dest),
        }
    }

    /// True for a path inside the work directory, which is removed at the end of the run.
    pub fn is_throwaway(&self, path: &Path) -> bool {
        let resolved = |p: &Path| {
            guard::resolve(p)
                .or_else(|_| std::path::absolute(p))
                .unwrap_or_else(|_| p.to_path_buf())
        };
        resolved(path).starts_with(resolved(self.workdir))
    }
}

/// How a copy runs: it stops when cancelled, reports its progress, and is synced to disk
/// only when it outlives the drill (a copy in the work directory is thrown away at the end,
/// and syncing it would cost more than the copy itself).
pub struct Copying<'a> {
    pub cancel: &'a Cancel,
    pub progress: &'a (dyn Fn(u64, u64) + Sync),
    pub durable: bool,
}
