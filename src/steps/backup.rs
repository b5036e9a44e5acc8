//! `backup`: take a fresh backup of a source with the engine's own consistent method.

use std::path::Path;

use anyhow::{bail, ensure};

use super::{StepCtx, StepOutcome, required};
use crate::artifact::FileRecord;
use crate::engines::sqlite;
use crate::outputs;
use crate::playbook::{Engine, Step};

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    match step.engine {
        Some(Engine::Sqlite) => sqlite_backup(step, ctx),
        Some(Engine::Files) => super::files::backup(step, ctx),
        Some(Engine::Mysql) => super::mysql::backup(step, ctx),
        Some(Engine::Postgres) => super::postgres::backup(step, ctx),
        None => bail!("missing field `engine`"),
    }
}

fn sqlite_backup(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let source = Path::new(required(step.source.as_deref(), "source")?);
    let given = Path::new(required(step.output.as_deref(), "output")?);
    // The source is among the sources: checked before anything is created.
    let output = &ctx.sources.check("output", given)?;
    ensure!(
        std::fs::symlink_metadata(output).is_err(),
        "backup output {} already exists",
        given.display()
    );
    if let Some(parent) = output.parent() {
        crate::guard::create_dirs(parent)?;
    }
    let started = std::time::Instant::now();
    let progress = |done, total| ctx.progress(done, total);
    let copying = ctx.copying(output, &progress);
    let snap = sqlite::backup(source, output, step.checkpoint.unwrap_or(false), &copying)?;
    let secs = started.elapsed().as_secs_f64();
    ctx.log.write(
        &ctx.step_id,
        &format!(
            "backed up {} to {} ({} bytes, {} tables)",
            source.display(),
            given.display(),
            snap.bytes,
            snap.table_counts.len()
        ),
    );
    let tables: Vec<&String> = snap.table_counts.keys().collect();
    let mut outcome = StepOutcome::passed(outputs! {
        "path" => given.display().to_string(),
        "source" => source.display().to_string(),
        "bytes" => snap.bytes,
        "snapshot_at" => snap.taken_at.map(|t| t.to_string()),
        "table_counts" => snap.table_counts,
        "tables" => tables,
        "indexes" => snap.indexes,
    });
    outcome.metrics = outputs! { "bytes_per_s" => snap.bytes as f64 / secs.max(1e-9) };
    outcome
        .files
        .push(FileRecord::produced(given, snap.bytes, &ctx.step_id));
    Ok(outcome)
}
