//! `SqlConn` for PostgreSQL through the `postgres` crate: verification queries, and the
//! builtins (tables, indexes, exact counts, foreign keys with orphan rows, amcheck).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use indexmap::IndexMap;
use postgres::types::Type;
use postgres::{Client, SimpleQueryMessage};
use serde_json::Value;

use super::bin::Bins;
use super::catalog;
use super::content;
use super::copy::Psql;
use super::url::PgUrl;
pub use super::url::db_message;
use crate::engines::Content;
use crate::engines::SqlConn;
use crate::proc::{Cancel, OnCancel};

pub struct PgConn {
    client: Client,
    url: PgUrl,
    /// Cancels the running query when the step is cancelled (see `interrupt_on`).
    interrupt: Option<OnCancel>,
    /// Copies rows out for digests (without: on this connection).
    psql: Option<Psql>,
}

impl PgConn {
    pub fn open(url: &str) -> anyhow::Result<Self> {
        let url = PgUrl::parse(url)?;
        Ok(Self {
            client: url.connect()?,
            url,
            interrupt: None,
            psql: None,
        })
    }

    /// Every transaction of the session read-only: a connection opened only for checks
    /// never writes, whatever a check's query says (a `DELETE ... RETURNING` in a CTE).
    pub fn read_only(mut self) -> anyhow::Result<Self> {
        self.client
            .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")?;
        Ok(self)
    }

    /// Copies rows out for digests through psql (found as a client program: PATH first,
    /// see `Bins`), its password file and messages in `scratch`, stopped with `cancel`;
    /// where psql is not found, on this connection.
    pub fn copying_with(mut self, scratch: PathBuf, cancel: &Arc<Cancel>) -> Self {
        self.psql = Bins::new(None)
            .and_then(|b| b.client_unwrapped("psql"))
            .ok()
            .map(|bin| Psql::new(bin, &self.url, scratch, cancel));
        self
    }

    /// Cancels the running query (server side) when the step is cancelled.
    pub fn interrupted_by(mut self, cancel: &Arc<Cancel>) -> Self {
        let token = self.client.cancel_token();
        self.interrupt = Some(cancel.on_cancel(move || {
            let _ = token.cancel_query(postgres::NoTls);
        }));
        self
    }

