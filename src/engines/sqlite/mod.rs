//! SQLite through rusqlite: the online backup API for backup and restore, and
//! `SqlConn` for verification.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use indexmap::IndexMap;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{Copying, SchemaFacts};
use crate::guard;
use crate::proc::{Cancel, OnCancel};

mod conn;
mod content;
mod engine;
mod integrity;
mod pages;
mod side;

pub use conn::SqliteConn;
pub use content::digest_file;
pub use engine::Sqlite;

/// Pages copied per backup step: large steps are what makes the backup API fast
/// (`sqlite3 .backup` copies 100 at a time); 16384 pages of 4 KiB is 64 MiB.
const PAGES_PER_STEP: i32 = 16384;

const HEADER: &[u8; 16] = b"SQLite format 3\0";

/// What a backup or restore found in the database it copied.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// When the read transaction the copy came from began: the copy holds every commit before it.
    pub taken_at: Option<jiff::Timestamp>,
    pub bytes: u64,
    pub schema: SchemaFacts,
}

/// Opens `path` read-only. A WAL database read with no `-wal`/`-shm` beside it gets both
/// from SQLite; they are removed again once our last connection to it closes (`side`).
pub fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    ensure_file(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .with_context(|| format!("cannot open {}", path.display()))?;
    side::watch(&conn, path);
    Ok(conn)
}

/// A database is a regular file: SQLite would wait for ever on a named pipe's writer,
/// and read `/dev/zero` as an empty database.
fn ensure_file(path: &Path) -> anyhow::Result<()> {
    let meta = fs::metadata(path);
    ensure!(meta.is_ok(), "database {} does not exist", path.display());
    ensure!(
        meta.is_ok_and(|m| m.is_file()),
        "database {} is not a regular file",
        path.display()
    );
    Ok(())
}

/// Copies `source` to `dest`, consistent while the source is in use: the copy and the
/// row counts come from one read snapshot.
pub fn backup(
    source: &Path,
    dest: &Path,
    checkpoint: bool,
    copying: &Copying<'_>,
) -> anyhow::Result<Snapshot> {
    ensure_file(source)?;
    if checkpoint {
        // A checkpoint moves committed WAL content into the main file; it changes no data.
        let conn = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .with_context(|| format!("cannot open {} for a WAL checkpoint", source.display()))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .context("WAL checkpoint failed")?;
    }
    let src = open_read_only(source)?;
    src.busy_timeout(Duration::from_secs(10))?;
    // Closing any descriptor of a file drops every POSIX lock this process holds on it,
    // SQLite's among them: the copy's descriptor stays open until the transaction ends
    // (closed after the copy, it let a writer commit while the rows were still counted).
    let held =
        fs::File::open(source).with_context(|| format!("cannot open {}", source.display()))?;
    src.execute_batch("BEGIN")?;
    // The first read takes the shared lock (rollback journal) or pins a WAL snapshot.
    let tables = user_tables(&src)?;
    let taken_at = jiff::Timestamp::now();
    let indexes = user_indexes(&src)?;
    let foreign_keys = foreign_keys(&src)?;
    let objects = content::objects(&src)?;
    let table_counts = if is_wal(&src)? {
        // A WAL snapshot lives partly in the -wal file: only SQLite can copy it whole,
        // and only this connection sees exactly this snapshot.
        let counts = count_rows(&src, &tables)?;
        copy_with_backup_api(&src, dest, copying)?;
        counts
    } else {
        // Under the shared lock no writer can change the file, so the file is the
        // snapshot: copy it at disk speed on another thread while this connection, the
        // one holding the lock, counts the rows. (A second connection must not count: a
        // writer waiting for our lock holds PENDING, which refuses it a new shared lock,
        // and the three would wait on each other until the busy timeout.)
        std::thread::scope(|s| {
            let copier = s.spawn(|| copy_file(&held, source, dest, copying));
            let counts = count_rows(&src, &tables);
            let copied = copier.join().expect("file copier panicked");
            copied.and(counts)
        })?
    };
    src.execute_batch("COMMIT")?;
    // The connection first: in WAL mode it holds a lock on the file as long as it is open.
    drop((src, held));
    let bytes = fs::metadata(dest)?.len();
    Ok(Snapshot {
        taken_at: Some(taken_at),
        bytes,
        schema: SchemaFacts {
            table_counts,
            indexes,
            foreign_keys,
            objects,
            table_digests: None,
        },
    })
}

fn is_wal(conn: &Connection) -> anyhow::Result<bool> {
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    Ok(mode.eq_ignore_ascii_case("wal"))
}

/// Bytes copied per call, between cancellation checks and progress updates.
const COPY_CHUNK: u64 = 64 << 20;

