//! What each subcommand does; every one ends in an exit code.

use std::path::Path;

use crate::artifact::{self, RunStatus};
use crate::cli::{Command, RunArgs, ScheduleArgs, ScheduleTarget, SchemaKind, StatusFormat};
use crate::exit::ExitCode;
use crate::fmt::fmt_secs;
use crate::playbook::{self, LoadError, ReportFormat};
use crate::report::{self, TemplateSource};
use crate::runner::{self, RunError, RunOptions};

pub fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Run(args) => run(args),
        Command::Validate { playbooks } => validate(&playbooks),
        Command::Plan { playbook, vars } => plan(&playbook, vars),
        Command::Report {
            artifact,
            template,
            format,
            output,
        } => report(&artifact, template.as_deref(), format, output.as_deref()),
        Command::History { dir } => history(&dir),
        Command::Status {
            dir,
            drill,
            format: StatusFormat::Prom,
            ..
        } => status_prom(&dir, drill.as_deref()),
        Command::Status {
            dir,
            max_age,
            drill,
            format: StatusFormat::Text,
        } => status(&dir, max_age, drill.as_deref()),
        Command::Verify { dir, pubkey } => verify(&dir, pubkey.as_deref()),
        Command::Schedule(args) => schedule(args),
        Command::Schema { which } => {
            print!(
                "{}",
                match which {
                    SchemaKind::Playbook => crate::schema::playbook(),
                    SchemaKind::Artifact => crate::schema::artifact(),
                }
            );
            ExitCode::Passed
        }
        Command::Init { engine, output } => init(&engine, output.as_deref()),
        Command::Completions { shell } => {
            printed(crate::cli::completions(shell, &mut std::io::stdout()))
        }
        Command::Man => printed(crate::cli::man(&mut std::io::stdout())),
    }
}

/// The exit code of printing to stdout: a reader that went away (`| head`) is no error.
fn printed(result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::Passed,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::Passed,
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            ExitCode::Broken
        }
    }
}

fn load(path: &Path) -> Result<playbook::LoadedPlaybook, ExitCode> {
    let loaded = playbook::load(path, &crate::engines::specs());
    for warning in loaded.iter().flat_map(|pb| &pb.warnings) {
        eprintln!("{warning}");
    }
    loaded.map_err(|e| {
        eprintln!("{e}");
        match e {
            LoadError::Io { .. } | LoadError::Invalid { .. } => ExitCode::Usage,
        }
    })
}

fn run(args: RunArgs) -> ExitCode {
    let pb = match load(&args.playbook) {
        Ok(pb) => pb,
        Err(code) => return code,
    };
    let opts = RunOptions {
        vars: args.vars,
        artifacts_dir: args.artifacts,
        walkthrough: args.walkthrough,
        operators: args.operators,
        keep_workdir: args.keep_workdir,
        quiet: args.quiet,
        junit: args.junit,
        metrics: args.metrics,
    };
    let progress = Box::new(report::progress::Progress::new(opts.quiet));
    match runner::run(&pb, &opts, vec![progress]) {
        Ok(result) => result.exit_code(),
        Err(RunError::Usage(e)) => {
            eprintln!("error: {e}\nnothing was run");
            ExitCode::Usage
        }
        Err(RunError::Broken(e)) => {
            eprintln!("error: {e}");
            ExitCode::Broken
        }
    }
}

fn validate(paths: &[std::path::PathBuf]) -> ExitCode {
    let mut code = ExitCode::Passed;
    for path in paths {
        match load(path) {
            Ok(pb) => {
                let n = pb.playbook.all_steps().count();
                eprintln!("{}: ok ({})", path.display(), crate::fmt::plural(n, "step"));
            }
            Err(c) => code = c,
        }
    }
    code
}

fn plan(path: &Path, vars: Vec<(String, String)>) -> ExitCode {
    let pb = match load(path) {
        Ok(pb) => pb,
        Err(code) => return code,
    };
    let opts = RunOptions {
        vars,
        artifacts_dir: "artifacts/restore".into(),
        ..RunOptions::default()
    };
    match runner::plan(&pb, &opts) {
        Ok(text) => {
            print!("{text}");
            ExitCode::Passed
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::Usage
        }
    }
}

fn report(
    path: &Path,
    template: Option<&Path>,
    format: ReportFormat,
    output: Option<&Path>,
) -> ExitCode {
    let record = match artifact::read(path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::Usage;
        }
    };
    let template = match template {
        Some(t) => TemplateSource::File(t.to_path_buf()),
        None => TemplateSource::from_setting("builtin:markdown", Path::new(".")),
    };
    let data = serde_json::to_value(&record).expect("a record serializes");
    let text = match report::render(format, &data, &template) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::Usage;
        }
    };
    match output {
        Some(out) => match artifact::write_atomic(out, text.as_bytes()) {
            Ok(()) => ExitCode::Passed,
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", out.display());
                ExitCode::Broken
            }
        },
        None => {
            print!("{text}");
            ExitCode::Passed
        }
    }
}

