//! Who hears of every change of the run record, and what becomes of their errors.
//!
//! The record writer and the report writers are observers like the progress display:
//! they only consume events. Every event passes `Observers` first, which scrubs the
//! record of secrets in place (templates keep the raw outputs in `ctx`), so no observer
//! ever sees one. An observer that fails (a file that cannot be written) is never
//! ignored: its error, which names the path, is kept as a warning, the first one is the
//! run's error, and a run that passed ends as `error` (exit 3); one that failed keeps
//! its verdict.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::verdict::summary;
use crate::artifact::{self, RunRecord, RunStatus};
use crate::events::{Event, Observer};
use crate::playbook::ReportFormat;
use crate::redact::Redactor;
use crate::report::{self, TemplateSource};

pub(super) struct Observers {
    /// In order: the report writers, the record writer, then the caller's.
    list: Vec<Box<dyn Observer>>,
    redactor: Arc<Redactor>,
    json_path: PathBuf,
    /// Where the record writer is in `list`.
    record_at: usize,
    /// How many observers right after it sign what it wrote.
    sealers: usize,
    /// The first error writing an artifact: the drill's result cannot be trusted to be
    /// kept.
    first_error: Option<String>,
}

impl Observers {
    pub fn new(
        reports: Vec<ReportWriter>,
        json_path: &Path,
        redactor: Arc<Redactor>,
        theirs: Vec<Box<dyn Observer>>,
    ) -> Self {
        let mut list: Vec<Box<dyn Observer>> = Vec::new();
        list.extend(
            reports
                .into_iter()
                .map(|r| Box::new(r) as Box<dyn Observer>),
        );
        let record_at = list.len();
        list.push(Box::new(RecordWriter {
            path: json_path.to_path_buf(),
        }));
        list.extend(theirs);
        Self {
            list,
            redactor,
            json_path: json_path.to_path_buf(),
            record_at,
            sealers: 0,
            first_error: None,
        }
    }

    /// Adds an observer right before the record writer: what it adds to the record
    /// (`amend`) is in the record written.
    pub fn amend_with(&mut self, observer: Box<dyn Observer>) {
        self.list.insert(self.record_at, observer);
        self.record_at += 1;
    }

    /// Adds an observer right after the record writer: the signer of the final record.
    pub fn seal_with(&mut self, sealer: Box<dyn Observer>) {
        self.sealers += 1;
        self.list.insert(self.record_at + self.sealers, sealer);
    }

    /// Tells every observer, in order, of `event` (which does not borrow the record). The
    /// reports are all written from the same record; one that fails is recorded before
    /// the next observer sees the record, so the final record and the summary on the
    /// screen say which could not be written.
    pub fn emit(&mut self, record: &mut RunRecord, event: Event<'_>) {
        if !self.scrub(record) {
            return;
        }
        if matches!(event, Event::DrillFinished)
            && self.list[..self.record_at]
                .iter()
                .any(|o| o.artifact().is_none())
        {
            // The verdict goes on disk before an observer ahead of the record writer (the
            // notifier) waits on a receiver that may never answer: a run killed meanwhile
            // does not leave a record saying `running`. Written again below, with what
            // they add; an error here shows there too.
            let _ = self.list[self.record_at].on_event(&event, record);
            // Signed too, before the notifier tells anyone the verdict: a signature that
            // cannot be written makes a passing drill `error`, and the alert says so
            // rather than "passed". Signed again below, over the final record.
            for i in self.record_at + 1..=self.record_at + self.sealers {
                if let Err(e) = self.list[i].on_event(&event, record) {
                    self.failed(i, record, e);
                }
            }
        }
        let mut failed = Vec::new();
        let (mut after_record, mut any_failed) = (false, false);
        // The reports written, before any failure changed the record they were made of.
        let mut written = Vec::new();
        for i in 0..self.list.len() {
            if self.list[i].artifact().is_none() {
                for (i, e) in failed.drain(..) {
                    self.failed(i, record, e);
                }
            }
            match self.list[i].on_event(&event, record) {
                Err(e) => {
                    after_record |= i > self.record_at;
                    any_failed = true;
                    failed.push((i, e));
                }
                Ok(()) if i < self.record_at && self.list[i].artifact().is_some() => {
                    written.push(i)
                }
                Ok(()) => {}
            }
            self.list[i].amend(record);
        }
        for (i, e) in failed {
            self.failed(i, record, e);
        }
        if matches!(event, Event::DrillFinished) && any_failed {
            let mut again = written;
            if after_record {
                again.extend(self.record_at..=self.record_at + self.sealers);
            }
            self.rewrite(record, &again);
        }
    }

