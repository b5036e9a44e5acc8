//! Page accounting for a SQLite file: every page belongs to exactly one b-tree, the
//! freelist, a pointer-map or the lock-byte page.
//!
//! `PRAGMA integrity_check(table)` skips this ("page never used", "2nd reference to
//! page"): it cannot know the pages of the b-trees it was not asked about. The parallel
//! integrity check runs per-table checks, so it runs this alongside them. It reads only
//! the b-tree structure (child pointers, overflow chains, freelist), not the rows, and
//! reads sibling pages that lie next to each other in the file with one `pread`, so it
//! costs a fraction of a `quick_check`. Everything else about a page (cell order, key
//! ranges, free space) is the per-table checks' business.
//!
//! Format: <https://www.sqlite.org/fileformat2.html>.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use rusqlite::Connection;

use crate::proc::Cancel;

/// SQLite's lock-byte offset: the page holding it is never used.
const PENDING_BYTE: u64 = 0x4000_0000;
/// SQLite refuses b-trees deeper than this (BTCURSOR_MAX_DEPTH).
const MAX_DEPTH: usize = 20;
/// At most this many bytes of adjacent sibling pages are read at once.
const RUN_BYTES: usize = 256 * 1024;
/// Problems reported before the rest are only counted (`integrity_check` stops at 100).
const MAX_PROBLEMS: usize = 100;

/// What the page walk found.
#[derive(Debug, Default)]
pub struct Accounting {
    pub problems: Vec<String>,
    /// Pages per table, its indexes included: how long checking each table will take.
    pub pages_by_table: HashMap<String, u64>,
    /// Pages of each table's indexes: what its check looks every row up in.
    pub index_pages_by_table: HashMap<String, u64>,
    pub page_size: u32,
}

/// Checks the page accounting of the database `conn` has open at `path`, reading its
/// pages from `file`. `None` when the file alone does not hold the database (committed
/// pages still in the WAL): the caller then runs `PRAGMA quick_check`, which does the same
/// through SQLite. The caller keeps `file` open until every connection of the process to
/// the database is done: closing any descriptor of a file drops every POSIX lock the
/// process holds on it, SQLite's among them.
pub fn check(
    conn: &Connection,
    file: &File,
    path: &Path,
    cancel: &Cancel,
) -> anyhow::Result<Option<Accounting>> {
    // A read transaction for the whole walk: no writer can change the file under us.
    conn.execute_batch("BEGIN")?;
    let result = check_in_transaction(conn, file, path, cancel);
    conn.execute_batch("COMMIT")?;
    result
}

fn check_in_transaction(
    conn: &Connection,
    file: &File,
    path: &Path,
    cancel: &Cancel,
) -> anyhow::Result<Option<Accounting>> {
    let pragma = |name: &str| -> rusqlite::Result<i64> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
    };
    let page_count = pragma("page_count")? as u32; // also starts the read transaction
    if page_count == 0 {
        return Ok(Some(Accounting::default())); // an empty file: nothing to account for
    }
    if super::is_wal(conn)? && wal_has_frames(path) {
        return Ok(None);
    }
    let mut header = [0u8; 100];
    file.read_exact_at(&mut header, 0)?;
    let page_size = pragma("page_size")? as u32;
    let usable = page_size.saturating_sub(u32::from(header[20]));
    // SQLite itself refuses to open a file with less (btree.c, lockBtree).
    anyhow::ensure!(
        usable >= 480,
        "the header leaves {usable} usable bytes a page"
    );
    let layout = Layout {
        page_size,
        usable,
        page_count,
        autovacuum: pragma("auto_vacuum")? != 0,
    };
    // (b-tree, the table it belongs to, root page)
    let roots: Vec<(String, String, u32)> = conn
        .prepare("SELECT name, tbl_name, rootpage FROM sqlite_schema WHERE rootpage > 0")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;

    let mut walk = Walk::new(file, layout, cancel);
    walk.claim_special_pages();
    walk.freelist(be32(&header[32..]), be32(&header[36..]));
    let mut pages_by_table = HashMap::new();
    let mut index_pages_by_table = HashMap::new();
    pages_by_table.insert("sqlite_schema".to_string(), walk.tree(1, "sqlite_schema"));
    for (name, table, root) in &roots {
        let pages = walk.tree(*root, name);
        *pages_by_table.entry(table.clone()).or_default() += pages;
        if name != table {
            *index_pages_by_table.entry(table.clone()).or_default() += pages;
        }
    }
    cancel.check()?;
    Ok(Some(Accounting {
        problems: walk.finish(),
        pages_by_table,
        index_pages_by_table,
        page_size,
    }))
}

