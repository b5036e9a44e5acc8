//! Sequencing a drill: setup → steps → cleanup (always), with timeouts, retries, gates,
//! interruption, and the record rewritten after every step.

mod context;
pub mod gates;
mod leftovers;
mod lock;
mod plan;
mod step_exec;

pub use plan::plan;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::artifact::{
    self, DrillInfo, GateKind, GateRecord, GateStatus, Mode, Redactor, ResourceRecord, RunRecord,
    RunStatus, SCHEMA_ID, StepRecord, StepStatus,
};
use crate::events::{Event, Observer};
use crate::log::LogSink;
use crate::operator;
use crate::playbook::{LoadedPlaybook, Section, Step, StepKind, default_phase};
use crate::proc::signals;
use crate::report;
use crate::resources;
use context::Context;
use step_exec::{Ending, StepEnv};

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
    stem: PathBuf,
    observers: Vec<Box<dyn Observer>>,
    /// What the playbook reads from: no step may write or remove them.
    sources: crate::guard::Sources,
    started: Instant,
    started_at: jiff::Timestamp,
    /// The first error writing artifacts: the drill's result cannot be trusted to be kept.
    write_error: Option<String>,
    interrupted: bool,
    resources: resources::Resources,
    /// The process groups and clusters running now, written into the lock file.
    procs: crate::proc::Registry,
    operator: Option<operator::Operator>,
    /// Held until the runner is dropped, after the last artifact is written.
    lock: lock::DrillLock,
}

impl<'a> Runner<'a> {
    fn prepare(
        pb: &'a LoadedPlaybook,
        opts: &'a RunOptions,
        observers: Vec<Box<dyn Observer>>,
    ) -> Result<Self, RunError> {
        let book = &pb.playbook;
        let started_at = jiff::Timestamp::now();
        let ts = started_at.strftime("%Y%m%dT%H%M%SZ").to_string();
        std::fs::create_dir_all(&opts.artifacts_dir).map_err(|e| {
            RunError::Broken(format!(
                "cannot create artifacts directory {}: {e}",
                opts.artifacts_dir.display()
            ))
        })?;
        let run_id = format!(
            "{}-{}-{:04x}",
            book.drill.name,
            ts,
            std::process::id() & 0xffff
        );
        // Before anything is created: a second run of the same drill stops here, untouched.
        let lock = lock::DrillLock::acquire(&opts.artifacts_dir, &book.drill.name, &run_id)?;
        // What the steps start is marked as this run's, dies with it (see crate::proc).
        crate::proc::kernel::set_run_id(&run_id);
        let _ = crate::proc::kernel::become_subreaper();
        let procs = crate::proc::Registry::new(lock.recorder());
        let mut redactor = Redactor::default();
        let mut secrets = Map::new();
        for (name, source) in &book.secrets {
            let value = match std::env::var(&source.env) {
                Ok(v) => v,
                Err(_) if source.optional => String::new(),
                Err(_) => {
                    return Err(RunError::Usage(format!(
                        "secret `{name}` reads the environment variable {}, which is not set",
                        source.env
                    )));
                }
            };
            redactor.add(&value);
            secrets.insert(name.clone(), value.into());
        }
        let redactor = Arc::new(redactor);

        let workdir = tempfile::Builder::new()
            .prefix(&format!("restore-drill-{}-", book.drill.name))
            .tempdir()
            .map_err(|e| RunError::Broken(format!("cannot create a work directory: {e}")))?
            .keep();
        if !opts.keep_workdir {
            // Removed by the next run if this one dies (`leftovers`).
            procs.directory("workdir", &workdir);
        }
        let mode = if opts.walkthrough {
            Mode::Walkthrough
        } else {
            Mode::Automated
        };
        let mut ctx = Context::default();
        ctx.set("env", context::env_value());
        ctx.set("secrets", Value::Object(secrets));
        ctx.set(
            "drill",
            json!({
                "name": book.drill.name,
                "title": book.drill.title.clone().unwrap_or_else(|| book.drill.name.clone()),
                "run_id": run_id,
                "ts": ts,
                "workdir": workdir.display().to_string(),
                "artifacts_dir": opts.artifacts_dir.display().to_string(),
                "playbook_dir": pb.dir().display().to_string(),
                "mode": if opts.walkthrough { "walkthrough" } else { "automated" },
            }),
        );
        ctx.set("vars", json!({}));
        ctx.set(
            "steps",
            Value::Object(
                pb.all_steps()
                    .map(|(_, s)| (s.id.clone(), json!({"status": "not_run"})))
                    .collect(),
            ),
        );
        if let Err(e) = render_vars(pb, opts, &mut ctx) {
            // Nothing ran: leave nothing behind.
            let _ = std::fs::remove_dir_all(&workdir);
            return Err(match e {
                RunError::Usage(m) => RunError::Usage(redactor.redact(&m)),
                other => other,
            });
        }
        let claimed = claim_stem(&opts.artifacts_dir, &ts).and_then(|stem| {
            let log_path = stem.with_extension("log");
            let log = LogSink::create(&log_path, Arc::clone(&redactor))
                .inspect_err(|_| drop(std::fs::remove_file(stem.with_extension("json"))))?;
            Ok((stem, log_path, log))
        });
        let (stem, log_path, log) = claimed.map_err(|e| {
            let _ = std::fs::remove_dir_all(&workdir);
            RunError::Broken(format!(
                "cannot create the run's files in {}: {e}",
                opts.artifacts_dir.display()
            ))
        })?;
        let json_path = stem.with_extension("json");

        let record = initial_record(
            pb,
            opts,
            run_id,
            mode,
            &started_at,
            &workdir,
            &json_path,
            &log_path,
        );
        let runner_redactor = Arc::clone(&redactor);
        let sources = declared_sources(pb, &ctx);
        let mut runner = Runner {
            pb,
            opts,
            record,
            ctx,
            redactor,
            log,
            workdir,
            json_path,
            stem,
            observers,
            sources,
            started: Instant::now(),
            started_at,
            write_error: None,
            interrupted: false,
            resources: Default::default(),
            procs,
            operator: opts
                .walkthrough
                .then(|| operator::Operator::start(Arc::clone(&runner_redactor))),
            lock,
        };
        runner.record.resources.push(ResourceRecord {
            kind: "workdir".into(),
            id: runner.workdir.display().to_string(),
            step: None,
            removed: false,
            detail: None,
        });
        signals::install();
        if let Some(holder) = runner.lock.took_over.clone() {
            let msg = format!(
                "took over the lock {} left by a run that died ({holder})",
                runner.lock.path.display()
            );
            runner.record.warnings.push(msg.clone());
            runner.notice(&msg);
        }
        runner.stop_leftovers();
        runner.emit(Event::DrillStarted);
        Ok(runner)
    }

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

