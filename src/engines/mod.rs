//! Database engines: how each one backs up, restores, and answers verification queries.

pub mod compress;
pub mod files;
pub mod mysql;
pub mod postgres;
pub mod sqlite;

use indexmap::IndexMap;

use crate::proc::Cancel;
use serde_json::Value;

/// What the `sql` step needs from a connection; each engine implements it.
pub trait SqlConn {
    /// Runs statements (seeding, setup) and discards their results.
    fn execute_batch(&mut self, sql: &str) -> anyhow::Result<()>;
    /// Runs a query and returns its rows as JSON values.
    fn query(&mut self, sql: &str) -> anyhow::Result<Vec<Vec<Value>>>;
    /// User tables (schema-qualified where the engine has schemas).
    fn tables(&mut self) -> anyhow::Result<Vec<String>>;
    /// User indexes.
    fn indexes(&mut self) -> anyhow::Result<Vec<String>>;
    /// Exact row counts of `tables`; a missing table is an error naming it.
    fn count_rows(&mut self, tables: &[String]) -> anyhow::Result<IndexMap<String, u64>>;
    /// Structural problems found by the engine's integrity check (empty: none).
    fn integrity_problems(&mut self, quick: bool) -> anyhow::Result<Vec<String>>;
    /// Foreign keys that do not hold (empty: all hold).
    fn foreign_key_problems(&mut self) -> anyhow::Result<Vec<String>>;
    /// Names of the foreign key constraints, for `foreign_keys` with `compare_to`; None
    /// where the engine does not name them.
    fn foreign_key_names(&mut self) -> anyhow::Result<Option<Vec<String>>> {
        Ok(None)
    }
}

/// How a copy runs: it stops when cancelled, reports its progress, and is synced to disk
/// only when it outlives the drill (a copy in the work directory is thrown away at the end,
/// and syncing it would cost more than the copy itself).
pub struct Copying<'a> {
    pub cancel: &'a Cancel,
    pub progress: &'a (dyn Fn(u64, u64) + Sync),
    pub durable: bool,
}
