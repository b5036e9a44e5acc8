//! Backup with `pg_dump`, the row counts taken in the very snapshot the dump reads:
//! a REPEATABLE READ transaction exports its snapshot (`pg_export_snapshot()`), pg_dump
//! imports it (`--snapshot`), and the counts run in that transaction while pg_dump
//! works. The transaction stays open until pg_dump is done, as the export requires.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};

use super::bin::Bins;
use super::catalog;
use super::conn::db_message;
use super::content;
use super::copy::Psql;
use super::url::{PgUrl, with_password};
use super::zstd;
use crate::engines::SchemaFacts;
use crate::playbook::one_of;
use crate::proc::{Cancel, Tool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Custom,
    Directory,
}

impl Format {
    /// The values of `format` for pg_dump, as `parse` reads them.
    pub const NAMES: &[&str] = &["custom", "directory"];

    pub fn parse(format: Option<&str>) -> anyhow::Result<Self> {
        match format.unwrap_or("custom") {
            "custom" => Ok(Self::Custom),
            "directory" => Ok(Self::Directory),
            other => bail!("`format` must be {}, not \"{other}\"", one_of(Self::NAMES)),
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Self::Custom => "--format=custom",
            Self::Directory => "--format=directory",
        }
    }
}

pub struct DumpRequest<'a> {
    pub url: &'a PgUrl,
    pub format: Format,
    pub jobs: Option<u32>,
    pub output: &'a Path,
    pub bins: &'a Bins,
    /// A private directory for the password file and pg_dump's messages.
    pub scratch: &'a Path,
    pub cancel: &'a Arc<Cancel>,
    /// `compression = "zstd"`: an uncompressed custom archive, zstd-compressed here.
    pub zstd: bool,
    /// `digests = true` (with its sample): table digests, in the dump's snapshot.
    pub digests: Option<Option<f64>>,
}

pub struct Dumped {
    pub database: String,
    pub bytes: u64,
    /// When the snapshot was taken (UTC, RFC 3339): the dump holds every commit before.
    pub snapshot_at: String,
    /// False when the server could not export a snapshot: the counts then come from a
    /// snapshot taken just before pg_dump's own.
    pub same_snapshot: bool,
    /// Row counts, indexes and foreign keys of the source, in the dump's snapshot.
    pub schema: SchemaFacts,
    pub notes: Vec<String>,
}

