//! Numbers of a step that have a sane range: `retries` (each attempt may last its whole
//! `timeout`), `jobs` (each a connection and a process of pg_dump or pg_restore) and
//! `sample` (a fraction of the rows). A value out of range is refused at its place
//! instead of failing the step mid-drill, or starting thousands of processes.

use super::super::model::Step;
use super::super::spans::Seg;
use super::Validator;
use crate::limits::{MAX_JOBS, MAX_RETRIES, sample_problem};

impl Validator<'_> {
    /// `retries`, `jobs` and `sample` within their ranges.
    pub(super) fn step_numbers(&mut self, step: &Step, path: &[Seg<'_>]) {
        let refuse = |this: &mut Self, field: &str, message: String| {
            let span = this.spans.value(&[path, &[Seg::Key(field)]].concat());
            this.error(message, span);
        };
        if step.retries > MAX_RETRIES {
            let message = format!(
                "`retries = {}` is more than the limit of {MAX_RETRIES}",
                step.retries
            );
            refuse(self, "retries", message);
        }
        match step.jobs {
            Some(0) => refuse(
                self,
                "jobs",
                "`jobs = 0` runs no job: give 1 or more".into(),
            ),
            Some(jobs) if jobs > MAX_JOBS => {
                let message = format!("`jobs = {jobs}` is more than the limit of {MAX_JOBS}");
                refuse(self, "jobs", message);
            }
            _ => {}
        }
        if let Some(problem) = step.sample.and_then(sample_problem) {
            refuse(self, "sample", problem);
        }
    }
}
