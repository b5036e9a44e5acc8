//! Before the first step: the drill's lock (a second run of the same drill stops here,
//! untouched), secrets and vars, the work directory, the run's files and its initial
//! record, and the observers that write the record and the reports.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::context::{self, Context};
use super::observers::{Observers, ReportWriter};
use super::{RunError, RunOptions, Runner, lock};
use crate::artifact::{
    DrillInfo, Mode, ResourceRecord, RunRecord, RunStatus, SCHEMA_ID, StepRecord, StepStatus,
};
use crate::events::{Event, Observer};
use crate::log::LogSink;
use crate::operator;
use crate::playbook::{LoadedPlaybook, ReportFormat, Section, StepKind, default_phase};
use crate::proc::signals;
use crate::redact::Redactor;
use crate::report::TemplateSource;

impl<'a> Runner<'a> {
    pub(super) fn prepare(
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
        let redactor = Redactor::default();
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

        // Private (0700): dumps and restored production data land in it, under /tmp.
        let workdir = tempfile::Builder::new()
            .prefix(&format!("restore-drill-{}-", book.drill.name))
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(|e| RunError::Broken(format!("cannot create a work directory: {e}")))?
            .keep();
        // By its resolved path, which a later run checks before removing it (`leftovers`).
        let workdir = std::fs::canonicalize(&workdir).unwrap_or(workdir);
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
        let unattended = super::unattended::load(pb, &ctx).map_err(|e| {
            let _ = std::fs::remove_dir_all(&workdir);
            match e {
                RunError::Usage(m) => RunError::Usage(redactor.redact(&m)),
                other => other,
            }
        })?;
        let previous = crate::evidence::previous(&opts.artifacts_dir, &book.drill.name);
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
        let reports = report_writers(pb, opts, &stem, &redactor);
        let mut observers = Observers::new(reports, &json_path, Arc::clone(&redactor), observers);
        unattended.install(&mut observers, &json_path, &redactor);
        let mut runner = Runner {
            pb,
            opts,
            record,
            ctx,
            redactor,
            log,
            workdir,
            json_path,
            observers,
            sources,
            started: Instant::now(),
            started_at,
            interrupted: false,
            resources: Default::default(),
            procs,
            operator: opts.walkthrough.then(|| {
                operator::Operator::start(Arc::clone(&runner_redactor), opts.operators.clone())
            }),
            lock,
        };
        runner.record.previous = previous;
        opts.relocate(&mut runner.record.artifacts);
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
}

/// The reports the playbook asks for, beside the record, plus `--junit` and `--metrics`.
fn report_writers(
    pb: &LoadedPlaybook,
    opts: &RunOptions,
    stem: &Path,
    redactor: &Arc<Redactor>,
) -> Vec<ReportWriter> {
    let report = &pb.playbook.report;
    let template = TemplateSource::from_setting(&report.template, &pb.dir());
    let beside = report
        .formats
        .iter()
        .map(|f| (*f, stem.with_extension(f.extension())));
    let asked = [
        opts.junit.clone().map(|p| (ReportFormat::Junit, p)),
        opts.metrics.clone().map(|p| (ReportFormat::Prometheus, p)),
    ];
    beside
        .chain(asked.into_iter().flatten())
        .map(|(format, path)| {
            let redactor = Arc::clone(redactor);
            ReportWriter::new(
                format,
                path,
                template.clone(),
                redactor,
                &opts.artifacts_dir,
            )
        })
        .collect()
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

pub(super) fn render_vars(
    pb: &LoadedPlaybook,
    opts: &RunOptions,
    ctx: &mut Context,
) -> Result<(), RunError> {
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
                        RunError::Usage(format!(
                            "vars.{name}: {}",
                            crate::template::describe_in(src, false, &e)
                        ))
                    })?,
                other => other.clone(),
            },
        };
        ctx.set_var(name, value);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) fn initial_record(
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
        previous: None,
        notifications: Vec::new(),
    }
}
