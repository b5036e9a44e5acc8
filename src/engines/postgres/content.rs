//! What row counts cannot see, in PostgreSQL: content digests (each row's text hashed
//! by the server with `hashtextextended`, the sums added up by the server), views, triggers,
//! functions, sequences and extensions, sequences behind their column's largest value,
//! and roles and their table privileges.

use std::borrow::BorrowMut;
use std::collections::BTreeMap;

use anyhow::Context as _;
use indexmap::IndexMap;
use postgres::Client;

use super::catalog::{self, Table, ident, quoted};
use super::url::PgUrl;
use super::url::db_message;
use crate::engines::Content;
use crate::engines::digest::{self, Digester, KeyRange, Part, Piece, Plan, TableDigest};

/// A table is split among workers only into pieces of at least this many pages (8 MB).
const MIN_PIECE_PAGES: i64 = 1024;
use crate::engines::roles::{Grant, Roles};

/// Session settings that fix how values print, so that the source and its restore print
/// a value alike whatever the servers' defaults: dates and times in UTC and ISO, floats
/// shortest-exact, bytea in hex.
const SETTLED: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET bytea_output = 'hex'";

/// A connection (`&mut Client`, or a worker's own `Client`) answering what row counts
/// cannot see; with the `url` it came from, it opens more to digest in parallel.
pub struct Pg<C> {
    pub c: C,
    pub url: Option<PgUrl>,
}

impl<C: BorrowMut<Client>> Digester for Pg<C> {
    /// The table's primary key when it is one column of an integer type, and its range.
    fn key_range(&mut self, table: &str) -> anyhow::Result<Option<KeyRange>> {
        let c = self.c.borrow_mut();
        let (oid, t) = lookup(c, table)?;
        let key = c.query_opt(
            "SELECT a.attname::text FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE i.indrelid = $1 AND i.indisprimary AND i.indnatts = 1
               AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)",
            &[&oid],
        )?;
        let Some(column) = key.map(|r| r.get::<_, String>(0)) else {
            return Ok(None);
        };
        let k = ident(&column);
        let row = c.query_one(
            &format!("SELECT min({k})::int8, max({k})::int8 FROM {}", quoted(&t)),
            &[],
        )?;
        let (min, max): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
        Ok(min.zip(max).map(|(min, max)| KeyRange { column, min, max }))
    }

    /// A table of at least two pieces' worth of heap pages split into up to `n` equal
    /// spans of pages (read by TID range scans, from PostgreSQL 14 on; before, each piece
    /// would scan the whole table, so it is not split). The pages are counted once, in
    /// the snapshot's transaction: rows visible to it are on pages that existed then.
    fn split(&mut self, plan: &Plan, n: usize) -> anyhow::Result<Vec<i64>> {
        if n < 2 {
            return Ok(Vec::new());
        }
        let c = self.c.borrow_mut();
        let (oid, _) = lookup(c, &plan.table)?;
        let row = c.query_one(
            "SELECT current_setting('server_version_num')::int >= 140000,
                    pg_relation_size($1::oid::regclass) / current_setting('block_size')::int8",
            &[&oid],
        )?;
        let (tid_ranges, pages): (bool, i64) = (row.get(0), row.get(1));
        let n = (n as i64).min(pages / MIN_PIECE_PAGES);
        Ok(if tid_ranges && n > 1 {
            (1..n).map(|i| pages * i / n).collect()
        } else {
            Vec::new()
        })
    }

    /// Each row's text (the row as `ROW(t.*)::text` prints it: columns in their order, NULL
    /// as nothing, an empty string as `""`) hashed by the server with `hashtextextended`
    /// under two seeds, the high and the low 64 bits of the row's hash, added up exactly
    /// per range. The text is made once a row (the subquery's `OFFSET 0` keeps the planner
    /// from computing it for each hash); the ranges are few, so they are grouped by hash
    /// (sorting the rows by range would spill them to disk); and the query is too cheap
    /// per row for JIT compilation to pay.
    fn parts(&mut self, plan: &Plan, piece: Piece) -> anyhow::Result<BTreeMap<i64, Part>> {
        let c = self.c.borrow_mut();
        let (_, t) = lookup(c, &plan.table)?;
        let pages = piece.sql("drill_row_.ctid", |p| format!("'({p},0)'::tid"));
        let (bucket, filter) = plan.row_sql(ident, "/", pages);
        let half =
            |seed: u8| format!("coalesce(sum(hashtextextended(x COLLATE \"C\", {seed})), 0)::text");
        let sql = format!(
            "SELECT b::int8, count(*), {}, {} FROM (
               SELECT {bucket} AS b, ROW(drill_row_.*)::text AS x FROM {} drill_row_{filter} OFFSET 0
             ) s GROUP BY b",
            half(1),
            half(2),
            quoted(&t)
        );
        c.batch_execute(SETTLED)?;
        c.batch_execute("SET enable_sort = off; SET jit = off")?;
        let rows = c
            .query(&sql, &[])
            .map_err(|e| anyhow::anyhow!("{}: {}", plan.table, db_message(&e)))?;
        c.batch_execute("RESET enable_sort; RESET jit")?;
        rows.iter()
            .map(|r| {
                let (b, n): (i64, i64) = (r.get(0), r.get(1));
                Ok((b, Part::from_halves(n as u64, r.get(2), r.get(3))?))
            })
            .collect()
    }
}

