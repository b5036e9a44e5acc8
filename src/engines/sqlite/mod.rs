//! SQLite through rusqlite: the online backup API for backup and restore, and
//! `SqlConn` for verification.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use indexmap::IndexMap;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use super::{Copying, SqlConn};
use crate::proc::{Cancel, OnCancel};

mod pages;

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
    pub table_counts: IndexMap<String, u64>,
    pub indexes: Vec<String>,
}

pub fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    ensure!(path.exists(), "database {} does not exist", path.display());
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .with_context(|| format!("cannot open {}", path.display()))
}

/// Copies `source` to `dest`, consistent while the source is in use: the copy and the
/// row counts come from one read snapshot.
pub fn backup(
    source: &Path,
    dest: &Path,
    checkpoint: bool,
    copying: &Copying<'_>,
) -> anyhow::Result<Snapshot> {
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
    src.execute_batch("BEGIN")?;
    // The first read takes the shared lock (rollback journal) or pins a WAL snapshot.
    let tables = user_tables(&src)?;
    let taken_at = jiff::Timestamp::now();
    let indexes = user_indexes(&src)?;
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
            let copier = s.spawn(|| copy_file(source, dest, copying));
            let counts = count_rows(&src, &tables);
            let copied = copier.join().expect("file copier panicked");
            copied.and(counts)
        })?
    };
    src.execute_batch("COMMIT")?;
    let bytes = fs::metadata(dest)?.len();
    Ok(Snapshot {
        taken_at: Some(taken_at),
        bytes,
        table_counts,
        indexes,
    })
}

fn is_wal(conn: &Connection) -> anyhow::Result<bool> {
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    Ok(mode.eq_ignore_ascii_case("wal"))
}

/// Bytes copied per call, between cancellation checks and progress updates.
const COPY_CHUNK: u64 = 64 << 20;