fn wal_has_frames(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    // The WAL header alone is 32 bytes; any more is frames.
    std::fs::metadata(wal).is_ok_and(|m| m.len() > 32)
}

#[derive(Clone, Copy)]
struct Layout {
    page_size: u32,
    /// Page size less the reserved bytes at the end of each page.
    usable: u32,
    page_count: u32,
    autovacuum: bool,
}

impl Layout {
    fn lock_page(&self) -> u32 {
        (PENDING_BYTE / u64::from(self.page_size) + 1) as u32
    }

    /// The pointer-map pages of an auto-vacuum database: page 2, then one every
    /// `usable / 5 + 1` pages, moved one on when that lands on the lock-byte page.
    fn pointer_map_pages(&self) -> impl Iterator<Item = u32> + '_ {
        let step = self.usable / 5 + 1;
        (0..)
            .map(move |i: u32| {
                let p = 2 + i * step;
                if p == self.lock_page() { p + 1 } else { p }
            })
            .take_while(|p| self.autovacuum && *p <= self.page_count)
    }
}

/// A b-tree page's kind, from its first header byte.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    IndexInterior,
    TableInterior,
    IndexLeaf,
    TableLeaf,
}

impl Kind {
    fn of(byte: u8) -> Option<Self> {
        match byte {
            2 => Some(Self::IndexInterior),
            5 => Some(Self::TableInterior),
            10 => Some(Self::IndexLeaf),
            13 => Some(Self::TableLeaf),
            _ => None,
        }
    }

    fn interior(self) -> bool {
        matches!(self, Self::IndexInterior | Self::TableInterior)
    }
}

struct Walk<'a> {
    file: &'a File,
    layout: Layout,
    cancel: &'a Cancel,
    /// One bit per page: claimed by something already.
    used: Vec<u64>,
    claimed: u64,
    problems: Vec<String>,
    more_problems: usize,
}

impl<'a> Walk<'a> {
    fn new(file: &'a File, layout: Layout, cancel: &'a Cancel) -> Self {
        Self {
            file,
            layout,
            cancel,
            used: vec![0; layout.page_count as usize / 64 + 1],
            claimed: 0,
            problems: Vec::new(),
            more_problems: 0,
        }
    }