    fn run_cleanup(&mut self, steps: &[Step]) {
        self.interrupted |= signals::count() > 0;
        if self.interrupted {
            self.notice("interrupted: stopping the running step and cleaning up (Ctrl-C again to skip cleanup)");
        }
        // The application goes first: cleanup steps may drop what it still holds open.
        if !second_interrupt() {
            self.tear_down_resources(|kind| kind == "service");
        }
        for step in steps {
            if second_interrupt() {
                let msg = format!(
                    "second interrupt: cleanup step `{}` and those after it skipped",
                    step.id
                );
                self.record.warnings.push(msg.clone());
                self.notice(&msg);
                break;
            }
            self.run_step(Section::Cleanup, step);
        }
        if second_interrupt() {
            for (kind, id, step) in self.resources.pending() {
                let msg = format!(
                    "left behind by the second interrupt: {kind} {id} (from step `{step}`)"
                );
                self.record.warnings.push(msg.clone());
                self.notice(&msg);
                self.record.resources.push(ResourceRecord {
                    kind,
                    id: self.redactor.redact(&id),
                    step: Some(step),
                    removed: false,
                    detail: Some("teardown skipped by a second interrupt".into()),
                });
            }
        } else {
            self.tear_down_resources(|_| true);
        }
        self.remove_workdir();
    }

    /// Stops services, drops scratch databases, removes clusters: whatever steps registered.
    fn tear_down_resources(&mut self, kind: impl Fn(&str) -> bool) {
        for torn in self.resources.tear_down_where(kind) {
            let removed = torn.result.is_ok();
            let detail = torn.result.err().map(|e| format!("{e:#}"));
            if let Some(d) = &detail {
                let msg = format!("{} {} was not removed: {d}", torn.kind, torn.id);
                self.record.warnings.push(msg.clone());
                self.notice(&msg);
            }
            self.log.write(
                "teardown",
                &format!(
                    "{} {}: {}",
                    torn.kind,
                    torn.id,
                    detail.as_deref().unwrap_or("removed")
                ),
            );
            self.record.resources.push(ResourceRecord {
                kind: torn.kind,
                id: self.redactor.redact(&torn.id),
                step: Some(torn.step),
                removed,
                detail,
            });
        }
        self.write_record();
    }

