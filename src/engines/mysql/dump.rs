//! backup/mysql with `mysqldump` (`mariadb-dump`), restore/mysql with the `mysql`
//! (`mariadb`) client. Both stream: the dump flows from the client's stdout through
//! the compressor into the file, and back from the file through the decompressor
//! into the client's stdin. The password goes through an `OptionFile`, never argv.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use anyhow::{Context as _, bail, ensure};

use mysql::prelude::Queryable as _;

use super::{MysqlConn, OptionFile, Target, ident};
use crate::engines::compress::{Compression, Sink, decompressor};
use crate::engines::{Ctx, SchemaFacts};
use crate::proc::{Cancel, Tool};

/// The line mysqldump ends a complete dump with; a dump without it was cut short.
const COMPLETED: &[u8] = b"-- Dump completed";

#[derive(Debug, Default)]
pub struct Dumped {
    pub bytes: u64,
    pub dump_bytes: u64,
    pub database: String,
    /// Counted in a consistent snapshot just before the dump.
    pub schema: SchemaFacts,
    pub taken_at: Option<jiff::Timestamp>,
}

pub struct DumpOptions<'a> {
    pub output: &'a Path,
    pub workdir: &'a Path,
    pub single_transaction: bool,
    pub skip_lock_tables: bool,
    pub compression: Compression,
    /// `digests = true` (with its sample): table digests, in the counts' snapshot.
    pub digests: Option<Option<f64>>,
}

/// Dumps the url's database. Row counts are exact (`COUNT(*)`), taken in a consistent
/// snapshot just before the dump starts: on a source that is being written to, they
/// can differ from the dump's own snapshot (use `tolerance`).
pub fn backup(
    target: &Target,
    opts: &DumpOptions<'_>,
    cancel: &Cancel,
    log: &dyn Fn(&str),
) -> anyhow::Result<Dumped> {
    let database = super::fresh_backup(target, opts.output)?;
    let (schema, taken_at) = super::snapshot_facts(&mut MysqlConn::connect(target)?, opts.digests)?;

    let option_file = OptionFile::create(opts.workdir, "backup", target)?;
    let program = super::program(&["mariadb-dump", "mysqldump"])?;
    let mut args = vec![
        option_file.arg(),
        "--routines".into(),
        "--triggers".into(),
        "--hex-blob".into(),
        "--no-tablespaces".into(),
        "--default-character-set=utf8mb4".into(),
    ];
    if opts.single_transaction {
        args.push("--single-transaction".into());
    }
    if opts.skip_lock_tables {
        args.push("--skip-lock-tables".into());
    }
    // No --databases: the dump has no CREATE DATABASE / USE, so it restores into any name.
    args.push("--".into());
    args.push(database.clone());
    log(&format!("{program} {}", args[1..].join(" ")));

    let partial = with_suffix(opts.output, ".partial");
    let result = run_dump(&option_file, &program, &args, &partial, opts, cancel);
    drop(option_file);
    let dump_bytes = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, opts.output)?;
    Ok(Dumped {
        bytes: std::fs::metadata(opts.output)?.len(),
        dump_bytes,
        database,
        schema,
        taken_at: Some(taken_at),
    })
}

/// Runs the dump program (its password in `option_file`) with its stdout through the
/// compressor into `partial`. Returns the uncompressed size.
fn run_dump(
    option_file: &OptionFile,
    program: &str,
    args: &[String],
    partial: &Path,
    opts: &DumpOptions<'_>,
    cancel: &Cancel,
) -> anyhow::Result<u64> {
    let stderr = with_suffix(partial, ".stderr");
    let (reader, writer) = os_pipe::pipe()?;
    let expr = option_file.command(duct::cmd(program, args).stdin_null().stdout_file(writer));
    let running = Tool::new(expr, program).stderr_to(&stderr).start(cancel)?;
    let copied = (|| -> anyhow::Result<(u64, Vec<u8>)> {
        let file = crate::guard::create_file(partial)?;
        let mut sink = Sink::new(BufWriter::with_capacity(1 << 20, file), opts.compression)?;
        let copied = copy_keeping_tail(reader, &mut sink, cancel)?;
        let file = sink.finish()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(copied)
    })();
    let status = running.finish();
    let errors = crate::log::tail_file(&stderr, 20, 4096);
    let _ = std::fs::remove_file(&stderr);
    cancel.check()?;
    let status = status?;
    ensure!(status.success(), "{program} failed ({status}): {errors}");
    let (bytes, tail) = copied?;
    ensure!(
        contains(&tail, COMPLETED),
        "{program} exited without finishing the dump (no `-- Dump completed` line): {errors}"
    );
    Ok(bytes)
}

