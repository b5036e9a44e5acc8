//! `restore`: put a backup back, into a place that can never be production.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};

use super::{StepCtx, StepOutcome, required};
use crate::engines::sqlite;
use crate::guard;
use crate::outputs;
use crate::playbook::{Engine, Step};

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    match step.engine {
        Some(Engine::Sqlite) => sqlite_restore(step, ctx),
        Some(Engine::Files) => super::files::restore(step, ctx),
        Some(Engine::Mysql) => super::mysql::restore(step, ctx),
        Some(Engine::Postgres) => super::postgres::restore(step, ctx),
        None => bail!("missing field `engine`"),
    }
}

fn sqlite_restore(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let from = Path::new(required(step.from.as_deref(), "from")?);
    let given = required(step.target.as_deref(), "target")?;
    // Checked (the backup itself is among the sources) before anything is created;
    // from here on the path it really leads to is used.
    let target = &ctx.sources.check("target", Path::new(given))?;
    if let Some(parent) = target.parent() {
        guard::create_dirs(parent)?;
    }
    let progress = |done, total| ctx.progress(done, total);
    let mut outputs = outputs! { "target" => given, "from" => from.display().to_string() };
    let snap = if target.exists() {
        ensure!(
            step.overwrite == Some(true),
            "target {given} already exists; refusing to restore over it (set `overwrite = true` to replace it; a safety copy is kept)",
        );
        let safety = safety_copy_path(target);
        for path in [&safety, &staged_path(target)] {
            ensure!(
                fs::symlink_metadata(path).is_err(),
                "{} already exists; refusing to replace it",
                path.display()
            );
        }
        fs::copy(target, &safety)
            .with_context(|| format!("cannot make a safety copy of {}", target.display()))?;
        ctx.log
            .write(&ctx.step_id, &format!("safety copy: {}", safety.display()));
        // Restore beside the target and swap it in only once the restore is proven;
        // on any failure the target is put back from the safety copy.
        let staged = staged_path(target);
        let result =
            sqlite::restore(from, &staged, &ctx.copying(target, &progress)).and_then(|snap| {
                fs::rename(&staged, target)
                    .map(|_| snap)
                    .map_err(Into::into)
            });
        match result {
            Ok(snap) => {
                fs::remove_file(&safety)?;
                outputs.insert(
                    "safety_copy".into(),
                    "created, removed after success".into(),
                );
                snap
            }
            Err(e) => {
                let _ = fs::remove_file(&staged);
                fs::rename(&safety, target).with_context(|| {
                    format!(
                        "restore failed ({e:#}) and putting back {} failed",
                        target.display()
                    )
                })?;
                return Err(e.context(format!(
                    "{} was put back from its safety copy",
                    target.display()
                )));
            }
        }
    } else {
        sqlite::restore(from, target, &ctx.copying(target, &progress))?
    };
    ctx.log.write(
        &ctx.step_id,
        &format!(
            "restored {} into {} ({} bytes)",
            from.display(),
            target.display(),
            snap.bytes
        ),
    );
    outputs.insert("bytes".into(), snap.bytes.into());
    outputs.insert(
        "table_counts".into(),
        serde_json::to_value(&snap.table_counts)?,
    );
    outputs.insert("indexes".into(), snap.indexes.into());
    Ok(StepOutcome::passed(outputs))
}

fn safety_copy_path(target: &Path) -> PathBuf {
    let ts = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S");
    with_suffix(target, &format!(".pre-restore-{ts}"))
}

fn staged_path(target: &Path) -> PathBuf {
    with_suffix(target, &format!(".restoring-{}", std::process::id()))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}