    /// The final record again in the files already written from it (`which`: reports,
    /// and the record and its signature when an observer after the record writer
    /// failed), once a write failed: a drill that passed is now `error`, and every file
    /// says so. What fails now is only a warning.
    fn rewrite(&mut self, record: &mut RunRecord, which: &[usize]) {
        let mut errors = Vec::new();
        for &i in which {
            if let Err(e) = self.list[i].on_event(&Event::DrillFinished, record) {
                errors.push(e.to_string());
            }
        }
        for e in errors {
            if !record.warnings.contains(&e) {
                record.warnings.push(e);
            }
        }
    }

    /// Tells every observer of an event about a part of the record (a step, a gate).
    pub fn emit_with(&mut self, record: &mut RunRecord, make: impl Fn(&RunRecord) -> Event<'_>) {
        if self.scrub(record) {
            self.tell(record, make);
        }
    }

    /// A step's progress: the record has not changed since the step started (and was
    /// scrubbed then).
    pub fn progress(&mut self, record: &mut RunRecord, index: usize, done: u64, total: u64) {
        self.tell(record, |r| Event::StepProgress {
            step: &r.steps[index],
            done,
            total,
        });
    }

    fn tell(&mut self, record: &mut RunRecord, make: impl Fn(&RunRecord) -> Event<'_>) {
        let failed: Vec<(usize, io::Error)> = self
            .list
            .iter_mut()
            .enumerate()
            .filter_map(|(i, o)| o.on_event(&make(record), record).err().map(|e| (i, e)))
            .collect();
        for (i, e) in failed {
            self.failed(i, record, e);
        }
    }

    /// Scrubs the record in place; false (and the run broken) when it cannot be, and
    /// then no observer sees it.
    fn scrub(&mut self, record: &mut RunRecord) -> bool {
        match self.redactor.scrub(record) {
            Ok(_) => true,
            Err(e) => {
                let e = format!("cannot write {}: {e}", self.json_path.display());
                self.broken(record, e);
                false
            }
        }
    }

    fn failed(&mut self, i: usize, record: &mut RunRecord, e: io::Error) {
        // Not listed as written: it is not there.
        if let Some((name, _)) = self.list[i].artifact() {
            record.artifacts.remove(name);
        } else if i == self.record_at {
            record.artifacts.remove("json");
        }
        self.broken(record, e.to_string());
    }

    /// An artifact that could not be written (`error` names it): a warning, the run's
    /// error if it is the first, and once the drill has finished, its status.
    pub fn broken(&mut self, record: &mut RunRecord, error: String) {
        if !record.warnings.contains(&error) {
            record.warnings.push(error.clone());
        }
        self.first_error.get_or_insert(error);
        if record.finished_at.is_some() {
            self.conclude(record);
        }
    }

    /// Lists the reports the last event writes in the record's `artifacts`.
    pub fn list_reports(&self, record: &mut RunRecord) {
        for (name, path) in self.list.iter().filter_map(|o| o.artifact()) {
            record
                .artifacts
                .insert(name.into(), path.display().to_string().into());
        }
    }

    /// When an artifact could not be written, a drill that passed ends as `error` (its
    /// evidence is not all there); one that failed or was interrupted keeps its status
    /// (and exit code), and the write error is its `error`, which the display shows.
    pub fn conclude(&self, record: &mut RunRecord) {
        if let Some(e) = &self.first_error {
            if record.status == RunStatus::Passed {
                record.status = RunStatus::Error;
            }
            record.error = Some(e.clone());
        }
        record.summary = summary(record);
    }
}

/// Rewrites the JSON record on every event but a step's progress. Only the writes of the
/// finished drill also fsync the directory.
///
/// The records written while the drill runs end in `RESERVE` (white space, which JSON
/// ignores), room that the finished record can be written into in place when the disk
/// has filled up meanwhile ([`RecordWriter::in_place`]).
struct RecordWriter {
    path: PathBuf,
}