/// In the open transaction: its start (`now()`, UTC, RFC 3339), the database's name and
/// the size in bytes that `size_sql` (an SQL expression) gives, for the progress bar.
pub(super) fn snapshot_facts(
    tx: &mut postgres::Client,
    size_sql: &str,
) -> anyhow::Result<(String, String, i64)> {
    let row = tx.query_one(
        &format!(
            "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), current_database()::text, {size_sql}"
        ),
        &[],
    )?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

pub fn dump(req: &DumpRequest<'_>, progress: &dyn Fn(u64, u64)) -> anyhow::Result<Dumped> {
    let jobs = req.jobs.unwrap_or(1).max(1);
    ensure!(
        jobs == 1 || req.format == Format::Directory,
        "`jobs = {jobs}` needs `format = \"directory\"`: pg_dump writes a custom-format archive with one job"
    );
    fresh_output(req.output)?;
    let mut client = req.url.connect()?;
    let token = client.cancel_token();
    let interrupt = req.cancel.on_cancel(move || {
        let _ = token.cancel_query(postgres::NoTls);
    });
    let result = dump_in_snapshot(&mut client, req, jobs, progress);
    drop(interrupt);
    if result.is_err() {
        crate::guard::remove_failed_output(req.output);
    }
    result
}

fn dump_in_snapshot(
    client: &mut postgres::Client,
    req: &DumpRequest<'_>,
    jobs: u32,
    progress: &dyn Fn(u64, u64),
) -> anyhow::Result<Dumped> {
    let mut notes = Vec::new();
    let snapshot = snapshot_transaction(client, &mut notes)?;
    let tx = client;
    // now() is the transaction's start, a little before its snapshot: the RPO is
    // never flattered.
    let (snapshot_at, database, db_size) =
        snapshot_facts(tx, "pg_database_size(current_database())")?;

    let mut args: Vec<String> = vec![req.format.flag().into(), "--no-password".into()];
    if req.zstd {
        // Uncompressed to stdout: the drill compresses (see `zstd`).
        args.push("--compress=0".into());
    } else {
        args.push(format!("--file={}", req.output.display()));
    }
    if jobs > 1 {
        args.push(format!("--jobs={jobs}"));
    }
    if let Some(s) = &snapshot {
        args.push(format!("--snapshot={s}"));
    }
    args.push(format!("--dbname={}", req.url.public));
    let pg_dump = req.bins.client("pg_dump")?;
    let (expr, _passfile) = with_password(duct::cmd(&pg_dump, &args), req.url, req.scratch)?;
    let total = db_size.max(0) as u64;
    // Counting runs while pg_dump copies: both read the same snapshot.
    let gather_source =
        || gather(tx, req, snapshot.as_deref()).context("counting rows in the dump's snapshot");
    let run = Watched {
        req,
        progress,
        total,
    };
    let schema = if req.zstd {
        dump_zstd(expr, &run, gather_source)?
    } else {
        dump_to_file(expr, &run, gather_source)?
    };
    tx.batch_execute("COMMIT")?;
    let bytes = size_of(req.output);
    progress(bytes, bytes);
    Ok(Dumped {
        database,
        bytes,
        snapshot_at,
        same_snapshot: snapshot.is_some(),
        schema,
        notes,
    })
}

/// Row counts, indexes and foreign keys of the source, read in the dump's snapshot.
type Gathered = SchemaFacts;

/// With `digests`, also the table digests: on this transaction and on more connections
/// that import its snapshot, in parallel (this one alone when none was exported).
fn gather(
    tx: &mut postgres::Client,
    req: &DumpRequest<'_>,
    snapshot: Option<&str>,
) -> anyhow::Result<Gathered> {
    let mut facts = catalog::schema_facts(tx)?;
    if let Some(sample) = req.digests {
        // psql copies out in the exported snapshot; without one, only this transaction
        // sees the dump's snapshot, and copies out on its own connection.
        let psql = snapshot.and_then(|s| {
            let bin = req.bins.client_unwrapped("psql").ok()?;
            Some(Psql::new(bin, req.url, req.scratch.to_path_buf(), req.cancel).in_snapshot(s))
        });
        let more = match snapshot {
            Some(s) => content::workers(req.url, Some(s), psql.as_ref(), content::extra_workers())?,
            None => Vec::new(),
        };
        facts.table_digests = Some(content::digest_all(tx, psql, more, sample)?);
    }
    Ok(facts)
}

/// The request pg_dump serves and the progress it reports toward `total` bytes.
struct Watched<'a> {
    req: &'a DumpRequest<'a>,
    progress: &'a dyn Fn(u64, u64),
    total: u64,
}

impl Watched<'_> {
    fn at(&self, bytes: u64) {
        (self.progress)(bytes, self.total)
    }
}

/// pg_dump writes the archive itself (`--file`).
fn dump_to_file(
    expr: duct::Expression,
    run: &Watched<'_>,
    gather: impl FnOnce() -> anyhow::Result<Gathered>,
) -> anyhow::Result<Gathered> {
    let running = Tool::new(expr, "pg_dump")
        .logged(&run.req.scratch.join("pg_dump.stderr"))
        .start(run.req.cancel)?;
    let gathered = match gather() {
        Ok(g) => g,
        Err(e) => {
            running.kill();
            return Err(e);
        }
    };
    running.wait_ticking(&mut || run.at(size_of(run.req.output)))?;
    Ok(gathered)
}

