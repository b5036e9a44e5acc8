//! What row counts cannot see, in SQLite: content digests (every row streamed and hashed
//! here, on several read connections of one file), views and triggers, and
//! `sqlite_sequence` entries behind their table's largest rowid.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::{names, open_read_only, quote, user_tables};
use crate::engines::digest::{
    self, BUCKETS, Digester, KeyRange, Part, Piece, Plan, Ranges, RowBytes, TableDigest,
};
use crate::engines::{Content, Sequences};

/// A table is split among workers only into spans of at least this many keys.
const MIN_PIECE_KEYS: i64 = 4096;

/// A connection (`&Connection`, or a worker's own) answering what row counts cannot
/// see; with the `path` of its file, it opens more to digest in parallel.
pub struct Lite<C> {
    pub conn: C,
    pub path: Option<PathBuf>,
}

impl<C: Borrow<Connection>> Content for Lite<C> {
    fn objects(&mut self) -> anyhow::Result<Vec<String>> {
        objects(self.conn.borrow())
    }

    fn more_digesters(&mut self, n: usize) -> anyhow::Result<Vec<Box<dyn Digester + Send>>> {
        let n = n.min(extra_workers());
        self.path
            .as_deref()
            .map_or(Ok(Vec::new()), |path| readers(path, n))
    }

    /// `sqlite_sequence` entries (AUTOINCREMENT) below their table's largest rowid.
    fn sequences(&mut self) -> anyhow::Result<Sequences> {
        let conn = self.conn.borrow();
        let has: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_sequence')",
            [],
            |r| r.get(0),
        )?;
        if !has {
            return Ok(Sequences::default());
        }
        let tables = user_tables(conn)?;
        let mut stmt = conn.prepare("SELECT name, seq FROM sqlite_sequence ORDER BY name")?;
        let entries: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut found = Sequences::default();
        for (table, seq) in entries.into_iter().filter(|(t, _)| tables.contains(t)) {
            found.checked += 1;
            let max: Option<i64> = conn.query_row(
                &format!("SELECT max(rowid) FROM {}", quote(&table)),
                [],
                |r| r.get(0),
            )?;
            if let Some(max) = max.filter(|m| *m > seq) {
                found.behind.push(format!(
                    "sqlite_sequence `{table}` is at {seq}, behind the largest rowid of {table}, {max}"
                ));
            }
        }
        Ok(found)
    }
}

impl<C: Borrow<Connection>> Digester for Lite<C> {
    /// The table's `INTEGER PRIMARY KEY` (its rowid) and the range of its values.
    fn key_range(&mut self, table: &str) -> anyhow::Result<Option<KeyRange>> {
        let conn = self.conn.borrow();
        let mut stmt =
            conn.prepare("SELECT name, upper(type) FROM pragma_table_info(?1) WHERE pk > 0")?;
        let pk: Vec<(String, String)> = stmt
            .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let [(column, ty)] = pk.as_slice() else {
            return Ok(None);
        };
        if ty != "INTEGER" {
            return Ok(None);
        }
        let (q, t) = (quote(column), quote(table));
        // Each in a query of its own: SQLite reads a lone min() or max() of the key from
        // the b-tree's end, but `SELECT min(k), max(k)` scans the whole table (measured:
        // 0.45 s of a 1 GiB backup's digests).
        let (min, max): (Option<i64>, Option<i64>) = conn.query_row(
            &format!("SELECT (SELECT min({q}) FROM {t}), (SELECT max({q}) FROM {t})"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(min.zip(max).map(|(min, max)| KeyRange {
            column: column.clone(),
            min,
            max,
        }))
    }

    /// A table with an integer key (its rowid, or the key of a WITHOUT ROWID table: either
    /// way the order the table is stored in) split into `n` equal spans of keys.
    fn split(&mut self, plan: &Plan, n: usize) -> anyhow::Result<Vec<i64>> {
        Ok(plan.key.as_ref().map_or_else(Vec::new, |k| {
            let span = BUCKETS * k.width;
            let n = (n as i64).min(span / MIN_PIECE_KEYS).max(1);
            (1..n).map(|i| k.lo + span * i / n).collect()
        }))
    }

    /// Streams the rows of the plan's table (its sample) and adds up their hashes per range:
    /// each value by its storage class (see `RowBytes`), columns in their declared order.
    fn parts(&mut self, plan: &Plan, piece: Piece) -> anyhow::Result<BTreeMap<i64, Part>> {
        let conn = self.conn.borrow();
        let key = plan.key.as_ref().map_or_else(
            || "0".into(),
            |k| format!("drill_row_.{}", quote(&k.column)),
        );
        // The range is computed here from the key: cheaper than in SQL for every row.
        let filter = plan.filter_sql(quote, piece.sql(&key, |k| k.to_string()));
        let sql = format!(
            "SELECT {key}, drill_row_.* FROM {} drill_row_{filter}",
            quote(&plan.table)
        );
        let mut stmt = conn.prepare(&sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query([])?;
        let mut by_range = Ranges::default();
        let mut bytes = RowBytes::default();
        while let Some(row) = rows.next()? {
            bytes.clear();
            for i in 1..columns {
                match row.get_ref(i)? {
                    ValueRef::Null => bytes.null(),
                    ValueRef::Integer(n) => bytes.integer(n),
                    ValueRef::Real(f) => bytes.real(f),
                    ValueRef::Text(t) => bytes.text(t),
                    ValueRef::Blob(b) => bytes.blob(b),
                }
            }
            let range = plan.bucket_of(row.get(0)?);
            by_range.add_row(range, bytes.hash());
        }
        Ok(by_range.into_parts())
    }
}

/// Read connections of `path` for digesting in parallel: as many as there are cores,
/// up to 4, less one for the caller's own.
pub fn readers(path: &Path, n: usize) -> anyhow::Result<Vec<Box<dyn Digester + Send>>> {
    (0..n)
        .map(|_| {
            let conn = open_read_only(path)?;
            Ok(Box::new(Lite { conn, path: None }) as Box<dyn Digester + Send>)
        })
        .collect()
}

/// How many more read connections digest beside the caller's.
pub fn extra_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4)) - 1
}

/// The digests of every user table of the database file `path` (a backup's copy: the
/// snapshot itself), on parallel read connections.
pub fn digest_file(
    path: &Path,
    sample: Option<f64>,
) -> anyhow::Result<IndexMap<String, TableDigest>> {
    let conn = open_read_only(path)?;
    let tables = user_tables(&conn)?;
    let mut first = Lite { conn, path: None };
    let more = readers(path, extra_workers())?;
    digest::digest_tables(&mut first, more, &tables, sample)
}

/// Views and triggers, as `view name` / `trigger name`.
pub fn objects(conn: &Connection) -> anyhow::Result<Vec<String>> {
    names(
        conn,
        "SELECT type || ' ' || name FROM sqlite_schema WHERE type IN ('view', 'trigger') AND name NOT LIKE 'sqlite_%' ORDER BY 1",
    )
}
