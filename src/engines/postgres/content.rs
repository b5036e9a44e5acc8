//! What row counts cannot see, in PostgreSQL: content digests (every row copied out as
//! COPY's text and hashed in the drill, see `copy`), views, triggers, functions,
//! sequences and extensions, sequences behind their column's largest value, and roles
//! and their table privileges.

use std::borrow::BorrowMut;
use std::collections::BTreeMap;

use anyhow::Context as _;
use indexmap::IndexMap;
use postgres::Client;

use super::catalog::{self, Table, ident, quoted};
use super::copy::{self, Psql};
use super::url::PgUrl;
use super::url::db_message;
use crate::engines::digest::{self, Digester, KeyRange, Part, Piece, Plan, TableDigest};
use crate::engines::roles::{Grant, Roles};
use crate::engines::{Content, Sequences};

/// A table is split among workers only into pieces of at least this many pages (8 MB).
const MIN_PIECE_PAGES: i64 = 1024;

/// A connection (`&mut Client`, or a worker's own `Client`) answering what row counts
/// cannot see; with the `url` it came from, it opens more to digest in parallel. With
/// `psql`, rows are copied out through it (in its snapshot); without, on the connection.
pub struct Pg<C> {
    pub c: C,
    pub url: Option<PgUrl>,
    pub psql: Option<Psql>,
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

    /// The rows of the piece copied out (`copy::copy_sql`), each line hashed and added
    /// up per range, through psql or on the connection.
    fn parts(&mut self, plan: &Plan, piece: Piece) -> anyhow::Result<BTreeMap<i64, Part>> {
        let c = self.c.borrow_mut();
        let (oid, t) = lookup(c, &plan.table)?;
        let key_field = match &plan.key {
            Some(k) => Some(column_index(c, oid, &k.column)?),
            None => None,
        };
        let rows = copy::Rows {
            plan,
            piece,
            quoted: quoted(&t),
            key_field,
        };
        match &self.psql {
            Some(psql) => psql.parts(&rows),
            None => copy::parts_on(c, &rows),
        }
    }
}

impl<C: BorrowMut<Client>> Content for Pg<C> {
    fn objects(&mut self) -> anyhow::Result<Vec<String>> {
        catalog::objects(self.c.borrow_mut())
    }

    fn more_digesters(&mut self, n: usize) -> anyhow::Result<Vec<Box<dyn Digester + Send>>> {
        let n = n.min(extra_workers());
        let psql = self.psql.as_ref();
        self.url
            .as_ref()
            .map_or(Ok(Vec::new()), |url| workers(url, None, psql, n))
    }

    /// Sequences owned by a column (serial, identity) whose next value is not past the
    /// column's largest (smallest, counting down) value.
    fn sequences(&mut self) -> anyhow::Result<Sequences> {
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
        let mut found = Sequences {
            checked: owned.len(),
            behind: Vec::new(),
        };
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
                found.behind.push(format!(
                    "sequence {seq} is {at}, next value {next}, not past {agg}({}.{column}) = {extreme}",
                    catalog::qualified(&table)
                ));
            }
        }
        Ok(found)
    }

    fn roles(&mut self) -> Option<&mut dyn Roles> {
        Some(self)
    }
}

/// How many more connections digest beside the caller's.
pub fn extra_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4)) - 1
}

/// Up to `n` connections to `url`, each in the exported `snapshot` when there is one,
/// copying out through `psql` when given.
pub fn workers(
    url: &PgUrl,
    snapshot: Option<&str>,
    psql: Option<&Psql>,
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
            let psql = psql.cloned();
            Ok(Box::new(Pg { c, url: None, psql }) as Box<dyn Digester + Send>)
        })
        .collect()
}

/// The digests of every user table, `tx` (through `psql` when given, in the snapshot
/// `tx` exported) and `more` in one snapshot.
pub fn digest_all(
    tx: &mut Client,
    psql: Option<Psql>,
    more: Vec<Box<dyn Digester + Send>>,
    sample: Option<f64>,
) -> anyhow::Result<IndexMap<String, TableDigest>> {
    let tables: Vec<String> = catalog::tables(tx)?
        .iter()
        .map(catalog::qualified)
        .collect();
    let mut first = Pg {
        c: tx,
        url: None,
        psql,
    };
    digest::digest_tables(&mut first, more, &tables, sample)
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

/// Where `column` of the table `oid` is among the columns of `SELECT *` (from 0).
fn column_index(c: &mut Client, oid: u32, column: &str) -> anyhow::Result<usize> {
    let row = c.query_one(
        "SELECT count(*) FROM pg_attribute a JOIN pg_attribute k ON k.attrelid = a.attrelid
         WHERE a.attrelid = $1 AND k.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped
           AND a.attnum < k.attnum",
        &[&oid, &column],
    )?;
    Ok(row.get::<_, i64>(0) as usize)
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
