//! Database and file engines: how each one backs up, restores, and answers verification
//! queries. Each engine lives in its own folder and implements `Engine`; the steps reach
//! it through `find`, and validation learns its fields from `specs`. Adding an engine is
//! a folder and one line in `ENGINES` (see docs/architecture.md).

pub mod answer;
pub mod compress;
mod ctx;
pub mod digest;
mod facts;
pub mod files;
pub mod mysql;
pub mod postgres;
pub mod roles;
pub mod scratch;
pub mod sqlite;
pub mod throwaway;

use indexmap::IndexMap;

use serde_json::Value;

pub use ctx::{Copying, Ctx};
pub use digest::Digester;
pub use facts::{Backup, Restored, SchemaFacts};
pub use roles::Roles;

use crate::playbook::{EngineSpec, Step};

/// Every engine, in the order `schema`, `init` and the docs list them.
pub static ENGINES: &[&dyn Engine] = &[
    &sqlite::Sqlite,
    &postgres::Postgres,
    &mysql::Mysql,
    &files::Files,
];

/// The engine named `name`.
pub fn find(name: &str) -> Option<&'static dyn Engine> {
    ENGINES.iter().copied().find(|e| e.spec().name == name)
}

/// What validation and the path guard know of the engines.
pub fn specs() -> Vec<&'static EngineSpec> {
    ENGINES.iter().map(|e| e.spec()).collect()
}

/// The engines' names.
pub fn names() -> Vec<&'static str> {
    ENGINES.iter().map(|e| e.spec().name).collect()
}

/// One engine: what `backup`, `restore` and `sql` steps do with it. A failure is an
/// error naming what is wrong; the step makes it a failed outcome.
pub trait Engine: Sync {
    /// Its name, its starter playbook and, per step kind it serves, the fields it takes,
    /// needs, reads and makes.
    fn spec(&self) -> &'static EngineSpec;

    /// Takes a fresh backup with the engine's own consistent method.
    fn backup(&self, step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Backup>;

    /// Puts a backup back, into a place that can never be production.
    fn restore(&self, step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Restored>;

    /// A connection for the checks of a `sql` step (`writable` when it has statements to
    /// execute), interrupted when the step is cancelled.
    fn connect(&self, _database: &str, _writable: bool, _ctx: &Ctx<'_>) -> Connected {
        let name = self.spec().name;
        anyhow::bail!("sql engine `{name}` is not available in this version")
    }
}

/// A connection for the checks of a `sql` step.
pub type Connected = anyhow::Result<Box<dyn SqlConn>>;

/// What the `sql` step needs from a connection; each SQL engine implements it.
pub trait SqlConn {
    /// Runs statements (seeding, setup) and discards their results.
    fn execute_batch(&mut self, sql: &str) -> anyhow::Result<()>;
    /// Runs a query and returns its rows as JSON values.
    fn query(&mut self, sql: &str) -> anyhow::Result<Vec<Vec<Value>>>;
    /// User tables (schema-qualified where the engine has schemas).
    fn tables(&mut self) -> anyhow::Result<Vec<String>>;
    /// User indexes.
    fn indexes(&mut self) -> anyhow::Result<Vec<String>>;
    /// The names the user wrote (`tables = ["orders"]`) as `tables` names them, resolved
    /// as the engine's own client would (PostgreSQL: through the search_path; MySQL: in
    /// the current database); a name that resolves to no table is kept as written.
    fn resolve_tables(&mut self, names: &[String]) -> anyhow::Result<Vec<String>> {
        Ok(names.to_vec())
    }
    /// Exact row counts of `tables`; a missing table is an error naming it.
    fn count_rows(&mut self, tables: &[String]) -> anyhow::Result<IndexMap<String, u64>>;
    /// Structural problems found by the engine's integrity check (empty: none).
    fn integrity_problems(&mut self, quick: bool) -> anyhow::Result<Vec<String>>;
    /// Foreign keys that do not hold (empty: all hold).
    fn foreign_key_problems(&mut self) -> anyhow::Result<Vec<String>>;
    /// Names of the foreign key constraints (the `foreign_keys` of `SchemaFacts`), for
    /// `foreign_keys` with `compare_to`; None where the engine does not name them.
    fn foreign_key_names(&mut self) -> anyhow::Result<Option<Vec<String>>> {
        Ok(None)
    }
    /// What row counts cannot see, on this connection.
    fn content(&mut self) -> Box<dyn Content + '_>;
}

/// What the `sequences` check found.
#[derive(Debug, Default, PartialEq)]
pub struct Sequences {
    /// How many sequences feed a key.
    pub checked: usize,
    /// Those not ahead of the largest key they feed, each named with its value and that
    /// key.
    pub behind: Vec<String>,
}

/// What row counts cannot see, on one connection: content digests, objects, sequences
/// and roles.
pub trait Content: Digester {
    /// Views, triggers, functions/procedures, sequences and extensions, as `kind name`
    /// (the `objects` of `SchemaFacts`).
    fn objects(&mut self) -> anyhow::Result<Vec<String>>;
    /// Up to `n` more connections in the same snapshot, digesting tables in parallel
    /// with this one (none where the engine cannot).
    fn more_digesters(&mut self, _n: usize) -> anyhow::Result<Vec<Box<dyn Digester + Send>>> {
        Ok(Vec::new())
    }
    /// The sequences (AUTO_INCREMENT, `sqlite_sequence` entry) that feed a key, and each
    /// one not ahead of the largest key it feeds.
    fn sequences(&mut self) -> anyhow::Result<Sequences>;
    /// Its roles (PostgreSQL roles, MySQL users); None where the engine has none.
    fn roles(&mut self) -> Option<&mut dyn Roles> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each engine is found by its own name, and names only fields a step has (a new
    /// field goes into `Step` first), requiring, reading and making only fields its steps
    /// take.
    #[test]
    fn every_engine_is_found_and_declares_fields_a_step_has() {
        let schema = serde_json::to_value(schemars::schema_for!(Step)).unwrap();
        let step_fields = schema["properties"].as_object().unwrap();
        for engine in ENGINES {
            let spec = engine.spec();
            assert!(std::ptr::eq(find(spec.name).unwrap().spec(), spec));
            for kind in spec.kinds {
                let own = crate::playbook::kind_fields(kind.kind);
                let takes = |f: &&str| kind.fields.contains(f) || own.contains(f);
                for field in kind.fields {
                    assert!(step_fields.contains_key(*field), "{}: {field}", spec.name);
                }
                let named = kind.required.iter().flat_map(|r| r.iter());
                for field in named.chain(kind.reads).chain(kind.makes) {
                    // `table.key` names a key of the table field `table`.
                    let table = field.split('.').next().unwrap_or(field);
                    assert!(
                        takes(&table),
                        "{}: {field} is not among its fields",
                        spec.name
                    );
                }
            }
        }
        let unique: std::collections::HashSet<&str> = names().into_iter().collect();
        assert_eq!(unique.len(), ENGINES.len(), "two engines of one name");
    }
}
