//! The `mysql` engine: a dump, and the scratch database it is restored into, registered
//! for removal the moment it exists; `MysqlConn` for checks.

use std::path::Path;

use anyhow::Context as _;

use super::{MysqlConn, Target, dump, ident};
use crate::engines::compress::Compression;
use crate::engines::{Backup, Connected, Ctx, Engine, Restored};
use crate::outputs;
use crate::playbook::{EngineSpec, KindSpec, Step, required};

pub struct Mysql;

impl Engine for Mysql {
    fn backup(&self, step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Backup> {
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
            workdir: ctx.workdir,
            single_transaction: step.single_transaction.unwrap_or(true),
            skip_lock_tables: step.skip_lock_tables.unwrap_or(false),
            compression,
            digests: crate::engines::digest::asked(step)?,
        };
        let started = std::time::Instant::now();
        let dumped = dump::backup(&target, &opts, ctx.cancel, &|line| ctx.log(line))?;
        let secs = started.elapsed().as_secs_f64();
        ctx.log(&format!(
            "dumped `{}` from {} into {} ({} bytes, {} uncompressed, {} tables)",
            dumped.database,
            target.display(),
            given.display(),
            dumped.bytes,
            dumped.dump_bytes,
            dumped.schema.table_counts.len()
        ));
        Ok(Backup {
            path: given.to_path_buf(),
            bytes: dumped.bytes,
            source: Some(target.display()),
            snapshot_at: dumped.taken_at.map(|t| t.to_string()),
            schema: Some(dumped.schema),
            outputs: outputs! {
                "database" => dumped.database,
                "dump_bytes" => dumped.dump_bytes,
                "compression" => compression.as_str(),
            },
            metrics: outputs! { "bytes_per_s" => dumped.dump_bytes as f64 / secs.max(1e-9) },
            also_made: Vec::new(),
        })
    }

    fn restore(&self, step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Restored> {
        let from = Path::new(required(step.from.as_deref(), "from")?);
        let target = Target::parse(required(step.target_url.as_deref(), "target_url")?)?;
        let database = target
            .database()
            .context("target_url names no database")?
            .to_string();
        let shown = target.display();
        target.remember();
        let created = || {
            let server = target.with_database(None);
            let db = database.clone();
            ctx.resources
                .register("database", &shown, ctx.step_id, move || {
                    use mysql::prelude::Queryable as _;
                    let mut conn = server.connect()?;
                    conn.query_drop(format!("DROP DATABASE IF EXISTS {}", ident(&db)))?;
                    Ok(())
                });
        };
        let (bytes, schema) =
            dump::restore(from, &target, ctx.workdir, ctx.cancel, &created, &|d, t| {
                ctx.progress(d, t)
            })?;
        ctx.log(&format!(
            "restored {} into {shown} ({} tables)",
            from.display(),
            schema.table_counts.len()
        ));
        Ok(Restored {
            target: shown,
            from: from.to_path_buf(),
            bytes,
            schema: Some(schema),
            outputs: outputs! { "database" => database },
            metrics: Default::default(),
        })
    }

    fn connect(&self, database: &str, _writable: bool, ctx: &Ctx<'_>) -> Connected {
        Ok(Box::new(
            MysqlConn::open(database)?.interrupted_by(ctx.cancel),
        ))
    }

    fn spec(&self) -> &'static EngineSpec {
        &SPEC
    }
}

/// What validation, the path guard and `init` know of it.
static SPEC: EngineSpec = EngineSpec {
    name: "mysql",
    example: include_str!("../../../templates/init/mysql.toml"),
    run: "MYSQL_PWD=... restore-drill run {playbook} --var mysql_url=mysql://USER@HOST:3306/DATABASE",
    kinds: &[
        KindSpec::backup(&[
            "url",
            "output",
            "single_transaction",
            "skip_lock_tables",
            "compression",
            "digests",
            "sample",
        ])
        .needs(&[&["url"], &["output"]])
        .outputs(&["database", "dump_bytes", "compression"])
        .schema(),
        // `compression` is accepted and not needed: a dump's first bytes tell it.
        KindSpec::restore(&["from", "target_url", "compression"])
            .needs(&[&["from"], &["target_url"]])
            .reads(&["from"])
            .outputs(&["database"])
            .schema(),
        KindSpec::sql(),
    ],
};
