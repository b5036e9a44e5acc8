//! What each subcommand does; every one ends in an exit code.

mod fleet;
mod remote;
mod schedule;

use std::path::Path;

use serde_json::Value;

use crate::artifact;
use crate::cli::{Command, RunArgs, SchemaKind};
use crate::exit::ExitCode;
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
        Command::History { dir } => {
            fleet::Place::of(&dir).map_or_else(|c| c, |p| fleet::history(&p))
        }
        Command::Status {
            dir,
            max_age,
            drill,
            format,
        } => fleet::Place::of(&dir).map_or_else(
            |c| c,
            |p| fleet::status(&p, max_age, drill.as_deref(), format),
        ),
        Command::Verify { dir, pubkey } => verify(&dir, pubkey.as_deref()),
        Command::Schedule(args) => schedule::schedule(args),
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
    let bucket = remote::Bucket::of(&args.artifacts);
    let opts = RunOptions {
        vars: args.vars,
        artifacts_dir: args.artifacts,
        walkthrough: args.walkthrough,
        operators: args.operators,
        keep_workdir: args.keep_workdir,
        quiet: args.quiet,
        junit: args.junit,
        metrics: args.metrics,
        artifacts_url: None,
    };
    match bucket {
        None => drive(&pb, &opts).map_or_else(|code| code, |r| r.exit_code()),
        Some(Ok(bucket)) => remote::run(&bucket, &pb, opts, drive),
        Some(Err(e)) => {
            eprintln!("error: --artifacts: {e}\nnothing was run");
            ExitCode::Usage
        }
    }
}

/// Runs the drill with the progress display: its result, or why it did not run.
fn drive(pb: &playbook::LoadedPlaybook, opts: &RunOptions) -> Result<runner::RunResult, ExitCode> {
    let progress = Box::new(report::progress::Progress::new(opts.quiet));
    runner::run(pb, opts, vec![progress]).map_err(|e| match e {
        RunError::Usage(e) => {
            eprintln!("error: {e}\nnothing was run");
            ExitCode::Usage
        }
        RunError::Broken(e) => {
            eprintln!("error: {e}");
            ExitCode::Broken
        }
    })
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

/// Whether `out` is the record `record` itself, or any record (`restore_drill_*.json`).
fn is_a_record(out: &Path, record: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let named = out
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(artifact::is_record_name);
    named || id(out).is_some_and(|o| Some(o) == id(record))
}

fn report(
    path: &Path,
    template: Option<&Path>,
    format: ReportFormat,
    output: Option<&Path>,
) -> ExitCode {
    if template.is_some() && format != ReportFormat::Markdown {
        let format = format.name();
        eprintln!(
            "error: --template renders the markdown report, not {format}: the html, junit and prometheus reports are built in"
        );
        return ExitCode::Usage;
    }
    if let Some(out) = output.filter(|out| is_a_record(out, path)) {
        eprintln!(
            "error: -o {} is a drill's record: a report never replaces one",
            out.display()
        );
        return ExitCode::Usage;
    }
    let mut record = match artifact::read(path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::Usage;
        }
    };
    // A record that says `running` of a run that died is reported as died (as `history`
    // and `status` show it), never as a drill still under way.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let who = [
        &*record.drill.name,
        &record.run_id,
        &record.host,
        &record.started_at,
    ];
    let died = fleet::died(record.status, Some(dir.unwrap_or(Path::new("."))), who);
    if let Some(why) = &died {
        record.summary = format!("died: {why}");
    }
    let template = match template {
        Some(t) => TemplateSource::File(t.to_path_buf()),
        None => TemplateSource::from_setting("builtin:markdown", Path::new(".")),
    };
    let mut data = serde_json::to_value(&record).expect("a record serializes");
    if let (Some(why), Value::Object(map)) = (died, &mut data) {
        map.insert("died".into(), why.into());
    }
    if format == ReportFormat::Html {
        // The history chart, from the records beside it.
        let past = artifact::list(dir.unwrap_or(Path::new("."))).unwrap_or_default();
        let past: Vec<_> = past
            .iter()
            .filter_map(|p| artifact::read_listed(p).ok())
            .collect();
        report::with_rto_history(&mut data, &past, &record);
    }
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
    let (dir, shown, _mirror, left_out) = match remote::Bucket::of(dir) {
        None => (
            dir.to_path_buf(),
            dir.display().to_string(),
            None,
            Vec::new(),
        ),
        Some(bucket) => match bucket.and_then(|b| Ok((b.mirror()?, b.shown()))) {
            Ok(((mirror, left_out), shown)) => {
                (mirror.path().to_path_buf(), shown, Some(mirror), left_out)
            }
            Err(e) => {
                eprintln!("error: {}: {e}", dir.display());
                return ExitCode::Usage;
            }
        },
    };
    let found = match crate::evidence::verify(&dir, key.as_ref()) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("error: cannot read {shown}: {e}");
            return ExitCode::Usage;
        }
    };
    for line in found.problems.iter().chain(&found.notes).chain(&left_out) {
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
            eprintln!("ok: {records} of {drills} in {shown}: chains intact, {signatures}");
            ExitCode::Passed
        }
        n => {
            let n = crate::fmt::plural(n, "problem");
            eprintln!("tampered: {n} in {records} of {drills} in {shown} ({signatures})");
            ExitCode::Failed
        }
    }
}

/// Writes the engine's starter playbook and, beside it, the JSON schema its `#:schema`
/// line names (kept when it is there already); prints the command that runs it.
fn init(engine: &str, output: Option<&Path>) -> ExitCode {
    let starter = crate::engines::find(engine)
        .map(|e| (e.spec().example, e.spec().run, e.spec().run_as_root))
        .or_else(|| {
            crate::cli::STARTERS
                .iter()
                .find(|(n, _, _)| *n == engine)
                .map(|(_, example, run)| (*example, *run, ""))
        });
    let Some((example, run, run_as_root)) = starter else {
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
            // SAFETY: geteuid cannot fail and touches no memory.
            let as_root = match unsafe { libc::geteuid() } {
                0 => run_as_root,
                _ => "",
            };
            eprintln!(
                "wrote {}{also}; run it with:\n  {}{as_root}",
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
