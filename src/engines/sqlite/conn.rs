//! `SqlConn` for SQLite: the verification connection of `sql` steps.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use indexmap::IndexMap;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use super::content;
use super::integrity::parallel_integrity_check;
use super::{
    InterruptOnCancel, count_rows, foreign_keys, open_read_only, quick_check, user_indexes,
    user_tables,
};
use crate::engines::{Content, SqlConn};
use crate::proc::Cancel;

/// A verification connection. Opened read-only unless it has statements to execute.
pub struct SqliteConn {
    path: PathBuf,
    conn: Connection,
    interrupt: Option<InterruptOnCancel>,
}

impl SqliteConn {
    /// Writable: an existing database is opened as it is, never created by SQLite; one
    /// that does not exist is created new and empty first (`O_EXCL`: a file that appears
    /// meanwhile is never opened in its place), with its missing folders.
    pub fn open(path: &Path, writable: bool) -> anyhow::Result<Self> {
        let conn = if writable {
            if fs::symlink_metadata(path).is_err() {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs::create_dir_all(parent)?;
                }
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .with_context(|| format!("cannot create the database {}", path.display()))?;
            }
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            Connection::open_with_flags(path, flags)
                .with_context(|| format!("cannot open the database {}", path.display()))?
        } else {
            open_read_only(path)?
        };
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(Self {
            path: path.to_path_buf(),
            conn,
            interrupt: None,
        })
    }

    /// Interrupts a running query (and the integrity workers) when the step is cancelled.
    pub fn interrupted_by(mut self, cancel: &Arc<Cancel>) -> Self {
        self.interrupt = Some(InterruptOnCancel::new(&self.conn, cancel));
        self
    }
}

impl SqlConn for SqliteConn {
    fn execute_batch(&mut self, sql: &str) -> anyhow::Result<()> {
        Ok(self.conn.execute_batch(sql)?)
    }

    fn query(&mut self, sql: &str) -> anyhow::Result<Vec<Vec<Value>>> {
        let mut stmt = self.conn.prepare(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let cells = (0..columns)
                .map(|i| row.get_ref(i).map(to_json))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(cells);
        }
        Ok(out)
    }

    fn tables(&mut self) -> anyhow::Result<Vec<String>> {
        user_tables(&self.conn)
    }

    fn indexes(&mut self) -> anyhow::Result<Vec<String>> {
        user_indexes(&self.conn)
    }

    fn count_rows(&mut self, tables: &[String]) -> anyhow::Result<IndexMap<String, u64>> {
        count_rows(&self.conn, tables)
    }

    fn integrity_problems(&mut self, quick: bool) -> anyhow::Result<Vec<String>> {
        if quick {
            return quick_check(&self.conn);
        }
        let cancel = self
            .interrupt
            .as_ref()
            .map(|i| Arc::clone(&i.cancel))
            .unwrap_or_default();
        parallel_integrity_check(&self.path, &user_tables(&self.conn)?, &cancel)
    }

    fn foreign_key_problems(&mut self) -> anyhow::Result<Vec<String>> {
        let mut stmt = self.conn.prepare("PRAGMA foreign_key_check")?;
        let rows = stmt.query_map([], |r| {
            Ok(format!(
                "{} row {} references missing {}",
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?
                    .map_or("?".into(), |id| id.to_string()),
                r.get::<_, String>(2)?
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn foreign_key_names(&mut self) -> anyhow::Result<Option<Vec<String>>> {
        foreign_keys(&self.conn).map(Some)
    }

    fn content(&mut self) -> Box<dyn Content + '_> {
        let path = Some(self.path.clone());
        Box::new(content::Lite {
            conn: &self.conn,
            path,
        })
    }
}

fn to_json(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => Value::from(f),
        ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::from(format!("<{} bytes>", b.len())),
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