    fn remove_workdir(&mut self) {
        let keep = self.opts.keep_workdir;
        let result = if keep {
            Ok(())
        } else {
            std::fs::remove_dir_all(&self.workdir)
        };
        let removed = !keep && result.is_ok();
        if let Some(r) = self
            .record
            .resources
            .iter_mut()
            .find(|r| r.kind == "workdir")
        {
            r.removed = removed;
            r.detail = match (keep, &result) {
                (true, _) => Some("kept (--keep-workdir)".into()),
                (false, Err(e)) => Some(format!("could not remove: {e}")),
                (false, Ok(())) => None,
            };
        }
        if let Err(e) = result {
            let msg = format!("work directory {} left behind: {e}", self.workdir.display());
            self.record.warnings.push(msg.clone());
            self.notice(&msg);
        }
    }

    fn step_index(&self, section: Section, id: &str) -> usize {
        self.record
            .steps
            .iter()
            .position(|s| s.section == section && s.id == id)
            .expect("every step has a record")
    }

    fn run_step(&mut self, section: Section, step: &Step) -> StepStatus {
        let index = self.step_index(section, &step.id);
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
        if rendered.name.is_some() {
            self.record.steps[index].name = rendered.title();
        }
        self.record.steps[index].runbook = rendered.runbook.clone();
        let limits = match Limits::of(&rendered) {
            Ok(l) => l,
            Err(e) => return self.conclude_without_running(index, StepStatus::Failed, e),
        };

        if let Some(skip) = self.confirm(section, &rendered) {
            return self.conclude_without_running(index, StepStatus::Skipped, skip);
        }
        self.record.steps[index].status = StepStatus::Running;
        self.record.steps[index].started_at = Some(jiff::Timestamp::now().to_string());
        self.emit_step(index, |s| Event::StepStarted(s));
        self.sources.add_step(&rendered);
        let started = Instant::now();
        let mut attempts = 0;
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
                    let step = &self.record.steps[index];
                    for o in &mut self.observers {
                        let _ =
                            o.on_event(&Event::StepProgress { step, done, total }, &self.record);
                    }
                },
            );
            let retry = !outcome.passed && ending == Ending::Finished && attempts <= step.retries;
            if !retry {
                break (outcome, ending);
            }
            self.log.write(
                &step.id,
                &format!(
                    "attempt {attempts} failed: {}; retrying",
                    outcome.error.as_deref().unwrap_or("?")
                ),
            );
            if !interruptible_sleep(limits.retry_delay) {
                break (outcome, Ending::Interrupted);
            }
        };
        let duration = started.elapsed().as_secs_f64();
        if ending == Ending::Interrupted {
            self.interrupted = true;
        }
        self.sources
            .add_outcome(&rendered, outcome.passed, &outcome.outputs);

        let rec = &mut self.record.steps[index];
        rec.duration_s = duration;
        rec.attempts = attempts;
        rec.assumed_s = outcome.assumed_s;
        rec.outputs = outcome.outputs;
        rec.metrics.extend(outcome.metrics);
        rec.checks = outcome.checks;
        rec.log_tail = outcome.log_tail;
        rec.status = match ending {
            Ending::TimedOut(_) => StepStatus::TimedOut,
            _ if outcome.passed => StepStatus::Passed,
            _ => StepStatus::Failed,
        };
        rec.error = match ending {
            Ending::TimedOut(how) => Some(step_exec::timed_out(limits.timeout, how)),
            Ending::Interrupted => Some("interrupted".into()),
            Ending::Abandoned => Some(format!(
                "{} (the step did not stop when told to and was abandoned)",
                outcome.error.as_deref().unwrap_or("stopped")
            )),
            Ending::Finished => outcome.error,
        };
        for file in outcome.files {
            merge_file(&mut self.record.files, file);
        }
        let status = rec.status;
        self.publish_step(index);
        if let Some(max) = limits.max_duration
            && status == StepStatus::Passed
        {
            let gate = gates::max_duration(&self.record.steps[index], max);
            self.push_gate(gate);
            self.write_record();
        }
        status
    }

    /// In a walkthrough, shows the step's runbook and waits for the operator before the
    /// drill's own steps (manual steps ask for themselves; setup and cleanup just run).
    /// Returns why the step is skipped, if the operator says so.
    fn confirm(&mut self, section: Section, step: &Step) -> Option<String> {
        let operator = self.operator.as_ref()?;
        if section != Section::Steps || step.kind == StepKind::Manual {
            return None;
        }
        let runbook = step
            .runbook
            .as_deref()
            .map(str::trim)
            .unwrap_or("(no runbook)");
        let prompt = format!(
            "\n── next: {} ({}) ──\n{runbook}\n\nPress Enter to run it (or type `skip`): ",
            step.title(),
            step.kind.as_str()
        );
        match operator.ask(&prompt) {
            operator::Answer::Line(a) if a.eq_ignore_ascii_case("skip") => {
                Some("skipped by the operator".into())
            }
            operator::Answer::Line(_) => None,
            // Stdin closed: nobody left to confirm, the drill goes on.
            operator::Answer::Gone if signals::count() == 0 => None,
            operator::Answer::Gone => {
                self.interrupted = true;
                Some("interrupted before it started".into())
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
        self.ctx.set_step(&id, Value::Object(view));
        self.emit_step(index, |s| Event::StepFinished(s));
    }

    fn push_gate(&mut self, mut gate: GateRecord) {
        let _ = self.redactor.scrub(&mut gate);
        self.record.gates.push(gate);
        let gate = self.record.gates.last().expect("just pushed");
        for o in &mut self.observers {
            let _ = o.on_event(&Event::GateEvaluated(gate), &self.record);
        }
    }

    fn evaluate_drill_gates(&mut self) {
        let book = &self.pb.playbook;
        let rto = gates::rto(&self.record.steps, &book.gates);
        let completed = !self.interrupted
            && self
                .record
                .steps
                .iter()
                .filter(|s| s.section != Section::Cleanup)
                .all(|s| !matches!(s.status, StepStatus::NotRun | StepStatus::Running));
        let why = if self.interrupted {
            "the drill was interrupted"
        } else {
            "the drill stopped before recovery finished"
        };
        if let Some(gate) = gates::rto_gate(&rto) {
            let gate = if completed {
                gate
            } else {
                gates::not_evaluated("RTO", GateKind::Rto, rto.target_s, why)
            };
            self.push_gate(gate);
        }
        self.record.rto = rto;
        if let Some((rpo, gate)) = gates::rpo(&book.gates, &self.ctx, self.started_at) {
            let gate = if completed {
                gate
            } else {
                gates::not_evaluated("RPO", GateKind::Rpo, rpo.target_s, why)
            };
            self.push_gate(gate);
            self.record.rpo = Some(rpo);
        }
        for custom in &book.gates.custom {
            let gate = if completed {
                gates::custom(
                    &custom.name,
                    &custom.check,
                    &self.ctx,
                    &self.record.rto,
                    self.record.rpo.as_ref(),
                )
            } else {
                gates::not_evaluated(&custom.name, GateKind::Custom, None, why)
            };
            self.push_gate(gate);
        }
    }

    fn finish(mut self) -> RunResult {
        if let Some(e) = self.log.error() {
            self.record.warnings.push(e.clone());
            self.write_error.get_or_insert(e);
        }
        self.evaluate_drill_gates();
        let finished = jiff::Timestamp::now();
        self.record.finished_at = Some(finished.to_string());
        self.record.duration_s = self.started.elapsed().as_secs_f64();
        self.record.status = self.verdict();
        self.write_reports();
        if let Some(e) = &self.write_error {
            self.record.status = RunStatus::Error;
            self.record.error = Some(e.clone());
        }
        self.record.summary = summary(&self.record);
        self.emit(Event::DrillFinished);
        RunResult {
            record: self.record,
            json_path: self.json_path,
        }
    }

    fn verdict(&self) -> RunStatus {
        if self.interrupted {
            return RunStatus::Aborted;
        }
        let step_failed = self.record.steps.iter().any(|s| s.status.is_failure());
        let gate_failed = self
            .record
            .gates
            .iter()
            .any(|g| g.status == GateStatus::Failed);
        if step_failed || gate_failed {
            RunStatus::Failed
        } else {
            RunStatus::Passed
        }
    }

    /// The reports the playbook asks for, plus `--junit` and `--metrics`.
    fn write_reports(&mut self) {
        let mut wanted: Vec<(crate::playbook::ReportFormat, PathBuf)> = self
            .pb
            .playbook
            .report
            .formats
            .iter()
            .map(|f| {
                let format = *f;
                (format, self.stem.with_extension(format.extension()))
            })
            .collect();
        if let Some(p) = &self.opts.junit {
            wanted.push((crate::playbook::ReportFormat::Junit, p.clone()));
        }
        if let Some(p) = &self.opts.metrics {
            wanted.push((crate::playbook::ReportFormat::Prometheus, p.clone()));
        }
        for (format, path) in &wanted {
            self.record
                .artifacts
                .insert(format.name().into(), path.display().to_string().into());
        }
        self.record.summary = summary(&self.record);
        let data = match self.redactor.scrub(&mut self.record) {
            Ok(d) => d,
            Err(e) => {
                self.write_error = Some(format!("cannot serialize the record: {e}"));
                return;
            }
        };
        let template =
            report::TemplateSource::from_setting(&self.pb.playbook.report.template, &self.pb.dir());
        for (format, path) in wanted {
            let result = report::render(format, &data, &template)
                .map_err(|e| format!("cannot render the {} report: {e:#}", format.name()))
                .and_then(|text| {
                    artifact::write_atomic(&path, self.redactor.redact(&text).as_bytes())
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))
                });
            if let Err(e) = result {
                // Not listed as written: it is not there.
                self.record.artifacts.remove(format.name());
                self.record.warnings.push(e.clone());
                self.write_error.get_or_insert(e);
            }
        }
    }

    fn notice(&mut self, message: &str) {
        let message = self.redactor.redact(message);
        self.log.write("restore-drill", &message);
        for o in &mut self.observers {
            let _ = o.on_event(&Event::Notice(&message), &self.record);
        }
    }

    fn emit_step(&mut self, index: usize, make: impl Fn(&StepRecord) -> Event<'_>) {
        self.write_record();
        let step = &self.record.steps[index];
        for o in &mut self.observers {
            let _ = o.on_event(&make(step), &self.record);
        }
    }

    fn emit(&mut self, event: Event<'_>) {
        self.write_record();
        for o in &mut self.observers {
            let _ = o.on_event(&event, &self.record);
        }
    }

    /// Rewrites the JSON record; the first failure is kept and ends the run as `error`.
    /// Only the writes of the finished drill also fsync the directory. Every event
    /// passes here first: the record is scrubbed of secrets in place (templates keep the
    /// raw outputs in `ctx`), so no observer ever sees one.
    fn write_record(&mut self) {
        let durable = self.record.finished_at.is_some();
        let result = self
            .redactor
            .scrub(&mut self.record)
            .map_err(|e| e.to_string())
            .and_then(|v| serde_json::to_vec_pretty(&v).map_err(|e| e.to_string()))
            .and_then(|bytes| {
                artifact::write_replacing(&self.json_path, &bytes, durable)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            self.write_error
                .get_or_insert(format!("cannot write {}: {e}", self.json_path.display()));
        }
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

/// A second Ctrl-C (or SIGTERM), wherever it came: what is left of cleanup is skipped.
fn second_interrupt() -> bool {
    signals::count() >= 2
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

/// Claims `restore_drill_<ts>` in `dir` by creating its `.json` (a run that started in
/// the same second gets `_2`, `_3`, ...); creating the file is what makes the claim atomic.
fn claim_stem(dir: &Path, ts: &str) -> std::io::Result<PathBuf> {
    for n in 1.. {
        let stem = match n {
            1 => dir.join(format!("restore_drill_{ts}")),
            n => dir.join(format!("restore_drill_{ts}_{n}")),
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(stem.with_extension("json"))
        {
            Ok(_) => return Ok(stem),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("some suffix is free")
}

/// The sources of every backup step, known before anything runs (as far as their fields
/// render now): a step placed earlier, or a backup skipped by `when`, still protects them.
fn declared_sources(pb: &LoadedPlaybook, ctx: &Context) -> crate::guard::Sources {
    let mut sources = crate::guard::Sources::new(&pb.engines);
    for (_, step) in pb.all_steps().filter(|(_, s)| s.kind == StepKind::Backup) {
        if let Ok(rendered) = ctx.render_step(step) {
            sources.add_step(&rendered);
        }
    }
    sources
}

fn render_vars(pb: &LoadedPlaybook, opts: &RunOptions, ctx: &mut Context) -> Result<(), RunError> {
    for (key, _) in &opts.vars {
        if !pb.playbook.vars.contains_key(key) {
            let known: Vec<&str> = pb.playbook.vars.keys().map(String::as_str).collect();
            return Err(RunError::Usage(format!(
                "--var {key}: the playbook has no var `{key}` (its vars: {})",
                known.join(", ")
            )));
        }
    }
    for (name, value) in &pb.playbook.vars {
        let value = match opts.vars.iter().rev().find(|(k, _)| k == name) {
            Some((_, v)) => Value::String(v.clone()),
            None => match value {
                Value::String(src) => crate::template::render(src, &ctx.jinja())
                    .map(Value::String)
                    .map_err(|e| {
                        RunError::Usage(format!("vars.{name}: {}", crate::template::describe(&e)))
                    })?,
                other => other.clone(),
            },
        };
        ctx.set_var(name, value);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn initial_record(
    pb: &LoadedPlaybook,
    opts: &RunOptions,
    run_id: String,
    mode: Mode,
    started_at: &jiff::Timestamp,
    workdir: &Path,
    json_path: &Path,
    log_path: &Path,
) -> RunRecord {
    let book = &pb.playbook;
    let steps = pb
        .all_steps()
        .map(|(section, s)| StepRecord {
            id: s.id.clone(),
            kind: s.kind.as_str().into(),
            name: s.title(),
            phase: match section {
                Section::Setup => "setup".into(),
                Section::Cleanup => "cleanup".into(),
                Section::Steps => s.phase.clone().unwrap_or_else(|| default_phase(s).into()),
            },
            section,
            status: StepStatus::NotRun,
            started_at: None,
            duration_s: 0.0,
            assumed_s: None,
            attempts: 0,
            runbook: s.runbook.clone(),
            outputs: Map::new(),
            metrics: Map::new(),
            checks: Vec::new(),
            error: None,
            log_tail: None,
        })
        .collect();
    let mut artifacts = Map::new();
    artifacts.insert("json".into(), json_path.display().to_string().into());
    artifacts.insert("log".into(), log_path.display().to_string().into());
    RunRecord {
        schema: SCHEMA_ID.into(),
        run_id,
        drill: DrillInfo {
            name: book.drill.name.clone(),
            title: book.drill.title.clone(),
            description: book.drill.description.clone(),
            owner: book.drill.owner.clone(),
            tags: book.drill.tags.clone(),
            playbook: pb.path.display().to_string(),
            playbook_sha256: pb.sha256.clone(),
        },
        mode,
        host: gethostname::gethostname().to_string_lossy().into_owned(),
        operators: opts.operators.clone(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        started_at: started_at.to_string(),
        finished_at: None,
        duration_s: 0.0,
        status: RunStatus::Running,
        summary: "running".into(),
        workdir: workdir.display().to_string(),
        steps,
        gates: Vec::new(),
        rto: Default::default(),
        rpo: None,
        files: Vec::new(),
        resources: Vec::new(),
        warnings: Vec::new(),
        artifacts,
        error: None,
    }
}

/// One line: the verdict and, when it failed, the first reasons.
pub fn summary(record: &RunRecord) -> String {
    let mut reasons: Vec<String> = record
        .steps
        .iter()
        .filter(|s| s.status.is_failure())
        .map(|s| {
            format!(
                "step `{}` {}: {}",
                s.id,
                s.status.as_str().replace('_', " "),
                s.error.as_deref().unwrap_or("")
            )
        })
        .collect();
    reasons.extend(
        record
            .gates
            .iter()
            .filter(|g| g.status == GateStatus::Failed)
            .map(|g| format!("gate {} missed: {}", g.name, g.detail)),
    );
    let ran = record
        .steps
        .iter()
        .filter(|s| !matches!(s.status, StepStatus::NotRun))
        .count();
    match record.status {
        RunStatus::Passed => format!(
            "passed: {ran} steps, {} gates passed",
            record
                .gates
                .iter()
                .filter(|g| g.status == GateStatus::Passed)
                .count()
        ),
        RunStatus::Aborted => "aborted: interrupted; cleanup ran".into(),
        RunStatus::Error => format!(
            "error: {}",
            record.error.as_deref().unwrap_or("the runner broke")
        ),
        RunStatus::Running => "running".into(),
        RunStatus::Failed => {
            let more = reasons.len().saturating_sub(3);
            let mut s = format!(
                "failed: {}",
                reasons.into_iter().take(3).collect::<Vec<_>>().join("; ")
            );
            if more > 0 {
                s.push_str(&format!(" (and {more} more)"));
            }
            s
        }
    }
}