fn records(dir: &Path) -> Result<Vec<artifact::RunRecord>, ExitCode> {
    let paths = artifact::list(dir).map_err(|e| {
        eprintln!("error: cannot read {}: {e}", dir.display());
        ExitCode::Usage
    })?;
    Ok(paths
        .iter()
        .filter_map(|p| match artifact::read(p) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("warning: {e:#}");
                None
            }
        })
        .collect())
}

fn history(dir: &Path) -> ExitCode {
    let records = match records(dir) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if records.is_empty() {
        eprintln!("no drills recorded in {}", dir.display());
        return ExitCode::Passed;
    }
    print!("{}", report::history::table(&records));
    ExitCode::Passed
}

/// `status --format prom`: when each drill (or `--drill`) last passed, for an alert on
/// `time() - restore_drill_last_success_timestamp_seconds > 35 * 86400`.
fn status_prom(dir: &Path, drill: Option<&str>) -> ExitCode {
    let records = match records(dir) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut last = report::history::last_successes(&records);
    if let Some(d) = drill {
        last.retain(|name, _| name == d);
        last.entry(d.to_string()).or_default();
    }
    print!("{}", report::history::last_success_metric(&last));
    ExitCode::Passed
}

fn status(dir: &Path, max_age: std::time::Duration, drill: Option<&str>) -> ExitCode {
    // A folder that is not there is a mistake in the command (exit 2, as `history`), not
    // a drill that has not passed.
    let records = match records(dir) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let now = jiff::Timestamp::now();
    let last_pass = records
        .iter()
        .filter(|r| r.status == RunStatus::Passed && drill.is_none_or(|d| r.drill.name == d))
        .filter_map(|r| {
            r.finished_at
                .as_deref()?
                .parse::<jiff::Timestamp>()
                .ok()
                .map(|t| (t, r))
        })
        .max_by_key(|(t, _)| *t);
    let what = drill.map_or("any drill".to_string(), |d| format!("drill `{d}`"));
    match last_pass {
        Some((t, r)) => {
            let age = now.duration_since(t).as_secs_f64();
            if age <= max_age.as_secs_f64() {
                println!(
                    "ok: {what} passed {} ago ({}, {})",
                    fmt_secs(age),
                    r.drill.name,
                    r.run_id
                );
                ExitCode::Passed
            } else {
                println!(
                    "stale: the last passing run of {what} was {} ago ({}), more than {}",
                    fmt_secs(age),
                    r.run_id,
                    humantime::format_duration(max_age)
                );
                ExitCode::Failed
            }
        }
        None => {
            println!("missing: no passing run of {what} in {}", dir.display());
            ExitCode::Failed
        }
    }
}

/// `verify`: 0 when every record is in its chain (and signed, with a key), 1 naming
/// each that is not, 2 when the directory or the key cannot be read.
fn verify(dir: &Path, pubkey: Option<&Path>) -> ExitCode {
    let key = match pubkey.map(|p| {
        crate::limits::read_text(p, 1 << 20)
            .map_err(|e| e.to_string())
            .and_then(|text| crate::evidence::public_key(&text))
            .map_err(|e| format!("{}: {e}", p.display()))
    }) {
        Some(Err(e)) => {
            eprintln!("error: --pubkey {e}");
            return ExitCode::Usage;
        }
        Some(Ok(key)) => Some(key),
        None => None,
    };
    let found = match crate::evidence::verify(dir, key.as_ref()) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", dir.display());
            return ExitCode::Usage;
        }
    };
    for line in found.problems.iter().chain(&found.notes) {
        println!("{line}");
    }
    let signatures = match key {
        Some(_) => format!("{} signed and verified", found.signed),
        None => "signatures not checked (no --pubkey)".into(),
    };
    let records = crate::fmt::plural(found.records, "record");
    let drills = crate::fmt::plural(found.drills, "drill");
    match found.problems.len() {
        0 => {
            eprintln!(
                "ok: {records} of {drills} in {}: chains intact, {signatures}",
                dir.display()
            );
            ExitCode::Passed
        }
        n => {
            let n = crate::fmt::plural(n, "problem");
            eprintln!(
                "tampered: {n} in {records} of {drills} in {} ({signatures})",
                dir.display()
            );
            ExitCode::Failed
        }
    }
}

/// `schedule`: the units on stdout (exit 0), or why not (exit 2).
fn schedule(args: ScheduleArgs) -> ExitCode {
    match schedule_text(&args) {
        Ok(text) => printed(std::io::Write::write_all(
            &mut std::io::stdout(),
            text.as_bytes(),
        )),
        Err(code) => code,
    }
}

