//! backup/mysql and restore/mysql: the dump and the scratch database it is restored
//! into, registered for removal the moment it exists.

use std::path::Path;

use anyhow::Context as _;

use super::{StepCtx, StepOutcome, required};
use crate::artifact::FileRecord;
use crate::engines::compress::Compression;
use crate::engines::mysql::{Target, dump, ident};
use crate::outputs;
use crate::playbook::Step;

pub fn backup(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let target = Target::parse(required(step.url.as_deref(), "url")?)?;
    let given = Path::new(required(step.output.as_deref(), "output")?);
    // Checked before anything is created; the dump goes where the path really leads.
    let output = &ctx.sources.check("output", given)?;
    if let Some(parent) = output.parent() {
        crate::guard::create_dirs(parent)?;
    }
    let compression = Compression::parse(Some(step.compression.as_deref().unwrap_or("none")))?;
    let opts = dump::DumpOptions {
        output,
        workdir: &ctx.workdir,
        single_transaction: step.single_transaction.unwrap_or(true),
        skip_lock_tables: step.skip_lock_tables.unwrap_or(false),
        compression,
    };
    let started = std::time::Instant::now();
    let dumped = dump::backup(&target, &opts, &ctx.cancel, &|line| {
        ctx.log.write(&ctx.step_id, line)
    })?;
    let secs = started.elapsed().as_secs_f64();
    ctx.log.write(
        &ctx.step_id,
        &format!(
            "dumped `{}` from {} into {} ({} bytes, {} uncompressed, {} tables)",
            dumped.database,
            target.display(),
            given.display(),
            dumped.bytes,
            dumped.dump_bytes,
            dumped.table_counts.len()
        ),
    );
    let tables: Vec<&String> = dumped.table_counts.keys().collect();
    let mut outcome = StepOutcome::passed(outputs! {
        "path" => given.display().to_string(),
        "source" => target.display(),
        "database" => dumped.database,
        "bytes" => dumped.bytes,
        "dump_bytes" => dumped.dump_bytes,
        "compression" => compression.as_str(),
        "snapshot_at" => dumped.taken_at.map(|t| t.to_string()),
        "table_counts" => dumped.table_counts,
        "tables" => tables,
        "indexes" => dumped.indexes,
        "foreign_keys" => dumped.foreign_keys,
    });
    outcome.metrics = outputs! { "bytes_per_s" => dumped.dump_bytes as f64 / secs.max(1e-9) };
    outcome
        .files
        .push(FileRecord::produced(given, dumped.bytes, &ctx.step_id));
    Ok(outcome)
}

pub fn restore(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let from = Path::new(required(step.from.as_deref(), "from")?);
    let target = Target::parse(required(step.target_url.as_deref(), "target_url")?)?;
    let database = target
        .database()
        .context("target_url names no database")?
        .to_string();
    let shown = target.display();
    let created = || {
        let server = target.with_database(None);
        let db = database.clone();
        ctx.resources
            .register("database", &shown, &ctx.step_id, move || {
                use mysql::prelude::Queryable as _;
                let mut conn = server.connect()?;
                conn.query_drop(format!("DROP DATABASE IF EXISTS {}", ident(&db)))?;
                Ok(())
            });
    };
    let (bytes, table_counts) = dump::restore(
        from,
        &target,
        &ctx.workdir,
        &ctx.cancel,
        &created,
        &|d, t| ctx.progress(d, t),
    )?;
    ctx.log.write(
        &ctx.step_id,
        &format!(
            "restored {} into {shown} ({} tables)",
            from.display(),
            table_counts.len()
        ),
    );
    Ok(StepOutcome::passed(outputs! {
        "target" => shown,
        "database" => database,
        "from" => from.display().to_string(),
        "bytes" => bytes,
        "table_counts" => table_counts,
    }))
}