    fn problem(&mut self, text: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(text);
        } else {
            self.more_problems += 1;
        }
    }

    /// Marks `page` as used by `owner`; false (and a problem) when it cannot be.
    fn claim(&mut self, page: u32, owner: &str) -> bool {
        if page == 0 || page > self.layout.page_count {
            self.problem(format!(
                "{owner}: page number {page} is outside the database (1..={})",
                self.layout.page_count
            ));
            return false;
        }
        let (word, bit) = ((page / 64) as usize, 1u64 << (page % 64));
        if self.used[word] & bit != 0 {
            self.problem(format!("{owner}: 2nd reference to page {page}"));
            return false;
        }
        self.used[word] |= bit;
        self.claimed += 1;
        true
    }

    fn claim_special_pages(&mut self) {
        let lock = self.layout.lock_page();
        if lock <= self.layout.page_count {
            self.claim(lock, "lock-byte page");
        }
        let maps: Vec<u32> = self.layout.pointer_map_pages().collect();
        for page in maps {
            self.claim(page, "pointer map");
        }
    }

    fn read(&self, first: u32, pages: usize, buf: &mut Vec<u8>) -> std::io::Result<()> {
        let size = self.layout.page_size as usize;
        buf.resize(pages * size, 0);
        self.file
            .read_exact_at(buf, u64::from(first - 1) * size as u64)
    }

    /// Claims the freelist: trunk pages from `trunk` on, each listing leaf pages.
    fn freelist(&mut self, mut trunk: u32, expected: u32) {
        let owner = "freelist";
        let mut found = 0u32;
        let mut buf = Vec::new();
        while trunk != 0 && found <= expected {
            if !self.claim(trunk, owner) || self.read(trunk, 1, &mut buf).is_err() {
                return;
            }
            found += 1;
            let leaves = be32(&buf[4..]) as usize;
            let max = (self.layout.usable as usize) / 4 - 2;
            if leaves > max {
                self.problem(format!("{owner}: trunk page {trunk} lists {leaves} leaves"));
                return;
            }
            for i in 0..leaves {
                let leaf = be32(&buf[8 + 4 * i..]);
                if self.claim(leaf, owner) {
                    found += 1;
                }
            }
            trunk = be32(&buf);
        }
        if found != expected {
            self.problem(format!(
                "{owner}: {found} pages on the list, the header says {expected}"
            ));
        }
    }

    /// Walks the b-tree rooted at `root`; returns how many pages it claimed.
    fn tree(&mut self, root: u32, name: &str) -> u64 {
        let before = self.claimed;
        let owner = format!("b-tree `{name}`");
        if self.claim(root, &owner) {
            self.pages(&[root], &owner, 0);
        }
        self.claimed - before
    }

    /// Walks `pages` (siblings, claimed already) and everything below them.
    fn pages(&mut self, pages: &[u32], owner: &str, depth: usize) {
        if depth > MAX_DEPTH {
            self.problem(format!("{owner}: deeper than {MAX_DEPTH} levels"));
            return;
        }
        let size = self.layout.page_size as usize;
        let mut buf = Vec::new();
        for run in adjacent_runs(pages, RUN_BYTES / size) {
            if self.cancel.is_cancelled() {
                return;
            }
            if let Err(e) = self.read(run[0], run.len(), &mut buf) {
                self.problem(format!("{owner}: cannot read page {}: {e}", run[0]));
                continue;
            }
            for (i, &page) in run.iter().enumerate() {
                let children = self.page(page, &buf[i * size..(i + 1) * size], owner);
                if !children.is_empty() {
                    self.pages(&children, owner, depth + 1);
                }
            }
        }
    }

    /// Claims what one b-tree page points to: its overflow chains now, and returns its
    /// children (claimed) for the caller to walk.
    fn page(&mut self, page: u32, data: &[u8], owner: &str) -> Vec<u32> {
        let start = if page == 1 { 100 } else { 0 };
        let Some(kind) = Kind::of(data[start]) else {
            self.problem(format!("{owner}: page {page} is not a b-tree page"));
            return Vec::new();
        };
        let cells = usize::from(u16::from_be_bytes([data[start + 3], data[start + 4]]));
        let pointers = start + if kind.interior() { 12 } else { 8 };
        let usable = self.layout.usable as usize;
        let mut children = Vec::with_capacity(if kind.interior() { cells + 1 } else { 0 });
        for i in 0..cells {
            let at = pointers + 2 * i;
            let cell = data
                .get(at..at + 2)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
            let Some(cell) = cell.filter(|c| *c < usable) else {
                self.problem(format!(
                    "{owner}: page {page} has a cell pointer out of range"
                ));
                break;
            };
            match self.cell(kind, &data[cell..usable]) {
                Some(Cell { child, overflow }) => {
                    if let Some(child) = child.filter(|c| self.claim(*c, owner)) {
                        children.push(child);
                    }
                    if let Some((first, count)) = overflow {
                        self.overflow(first, count, page, owner);
                    }
                }
                None => {
                    self.problem(format!("{owner}: page {page} has a cell that does not fit"));
                    break;
                }
            }
        }
        if kind.interior() {
            let right = be32(&data[start + 8..]);
            if self.claim(right, owner) {
                children.push(right);
            }
        }
        children
    }

    /// Decodes the parts of a cell that point to other pages; `None` if it does not fit.
    fn cell(&self, kind: Kind, bytes: &[u8]) -> Option<Cell> {
        let mut at = 0;
        let child = if kind.interior() {
            at = 4;
            Some(be32(bytes.get(..4)?))
        } else {
            None
        };
        if kind == Kind::TableInterior {
            return Some(Cell {
                child,
                overflow: None,
            });
        }
        let (payload, n) = varint(bytes.get(at..)?)?;
        at += n;
        if kind == Kind::TableLeaf {
            at += varint(bytes.get(at..)?)?.1; // the rowid
        }
        let overflow = match self.local_size(kind, payload) {
            None => None,
            Some(local) => {
                let pointer = bytes.get(at + local..at + local + 4)?;
                let per_page = u64::from(self.layout.usable - 4);
                let rest = payload - local as u64;
                Some((be32(pointer), rest.div_ceil(per_page)))
            }
        };
        Some(Cell { child, overflow })
    }

    /// How much of a payload of `payload` bytes is stored on the b-tree page, when not all.
    fn local_size(&self, kind: Kind, payload: u64) -> Option<usize> {
        let u = u64::from(self.layout.usable);
        let max_local = if kind == Kind::TableLeaf {
            u - 35
        } else {
            (u - 12) * 64 / 255 - 23
        };
        if payload <= max_local {
            return None;
        }
        let min_local = (u - 12) * 32 / 255 - 23;
        let k = min_local + (payload - min_local) % (u - 4);
        Some(if k <= max_local { k } else { min_local } as usize)
    }

    fn overflow(&mut self, first: u32, count: u64, from: u32, owner: &str) {
        let owner = format!("{owner}: overflow chain from page {from}");
        let mut page = first;
        let mut next = [0u8; 4];
        for _ in 0..count {
            if !self.claim(page, &owner) {
                return;
            }
            if let Err(e) = self.file.read_exact_at(
                &mut next,
                u64::from(page - 1) * u64::from(self.layout.page_size),
            ) {
                self.problem(format!("{owner}: cannot read page {page}: {e}"));
                return;
            }
            page = be32(&next);
        }
    }

    fn finish(mut self) -> Vec<String> {
        for page in 1..=self.layout.page_count {
            if self.used[(page / 64) as usize] & (1u64 << (page % 64)) == 0 {
                self.problem(format!("Page {page}: never used"));
            }
        }
        if self.more_problems > 0 {
            let more = self.more_problems;
            self.problems
                .push(format!("... and {more} more page accounting problems"));
        }
        self.problems
    }
}