impl Observer for RecordWriter {
    fn on_event(&mut self, event: &Event<'_>, record: &RunRecord) -> io::Result<()> {
        if matches!(event, Event::StepProgress { .. }) {
            return Ok(());
        }
        let durable = record.finished_at.is_some();
        let written = serde_json::to_vec_pretty(record)
            .map_err(io::Error::other)
            .and_then(|mut bytes| {
                if !durable {
                    bytes.extend_from_slice(&RESERVE);
                }
                artifact::write_replacing(&self.path, &bytes, durable)
            });
        match written {
            Err(e) if durable && artifact::is_out_of_room(&e) => self.in_place(record, e),
            written => written.map_err(|e| named(&self.path, e)),
        }
    }
}

/// Room kept at the end of a running drill's record for its final form (its gates, phases
/// and summary, written compact).
const RESERVE: [u8; 16 * 1024] = [b' '; 16 * 1024];

impl RecordWriter {
    /// The finished record on a full disk: written compact over the last one, in place,
    /// so that it does not go on saying the run is running. It says so in `warnings`.
    fn in_place(&self, record: &RunRecord, e: io::Error) -> io::Result<()> {
        let mut kept = record.clone();
        kept.warnings.push(format!(
            "{} was written over in place: no room for a new copy ({e})",
            self.path.display()
        ));
        serde_json::to_vec(&kept)
            .map_err(io::Error::other)
            .and_then(|bytes| artifact::overwrite_in_place(&self.path, &bytes))
            .map_err(|_| named(&self.path, e))
    }
}

/// Writes one report when the drill has finished: a format of `[report] formats` beside
/// the record, or `--junit` / `--metrics`.
pub(super) struct ReportWriter {
    format: ReportFormat,
    path: PathBuf,
    template: TemplateSource,
    redactor: Arc<Redactor>,
    /// The artifacts directory, whose records say when the drill last passed.
    history: PathBuf,
}

impl ReportWriter {
    pub fn new(
        format: ReportFormat,
        path: PathBuf,
        template: TemplateSource,
        redactor: Arc<Redactor>,
        history: &Path,
    ) -> Self {
        Self {
            format,
            path,
            template,
            redactor,
            history: history.to_path_buf(),
        }
    }

    fn render(&self, record: &RunRecord) -> anyhow::Result<String> {
        if self.format == ReportFormat::Prometheus {
            return Ok(report::prometheus(record, Some(self.last_success(record))));
        }
        let mut data = serde_json::to_value(record)?;
        if self.format == ReportFormat::Html {
            report::with_rto_history(&mut data, &self.past(record), record);
        }
        report::render(self.format, &data, &self.template)
    }

    /// The other records of this drill in the artifacts directory.
    fn past(&self, record: &RunRecord) -> Vec<RunRecord> {
        artifact::list(&self.history)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| artifact::read_listed(p).ok())
            .filter(|r| r.drill.name == record.drill.name && r.run_id != record.run_id)
            .collect()
    }

    /// When this drill last passed: this run, or the newest passing record of the same
    /// drill in the artifacts directory (0: never).
    fn last_success(&self, record: &RunRecord) -> f64 {
        let mut runs = self.past(record);
        runs.push(record.clone());
        let last = report::history::last_successes(&runs);
        last.get(&record.drill.name)
            .copied()
            .flatten()
            .unwrap_or(0.0)
    }
}

impl Observer for ReportWriter {
    fn on_event(&mut self, event: &Event<'_>, record: &RunRecord) -> io::Result<()> {
        if !matches!(event, Event::DrillFinished) {
            return Ok(());
        }
        let name = self.format.name();
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| named(&self.path, e))?;
        }
        let text = self
            .render(record)
            .map_err(|e| io::Error::other(format!("cannot render the {name} report: {e:#}")))?;
        artifact::write_atomic(&self.path, self.redactor.redact(&text).as_bytes())
            .map_err(|e| named(&self.path, e))
    }

    fn artifact(&self) -> Option<(&'static str, &Path)> {
        Some((self.format.name(), &self.path))
    }
}

/// `cannot write <path>: <why>`, of the same kind.
fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
#[path = "observers_tests.rs"]
mod tests;
