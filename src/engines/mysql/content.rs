//! What row counts cannot see, in MySQL/MariaDB: content digests (every row streamed and
//! hashed here), views, triggers, routines, events and sequences, AUTO_INCREMENT counters
//! behind their column, and users and their privileges.

use std::collections::BTreeMap;

use anyhow::Context as _;
use indexmap::IndexMap;
use mysql::Value;
use mysql::prelude::Queryable as _;

use super::{base_tables, ident};
use crate::engines::digest::{
    self, Digester, KeyRange, Part, Piece, Plan, Ranges, RowBytes, TableDigest,
};
use crate::engines::roles::{Grant, Roles};
use crate::engines::{Content, Sequences};

/// A connection answering what row counts cannot see.
pub struct My<'a>(pub &'a mut mysql::Conn);

impl Digester for My<'_> {
    /// The table's primary key when it is one integer column, and its range.
    fn key_range(&mut self, table: &str) -> anyhow::Result<Option<KeyRange>> {
        let c = &mut *self.0;
        let pk: Vec<(String, String)> = c.exec(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = ? AND column_key = 'PRI'",
            (table,),
        )?;
        let [(column, ty)] = pk.as_slice() else {
            return Ok(None);
        };
        if !INTEGERS.contains(&ty.to_lowercase().as_str()) {
            return Ok(None);
        }
        let k = ident(column);
        let row: Option<(Option<String>, Option<String>)> = c.query_first(format!(
            "SELECT CAST(MIN({k}) AS CHAR), CAST(MAX({k}) AS CHAR) FROM {}",
            ident(table)
        ))?;
        let parse = |v: Option<String>| v.and_then(|v| v.parse::<i64>().ok());
        Ok(row.and_then(|(min, max)| {
            parse(min).zip(parse(max)).map(|(min, max)| KeyRange {
                column: column.clone(),
                min,
                max,
            })
        }))
    }

    /// Streams the rows (`SELECT *`: columns in their ordinal order) and hashes each here
    /// (`RowBytes`, as SQLite's): every value as the text protocol sends it, NULL apart
    /// from any bytes. Meanwhile `character_set_results` is `binary`, so strings come as
    /// their bytes in the column's character set, and `time_zone` is UTC.
    fn parts(&mut self, plan: &Plan, _piece: Piece) -> anyhow::Result<BTreeMap<i64, Part>> {
        let c = &mut *self.0;
        let key = plan.key.as_ref().map_or_else(
            || "0".into(),
            |k| format!("drill_row_.{}", ident(&k.column)),
        );
        let filter = plan.filter_sql(ident, None);
        let sql = format!(
            "SELECT {key}, drill_row_.* FROM {} drill_row_{filter}",
            ident(&plan.table)
        );
        let results: Option<Option<String>> = c.query_first("SELECT @@character_set_results")?;
        c.query_drop("SET SESSION time_zone = '+00:00', character_set_results = binary")?;
        let parts = add_up(c, &sql, plan);
        let results = results
            .flatten()
            .filter(|cs| cs.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'))
            .unwrap_or_else(|| "NULL".into());
        c.query_drop(format!("SET SESSION character_set_results = {results}"))?;
        parts
    }
}

/// The rows of `sql` (the range's key, then the row) hashed and added up per range.
fn add_up(c: &mut mysql::Conn, sql: &str, plan: &Plan) -> anyhow::Result<BTreeMap<i64, Part>> {
    let mut by_range = Ranges::default();
    let mut bytes = RowBytes::default();
    for row in c.query_iter(sql)? {
        let row = row?;
        bytes.clear();
        for i in 1..row.len() {
            match row.as_ref(i) {
                Some(Value::Bytes(b)) => bytes.text(b),
                Some(Value::NULL) => bytes.null(),
                other => anyhow::bail!("{}: a value not in text: {other:?}", plan.table),
            }
        }
        let key = match row.as_ref(0) {
            Some(Value::Bytes(b)) => std::str::from_utf8(b).ok().and_then(|k| k.parse().ok()),
            _ => None,
        };
        let key = key.with_context(|| format!("{}: a row without its key", plan.table))?;
        by_range.add_row(plan.bucket_of(key), bytes.hash());
    }
    Ok(by_range.into_parts())
}

