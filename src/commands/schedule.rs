//! `restore-drill schedule`: resolves the paths and reads the playbooks that
//! `crate::schedule` writes units for.

use std::path::Path;

use super::{load, printed};
use crate::cli::{ScheduleArgs, ScheduleTarget};
use crate::exit::ExitCode;

/// `schedule`: the units on stdout (exit 0), or why not (exit 2).
pub(super) fn schedule(args: ScheduleArgs) -> ExitCode {
    match schedule_text(&args) {
        Ok(text) => printed(std::io::Write::write_all(
            &mut std::io::stdout(),
            text.as_bytes(),
        )),
        Err(code) => code,
    }
}

/// Why `--var key=value` cannot be scheduled, when it holds a credential (a url's
/// password, or a var named as one, such as `api_token`): the unit's command line is
/// every run's argv, which `ps` shows to every user, and the unit file keeps it.
fn credential_var(key: &str, value: &str) -> Option<String> {
    let masked = crate::redact::mask_url_passwords(value);
    let holds = matches!(masked, std::borrow::Cow::Owned(_))
        || (crate::redact::is_secret_name(key) && !value.trim().is_empty());
    holds.then(|| {
        format!(
            "--var {key}: its value holds a credential, which the scheduled command line would show to every user (ps) on every run and the unit would keep: read it from the environment with [secrets] (`{{{{ secrets.NAME }}}}`) instead"
        )
    })
}

fn schedule_text(args: &ScheduleArgs) -> Result<String, ExitCode> {
    use crate::schedule::{self, InCluster, Local};
    let usage = |e: String| {
        eprintln!("error: {e}");
        ExitCode::Usage
    };
    let every = schedule::every(&args.every).map_err(usage)?;
    if args.target == ScheduleTarget::Kubernetes && !args.vars.is_empty() {
        return Err(usage(
            "--var is for `schedule systemd` and `schedule cron`; in a cluster, write the value in the playbook of the ConfigMap".into(),
        ));
    }
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
    if let Some((key, _)) = args
        .vars
        .iter()
        .find(|(k, _)| !pb.playbook.vars.contains_key(k))
    {
        return Err(usage(format!(
            "--var {key}: the playbook has no var `{key}` (its [vars] are what --var overrides)"
        )));
    }
    if let Some(why) = args.vars.iter().find_map(|(k, v)| credential_var(k, v)) {
        return Err(usage(why));
    }
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
        vars: args.vars.clone(),
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
