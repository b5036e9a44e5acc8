//! One step: `when`, its fields rendered, the walkthrough's confirmation, then its
//! attempts (each on a worker thread, `step_exec`) until one passes or its retries are
//! spent, and what it did written into the record and the templates' `steps.<id>`.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::step_exec::{self, Ending, StepEnv};
use super::{Runner, gates};
use crate::artifact::{self, StepStatus};
use crate::events::Event;
use crate::operator;
use crate::playbook::{Section, Step, StepKind};
use crate::proc::signals;

impl Runner<'_> {
    /// Where `step`'s record is: the record lists every step of the playbook in its order
    /// (found by position, not by id: a secret such as `demo` is redacted in the record's
    /// ids too, `demo_db` being `***_db` there).
    fn step_index(&self, step: &Step) -> usize {
        self.pb
            .all_steps()
            .position(|(_, s)| std::ptr::eq(s, step))
            .expect("every step of the playbook has a record")
    }

    pub(super) fn run_step(&mut self, section: Section, step: &Step) -> StepStatus {
        let index = self.step_index(step);
        if let Some(when) = &step.when {
            match self.ctx.truthy(when) {
                Ok(false) => {
                    return self.conclude_without_running(
                        index,
                        StepStatus::Skipped,
                        format!("skipped: `{when}` is false"),
                    );
                }
                Ok(true) => {}
                Err(e) => {
                    return self.conclude_without_running(
                        index,
                        StepStatus::Failed,
                        format!("`when` failed: {e}"),
                    );
                }
            }
        }
        let rendered = match self.ctx.render_step(step) {
            Ok(s) => s,
            Err(e) => {
                return self.conclude_without_running(
                    index,
                    StepStatus::Failed,
                    format!("template error in step `{}`: {e}", step.id),
                );
            }
        };
        // A credential written in the step (a literal, an `env`, a `--var`: a restic
        // password, an S3 key, an `Authorization` header) is a secret from here on, so
        // a tool or a server that echoes it shows `***`.
        if let Ok(fields) = serde_json::to_value(&rendered) {
            let values = crate::redact::secret_field_values(&fields).into_iter();
            for credentials in values.filter_map(crate::redact::credentials_of) {
                self.redactor.add(credentials);
            }
        }
        if rendered.name.is_some() {
            self.record.steps[index].name = rendered.title();
        }
        self.record.steps[index].runbook = rendered.runbook.clone();
        let limits = match Limits::of(&rendered) {
            Ok(l) => l,
            Err(e) => return self.conclude_without_running(index, StepStatus::Failed, e),
        };

        let note = match self.confirm(section, &rendered) {
            Ok(note) => note,
            Err(skip) => return self.conclude_without_running(index, StepStatus::Skipped, skip),
        };
        self.record.steps[index].status = StepStatus::Running;
        self.record.steps[index].started_at = Some(jiff::Timestamp::now().to_string());
        self.emit_step(index, |s| Event::StepStarted(s));
        self.sources.add_step(&rendered);
        let started = Instant::now();
        let mut attempts = 0;
        // Why the attempts before the last one failed: a step that passed on a retry
        // says so in the record, not only in the log.
        let mut earlier = Vec::new();
        // What every attempt did beyond its work (a failed attempt's included).
        let mut warnings = Vec::new();
        let (outcome, ending) = loop {
            attempts += 1;
            let env = StepEnv {
                step_id: step.id.clone(),
                workdir: self.workdir.clone(),
                log: self.log.clone(),
                sources: self.sources.clone(),
                operator: self.operator.clone(),
                resources: self.resources.clone(),
                procs: self.procs.for_step(&step.id),
            };
            let (outcome, ending) = step_exec::execute(
                rendered.clone(),
                env,
                limits.timeout,
                usize::from(section == Section::Cleanup),
                &mut |done, total| {
                    (self.observers).progress(&mut self.record, index, done, total);
                },
            );
            warnings.extend(outcome.warnings.iter().cloned());
            let retry = !outcome.passed && ending == Ending::Finished && attempts <= step.retries;
            if !retry {
                break (outcome, ending);
            }
            let why = format!(
                "attempt {attempts} failed: {}",
                outcome.error.as_deref().unwrap_or("?")
            );
            self.log.write(&step.id, &format!("{why}; retrying"));
            earlier.push(why);
            if !interruptible_sleep(limits.retry_delay) {
                break (outcome, Ending::Interrupted);
            }
        };
        let duration = started.elapsed().as_secs_f64();
        if matches!(
            ending,
            Ending::Interrupted | Ending::Abandoned { timed_out: false }
        ) {
            self.interrupted = true;
        }
        self.sources
            .add_outcome(&rendered, outcome.passed, &outcome.outputs);
        for warning in warnings {
            let warning = self
                .redactor
                .redact(&format!("step `{}`: {warning}", step.id));
            self.emit(Event::Notice(&warning));
            self.record.warnings.push(warning);
        }

        let rec = &mut self.record.steps[index];
        rec.duration_s = duration;
        rec.attempts = attempts;
        rec.assumed_s = outcome.assumed_s;
        rec.outputs = outcome.outputs;
        if let Some(note) = note {
            rec.outputs.insert("note".into(), note.into());
        }
        rec.metrics.extend(outcome.metrics);
        rec.checks = outcome.checks;
        rec.log_tail = outcome.log_tail;
        rec.status = match ending {
            Ending::TimedOut(_) | Ending::Abandoned { timed_out: true } => StepStatus::TimedOut,
            // Stopped by Ctrl-C: whatever it answered when told to stop (a shell's trap
            // exits 0), it did not do its work.
            Ending::Finished if outcome.passed => StepStatus::Passed,
            _ => StepStatus::Failed,
        };
        rec.error = match ending {
            Ending::TimedOut(how) => Some(step_exec::timed_out(limits.timeout, how)),
            Ending::Interrupted => Some("interrupted".into()),
            Ending::Abandoned { timed_out } => Some(step_exec::abandoned(
                timed_out.then_some(limits.timeout).flatten(),
            )),
            Ending::Finished => outcome.error,
        };
        for file in outcome.files {
            merge_file(&mut self.record.files, file);
        }
        let status = rec.status;
        if status == StepStatus::Passed && !earlier.is_empty() {
            let warning = format!(
                "step `{}` passed on attempt {attempts}; {}",
                step.id,
                earlier.join("; ")
            );
            self.record.warnings.push(warning);
        }
        self.publish_step(index);
        if let Some(max) = limits.max_duration
            && status == StepStatus::Passed
        {
            let gate = gates::max_duration(&self.record.steps[index], max);
            self.push_gate(gate);
        }
        status
    }

    /// In a walkthrough, shows every step's runbook before it runs, and waits for the
    /// operator before the drill's own steps (manual steps ask for themselves; setup and
    /// cleanup just run). Returns the operator's note, or why the step is skipped.
    fn confirm(&mut self, section: Section, step: &Step) -> Result<Option<String>, String> {
        let Some(operator) = self.operator.as_ref() else {
            return Ok(None);
        };
        if step.kind == StepKind::Manual {
            return Ok(None);
        }
        let runbook = step.runbook.as_deref().map(str::trim);
        let title = format!("{} ({})", step.title(), step.kind.as_str());
        if section != Section::Steps {
            if let Some(runbook) = runbook {
                operator.tell(&format!("\n── {}: {title} ──\n{runbook}", section.as_str()));
            }
            return Ok(None);
        }
        let runbook = runbook.unwrap_or("(no runbook)");
        // Skipping what a step proves fails the drill (a wait proves nothing): said
        // before the operator chooses.
        let skip = match step.kind {
            StepKind::Wait => "`skip`",
            _ => "`skip`: the drill then cannot pass",
        };
        let prompt = format!(
            "\n── next: {title} ──\n{runbook}\n\nPress Enter to run it (or type a note, or {skip}): "
        );
        match operator.ask(&prompt) {
            operator::Answer::Line(a) if a.eq_ignore_ascii_case("skip") => {
                Err(super::verdict::OPERATOR_SKIP.into())
            }
            operator::Answer::Line(a) => Ok((!a.is_empty()).then_some(a)),
            // Stdin closed: nobody left to confirm, the drill goes on.
            operator::Answer::Gone if signals::count() == 0 => Ok(None),
            operator::Answer::Gone => {
                self.interrupted = true;
                Err("interrupted before it started".into())
            }
        }
    }

    /// Records a step that never started (skipped, or its fields could not be rendered).
    fn conclude_without_running(
        &mut self,
        index: usize,
        status: StepStatus,
        why: String,
    ) -> StepStatus {
        let rec = &mut self.record.steps[index];
        rec.status = status;
        if status == StepStatus::Skipped {
            rec.outputs.insert("skipped_because".into(), why.into());
        } else {
            rec.error = Some(why);
        }
        self.publish_step(index);
        status
    }

    /// Makes a finished step visible to later templates, observers and the record file.
    fn publish_step(&mut self, index: usize) {
        let rec = &self.record.steps[index];
        let mut view = rec.outputs.clone();
        view.insert("status".into(), rec.status.as_str().into());
        view.insert("duration_s".into(), rec.duration_s.into());
        view.insert("attempts".into(), rec.attempts.into());
        view.insert("error".into(), rec.error.clone().into());
        let id = rec.id.clone();
        // The log tells how every step ended, one that printed nothing included.
        let status = rec.status.as_str();
        let skipped = rec.outputs.get("skipped_because").and_then(Value::as_str);
        let ended = match (rec.error.as_deref(), skipped) {
            (Some(why), _) | (None, Some(why)) => format!("{status}: {why}"),
            (None, None) => format!("{status} in {}", crate::fmt::fmt_secs(rec.duration_s)),
        };
        self.log.write(&id, &ended);
        self.ctx.set_step(&id, Value::Object(view));
        self.emit_step(index, |s| Event::StepFinished(s));
    }
}