impl Content for My<'_> {
    /// Views, triggers, functions, procedures, events and sequences of the current database.
    fn objects(&mut self) -> anyhow::Result<Vec<String>> {
        let c = &mut *self.0;
        let mut all: Vec<String> = Vec::new();
        for sql in [
            "SELECT CONCAT('view ', table_name) FROM information_schema.views WHERE table_schema = DATABASE()",
            "SELECT CONCAT('trigger ', trigger_name) FROM information_schema.triggers WHERE trigger_schema = DATABASE()",
            "SELECT CONCAT(LOWER(routine_type), ' ', routine_name) FROM information_schema.routines WHERE routine_schema = DATABASE()",
            "SELECT CONCAT('event ', event_name) FROM information_schema.events WHERE event_schema = DATABASE()",
            "SELECT CONCAT('sequence ', table_name) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'SEQUENCE'",
        ] {
            all.extend(c.query::<String, _>(sql)?);
        }
        all.sort();
        Ok(all)
    }

    /// AUTO_INCREMENT counters that are not above their column's largest value.
    fn sequences(&mut self) -> anyhow::Result<Sequences> {
        let c = &mut *self.0;
        // MySQL 8 caches these statistics; MariaDB has no such setting.
        let _ = c.query_drop("SET SESSION information_schema_stats_expiry = 0");
        let counters: Vec<(String, String, Option<String>)> = c.query(
            "SELECT t.table_name, c.column_name, CAST(t.auto_increment AS CHAR) FROM information_schema.tables t \
             JOIN information_schema.columns c ON c.table_schema = t.table_schema AND c.table_name = t.table_name \
             WHERE t.table_schema = DATABASE() AND t.table_type = 'BASE TABLE' AND c.extra LIKE '%auto_increment%' \
             ORDER BY t.table_name",
        )?;
        let mut found = Sequences {
            checked: counters.len(),
            behind: Vec::new(),
        };
        for (table, column, next) in counters {
            let next = next.and_then(|n| n.parse::<u64>().ok());
            let max: Option<Option<String>> = c.query_first(format!(
                "SELECT CAST(MAX({}) AS CHAR) FROM {}",
                ident(&column),
                ident(&table)
            ))?;
            let max = max.flatten().and_then(|m| m.parse::<i128>().ok());
            if let (Some(max), Some(next)) = (max, next)
                && i128::from(next) <= max
            {
                found.behind.push(format!(
                    "AUTO_INCREMENT of {table} is {next}, not above max({column}) = {max}"
                ));
            }
        }
        let (fed, behind) = fed_by_sequences(c)?;
        found.checked += fed;
        found.behind.extend(behind);
        Ok(found)
    }

    fn roles(&mut self) -> Option<&mut dyn Roles> {
        Some(self)
    }
}

/// The digests of every base table, in the connection's current transaction.
pub fn digest_all(
    c: &mut mysql::Conn,
    sample: Option<f64>,
) -> anyhow::Result<IndexMap<String, TableDigest>> {
    let tables = base_tables(c)?;
    digest::digest_tables(&mut My(c), Vec::new(), &tables, sample)
}

const INTEGERS: &[&str] = &["tinyint", "smallint", "mediumint", "int", "bigint"];

