//! What engines report: the typed results of a backup and a restore, which the `backup`
//! and `restore` steps turn into outputs, in one place, the same way for every engine.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::SqlConn;
use super::digest::TableDigest;

/// What a backup made.
#[derive(Debug, Default)]
pub struct Backup {
    /// The backup, as the playbook names it (`output`): output `path`.
    pub path: PathBuf,
    /// Its size on disk: output `bytes`.
    pub bytes: u64,
    /// What was backed up, as shown (a url never with its password): output `source`.
    pub source: Option<String>,
    /// When the backed-up data was current (the RPO is measured from it): output
    /// `snapshot_at`, null where unknown.
    pub snapshot_at: Option<String>,
    /// The source's schema, from the backup's snapshot (every SQL engine).
    pub schema: Option<SchemaFacts>,
    /// The engine's own outputs (`format`, `database`, `manifest`, ...).
    pub outputs: Map<String, Value>,
    /// Measurements (`bytes_per_s`, ...).
    pub metrics: Map<String, Value>,
    /// Files made besides the backup (a manifest), with their sizes.
    pub also_made: Vec<(PathBuf, u64)>,
}

impl Backup {
    /// A backup of `bytes` at `path` (as the playbook names it) that moved `moved` bytes
    /// in `secs` (metric `bytes_per_s`); the engine fills in the rest.
    pub fn made(path: &Path, bytes: u64, moved: u64, secs: f64) -> Self {
        Self {
            path: path.to_path_buf(),
            bytes,
            metrics: crate::outputs! { "bytes_per_s" => moved as f64 / secs.max(1e-9) },
            ..Self::default()
        }
    }
}

/// What a restore made.
#[derive(Debug, Default)]
pub struct Restored {
    /// Where it restored to, as given (a path or a url; the record redacts a password a
    /// later step may need): output `target`.
    pub target: String,
    /// The backup restored: output `from`.
    pub from: PathBuf,
    /// Bytes restored: output `bytes`.
    pub bytes: u64,
    /// The restored database's schema (every SQL engine).
    pub schema: Option<SchemaFacts>,
    /// The engine's own outputs (`database`, `cluster_dir`, `file_count`, ...).
    pub outputs: Map<String, Value>,
    /// Measurements (`restore_s`, ...).
    pub metrics: Map<String, Value>,
}

/// A database's schema as every SQL engine reports it, at backup (the source, in the
/// backup's snapshot) and at restore (the restored copy), so that a check can compare the
/// two: outputs `table_counts`, `tables`, `indexes`, `foreign_keys`, `objects` (and
/// `table_digests` when a backup is asked for them).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SchemaFacts {
    /// Exact row counts of the user tables (schema-qualified where the engine has
    /// schemas), in the engine's order; their names are `tables`.
    pub table_counts: IndexMap<String, u64>,
    /// User indexes by name.
    pub indexes: Vec<String>,
    /// Foreign key constraints by name: `schema.table.constraint` (PostgreSQL),
    /// `table.constraint` (MySQL), `table(columns) -> parent(columns)` (SQLite, which
    /// does not name them).
    pub foreign_keys: Vec<String>,
    /// Views, triggers, functions/procedures, sequences, extensions, each as `kind
    /// name` (`view shop.open_orders`, `trigger orders.audit`), sorted.
    pub objects: Vec<String>,
    /// Each table's content digest (`digests = true`), in the snapshot of the counts.
    pub table_digests: Option<IndexMap<String, TableDigest>>,
}

impl SchemaFacts {
    /// Reads them through a verification connection.
    pub fn read(conn: &mut dyn SqlConn) -> anyhow::Result<Self> {
        let tables = conn.tables()?;
        Ok(Self {
            table_counts: conn.count_rows(&tables)?,
            indexes: conn.indexes()?,
            foreign_keys: conn.foreign_key_names()?.unwrap_or_default(),
            objects: conn.content().objects()?,
            table_digests: None,
        })
    }

    /// The user tables.
    pub fn tables(&self) -> Vec<&String> {
        self.table_counts.keys().collect()
    }
}