impl<C: BorrowMut<Client>> Content for Pg<C> {
    fn objects(&mut self) -> anyhow::Result<Vec<String>> {
        catalog::objects(self.c.borrow_mut())
    }

    fn more_digesters(&mut self, n: usize) -> anyhow::Result<Vec<Box<dyn Digester + Send>>> {
        let n = n.min(extra_workers());
        self.url
            .as_ref()
            .map_or(Ok(Vec::new()), |url| workers(url, None, n))
    }

    /// Sequences owned by a column (serial, identity) whose next value is not past the
    /// column's largest (smallest, counting down) value.
    fn sequence_problems(&mut self) -> anyhow::Result<Vec<String>> {
        let c = self.c.borrow_mut();
        let owned = c.query(
            "SELECT sn.nspname || '.' || s.relname, tn.nspname::text, t.relname::text, a.attname::text,
                    ps.last_value, ps.start_value, ps.increment_by
             FROM pg_class s JOIN pg_namespace sn ON sn.oid = s.relnamespace
             JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
             JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
             JOIN pg_sequences ps ON ps.schemaname = sn.nspname AND ps.sequencename = s.relname
             WHERE s.relkind = 'S' ORDER BY 1",
            &[],
        )?;
        let mut problems = Vec::new();
        for r in owned {
            let (seq, table, column): (String, Table, String) =
                (r.get(0), (r.get(1), r.get(2)), r.get(3));
            let (last, start, step): (Option<i64>, i64, i64) = (r.get(4), r.get(5), r.get(6));
            let next = last.map_or(i128::from(start), |l| i128::from(l) + i128::from(step));
            let agg = if step > 0 { "max" } else { "min" };
            let col = ident(&column);
            let extreme: Option<String> = c
                .query_one(
                    &format!("SELECT {agg}({col})::text FROM {}", quoted(&table)),
                    &[],
                )?
                .get(0);
            let Some(extreme) = extreme.and_then(|v| v.parse::<i128>().ok()) else {
                continue;
            };
            let ahead = if step > 0 {
                next > extreme
            } else {
                next < extreme
            };
            if !ahead {
                let at = last.map_or_else(
                    || format!("unused (starts at {start})"),
                    |l| format!("at {l}"),
                );
                problems.push(format!(
                    "sequence {seq} is {at}, next value {next}, not past {agg}({}.{column}) = {extreme}",
                    catalog::qualified(&table)
                ));
            }
        }
        Ok(problems)
    }

    fn roles(&mut self) -> Option<&mut dyn Roles> {
        Some(self)
    }
}

/// How many more connections digest beside the caller's.
pub fn extra_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4)) - 1
}

/// Up to `n` connections to `url`, each in the exported `snapshot` when there is one.
pub fn workers(
    url: &PgUrl,
    snapshot: Option<&str>,
    n: usize,
) -> anyhow::Result<Vec<Box<dyn Digester + Send>>> {
    (0..n)
        .map(|_| {
            let mut c = url.connect()?;
            if let Some(s) = snapshot {
                c.batch_execute(&format!(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
                    s.replace('\'', "''")
                ))
                .map_err(|e| anyhow::anyhow!("importing the dump's snapshot: {}", db_message(&e)))?;
            }
            Ok(Box::new(Pg { c, url: None }) as Box<dyn Digester + Send>)
        })
        .collect()
}

/// The digests of every user table, `tx` and `more` in one snapshot.
pub fn digest_all(
    tx: &mut Client,
    more: Vec<Box<dyn Digester + Send>>,
    sample: Option<f64>,
) -> anyhow::Result<IndexMap<String, TableDigest>> {
    let tables: Vec<String> = catalog::tables(tx)?
        .iter()
        .map(catalog::qualified)
        .collect();
    digest::digest_tables(&mut Pg { c: tx, url: None }, more, &tables, sample)
}

/// The user table named `schema.name`.
fn lookup(c: &mut Client, table: &str) -> anyhow::Result<(u32, Table)> {
    let row = c
        .query_opt(
            "SELECT c.oid, n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname || '.' || c.relname = $1 AND c.relkind IN ('r', 'p')",
            &[&table],
        )?
        .with_context(|| format!("table `{table}` does not exist"))?;
    Ok((row.get(0), (row.get(1), row.get(2))))
}

/// PostgreSQL roles: `pg_roles`, and `has_table_privilege` (the table found through the
/// search_path).
impl<C: BorrowMut<Client>> Roles for Pg<C> {
    fn noun(&self) -> &'static str {
        "role"
    }

    fn login(&mut self, role: &str) -> anyhow::Result<Option<Option<&'static str>>> {
        let row = self.c.borrow_mut().query_opt(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
            &[&role],
        )?;
        Ok(row.map(|r| (!r.get::<_, bool>(0)).then_some("NOLOGIN")))
    }

    fn holds(&mut self, role: &str, grant: &Grant) -> anyhow::Result<Result<bool, String>> {
        let (privilege, table) = (&grant.privilege, &grant.table);
        let sql = "SELECT has_table_privilege($1, $2, $3)";
        Ok(
            match self
                .c
                .borrow_mut()
                .query_one(sql, &[&role, table, privilege])
            {
                Ok(row) => Ok(row.get(0)),
                Err(e) => Err(db_message(&e)),
            },
        )
    }
}
