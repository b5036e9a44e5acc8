//! Physical backups with `pg_basebackup` (`method = "basebackup"`): the whole cluster,
//! plain or tar, with its backup manifest and the WAL it needs to be consistent
//! (`--wal-method=stream`). The row counts of the url's database are read in a
//! REPEATABLE READ snapshot taken just before pg_basebackup starts: a physical backup
//! holds every commit up to its *end*, so rows written while it runs are restored but
//! not counted (`snapshot_at` is the backup's start, never flattering the RPO).

use std::path::Path;

use anyhow::{Context as _, bail, ensure};

use super::bin::Bins;
use super::catalog;
use super::dump::{fresh_output, size_of, snapshot_facts};
use super::url::{PgUrl, with_password};
use crate::engines::SchemaFacts;
use crate::playbook::one_of;
use crate::proc::{Cancel, Tool};

pub struct BaseBackupRequest<'a> {
    pub url: &'a PgUrl,
    /// `plain` (default) or `tar`.
    pub format: Option<&'a str>,
    pub output: &'a Path,
    pub bins: &'a Bins,
    pub scratch: &'a Path,
    pub cancel: &'a Cancel,
}

pub struct BaseBackup {
    pub database: String,
    pub format: &'static str,
    pub bytes: u64,
    pub snapshot_at: String,
    pub schema: SchemaFacts,
    /// The backup manifest pg_basebackup wrote.
    pub manifest: String,
}

/// The values of `format` for pg_basebackup, as `format_flag` reads them.
pub const FORMATS: &[&str] = &["plain", "tar"];

/// `plain` or `tar`, as pg_basebackup's `--format` spells it.
fn format_flag(format: Option<&str>) -> anyhow::Result<(&'static str, &'static str)> {
    match format.unwrap_or("plain") {
        "plain" => Ok(("plain", "--format=plain")),
        "tar" => Ok(("tar", "--format=tar")),
        other => bail!(
            "backup/postgres: with `method = \"basebackup\"`, `format` must be {}, not \"{other}\"",
            one_of(FORMATS)
        ),
    }
}

pub fn base_backup(
    req: &BaseBackupRequest<'_>,
    progress: &dyn Fn(u64, u64),
) -> anyhow::Result<BaseBackup> {
    let (format, flag) = format_flag(req.format)?;
    fresh_output(req.output)?;
    let mut tx = req.url.connect()?;
    tx.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
    // The first query takes the snapshot; now() is the transaction's start, a little
    // before it and before the backup's.
    let (snapshot_at, database, total) = snapshot_facts(
        &mut tx,
        "(SELECT sum(pg_database_size(oid))::bigint FROM pg_database)",
    )?;
    let args = [
        format!("--dbname={}", req.url.public),
        format!("--pgdata={}", req.output.display()),
        flag.to_string(),
        "--wal-method=stream".into(),
        "--checkpoint=fast".into(),
        "--manifest-checksums=CRC32C".into(),
        "--no-password".into(),
    ];
    let pg_basebackup = req.bins.client("pg_basebackup")?;
    let (expr, _passfile) = with_password(duct::cmd(&pg_basebackup, &args), req.url, req.scratch)?;
    let result = (|| {
        let running = Tool::new(expr, "pg_basebackup")
            .logged(&req.scratch.join("pg_basebackup.stderr"))
            .start(req.cancel)?;
        let schema = match catalog::schema_facts(&mut tx) {
            Ok(s) => s,
            Err(e) => {
                drop(running);
                return Err(e).context("counting rows at the backup's start");
            }
        };
        let total = total.max(0) as u64;
        running.wait_ticking(&mut || progress(size_of(req.output).min(total), total))?;
        tx.batch_execute("COMMIT")?;
        Ok(schema)
    })();
    let schema = match result {
        Ok(s) => s,
        Err(e) => {
            crate::guard::remove_failed_output(req.output);
            return Err(e);
        }
    };
    let manifest = req.output.join("backup_manifest");
    ensure!(
        manifest.is_file(),
        "pg_basebackup wrote no backup manifest in {}",
        req.output.display()
    );
    let bytes = size_of(req.output);
    progress(bytes, bytes);
    Ok(BaseBackup {
        database,
        format,
        bytes,
        snapshot_at,
        schema,
        manifest: manifest.display().to_string(),
    })
}