    fn amcheck_version(&mut self) -> anyhow::Result<Option<String>> {
        let row = self.client.query_opt(
            "SELECT extversion FROM pg_extension WHERE extname = 'amcheck'",
            &[],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    /// `bt_index_check` on every valid btree index of the user schemas;
    /// `heapallindexed` (the full check) also proves every heap tuple is in the index.
    fn check_btrees(
        &mut self,
        heapallindexed: bool,
        problems: &mut Vec<String>,
    ) -> anyhow::Result<usize> {
        let indexes: Vec<String> = self
            .client
            .query(
                "SELECT c.oid::regclass::text FROM pg_index i
                 JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE a.amname = 'btree' AND i.indisvalid AND i.indisready AND c.relpersistence <> 't'
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
                 ORDER BY 1",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for index in &indexes {
            if let Err(e) = self.client.execute(
                "SELECT bt_index_check($1::text::regclass, $2)",
                &[index, &heapallindexed],
            ) {
                problems.push(format!("index {index}: {}", db_message(&e)));
            }
        }
        Ok(indexes.len())
    }

    /// `verify_heapam` (amcheck 1.3, PostgreSQL 14+) on every user table.
    fn check_heaps(&mut self, problems: &mut Vec<String>) -> anyhow::Result<usize> {
        let tables = catalog::tables(&mut self.client)?;
        let mut checked = 0;
        for t in &tables {
            let rows = self.client.query(
                "SELECT blkno, offnum, msg FROM verify_heapam($1::text::regclass) LIMIT 10",
                &[&catalog::quoted(t)],
            );
            match rows {
                Ok(rows) => {
                    checked += 1;
                    problems.extend(rows.iter().map(|r| {
                        let (blk, off, msg): (i64, Option<i32>, String) =
                            (r.get(0), r.get(1), r.get(2));
                        format!(
                            "table {} block {blk} offset {}: {msg}",
                            catalog::qualified(t),
                            off.unwrap_or(0)
                        )
                    }));
                }
                // Partitioned parents have no storage of their own.
                Err(e) if db_message(&e).contains("partitioned") => {}
                Err(e) => problems.push(format!(
                    "table {}: {}",
                    catalog::qualified(t),
                    db_message(&e)
                )),
            }
        }
        Ok(checked)
    }
}

impl SqlConn for PgConn {
    fn execute_batch(&mut self, sql: &str) -> anyhow::Result<()> {
        self.client
            .batch_execute(sql)
            .map_err(|e| anyhow::anyhow!("{}", db_message(&e)))
    }

    /// Rows as JSON with their SQL types (numbers, booleans, json), read as text so that
    /// any type (numeric, timestamptz, ...) has a value.
    fn query(&mut self, sql: &str) -> anyhow::Result<Vec<Vec<Value>>> {
        // Types come from preparing the statement; a multi-statement string cannot be
        // prepared and is returned as text.
        let types: Vec<Type> = match self.client.prepare(sql) {
            Ok(stmt) => stmt.columns().iter().map(|c| c.type_().clone()).collect(),
            Err(_) => Vec::new(),
        };
        let messages = self
            .client
            .simple_query(sql)
            .map_err(|e| anyhow::anyhow!("{}", db_message(&e)))?;
        let mut rows = Vec::new();
        for m in messages {
            if let SimpleQueryMessage::Row(row) = m {
                let cells = (0..row.len())
                    .map(|i| to_json(row.get(i), types.get(i)))
                    .collect();
                rows.push(cells);
            }
        }
        Ok(rows)
    }

    fn tables(&mut self) -> anyhow::Result<Vec<String>> {
        Ok(catalog::tables(&mut self.client)?
            .iter()
            .map(catalog::qualified)
            .collect())
    }

    fn indexes(&mut self) -> anyhow::Result<Vec<String>> {
        catalog::indexes(&mut self.client)
    }

    fn resolve_tables(&mut self, names: &[String]) -> anyhow::Result<Vec<String>> {
        let existing = catalog::tables(&mut self.client)?;
        // The schemas of the search_path that exist, in order (`$user` resolved).
        let search_path: Vec<String> = self
            .client
            .query_one("SELECT current_schemas(false)::text[]", &[])?
            .get(0);
        Ok(names
            .iter()
            .map(
                |name| match existing.iter().any(|t| catalog::qualified(t) == *name) {
                    true => name.clone(),
                    false => catalog::resolve(name, &search_path, &existing)
                        .map_or_else(|| name.clone(), |t| catalog::qualified(&t)),
                },
            )
            .collect())
    }

    fn count_rows(&mut self, tables: &[String]) -> anyhow::Result<IndexMap<String, u64>> {
        let existing = catalog::tables(&mut self.client)?;
        let wanted = tables
            .iter()
            .map(|name| {
                existing
                    .iter()
                    .find(|t| catalog::qualified(t) == *name)
                    .cloned()
                    .with_context(|| format!("table `{name}` does not exist (names are schema-qualified, such as public.{name})"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        catalog::count_rows(&mut self.client, &wanted)
    }

    fn integrity_problems(&mut self, quick: bool) -> anyhow::Result<Vec<String>> {
        if self.amcheck_version()?.is_none() {
            return Ok(vec![
                "amcheck is not available in this database, so nothing was checked (a restore into an ephemeral cluster installs it; elsewhere run CREATE EXTENSION amcheck)".into(),
            ]);
        }
        let mut problems = Vec::new();
        self.check_btrees(!quick, &mut problems)?;
        // verify_heapam arrived with amcheck 1.3 (PostgreSQL 14).
        let has_heap_check: bool = self
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'verify_heapam')",
                &[],
            )?
            .get(0);
        if !quick && has_heap_check {
            self.check_heaps(&mut problems)?;
        }
        Ok(problems)
    }

    fn foreign_key_names(&mut self) -> anyhow::Result<Option<Vec<String>>> {
        Ok(Some(
            catalog::foreign_keys(&mut self.client)?
                .into_iter()
                .map(|fk| fk.name)
                .collect(),
        ))
    }

    fn content(&mut self) -> Box<dyn Content + '_> {
        let url = Some(self.url.clone());
        Box::new(content::Pg {
            c: &mut self.client,
            url,
            psql: self.psql.clone(),
        })
    }

    fn foreign_key_problems(&mut self) -> anyhow::Result<Vec<String>> {
        let mut problems = Vec::new();
        for fk in catalog::foreign_keys(&mut self.client)? {
            if !fk.validated {
                problems.push(format!(
                    "{} is NOT VALID: its rows were never checked",
                    fk.name
                ));
            }
            let orphans: i64 = self
                .client
                .query_one(&fk.orphan_query(), &[])
                .map_err(|e| anyhow::anyhow!("checking {}: {}", fk.name, db_message(&e)))?
                .get(0);
            if orphans > 0 {
                problems.push(format!(
                    "{}: {orphans} row(s) of {} reference missing rows of {}",
                    fk.name, fk.child, fk.parent
                ));
            }
        }
        Ok(problems)
    }
}

fn to_json(text: Option<&str>, ty: Option<&Type>) -> Value {
    let Some(text) = text else { return Value::Null };
    let parsed = match ty {
        Some(t) if *t == Type::BOOL => Some(Value::Bool(text == "t")),
        Some(t) if [Type::INT2, Type::INT4, Type::INT8, Type::OID].contains(t) => {
            text.parse::<i64>().ok().map(Value::from)
        }
        Some(t) if [Type::FLOAT4, Type::FLOAT8, Type::NUMERIC].contains(t) => {
            text.parse::<i64>().ok().map(Value::from).or_else(|| {
                text.parse::<f64>()
                    .ok()
                    .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            })
        }
        Some(t) if [Type::JSON, Type::JSONB].contains(t) => serde_json::from_str(text).ok(),
        _ => None,
    };
    parsed.unwrap_or_else(|| Value::String(text.to_string()))
}