struct Cell {
    child: Option<u32>,
    /// First overflow page and how many pages the chain has.
    overflow: Option<(u32, u64)>,
}

/// Splits `pages` into runs of consecutive page numbers, at most `max` long.
fn adjacent_runs(pages: &[u32], max: usize) -> Vec<&[u32]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=pages.len() {
        let breaks = i == pages.len() || pages[i] != pages[i - 1] + 1 || i - start == max.max(1);
        if breaks {
            runs.push(&pages[start..i]);
            start = i;
        }
    }
    runs
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// SQLite's variable-length integer: big-endian 7 bits a byte, the ninth byte whole.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(9) {
        if i == 8 {
            return Some(((v << 8) | u64::from(byte), 9));
        }
        v = (v << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::tests::db;
    use super::*;

    /// Closing any descriptor of a file drops every POSIX lock the process holds on it:
    /// the accounting once opened and closed the file itself, and so took the shared
    /// lock of every other connection of the process (the integrity check's workers),
    /// letting a writer in mid-check. `sqlite3` stands for a writer in another process.
    #[test]
    fn the_accounting_leaves_the_locks_of_other_connections_alone() {
        if std::process::Command::new("sqlite3")
            .arg("-version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("RESTORE_DRILL_REQUIRE_SERVERS").is_none(),
                "sqlite3 is required"
            );
            eprintln!("SKIPPED: sqlite3 not found");
            return;
        }
        let (_dir, path) = db("PRAGMA journal_mode = DELETE;
             CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);");
        let reading = Connection::open(&path).unwrap();
        reading.execute_batch("BEGIN").unwrap();
        let n: i64 = reading
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        let file = File::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        check(&conn, &file, &path, &Cancel::default())
            .unwrap()
            .unwrap();
        let write = std::process::Command::new("sqlite3")
            .args(["-cmd", ".timeout 0"])
            .arg(&path)
            .arg("INSERT INTO t VALUES (2)")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&write.stderr);
        assert!(said.contains("locked"), "a writer got in: {said}");
        reading.execute_batch("COMMIT").unwrap();
        drop(file);
    }

    #[test]
    fn every_page_is_counted_for_the_table_it_serves() {
        let (_dir, path) = db("CREATE TABLE small (id INTEGER PRIMARY KEY);
             INSERT INTO small VALUES (1);
             CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT);
             CREATE INDEX big_v ON big(v);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO big SELECT i, hex(randomblob(100)) FROM n;");
        let conn = Connection::open(&path).unwrap();
        let file = File::open(&path).unwrap();
        let found = check(&conn, &file, &path, &Cancel::default())
            .unwrap()
            .unwrap();
        assert!(found.problems.is_empty(), "{:?}", found.problems);
        let pages = &found.pages_by_table;
        let page_count: u64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        assert_eq!(pages.values().sum::<u64>(), page_count, "{pages:?}");
        let big_alone: u64 = conn
            .query_row("SELECT count(*) FROM dbstat WHERE name = 'big'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(
            pages["big"] > big_alone,
            "the index counts for its table: {pages:?}"
        );
        assert_eq!(pages["small"], 1);
    }

    #[test]
    fn varints_decode_like_sqlite() {
        assert_eq!(varint(&[0x05]), Some((5, 1)));
        assert_eq!(varint(&[0x81, 0x00]), Some((128, 2)));
        assert_eq!(varint(&[0xff; 9]), Some((u64::MAX, 9)));
        assert_eq!(varint(&[0x81]), None);
    }

    #[test]
    fn runs_break_at_gaps_and_at_the_maximum() {
        let pages = [3, 4, 5, 9, 10, 2];
        assert_eq!(
            adjacent_runs(&pages, 2),
            vec![&[3, 4][..], &[5], &[9, 10], &[2]]
        );
        assert!(adjacent_runs(&[], 8).is_empty());
    }
}
