//! The `postgres` engine: `pg_dump` backups counted in the dump's own snapshot, restores
//! into a throwaway cluster (registered for teardown before it exists) or a scratch
//! database (registered to be dropped), and `PgConn` for checks.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};

use super::PgConn;
use super::basebackup::{self, BaseBackupRequest};
use super::bin::Bins;
use super::catalog::ident;
use super::cluster::{self, Cluster, ClusterSpec, Postmaster};
use super::dump::{self, DumpRequest, Format};
use super::physical::{self, Physical};
use super::recovery::Target;
use super::restore::{self as pg_restore, RestoreRequest};
use super::scratch;
use super::url::PgUrl;
use crate::engines::digest;
use crate::engines::{Backup, Connected, Ctx, Engine, Restored, SchemaFacts};
use crate::outputs;
use crate::playbook::{Clash, EngineSpec, KindSpec, Method, Step, method, required};

pub struct Postgres;

impl Engine for Postgres {
    fn backup(&self, step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Backup> {
        backup(step, ctx)
    }

    fn restore(&self, step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Restored> {
        restore(step, ctx)
    }

    fn connect(&self, database: &str, writable: bool, ctx: &Ctx<'_>) -> Connected {
        let scratch = scratch_path(ctx);
        let mut conn = PgConn::open(database)?.interrupted_by(ctx.cancel);
        if !writable {
            conn = conn.read_only()?;
        }
        Ok(Box::new(conn.copying_with(scratch, ctx.cancel)))
    }

    fn spec(&self) -> &'static EngineSpec {
        &SPEC
    }
}

/// A private directory of the step for password files and tools' messages.
fn scratch_dir(ctx: &Ctx<'_>) -> anyhow::Result<PathBuf> {
    let dir = scratch_path(ctx);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Where `scratch_dir` is (created by whoever writes there first).
fn scratch_path(ctx: &Ctx<'_>) -> PathBuf {
    ctx.workdir.join(".pg").join(ctx.step_id)
}

/// `os_user`; empty means none (a playbook var left empty when not running as root).
fn os_user(step: &Step) -> Option<&str> {
    step.os_user.as_deref().filter(|u| !u.is_empty())
}

/// How a backup is taken: `pg_dump` (the default) or `pg_basebackup`.
const BACKUP_METHODS: &[Method] = &[
    Method::new("dump", "pg_dump")
        .values(&[
            ("format", Format::NAMES),
            ("compression", &["zstd", "none"]),
        ])
        .clashes(&[Clash {
            first: ("compression", "zstd"),
            second: ("format", "directory"),
            why: "zstd compresses pg_dump's one archive (`format = \"custom\"`, the default); a directory dump compresses its own files",
        }]),
    Method::new("basebackup", "pg_basebackup")
        .physical()
        .lacks(&["compression", "jobs"], "they are pg_dump's")
        .values(&[("format", basebackup::FORMATS)]),
];

fn backup(step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Backup> {
    let url = PgUrl::parse(required(step.url.as_deref(), "url")?)?;
    // Checked before anything is created; the dump goes where the path really leads.
    let (given, output) = &ctx.backup_output(step)?;
    if method(step, "postgres", BACKUP_METHODS)?.name == "basebackup" {
        return base_backup(step, &url, ctx);
    }
    let format = Format::parse(step.format.as_deref())?;
    let zstd = match step.compression.as_deref() {
        None | Some("none") => false,
        Some("zstd") => true,
        Some(other) => bail!(
            "backup/postgres: `compression` must be \"zstd\" or \"none\", not \"{other}\" (without it pg_dump compresses with zlib)"
        ),
    };
    let bins = Bins::new(step.pg_bin_dir.as_deref())?;
    let scratch = scratch_dir(ctx)?;
    let started = std::time::Instant::now();
    let req = DumpRequest {
        url: &url,
        format,
        jobs: step.jobs,
        output,
        bins: &bins,
        scratch: &scratch,
        cancel: ctx.cancel,
        zstd,
        digests: digest::asked(step)?,
    };
    let d = dump::dump(&req, &|done, total| ctx.progress(done, total))?;
    let secs = started.elapsed().as_secs_f64();
    for note in &d.notes {
        ctx.log(note);
    }
    ctx.log(&format!(
        "pg_dump of `{}` ({}) to {}: {} bytes in {secs:.1}s, {} tables counted {} (snapshot at {})",
        d.database,
        url.public,
        given.display(),
        d.bytes,
        d.schema.table_counts.len(),
        if d.same_snapshot {
            "in the dump's own snapshot"
        } else {
            "in a separate snapshot"
        },
        d.snapshot_at
    ));
    Ok(Backup {
        source: Some(url.public.clone()),
        snapshot_at: Some(d.snapshot_at),
        schema: Some(d.schema),
        outputs: outputs! {
            "format" => if format == Format::Custom { "custom" } else { "directory" },
            "database" => d.database,
            "counts_in_dump_snapshot" => d.same_snapshot,
        },
        ..Backup::made(given, d.bytes, d.bytes, secs)
    })
}

/// `pg_basebackup` of the whole cluster, counted in a snapshot at its start.
fn base_backup(step: &Step, url: &PgUrl, ctx: &Ctx<'_>) -> anyhow::Result<Backup> {
    let (given, output) = &ctx.backup_output(step)?;
    let bins = Bins::new(step.pg_bin_dir.as_deref())?;
    let scratch = scratch_dir(ctx)?;
    let started = std::time::Instant::now();
    let req = BaseBackupRequest {
        url,
        format: step.format.as_deref(),
        output,
        bins: &bins,
        scratch: &scratch,
        cancel: ctx.cancel,
    };
    let b = basebackup::base_backup(&req, &|done, total| ctx.progress(done, total))?;
    let secs = started.elapsed().as_secs_f64();
    ctx.log(&format!(
        "pg_basebackup ({}, with its manifest) of {} to {}: {} bytes in {secs:.1}s; {} tables of `{}` counted in a snapshot at the backup's start ({})",
        b.format,
        url.public,
        given.display(),
        b.bytes,
        b.schema.table_counts.len(),
        b.database,
        b.snapshot_at
    ));
    Ok(Backup {
        source: Some(url.public.clone()),
        snapshot_at: Some(b.snapshot_at),
        schema: Some(b.schema),
        outputs: outputs! {
            "format" => b.format,
            "database" => b.database,
            "manifest" => b.manifest,
            "counts_in_dump_snapshot" => false,
        },
        ..Backup::made(given, b.bytes, b.bytes, secs)
    })
}

fn restore(step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Restored> {
    if let Some(src) = &step.pgbackrest {
        ensure!(
            step.from.is_none() && step.wal_archive.is_none(),
            "a pgBackRest stanza is the whole source: no `from` or `wal_archive` with `pgbackrest`"
        );
        ensure!(
            step.isolation.as_deref() == Some("ephemeral") && step.target_url.is_none(),
            "a pgBackRest stanza is restored with `isolation = \"ephemeral\"` (a throwaway cluster of its own)"
        );
        return restore_physical(step, Path::new(src.config_path()), ctx);
    }
    let from = Path::new(required(step.from.as_deref(), "from")?);
    ensure!(from.exists(), "backup {} not found", from.display());
    let pitr = [
        &step.wal_archive,
        &step.target_time,
        &step.target_lsn,
        &step.target_name,
        &step.target,
    ];
    if physical::is_physical(from) || pitr.iter().any(|f| f.is_some()) {
        ensure!(
            physical::is_physical(from),
            "{} is not a physical backup (a pg_basebackup directory, plain or tar): `wal_archive` and the recovery targets apply to those only",
            from.display()
        );
        ensure!(
            step.isolation.as_deref() == Some("ephemeral") && step.target_url.is_none(),
            "a physical backup is restored with `isolation = \"ephemeral\"` (a throwaway cluster of its own), not into `target_url`"
        );
        return restore_physical(step, from, ctx);
    }
    match (step.isolation.as_deref(), step.target_url.as_deref()) {
        (Some("ephemeral"), None) => ephemeral(step, from, ctx),
        (None, Some(url)) => into_scratch(step, from, &PgUrl::parse(url)?, ctx),
        (Some(_), Some(_)) => {
            bail!("set either `isolation = \"ephemeral\"` or `target_url`, not both")
        }
        (Some(other), None) => bail!("`isolation` must be \"ephemeral\", not \"{other}\""),
        (None, None) => bail!("needs `isolation = \"ephemeral\"` or a `target_url`"),
    }
}

/// Restores into a throwaway cluster registered for teardown before it exists.
fn ephemeral(step: &Step, from: &Path, ctx: &Ctx<'_>) -> anyhow::Result<Restored> {
    let user = cluster::resolve_user(os_user(step))?;
    let bins = Bins::new(step.pg_bin_dir.as_deref())?;
    let server_bin = bins.server_dir()?;
    let pg_restore_bin = Some(server_bin.join("pg_restore"))
        .filter(|p| p.is_file())
        .map_or_else(|| bins.client("pg_restore"), Ok)?;
    // Reading the archive's table of contents first: a damaged dump fails here, clearly,
    // before a cluster is made.
    let source_db = dump::dumped_database(&pg_restore_bin, from)?;
    let started = std::time::Instant::now();
    let (base, postmaster) = throwaway(user, ctx)?;
    let spec = ClusterSpec {
        server_bin: &server_bin,
        user,
        listen: step.listen.as_deref(),
        cancel: ctx.cancel,
    };
    let cl = cluster::start(&spec, &base, &postmaster)?;
    let up_s = started.elapsed().as_secs_f64();
    ctx.log(&format!(
        "throwaway cluster in {} up on port {} in {up_s:.2}s (socket in {})",
        base.display(),
        cl.port,
        cl.socket_dir.display()
    ));
    let db = source_db.unwrap_or_else(|| "restored".into());
    if db != cluster::SUPERUSER {
        cl.connect("postgres")?
            .batch_execute(&format!(
                "CREATE DATABASE {} TEMPLATE template0",
                ident(&db)
            ))
            .with_context(|| format!("cannot create database `{db}` in the throwaway cluster"))?;
    }
    let target = PgUrl::parse(&cl.url(&db))?;
    let mut restored = restore_into(step, from, &pg_restore_bin, &target, ctx)?;
    cluster_outputs(&cl, &db, &mut restored);
    restored.metrics.insert("cluster_up_s".into(), up_s.into());
    Ok(restored)
}

/// The throwaway cluster's directory, its teardown registered the moment it exists.
fn throwaway(
    user: Option<crate::proc::OsUser>,
    ctx: &Ctx<'_>,
) -> anyhow::Result<(PathBuf, Postmaster)> {
    // Immediate shutdown (SIGQUIT: no checkpoint, the data is thrown away).
    let prefix = crate::engines::throwaway::POSTGRES_PREFIX;
    crate::engines::throwaway::register(ctx, "cluster", prefix, user, libc::SIGQUIT)
}

/// Where later steps reach the throwaway cluster.
fn cluster_outputs(cl: &Cluster, db: &str, restored: &mut Restored) {
    let o = &mut restored.outputs;
    o.insert("cluster_dir".into(), cl.base.display().to_string().into());
    o.insert(
        "socket_dir".into(),
        cl.socket_dir.display().to_string().into(),
    );
    o.insert("port".into(), cl.port.into());
    if let Some(tcp) = cl.tcp_url(db) {
        o.insert("target_tcp".into(), tcp.into());
        o.insert(
            "passfile".into(),
            cl.passfile().display().to_string().into(),
        );
    }
}

/// A physical backup into a throwaway cluster, recovered to the step's target.
fn restore_physical(step: &Step, from: &Path, ctx: &Ctx<'_>) -> anyhow::Result<Restored> {
    let archive = step
        .wal_archive
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(Path::new);
    if let Some(a) = archive {
        ensure!(a.is_dir(), "wal_archive {} is not a directory", a.display());
    }
    let target = Target::of(step, archive.is_some() || step.pgbackrest.is_some())?;
    let user = cluster::resolve_user(os_user(step))?;
    let bins = Bins::new(step.pg_bin_dir.as_deref())?;
    let server_bin = bins.server_dir()?;
    let p = Physical {
        from,
        pgbackrest: step.pgbackrest.as_ref(),
        archive,
        target: &target,
        server_bin: &server_bin,
        user,
        cancel: ctx.cancel,
        scratch: &scratch_dir(ctx)?,
    };
    let started = std::time::Instant::now();
    let (base, postmaster, verified) = physical::copy_verified(&p, ctx)?;
    let copied_s = started.elapsed().as_secs_f64();
    let spec = ClusterSpec {
        server_bin: &server_bin,
        user,
        listen: step.listen.as_deref(),
        cancel: ctx.cancel,
    };
    let (cl, rec) = physical::recover(&p, &spec, &base, &postmaster)?;
    let recovered_s = started.elapsed().as_secs_f64();
    ctx.log(&format!(
        "{} recovered to {} in {:.1}s ({copied_s:.1}s to copy): last replayed commit at {}, WAL location {}; promoted",
        from.display(),
        target.describe(),
        recovered_s,
        rec.recovered_to.as_deref().unwrap_or("(none replayed)"),
        rec.lsn
    ));
    if let Some(host) = step.listen.as_deref() {
        cluster::set_tcp_password(&cl, host)?;
    }
    let db = match step.database.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => d.to_string(),
        None => only_database(&cl)?,
    };
    let url = PgUrl::parse(&cl.url(&db))?;
    let (amcheck, schema) = inspect(&url, ctx)?;
    let bytes = match step.pgbackrest {
        Some(_) => dump::size_of(&cl.base.join("data")),
        None => dump::size_of(from),
    };
    let mut restored = Restored {
        target: url.given.clone(),
        from: from.to_path_buf(),
        bytes,
        schema: Some(schema),
        outputs: outputs! {
            "database" => &db,
            "amcheck" => amcheck,
            "recovered_to" => rec.recovered_to,
            "recovery_target" => target.describe(),
            "recovered_lsn" => rec.lsn,
            "verified" => verified,
        },
        metrics: outputs! {
            "restore_s" => recovered_s,
            "copy_s" => copied_s,
            "bytes_per_s" => bytes as f64 / recovered_s.max(1e-9),
        },
    };
    cluster_outputs(&cl, &db, &mut restored);
    Ok(restored)
}

/// The restored cluster's one database besides `postgres` and the templates, else
/// `postgres`.
fn only_database(cl: &Cluster) -> anyhow::Result<String> {
    let rows = cl.connect("postgres")?.query(
        "SELECT datname::text FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'",
        &[],
    )?;
    Ok(match rows.as_slice() {
        [one] => one.get(0),
        _ => "postgres".into(),
    })
}

/// amcheck installed for the integrity check where it can be, and the restored
/// database's counts.
fn inspect(target: &PgUrl, ctx: &Ctx<'_>) -> anyhow::Result<(bool, SchemaFacts)> {
    let amcheck = target.connect().and_then(|mut c| {
        c.batch_execute("CREATE EXTENSION IF NOT EXISTS amcheck")
            .map_err(Into::into)
    });
    ctx.log(&match &amcheck {
        Ok(()) => "amcheck installed for the integrity check".to_string(),
        Err(e) => format!("amcheck could not be installed ({e:#}); an integrity check will say so"),
    });
    Ok((amcheck.is_ok(), pg_restore::restored_schema(target)?))
}

/// Restores into a scratch database on an existing server, registered to be dropped.
fn into_scratch(
    step: &Step,
    from: &Path,
    target: &PgUrl,
    ctx: &Ctx<'_>,
) -> anyhow::Result<Restored> {
    ensure!(
        os_user(step).is_none() && step.listen.is_none(),
        "`os_user` and `listen` apply to `isolation = \"ephemeral\"` only"
    );
    let bins = Bins::new(step.pg_bin_dir.as_deref())?;
    let pg_restore_bin = bins.client("pg_restore")?;
    let source_db = dump::dumped_database(&pg_restore_bin, from)?;
    let db = scratch::check_target(target, source_db.as_deref())?;
    let dropped = scratch::create(target, &db, ctx.step_id)?;
    {
        let (t, d) = (target.clone(), db.clone());
        ctx.resources
            .register("database", &target.public, ctx.step_id, move || {
                scratch::drop_database(&t, &d)
            });
    }
    if let Some(warning) = dropped {
        ctx.warn(&warning);
    }
    ctx.log(&format!(
        "created scratch database `{db}` ({})",
        target.public
    ));
    restore_into(step, from, &pg_restore_bin, target, ctx)
}

/// pg_restore, amcheck for the integrity check where it can be installed, and the
/// restored database's counts.
fn restore_into(
    step: &Step,
    from: &Path,
    pg_restore_bin: &Path,
    target: &PgUrl,
    ctx: &Ctx<'_>,
) -> anyhow::Result<Restored> {
    let scratch = scratch_dir(ctx)?;
    let started = std::time::Instant::now();
    let req = RestoreRequest {
        pg_restore: pg_restore_bin,
        archive: from,
        target,
        jobs: step.jobs,
        scratch: &scratch,
        cancel: ctx.cancel,
    };
    pg_restore::pg_restore(&req, &|done, total| ctx.progress(done, total))?;
    let secs = started.elapsed().as_secs_f64();
    let (amcheck, schema) = inspect(target, ctx)?;
    let bytes = dump::size_of(from);
    ctx.log(&format!(
        "pg_restore of {} into {}: {bytes} bytes in {secs:.1}s, {} tables",
        from.display(),
        target.public,
        schema.table_counts.len()
    ));
    Ok(Restored {
        // As given (a scratch database's url may carry the password later steps need;
        // the record redacts it as a secret).
        target: target.given.clone(),
        from: from.to_path_buf(),
        bytes,
        schema: Some(schema),
        outputs: outputs! {
            "database" => target.dbname(),
            "amcheck" => amcheck,
        },
        metrics: outputs! {
            "restore_s" => secs,
            "bytes_per_s" => bytes as f64 / secs.max(1e-9),
        },
    })
}

/// What validation, the path guard and `init` know of it.
static SPEC: EngineSpec = EngineSpec {
    name: "postgres",
    example: include_str!("../../../templates/init/postgres.toml"),
    run: "PGPASSWORD=... restore-drill run {playbook} --var pg_url=postgres://USER@HOST:5432/DATABASE",
    kinds: &[
        KindSpec::backup(&[
            "url",
            "output",
            "format",
            "jobs",
            "compression",
            "pg_bin_dir",
            "method",
            "digests",
            "sample",
        ])
        .needs(&[&["url"], &["output"]])
        .outputs(&["format", "database", "counts_in_dump_snapshot", "manifest"])
        .methods(BACKUP_METHODS)
        .schema(),
        KindSpec::restore(&[
            "from",
            "isolation",
            "target_url",
            "pg_bin_dir",
            "os_user",
            "listen",
            "jobs",
            "wal_archive",
            "target_time",
            "target_lsn",
            "target_name",
            "target",
            "database",
            "pgbackrest",
        ])
        .needs(&[&["from", "pgbackrest"], &["isolation", "target_url"]])
        .reads(&["from", "wal_archive", "pgbackrest.config"])
        .values(&[
            ("isolation", &["ephemeral"]),
            ("target", &["immediate", "latest"]),
        ])
        .outputs(&[
            "database",
            "amcheck",
            "recovered_to",
            "recovery_target",
            "recovered_lsn",
            "verified",
            "cluster_dir",
            "socket_dir",
            "port",
            "target_tcp",
            "passfile",
        ])
        .schema(),
        KindSpec::sql(),
    ],
    run_as_root: " --var os_user=postgres",
};
