//! What row counts cannot see, in PostgreSQL: content digests (each row's text hashed
//! by the server with SHA-256, the sums added up by the server), views, triggers,
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
use crate::engines::digest::{self, Digester, KeyRange, Part, Plan, TableDigest};
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

    /// Each row's text (the row as `ROW(t.*)::text` prints it: columns in their order, NULL
    /// as nothing, an empty string as `""`) hashed with SHA-256 by the server, the high and
    /// low 64 bits of the hashes added up exactly per range.
    fn parts(&mut self, plan: &Plan) -> anyhow::Result<BTreeMap<i64, Part>> {
        let c = self.c.borrow_mut();
        let (_, t) = lookup(c, &plan.table)?;
        let (bucket, filter) = plan.row_sql(ident, "/");
        let half = |from: u8| {
            format!(
                "coalesce(sum(('x' || encode(substr(h, {from}, 8), 'hex'))::bit(64)::int8), 0)::text"
            )
        };
        let sql = format!(
            "SELECT b::int8, count(*), {}, {} FROM (
               SELECT {} AS b, sha256(textsend(ROW(drill_row_.*)::text)) AS h FROM {} drill_row_{filter}
             ) s GROUP BY b",
            half(1),
            half(9),
            bucket,
            quoted(&t)
        );
        c.batch_execute(SETTLED)?;
        let rows = c
            .query(&sql, &[])
            .map_err(|e| anyhow::anyhow!("{}: {}", plan.table, db_message(&e)))?;
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
