//! The `sqlite` engine: a backup of a database file, a restore into a new file (or over
//! one, with `overwrite`, keeping a safety copy until it succeeds), and `SqliteConn`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, ensure};

use super::SqliteConn;
use crate::engines::digest;
use crate::engines::{Backup, Connected, Ctx, Engine, Restored};
use crate::guard;
use crate::playbook::{Builtin, EngineSpec, KindSpec, Step, required};

pub struct Sqlite;

impl Engine for Sqlite {
    fn backup(&self, step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Backup> {
        let source = Path::new(required(step.source.as_deref(), "source")?);
        // The source is among the sources: checked before anything is created.
        let (given, output) = &ctx.backup_output(step)?;
        ensure!(
            fs::symlink_metadata(output).is_err(),
            "backup output {} already exists",
            given.display()
        );
        if let Some(parent) = output.parent() {
            guard::create_dirs(parent)?;
        }
        let digests = digest::asked(step)?;
        let started = std::time::Instant::now();
        let checkpoint = step.checkpoint.unwrap_or(false);
        let mut snap = super::backup(source, output, checkpoint, &ctx.copying(output))?;
        if let Some(sample) = digests {
            // The copy is the snapshot the rows were counted in.
            snap.schema.table_digests = Some(super::digest_file(output, sample)?);
        }
        let secs = started.elapsed().as_secs_f64();
        ctx.log(&format!(
            "backed up {} to {} ({} bytes, {} tables)",
            source.display(),
            given.display(),
            snap.bytes,
            snap.schema.table_counts.len()
        ));
        Ok(Backup {
            source: Some(source.display().to_string()),
            snapshot_at: snap.taken_at.map(|t| t.to_string()),
            schema: Some(snap.schema),
            ..Backup::made(given, snap.bytes, snap.bytes, secs)
        })
    }

    fn restore(&self, step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Restored> {
        let from = Path::new(required(step.from.as_deref(), "from")?);
        let given = required(step.target.as_deref(), "target")?;
        // Checked (the backup itself is among the sources) before anything is created;
        // from here on the path it really leads to is used.
        let target = &ctx.sources.check("target", Path::new(given))?;
        if let Some(parent) = target.parent() {
            guard::create_dirs(parent)?;
        }
        let mut restored = Restored {
            target: given.to_string(),
            from: from.to_path_buf(),
            ..Restored::default()
        };
        let snap = if target.exists() {
            ensure!(
                step.overwrite == Some(true),
                "target {given} already exists; refusing to restore over it (set `overwrite = true` to replace it; a safety copy is kept)",
            );
            let snap = restore_over(from, target, ctx)?;
            restored.outputs.insert(
                "safety_copy".into(),
                "created, removed after success".into(),
            );
            snap
        } else {
            super::restore(from, target, &ctx.copying(target))?
        };
        ctx.log(&format!(
            "restored {} into {} ({} bytes)",
            from.display(),
            target.display(),
            snap.bytes
        ));
        restored.bytes = snap.bytes;
        restored.schema = Some(snap.schema);
        Ok(restored)
    }

    fn connect(&self, database: &str, writable: bool, ctx: &Ctx<'_>) -> Connected {
        Ok(Box::new(
            SqliteConn::open(Path::new(database), writable)?.interrupted_by(ctx.cancel),
        ))
    }

    fn spec(&self) -> &'static EngineSpec {
        &SPEC
    }
}

/// Restores beside the existing `target` and swaps it in; the restore's checks then run
/// on `target` itself, the file later steps read. On any failure the target is put back
/// from its safety copy. A `-wal`, `-shm` or `-journal` beside the target is refused before
/// anything is touched (SQLite would replay it over the restored file), and again just
/// before the swap.
fn restore_over(from: &Path, target: &Path, ctx: &Ctx<'_>) -> anyhow::Result<super::Snapshot> {
    super::refuse_side_files(target)?;
    let safety = safety_copy_path(target);
    let staged = staged_path(target);
    for path in [&safety, &staged] {
        ensure!(
            fs::symlink_metadata(path).is_err(),
            "{} already exists; refusing to replace it",
            path.display()
        );
    }
    fs::copy(target, &safety)
        .with_context(|| format!("cannot make a safety copy of {}", target.display()))?;
    ctx.log(&format!("safety copy: {}", safety.display()));
    let result = super::stage(from, &staged, &ctx.copying(target))
        .and_then(|()| super::refuse_side_files(target))
        .and_then(|()| {
            fs::rename(&staged, target)
                .with_context(|| format!("cannot rename to {}", target.display()))
        })
        .and_then(|()| super::inspect_restored(from, target));
    match result {
        Ok(snap) => {
            fs::remove_file(&safety)?;
            Ok(snap)
        }
        Err(e) => {
            let _ = fs::remove_file(&staged);
            fs::rename(&safety, target).with_context(|| {
                format!(
                    "restore failed ({e:#}) and putting back {} failed",
                    target.display()
                )
            })?;
            Err(e.context(format!(
                "{} was put back from its safety copy",
                target.display()
            )))
        }
    }
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

/// What validation, the path guard and `init` know of it.
static SPEC: EngineSpec = EngineSpec {
    name: "sqlite",
    example: include_str!("../../../templates/init/sqlite.toml"),
    run: "restore-drill run {playbook} --var source_db=/path/to/app.db",
    kinds: &[
        KindSpec::backup(&["source", "output", "checkpoint", "digests", "sample"])
            .needs(&[&["source"], &["output"]])
            .reads(&["source"])
            .schema(),
        KindSpec::restore(&["from", "target", "overwrite"])
            .needs(&[&["from"], &["target"]])
            .reads(&["from"])
            .makes(&["target"])
            .outputs(&["safety_copy"])
            .schema(),
        KindSpec::sql().reads(&["database"]).lacks(&[(
            Builtin::RolesExist,
            "SQLite has no roles or users: any process that can open the file can read it",
        )]),
    ],
    run_as_root: "",
};
