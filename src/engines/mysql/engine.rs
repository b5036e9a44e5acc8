//! The `mysql` engine: a dump, and the scratch database it is restored into, registered
//! for removal the moment it exists; `MysqlConn` for checks.

use std::path::Path;

use anyhow::{Context as _, bail, ensure};

use super::{MysqlConn, Target, dump, ident, physical};
use crate::engines::compress::Compression;
use crate::engines::{Backup, Connected, Ctx, Engine, Restored};
use crate::outputs;
use crate::playbook::{EngineSpec, KindSpec, Method, Step, method, required};

pub struct Mysql;

/// How a backup is taken: `mysqldump` (the default) or `mariabackup`.
const BACKUP_METHODS: &[Method] = &[
    Method::new("dump", "mysqldump").values(&[("compression", Compression::NAMES)]),
    Method::new("mariabackup", "mariabackup").physical().lacks(
        &["compression", "single_transaction", "skip_lock_tables"],
        "they are mysqldump's",
    ),
];

impl Engine for Mysql {
    fn backup(&self, step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Backup> {
        let target = Target::parse(required(step.url.as_deref(), "url")?)?;
        // Checked before anything is created; the dump goes where the path really leads.
        let (given, output) = &ctx.backup_output(step)?;
        if method(step, "mysql", BACKUP_METHODS)?.name == "mariabackup" {
            return mariabackup(step, &target, ctx);
        }
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
            source: Some(target.display()),
            snapshot_at: dumped.taken_at.map(|t| t.to_string()),
            schema: Some(dumped.schema),
            outputs: outputs! {
                "database" => dumped.database,
                "dump_bytes" => dumped.dump_bytes,
                "compression" => compression.as_str(),
            },
            ..Backup::made(given, dumped.bytes, dumped.dump_bytes, secs)
        })
    }

    fn restore(&self, step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Restored> {
        let from = Path::new(required(step.from.as_deref(), "from")?);
        if step.isolation.is_some() || physical::is_mariabackup(from) {
            return ephemeral(step, from, ctx);
        }
        let given = |f: &Option<String>| f.as_deref().is_some_and(|v| !v.is_empty());
        ensure!(
            !given(&step.os_user) && !given(&step.listen) && !given(&step.database),
            "restore/mysql: `os_user`, `listen` and `database` apply to `isolation = \"ephemeral\"` only"
        );
        let target = Target::parse(required(step.target_url.as_deref(), "target_url")?)?;
        let database = target
            .database()
            .context("target_url names no database")?
            .to_string();
        let shown = target.display();
        target.remember();
        let created = |dropped: Option<String>| {
            if let Some(warning) = dropped {
                ctx.warn(&warning);
            }
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
            dump::restore(from, &target, ctx, &created, &|d, t| ctx.progress(d, t))?;
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

    fn connect(&self, database: &str, writable: bool, ctx: &Ctx<'_>) -> Connected {
        let conn = MysqlConn::open(database)?.interrupted_by(ctx.cancel);
        Ok(Box::new(if writable { conn } else { conn.read_only()? }))
    }

    fn spec(&self) -> &'static EngineSpec {
        &SPEC
    }
}

/// `mariabackup` of the url's server, prepared, counted at its start.
fn mariabackup(step: &Step, target: &Target, ctx: &Ctx<'_>) -> anyhow::Result<Backup> {
    let (given, output) = &ctx.backup_output(step)?;
    let scratch = ctx.workdir.join(".mysql").join(ctx.step_id);
    let started = std::time::Instant::now();
    let t = physical::backup(target, output, ctx.sources, &scratch, ctx.cancel)?;
    let secs = started.elapsed().as_secs_f64();
    ctx.log(&format!(
        "mariabackup of {} (datadir {}) into {}, prepared: {} bytes in {secs:.1}s; {} tables of `{}` counted in a snapshot at the backup's start ({})",
        target.display(),
        t.datadir,
        given.display(),
        t.bytes,
        t.schema.table_counts.len(),
        t.database,
        t.taken_at
    ));
    Ok(Backup {
        source: Some(target.display()),
        snapshot_at: Some(t.taken_at.to_string()),
        schema: Some(t.schema),
        outputs: outputs! {
            "database" => t.database,
            "method" => "mariabackup",
            "prepared" => true,
        },
        ..Backup::made(given, t.bytes, t.bytes, secs)
    })
}

/// A mariabackup backup into a throwaway `mariadbd`.
fn ephemeral(step: &Step, from: &Path, ctx: &Ctx<'_>) -> anyhow::Result<Restored> {
    match step.isolation.as_deref() {
        Some("ephemeral") => {}
        Some(other) => bail!("`isolation` must be \"ephemeral\", not \"{other}\""),
        None => bail!(
            "{} is a mariabackup backup: it is restored with `isolation = \"ephemeral\"` (a throwaway mariadbd of its own), not into `target_url`",
            from.display()
        ),
    }
    ensure!(
        step.target_url.is_none(),
        "set either `isolation = \"ephemeral\"` or `target_url`, not both"
    );
    let req = physical::RestoreRequest {
        from,
        os_user: step.os_user.as_deref().filter(|u| !u.is_empty()),
        listen: step.listen.as_deref().filter(|l| !l.is_empty()),
        database: step.database.as_deref(),
    };
    physical::restore(&req, ctx)
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
            "method",
        ])
        .needs(&[&["url"], &["output"]])
        .outputs(&[
            "database",
            "dump_bytes",
            "compression",
            "method",
            "prepared",
        ])
        .methods(BACKUP_METHODS)
        .schema(),
        // `compression` is accepted and not needed: a dump's first bytes tell it.
        KindSpec::restore(&[
            "from",
            "target_url",
            "compression",
            "isolation",
            "os_user",
            "listen",
            "database",
        ])
        .needs(&[&["from"], &["target_url", "isolation"]])
        .reads(&["from"])
        .values(&[("isolation", &["ephemeral"])])
        .outputs(&["database", "prepared_here", "cluster_dir", "socket", "port"])
        .schema(),
        KindSpec::sql(),
    ],
    run_as_root: "",
};