/// Copies `from` (the open file `source`, from its current position) with
/// copy_file_range(2) (in-kernel, no user-space buffer), into `dest.partial` renamed once
/// complete (and synced, when durable). The caller keeps `from` open (see `backup`).
fn copy_file(
    from: &fs::File,
    source: &Path,
    dest: &Path,
    copying: &Copying<'_>,
) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd as _;
    write_partial(dest, |partial| {
        let to = guard::create_file(partial)?;
        let total = from.metadata()?.len();
        let mut done = 0u64;
        while done < total {
            copying.cancel.check()?;
            let len = COPY_CHUNK.min(total - done) as usize;
            // SAFETY: both descriptors are open for the duration; null offsets use the files' positions.
            let n = unsafe {
                libc::copy_file_range(
                    from.as_raw_fd(),
                    std::ptr::null_mut(),
                    to.as_raw_fd(),
                    std::ptr::null_mut(),
                    len,
                    0,
                )
            };
            match n {
                n if n > 0 => done += n as u64,
                0 => bail!("{} shrank while it was copied", source.display()),
                _ => {
                    // No copy_file_range across these file systems: copy through a buffer.
                    std::io::copy(&mut &*from, &mut (&to))?;
                    done = total;
                }
            }
            (copying.progress)(done, total);
        }
        if copying.durable {
            to.sync_all()?;
        }
        Ok(())
    })
}

/// Runs the backup API from `src` into `dest.partial`, renamed once complete (and synced,
/// when durable).
fn copy_with_backup_api(
    src: &Connection,
    dest: &Path,
    copying: &Copying<'_>,
) -> anyhow::Result<()> {
    write_partial(dest, |partial| {
        // Created new (no symlink followed), then opened without following one either.
        guard::create_file(partial)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NOFOLLOW
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut dst = Connection::open_with_flags(partial, flags)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        // The partial file is thrown away on any failure, so it needs no journal.
        dst.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")?;
        let page_size: i64 = src.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        {
            let backup = Backup::new(src, &mut dst)?;
            loop {
                copying.cancel.check()?;
                let step = backup.step(PAGES_PER_STEP)?;
                let p = backup.progress();
                let total = p.pagecount.max(0) as u64 * page_size as u64;
                let done = (p.pagecount - p.remaining).max(0) as u64 * page_size as u64;
                (copying.progress)(done, total);
                match step {
                    StepResult::Done => break,
                    StepResult::Busy | StepResult::Locked => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {}
                }
            }
        }
        dst.close().map_err(|(_, e)| e)?;
        if copying.durable {
            fs::File::open(partial)?.sync_all()?;
        }
        Ok(())
    })
}

/// Writes `dest` through a partial file that is renamed into place only when `write`
/// succeeds, and removed when it fails.
fn write_partial(
    dest: &Path,
    write: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let partial = partial_path(dest);
    let _ = fs::remove_file(&partial);
    let result = write(&partial).and_then(|()| {
        fs::rename(&partial, dest).with_context(|| format!("cannot rename to {}", dest.display()))
    });
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    dest.with_file_name(name)
}

/// Restores the backup file `from` into `target` (which must not exist), then proves the
/// result is a real database with tables in it.
pub fn restore(from: &Path, target: &Path, copying: &Copying<'_>) -> anyhow::Result<Snapshot> {
    stage(from, target, copying)?;
    inspect_restored(from, target)
}

/// Refuses a `-wal`, `-shm` or `-journal` beside `target`: SQLite would replay it over
/// the restored file (a WAL left by a crashed writer brings back the old rows).
pub fn refuse_side_files(target: &Path) -> anyhow::Result<()> {
    for suffix in ["-wal", "-shm", "-journal"] {
        let side = side::side_path(target, suffix);
        ensure!(
            fs::symlink_metadata(&side).is_err(),
            "{} exists beside the restore target: SQLite would apply it (the old \
             database's state, e.g. a crashed writer's) to the restored database; stop what \
             uses {}, open and close it once (SQLite then folds it in and removes it), then \
             restore again",
            side.display(),
            target.display()
        );
    }
    Ok(())
}

/// Copies the backup file `from` into `target` (which must not exist), checked by
/// nothing but its header: `inspect_restored` checks it where it will be read.
pub fn stage(from: &Path, target: &Path, copying: &Copying<'_>) -> anyhow::Result<()> {
    check_backup_file(from)?;
    refuse_side_files(target)?;
    let src = open_read_only(from)?;
    // Kept open until the transaction ends, as in `backup`.
    let held = fs::File::open(from).with_context(|| format!("cannot open {}", from.display()))?;
    src.execute_batch("BEGIN")?;
    user_tables(&src)
        .with_context(|| format!("{} is not a readable SQLite database", from.display()))?;
    let copied = if is_wal(&src)? {
        copy_with_backup_api(&src, target, copying)
    } else {
        copy_file(&held, from, target, copying)
    };
    copied.context("restore failed")?;
    src.execute_batch("COMMIT")?;
    drop((src, held));
    Ok(())
}