/// How many MariaDB sequences feed a key (`DEFAULT NEXTVAL(seq)`), and those whose next
/// value (as a restarted server would hand it out) is not above the column's largest
/// value.
fn fed_by_sequences(c: &mut mysql::Conn) -> anyhow::Result<(usize, Vec<String>)> {
    let fed: Vec<(String, String, String)> = c.query(
        "SELECT table_name, column_name, column_default FROM information_schema.columns \
         WHERE table_schema = DATABASE() AND LOWER(column_default) LIKE 'nextval(%' ORDER BY table_name",
    )?;
    let checked = fed.len();
    let mut problems = Vec::new();
    for (table, column, default) in fed {
        // nextval(`db`.`seq`): the sequence's own name.
        let inner = default
            .trim_end_matches(')')
            .split_once('(')
            .map_or("", |(_, inside)| inside);
        let seq = inner
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .trim_matches('`');
        let next: Option<(Option<String>, Option<String>)> = c.query_first(format!(
            "SELECT CAST(next_not_cached_value AS CHAR), (SELECT CAST(MAX({}) AS CHAR) FROM {}) FROM {}",
            ident(&column),
            ident(&table),
            ident(seq)
        ))?;
        let parse = |v: Option<String>| v.and_then(|v| v.parse::<i128>().ok());
        if let Some((Some(next), Some(max))) = next.map(|(n, m)| (parse(n), parse(m)))
            && next <= max
        {
            problems.push(format!(
                "sequence {seq} (feeding {table}.{column}) is at {next}, not above max({column}) = {max}"
            ));
        }
    }
    Ok((checked, problems))
}

/// MySQL users (`name` on any host, or `name@host`), and the privileges they hold
/// globally, on the current database or on the table.
impl Roles for My<'_> {
    fn noun(&self) -> &'static str {
        "user"
    }

    fn login(&mut self, role: &str) -> anyhow::Result<Option<Option<&'static str>>> {
        let (user, host) = role.split_once('@').unwrap_or((role, "%"));
        let locked = accounts(self.0, user, host)?;
        Ok(match locked.as_slice() {
            [] => None,
            all if all.iter().all(|l| *l) => Some(Some("locked")),
            _ => Some(None),
        })
    }

    fn holds(&mut self, role: &str, grant: &Grant) -> anyhow::Result<Result<bool, String>> {
        let (privilege, table) = (&grant.privilege, &grant.table);
        let grantee = match role.split_once('@') {
            Some((user, host)) => format!("'{}'@'{}'", like_escape(user), like_escape(host)),
            None => format!("'{}'@'%'", like_escape(role)),
        };
        let held: Option<u64> = self.0.exec_first(
            "SELECT COUNT(*) FROM ( \
               SELECT grantee FROM information_schema.user_privileges WHERE privilege_type = ? \
               UNION ALL SELECT grantee FROM information_schema.schema_privileges \
                 WHERE table_schema = DATABASE() AND privilege_type = ? \
               UNION ALL SELECT grantee FROM information_schema.table_privileges \
                 WHERE table_schema = DATABASE() AND table_name = ? AND privilege_type = ? \
             ) g WHERE grantee LIKE ?",
            (privilege, privilege, table, privilege, &grantee),
        )?;
        Ok(Ok(held.unwrap_or(0) > 0))
    }
}

/// Whether each account of `user` on hosts matching `host` is locked: MariaDB keeps it
/// in `mysql.global_priv`, MySQL in `mysql.user`.
fn accounts(c: &mut mysql::Conn, user: &str, host: &str) -> anyhow::Result<Vec<bool>> {
    let mariadb = "SELECT CAST(COALESCE(JSON_VALUE(priv, '$.account_locked'), 'false') AS CHAR) \
                   FROM mysql.global_priv WHERE user = ? AND host LIKE ?";
    let mysql = "SELECT IF(account_locked = 'Y', 'true', 'false') FROM mysql.user WHERE user = ? AND host LIKE ?";
    let locked: Vec<String> = match c.exec(mariadb, (user, host)) {
        Ok(rows) => rows,
        Err(_) => c.exec(mysql, (user, host))?,
    };
    Ok(locked.iter().map(|l| l == "true").collect())
}

/// `name` matched literally by LIKE.
fn like_escape(name: &str) -> String {
    name.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