/// pg_dump's uncompressed archive streams through a pipe into the zstd encoder, on a
/// thread of its own, while this one counts.
fn dump_zstd(
    expr: duct::Expression,
    run: &Watched<'_>,
    gather: impl FnOnce() -> anyhow::Result<Gathered>,
) -> anyhow::Result<Gathered> {
    let stderr = run.req.scratch.join("pg_dump.stderr");
    let (reader, writer) = os_pipe::pipe()?;
    let running = Tool::new(expr.stdin_null().stdout_file(writer), "pg_dump")
        .stderr_to(&stderr)
        .start(run.req.cancel)?;
    let read = AtomicU64::new(0);
    let (gathered, compressed) = std::thread::scope(|s| {
        let compressor = s.spawn(|| {
            zstd::compress(reader, run.req.output, &|n| {
                read.store(n, Ordering::Relaxed)
            })
        });
        let gathered = gather();
        if gathered.is_err() {
            running.kill_group();
        }
        while !compressor.is_finished() {
            run.at(read.load(Ordering::Relaxed));
            std::thread::sleep(Duration::from_millis(200));
        }
        (
            gathered,
            compressor.join().expect("the zstd compressor panicked"),
        )
    });
    let status = running.finish();
    let gathered = gathered?;
    let status = status?;
    if run.req.cancel.is_cancelled() {
        bail!("pg_dump was stopped (cancelled)");
    }
    if !status.success() {
        bail!(
            "pg_dump failed ({status}): {}",
            crate::log::tail_file(&stderr, 15, 4096)
        );
    }
    compressed?;
    Ok(gathered)
}

const BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// Opens a REPEATABLE READ transaction on `client` and exports its snapshot for pg_dump.
/// Where the server cannot export one (a standby before PostgreSQL 10, a pooler in
/// between), the transaction keeps its own snapshot and a note says so.
fn snapshot_transaction(
    client: &mut postgres::Client,
    notes: &mut Vec<String>,
) -> anyhow::Result<Option<String>> {
    client.batch_execute(BEGIN)?;
    // The export must be the transaction's first statement, outside any savepoint; when
    // it fails the transaction is aborted and a fresh one begins.
    match client.query_one("SELECT pg_export_snapshot()", &[]) {
        Ok(row) => Ok(Some(row.get(0))),
        Err(e) => {
            client.batch_execute("ROLLBACK")?;
            client.batch_execute(BEGIN)?;
            notes.push(format!(
                "the server could not export a snapshot ({}); table_counts come from this drill's own snapshot, taken just before pg_dump's",
                db_message(&e)
            ));
            Ok(None)
        }
    }
}

pub use crate::engines::throwaway::size_of;

/// Fails when `output` exists; creates its parent.
pub fn fresh_output(output: &Path) -> anyhow::Result<()> {
    ensure!(
        !output.exists(),
        "backup output {} already exists",
        output.display()
    );
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent)?;
    }
    Ok(())
}

/// The database a dump was taken from, read from its table of contents
/// (`pg_restore --list`); a damaged archive fails here with pg_restore's message.
pub fn dumped_database(pg_restore: &Path, archive: &Path) -> anyhow::Result<Option<String>> {
    let out = if zstd::is_zstd(archive) {
        let (pipe_r, mut pipe_w) = os_pipe::pipe()?;
        let list = duct::cmd(pg_restore, ["--list"]).stdin_file(pipe_r);
        std::thread::scope(|s| {
            let feeder = s.spawn(move || zstd::decompress(archive, &mut pipe_w));
            let out = capture(list);
            feeder.join().expect("the zstd decompressor panicked")?;
            out
        })?
    } else {
        capture(duct::cmd(
            pg_restore,
            [std::ffi::OsStr::new("--list"), archive.as_os_str()],
        ))?
    };
    if !out.status.success() {
        bail!(
            "{} is not a readable pg_dump archive: {}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        l.trim_start_matches(';')
            .trim()
            .strip_prefix("dbname:")
            .map(|d| d.trim().to_string())
    }))
}

fn capture(expr: duct::Expression) -> anyhow::Result<std::process::Output> {
    expr.stderr_capture()
        .stdout_capture()
        .unchecked()
        .run()
        .context("cannot run pg_restore --list")
}