/// Proves the restored `target` is a real database with tables in it, and lists them.
pub fn inspect_restored(from: &Path, target: &Path) -> anyhow::Result<Snapshot> {
    let conn = open_read_only(target)?;
    // A page too damaged to read is an error of the check, not a row of its result.
    let problems = quick_check(&conn).context("restored database fails quick_check")?;
    if !problems.is_empty() {
        bail!(
            "restored database fails quick_check: {}",
            problems.join("; ")
        );
    }
    let tables = user_tables(&conn)?;
    ensure!(
        !tables.is_empty(),
        "restored database has no tables: the backup {} is empty",
        from.display()
    );
    Ok(Snapshot {
        taken_at: None,
        bytes: fs::metadata(target)?.len(),
        schema: SchemaFacts {
            table_counts: count_rows(&conn, &tables)?,
            indexes: user_indexes(&conn)?,
            foreign_keys: foreign_keys(&conn)?,
            objects: content::objects(&conn)?,
            table_digests: None,
        },
    })
}

/// Refuses what is not a SQLite database before anything is written.
pub fn check_backup_file(path: &Path) -> anyhow::Result<()> {
    use std::io::Read as _;
    let meta =
        fs::metadata(path).with_context(|| format!("backup {} not found", path.display()))?;
    ensure!(meta.is_file(), "backup {} is not a file", path.display());
    ensure!(
        meta.len() > 0,
        "backup {} is empty (0 bytes): nothing to restore",
        path.display()
    );
    let mut header = [0u8; 16];
    let n = fs::File::open(path)?.read(&mut header)?;
    ensure!(
        n == 16 && &header == HEADER,
        "backup {} is not a SQLite database (bad header)",
        path.display()
    );
    Ok(())
}

fn user_tables(conn: &Connection) -> anyhow::Result<Vec<String>> {
    names(
        conn,
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
}

fn user_indexes(conn: &Connection) -> anyhow::Result<Vec<String>> {
    names(
        conn,
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
}

/// Every foreign key as `table(columns) -> parent(columns)` (SQLite does not name them;
/// the referenced columns are left out where the key references the parent's primary key
/// implicitly), sorted.
fn foreign_keys(conn: &Connection) -> anyhow::Result<Vec<String>> {
    let mut all = Vec::new();
    for table in user_tables(conn)? {
        let mut stmt = conn.prepare(
            "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
        )?;
        let rows = stmt.query_map([&table], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        // (id, parent, child columns, parent columns)
        let mut keys: Vec<(i64, String, Vec<String>, Vec<String>)> = Vec::new();
        for row in rows {
            let (id, parent, from, to) = row?;
            match keys.last_mut() {
                Some(k) if k.0 == id => {
                    k.2.push(from);
                    k.3.extend(to);
                }
                _ => keys.push((id, parent, vec![from], to.into_iter().collect())),
            }
        }
        for (_, parent, from, to) in keys {
            let to = if to.is_empty() {
                String::new()
            } else {
                format!("({})", to.join(", "))
            };
            all.push(format!("{table}({}) -> {parent}{to}", from.join(", ")));
        }
    }
    all.sort();
    Ok(all)
}

fn names(conn: &Connection, sql: &str) -> anyhow::Result<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn count_rows(conn: &Connection, tables: &[String]) -> anyhow::Result<IndexMap<String, u64>> {
    let existing = user_tables(conn)?;
    tables
        .iter()
        .map(|t| {
            ensure!(existing.contains(t), "table `{t}` does not exist");
            let n: i64 =
                conn.query_row(&format!("SELECT count(*) FROM {}", quote(t)), [], |r| {
                    r.get(0)
                })?;
            Ok((t.clone(), n as u64))
        })
        .collect()
}

fn quick_check(conn: &Connection) -> anyhow::Result<Vec<String>> {
    let rows = names(conn, "PRAGMA quick_check")?;
    Ok(rows.into_iter().filter(|r| r != "ok").collect())
}

/// Interrupts whatever a connection is running when the step is cancelled, for as long as
/// it lives.
struct InterruptOnCancel {
    _hook: OnCancel,
    cancel: Arc<Cancel>,
}

impl InterruptOnCancel {
    fn new(conn: &Connection, cancel: &Arc<Cancel>) -> Self {
        let handle = conn.get_interrupt_handle();
        Self {
            _hook: cancel.on_cancel(move || handle.interrupt()),
            cancel: Arc::clone(cancel),
        }
    }
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