/// Copies everything, and keeps the last bytes to look for the completion line.
fn copy_keeping_tail(
    mut from: impl Read,
    to: &mut impl Write,
    cancel: &Cancel,
) -> anyhow::Result<(u64, Vec<u8>)> {
    let mut buf = vec![0u8; 256 << 10];
    let mut tail: Vec<u8> = Vec::new();
    let mut total = 0u64;
    loop {
        cancel.check()?;
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok((total, tail));
        }
        to.write_all(&buf[..n])?;
        total += n as u64;
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 512 {
            tail.drain(..tail.len() - 512);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The source database a dump names in its header (`-- Host: ...  Database: shop`).
pub fn dump_source_database(path: &Path) -> anyhow::Result<Option<String>> {
    let mut head = Vec::new();
    decompressor(path, File::open(path)?)?
        .take(4096)
        .read_to_end(&mut head)?;
    let text = String::from_utf8_lossy(&head);
    Ok(text
        .lines()
        .filter(|l| l.starts_with("-- Host:"))
        .find_map(|l| l.split("Database: ").nth(1))
        .map(|d| d.trim().to_string()))
}

/// Creates the database `target` names (see `create_scratch`), then calls `created` at
/// once (to register its removal, with the warning to give if a killed drill's database
/// of that name was dropped first), then loads the dump into it through the client.
pub fn restore(
    from: &Path,
    target: &Target,
    ctx: &Ctx<'_>,
    created: &dyn Fn(Option<String>),
    progress: &dyn Fn(u64, u64),
) -> anyhow::Result<(u64, SchemaFacts)> {
    let database = target
        .database()
        .context("target_url names no database to restore into")?
        .to_string();
    let total = std::fs::metadata(from)
        .with_context(|| format!("backup {} not found", from.display()))?
        .len();
    ensure!(total > 0, "backup {} is empty (0 bytes)", from.display());
    if let Some(source) = dump_source_database(from)? {
        ensure!(
            source != database,
            "refusing to restore into `{database}`: it is the database this backup was taken from"
        );
    }
    let server = target.with_database(None);
    let mut conn = server.connect()?;
    let dropped = create_scratch(&mut conn, &database, &target.display(), ctx.step_id)?;
    created(dropped);
    load(from, target, ctx.workdir, ctx.cancel, total, progress)?;
    let mut conn = MysqlConn::connect(target)?;
    let schema = SchemaFacts::read(&mut conn)?;
    ensure!(
        !schema.table_counts.is_empty(),
        "the restored database has no tables: the backup {} holds none",
        from.display()
    );
    Ok((total, schema))
}

/// Creates the scratch database `name`, marked as this run's (`proc::Owner`, in the
/// schema's comment, where the server has them: MariaDB 10.5 on). One that exists is
/// refused, creating nothing, unless its mark proves a drill that is over made it: that
/// one is dropped first, and the warning to give is returned. `shown`: the target's url;
/// `step`: the restore step.
pub fn create_scratch(
    conn: &mut mysql::Conn,
    name: &str,
    shown: &str,
    step: &str,
) -> anyhow::Result<Option<String>> {
    let found: Option<String> = conn.exec_first(
        "SELECT schema_name FROM information_schema.schemata WHERE schema_name = ?",
        (name,),
    )?;
    let mut dropped = None;
    if found.is_some() {
        // No such column on MySQL: a database there carries no mark.
        let mark: Option<Option<String>> = conn
            .exec_first(
                "SELECT schema_comment FROM information_schema.schemata WHERE schema_name = ?",
                (name,),
            )
            .unwrap_or(None);
        let drop_sql = format!("DROP DATABASE {}", ident(name));
        let warning = crate::engines::scratch::existing(
            step,
            name,
            shown,
            mark.flatten().as_deref(),
            &drop_sql,
        )?;
        conn.query_drop(&drop_sql)?;
        dropped = Some(warning);
    }
    let create = format!("CREATE DATABASE {} CHARACTER SET utf8mb4", ident(name));
    let mark = crate::engines::scratch::mark_literal(step);
    match conn.query_drop(format!("{create} COMMENT {mark}")) {
        // ER_PARSE_ERROR: a server without schema comments (MySQL).
        Err(mysql::Error::MySqlError(e)) if e.code == 1064 => conn.query_drop(&create)?,
        marked => marked?,
    }
    Ok(dropped)
}

/// Feeds the (decompressed) dump to the client's stdin, aborting on the first error.
fn load(
    from: &Path,
    target: &Target,
    workdir: &Path,
    cancel: &Cancel,
    total: u64,
    progress: &dyn Fn(u64, u64),
) -> anyhow::Result<()> {
    let option_file = OptionFile::create(workdir, "restore", target)?;
    let program = super::program(&["mariadb", "mysql"])?;
    let database = target.database().unwrap_or_default().to_string();
    let stderr = workdir.join(".restore.client.stderr");
    let (reader, mut writer) = os_pipe::pipe()?;
    let args = [
        option_file.arg(),
        "--default-character-set=utf8mb4".into(),
        format!("--database={database}"),
    ];
    let expr = option_file.command(duct::cmd(&program, &args).stdin_file(reader).stdout_null());
    let running = Tool::new(expr, &program).stderr_to(&stderr).start(cancel)?;
    drop(args);
    let counted = Counting::new(File::open(from)?);
    let read = counted.count.clone();
    let fed = (|| -> anyhow::Result<Vec<u8>> {
        let dump = decompressor(from, counted)?;
        let progress_reader = ProgressReader {
            inner: dump,
            read,
            total,
            progress,
        };
        let (_, tail) =
            copy_keeping_tail(progress_reader, &mut writer, cancel).context("corrupt backup")?;
        Ok(tail)
    })();
    // Closing stdin ends the client's input; on a failure it ends it early.
    drop(writer);
    let status = running.finish();
    drop(option_file);
    let errors = client_errors(&stderr);
    let _ = std::fs::remove_file(&stderr);
    cancel.check()?;
    let status = status?;
    let tail = match fed {
        // A client that stops reading (on an SQL error) breaks the pipe: its own
        // error message says why.
        Err(e) if !status.success() => bail!("{program} failed ({status}): {errors} ({e:#})"),
        other => other?,
    };
    ensure!(
        status.success(),
        "{program} failed loading the dump ({status}): {errors}"
    );
    ensure!(
        contains(&tail, COMPLETED),
        "the dump is truncated: it lacks mysqldump's `-- Dump completed` line"
    );
    Ok(())
}

/// The client's `ERROR ...` lines (it may echo the failing statement, which can be
/// megabytes of data); the end of its stderr when it printed none.
fn client_errors(stderr: &Path) -> String {
    let tail = crate::log::tail_file(stderr, 200, 64 * 1024);
    let errors: Vec<&str> = tail.lines().filter(|l| l.starts_with("ERROR")).collect();
    if errors.is_empty() {
        crate::log::tail_file(stderr, 5, 1024)
    } else {
        errors.join("\n")
    }
}

struct Counting {
    inner: File,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Counting {
    fn new(inner: File) -> Self {
        Self {
            inner,
            count: Default::default(),
        }
    }
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Reports the compressed bytes read so far against the file's size.
struct ProgressReader<'a, R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
    total: u64,
    progress: &'a dyn Fn(u64, u64),
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(
            self.read.load(std::sync::atomic::Ordering::Relaxed),
            self.total,
        );
        Ok(n)
    }
}

fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    name.into()
}