fn schedule_text(args: &ScheduleArgs) -> Result<String, ExitCode> {
    use crate::schedule::{self, InCluster, Local};
    let usage = |e: String| {
        eprintln!("error: {e}");
        ExitCode::Usage
    };
    let every = schedule::every(&args.every).map_err(usage)?;
    if args.indexed {
        if args.target != ScheduleTarget::Kubernetes {
            return Err(usage("--indexed is for `schedule kubernetes`".into()));
        }
        let drills = in_cluster_drills(&args.playbook)?;
        return Ok(schedule::indexed_job(
            &drills,
            &args.image,
            args.parallelism,
        ));
    }
    let pb = load(&args.playbook)?;
    let name = pb.playbook.drill.name.clone();
    if args.target == ScheduleTarget::Kubernetes {
        let file = configmap_key(&args.playbook).map_err(usage)?;
        return Ok(schedule::cron_job(
            &InCluster { name, file },
            &every,
            &args.image,
        ));
    }
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let drill = Local {
        name,
        playbook: absolute(&args.playbook),
        artifacts: absolute(&args.artifacts),
        workdir: absolute(Path::new(".")),
        binary: std::env::current_exe().unwrap_or_else(|_| "restore-drill".into()),
    };
    Ok(match args.target {
        ScheduleTarget::Cron => schedule::cron(&drill, &every),
        _ => schedule::systemd(&drill, &every)
            .iter()
            .map(|(file, text)| format!("# {file}\n{text}"))
            .collect::<Vec<_>>()
            .join("\n"),
    })
}

/// The playbooks (`*.toml`) of `dir` in name order, each checked, as the pods see them.
fn in_cluster_drills(dir: &Path) -> Result<Vec<crate::schedule::InCluster>, ExitCode> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        eprintln!("error: cannot read the directory {}: {e}", dir.display());
        ExitCode::Usage
    })?;
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        eprintln!("error: no playbooks (*.toml) in {}", dir.display());
        return Err(ExitCode::Usage);
    }
    let mut drills = Vec::new();
    for path in paths {
        let name = load(&path)?.playbook.drill.name;
        let file = configmap_key(&path).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::Usage
        })?;
        if drills
            .iter()
            .any(|d: &crate::schedule::InCluster| d.name == name)
        {
            eprintln!(
                "error: two playbooks in {} are drill `{name}`",
                dir.display()
            );
            return Err(ExitCode::Usage);
        }
        drills.push(crate::schedule::InCluster { name, file });
    }
    Ok(drills)
}

/// A playbook's file name, which is its key in the ConfigMap: `[-._a-zA-Z0-9]+`.
fn configmap_key(path: &Path) -> Result<String, String> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let ok = |c: char| c.is_ascii_alphanumeric() || "-._".contains(c);
    match !name.is_empty() && name.chars().all(ok) {
        true => Ok(name.into_owned()),
        false => Err(format!(
            "{}: a ConfigMap key is made of letters, digits, `-`, `_` and `.`; rename the file",
            path.display()
        )),
    }
}

/// Writes the engine's starter playbook and, beside it, the JSON schema its `#:schema`
/// line names (kept when it is there already); prints the command that runs it.
fn init(engine: &str, output: Option<&Path>) -> ExitCode {
    let starter = crate::engines::find(engine)
        .map(|e| (e.spec().example, e.spec().run))
        .or_else(|| {
            crate::cli::STARTERS
                .iter()
                .find(|(n, _, _)| *n == engine)
                .map(|(_, example, run)| (*example, *run))
        });
    let Some((example, run)) = starter else {
        eprintln!(
            "error: unknown engine `{engine}` (engines: {})",
            crate::cli::starter_names().join(", ")
        );
        return ExitCode::Usage;
    };
    let name = format!("{engine}-drill.toml");
    let path = output.unwrap_or(Path::new(&name));
    if path.exists() {
        eprintln!(
            "error: {} already exists; not overwriting it",
            path.display()
        );
        return ExitCode::Usage;
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let schema = dir.join("playbook.schema.json");
    let text = example.replace(&name, &path.display().to_string());
    let written = std::fs::write(path, text).and_then(|()| match schema.exists() {
        true => Ok(false),
        false => std::fs::write(&schema, crate::schema::playbook()).map(|()| true),
    });
    match written {
        Ok(wrote_schema) => {
            let also = match wrote_schema {
                true => format!(" and {} (for editors)", schema.display()),
                false => String::new(),
            };
            let shown = crate::fmt::shell_word(&path.display().to_string());
            eprintln!(
                "wrote {}{also}; run it with:\n  {}",
                path.display(),
                run.replace("{playbook}", &shown)
            );
            ExitCode::Passed
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            ExitCode::Broken
        }
    }
}
