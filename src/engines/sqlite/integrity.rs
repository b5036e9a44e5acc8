//! SQLite's full integrity check, spread over the cores.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::Connection;

use super::{InterruptOnCancel, names, open_read_only, pages, quote};
use crate::proc::Cancel;

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
        (file, path): (&File, &Path),
        cancel: &Cancel,
        queue: &WorkQueue,
    ) -> anyhow::Result<Vec<String>> {
        let rows = match self {
            Self::Table { name, cache_kib } => {
                let kib = cache_kib.unwrap_or(DEFAULT_CACHE_KIB);
                conn.execute_batch(&format!("PRAGMA cache_size = -{kib}"))?;
                names(conn, &format!("PRAGMA integrity_check({})", quote(name)))?
            }
            Self::PageAccounting => match pages::check(conn, file, path, cancel)? {
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
pub(super) fn parallel_integrity_check(
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
    // The page accounting reads the file itself; open until every worker's connection is
    // closed (see `pages::check`).
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
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
                        problems.extend(item.run(&conn, (&file, path), cancel, &queue)?);
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