/// One entry per path: a checksum step fills in the hash of a file a backup step made.
fn merge_file(files: &mut Vec<artifact::FileRecord>, file: artifact::FileRecord) {
    match files.iter_mut().find(|f| f.path == file.path) {
        Some(known) => {
            known.bytes = file.bytes;
            known.sha256 = file.sha256.or(known.sha256.take());
            known.blake3 = file.blake3.or(known.blake3.take());
        }
        None => files.push(file),
    }
}

/// `timeout`, `max_duration` and `retry_delay` of a rendered step.
struct Limits {
    timeout: Option<Duration>,
    max_duration: Option<Duration>,
    retry_delay: Duration,
}

impl Limits {
    fn of(step: &Step) -> Result<Self, String> {
        let parse = |v: &Option<String>, field| {
            crate::steps::duration(v.as_deref(), field).map_err(|e| e.to_string())
        };
        Ok(Self {
            timeout: parse(&step.timeout, "timeout")?,
            max_duration: parse(&step.max_duration, "max_duration")?,
            retry_delay: parse(&step.retry_delay, "retry_delay")?.unwrap_or(Duration::from_secs(1)),
        })
    }
}

fn interruptible_sleep(d: Duration) -> bool {
    let deadline = Instant::now() + d;
    while Instant::now() < deadline {
        if signals::count() > 0 {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