/// Copies a file with copy_file_range(2) (in-kernel, no user-space buffer), into
/// `dest.partial` renamed once complete (and synced, when durable).
fn copy_file(source: &Path, dest: &Path, copying: &Copying<'_>) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd as _;
    write_partial(dest, |partial| {
        let from = fs::File::open(source)?;
        let to = fs::File::create(partial)?;
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
                    std::io::copy(&mut (&from), &mut (&to))?;
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
        let mut dst = Connection::open(partial)
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
    check_backup_file(from)?;
    let src = open_read_only(from)?;
    src.execute_batch("BEGIN")?;
    user_tables(&src)
        .with_context(|| format!("{} is not a readable SQLite database", from.display()))?;
    let copied = if is_wal(&src)? {
        copy_with_backup_api(&src, target, copying)
    } else {
        copy_file(from, target, copying)
    };
    copied.context("restore failed")?;
    src.execute_batch("COMMIT")?;
    drop(src);
    let conn = open_read_only(target)?;
    let problems = quick_check(&conn)?;
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
        table_counts: count_rows(&conn, &tables)?,
        indexes: user_indexes(&conn)?,
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

/// A verification connection. Opened read-only unless it has statements to execute.
pub struct SqliteConn {
    path: PathBuf,
    conn: Connection,
    interrupt: Option<InterruptOnCancel>,
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

impl SqliteConn {
    pub fn open(path: &Path, writable: bool) -> anyhow::Result<Self> {
        let conn = if writable {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent)?;
            }
            Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?
        } else {
            open_read_only(path)?
        };
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(Self {
            path: path.to_path_buf(),
            conn,
            interrupt: None,
        })
    }

    /// Interrupts a running query (and the integrity workers) when the step is cancelled.
    pub fn interrupt_on(&mut self, cancel: Arc<Cancel>) {
        self.interrupt = Some(InterruptOnCancel::new(&self.conn, &cancel));
    }
}

impl SqlConn for SqliteConn {
    fn execute_batch(&mut self, sql: &str) -> anyhow::Result<()> {
        Ok(self.conn.execute_batch(sql)?)
    }

    fn query(&mut self, sql: &str) -> anyhow::Result<Vec<Vec<Value>>> {
        let mut stmt = self.conn.prepare(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let cells = (0..columns)
                .map(|i| row.get_ref(i).map(to_json))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(cells);
        }
        Ok(out)
    }

    fn tables(&mut self) -> anyhow::Result<Vec<String>> {
        user_tables(&self.conn)
    }

    fn indexes(&mut self) -> anyhow::Result<Vec<String>> {
        user_indexes(&self.conn)
    }

    fn count_rows(&mut self, tables: &[String]) -> anyhow::Result<IndexMap<String, u64>> {
        count_rows(&self.conn, tables)
    }

    fn integrity_problems(&mut self, quick: bool) -> anyhow::Result<Vec<String>> {
        if quick {
            return quick_check(&self.conn);
        }
        let cancel = self
            .interrupt
            .as_ref()
            .map(|i| Arc::clone(&i.cancel))
            .unwrap_or_default();
        parallel_integrity_check(&self.path, &user_tables(&self.conn)?, &cancel)
    }

    fn foreign_key_problems(&mut self) -> anyhow::Result<Vec<String>> {
        let mut stmt = self.conn.prepare("PRAGMA foreign_key_check")?;
        let rows = stmt.query_map([], |r| {
            Ok(format!(
                "{} row {} references missing {}",
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?
                    .map_or("?".into(), |id| id.to_string()),
                r.get::<_, String>(2)?
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// One unit of the parallel integrity check.
enum IntegrityWork {
    /// `PRAGMA integrity_check(table)`: the table's b-tree, its rows, and its indexes
    /// against its rows (the costly part). For `sqlite_schema` it covers the freelist.
    Table {
        name: String,
        /// The page cache for its check, in KiB; SQLite's default when `None`.
        cache_kib: Option<u64>,
    },
    /// What no per-table check covers: every page used exactly once.
    PageAccounting,
}

impl IntegrityWork {
    /// Runs this item; the page accounting also plans the rest of `queue`.
    fn run(
        &self,
        conn: &Connection,
        path: &Path,
        cancel: &Cancel,
        queue: &WorkQueue,
    ) -> anyhow::Result<Vec<String>> {
        let rows = match self {
            Self::Table { name, cache_kib } => {
                let kib = cache_kib.unwrap_or(DEFAULT_CACHE_KIB);
                conn.execute_batch(&format!("PRAGMA cache_size = -{kib}"))?;
                names(conn, &format!("PRAGMA integrity_check({})", quote(name)))?
            }
            Self::PageAccounting => match pages::check(conn, path, cancel)? {
                Some(found) => {
                    queue.plan(&found);
                    found.problems
                }
                // Pages still in the WAL: let SQLite walk them.
                None => names(conn, "PRAGMA quick_check")?,
            },
        };
        Ok(rows.into_iter().filter(|r| r != "ok").collect())
    }
}

/// SQLite's default page cache (`cache_size = -2000`).
const DEFAULT_CACHE_KIB: u64 = 2000;
/// The page cache all the checks running at once may have between them.
const TOTAL_CACHE_KIB: u64 = 64 * 1024;

/// The work of the parallel integrity check, popped from the end.
struct WorkQueue {
    items: Mutex<Vec<IntegrityWork>>,
    /// The most page cache one table's check gets.
    cache_cap_kib: u64,
}

impl WorkQueue {
    fn new(items: Vec<IntegrityWork>, workers: usize) -> Self {
        Self {
            items: Mutex::new(items),
            cache_cap_kib: (TOTAL_CACHE_KIB / workers.max(1) as u64).max(DEFAULT_CACHE_KIB),
        }
    }

    /// Takes the next item, letting go of the queue before it is run.
    fn pop(&self) -> Option<IntegrityWork> {
        self.items.lock().unwrap().pop()
    }

    /// Orders the tables still to check so that the largest is popped first (a large
    /// table started last would leave the other cores idle while it runs), and sizes each
    /// check's page cache to hold the table's indexes: the check looks every row up in
    /// every index, and with the default 2 MB cache each lookup in a larger index is a
    /// read from the file. Twice the indexes' size, because the table's own pages stream
    /// through the same cache, up to the cap. (1 GiB, a 6 MB index a table: 12% faster;
    /// 353 MB, 30 MB of indexes a table: 12% faster.)
    fn plan(&self, found: &pages::Accounting) {
        let mut items = self.items.lock().unwrap();
        for item in items.iter_mut() {
            if let IntegrityWork::Table { name, cache_kib } = item {
                let index_pages = found.index_pages_by_table.get(name).copied();
                let index_kib = index_pages.unwrap_or(0) * u64::from(found.page_size) / 1024;
                // A cache that holds only a small part of the indexes is slower than the
                // default (more memory traffic, few more hits): measured, 1 GiB with
                // 88 MB of indexes a table, 32 MiB was 8% slower than 2 MB.
                *cache_kib = (index_kib <= self.cache_cap_kib)
                    .then(|| (2 * index_kib).clamp(DEFAULT_CACHE_KIB, self.cache_cap_kib));
            }
        }
        items.sort_by_key(|item| match item {
            IntegrityWork::Table { name, .. } => {
                found.pages_by_table.get(name).copied().unwrap_or(0)
            }
            IntegrityWork::PageAccounting => u64::MAX,
        });
    }
}

/// Everything `PRAGMA integrity_check` checks, spread over the cores, each worker on its
/// own connection: every table (and the schema table) checked on its own, plus the page
/// accounting that a per-table check skips. The accounting goes first: it is quick, and
/// what it finds plans the rest (largest table first, each with a cache for its indexes).
fn parallel_integrity_check(
    path: &Path,
    tables: &[String],
    cancel: &Arc<Cancel>,
) -> anyhow::Result<Vec<String>> {
    let mut work: Vec<IntegrityWork> = std::iter::once("sqlite_schema")
        .chain(tables.iter().rev().map(String::as_str))
        .map(|t| IntegrityWork::Table {
            name: t.to_string(),
            cache_kib: None,
        })
        .collect();
    work.push(IntegrityWork::PageAccounting);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(tables.len() + 2);
    let queue = WorkQueue::new(work, workers);
    let results: Vec<anyhow::Result<Vec<String>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> anyhow::Result<Vec<String>> {
                    let conn = open_read_only(path)?;
                    conn.busy_timeout(Duration::from_secs(10))?;
                    let _interrupt = InterruptOnCancel::new(&conn, cancel);
                    let mut problems = Vec::new();
                    while let Some(item) = queue.pop() {
                        cancel.check()?;
                        problems.extend(item.run(&conn, path, cancel, &queue)?);
                    }
                    Ok(problems)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("integrity worker panicked"))
            .collect()
    });
    let mut problems = Vec::new();
    for r in results {
        problems.extend(r?);
    }
    Ok(problems)
}

fn to_json(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => Value::from(f),
        ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::from(format!("<{} bytes>", b.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(tables: &[(&str, u64, u64)], workers: usize) -> Vec<(String, Option<u64>)> {
        let queue = WorkQueue::new(
            tables
                .iter()
                .map(|(t, _, _)| IntegrityWork::Table {
                    name: t.to_string(),
                    cache_kib: None,
                })
                .collect(),
            workers,
        );
        queue.plan(&pages::Accounting {
            problems: Vec::new(),
            pages_by_table: tables.iter().map(|(t, p, _)| (t.to_string(), *p)).collect(),
            index_pages_by_table: tables.iter().map(|(t, _, i)| (t.to_string(), *i)).collect(),
            page_size: 4096,
        });
        std::iter::from_fn(|| queue.pop())
            .map(|item| match item {
                IntegrityWork::Table { name, cache_kib } => (name, cache_kib),
                IntegrityWork::PageAccounting => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn the_largest_table_is_checked_first_with_a_cache_for_its_indexes() {
        // (table, pages with its indexes, pages of its indexes)
        let tables = [
            ("sqlite_schema", 1, 0),
            ("c", 5000, 1280),
            ("b", 900_000, 100_000),
            ("a", 10, 2),
        ];
        let plan = planned(&tables, 2);
        let (order, caches): (Vec<_>, Vec<_>) = plan.into_iter().unzip();
        assert_eq!(order, ["b", "c", "a", "sqlite_schema"]);
        // b: 400 MB of indexes, far more than its share of the total: the default; c: twice
        // its 5 MiB of index; a: the default at least.
        assert_eq!(caches, [None, Some(10240), Some(2000), Some(2000)]);
        // An index that fits the share once gets all of it.
        let d = [("d", 50_000, 6_000)];
        assert_eq!(planned(&d, 2)[0].1, Some(32768));
        // Many cores share the total, down to SQLite's default.
        assert_eq!(planned(&tables, 64)[1].1, None);
        assert_eq!(planned(&[("e", 100, 100)], 64)[0].1, Some(2000));
    }

    /// The parallel integrity check scales only if connections do not share one page cache
    /// behind a global mutex (see .cargo/config.toml).
    #[test]
    fn each_connection_has_its_own_page_cache() {
        let conn = Connection::open_in_memory().unwrap();
        let options = names(&conn, "PRAGMA compile_options").unwrap();
        assert!(options.iter().any(|o| o.starts_with("THREADSAFE=1")));
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "bundled SQLite built with SQLITE_ENABLE_MEMORY_MANAGEMENT: {options:?}"
        );
    }
}
