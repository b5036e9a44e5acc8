//! MySQL, MariaDB and MySQL-compatible servers (TiDB): connection urls, the option file
//! that carries the password to the command-line clients, and `SqlConn` through the
//! `mysql` crate for verification.

mod content;
pub mod dump;
mod engine;
pub mod physical;
pub mod server;

use std::fs;
use std::path::Path;

use anyhow::{Context as _, bail};
use indexmap::IndexMap;
use mysql::consts::ColumnType;
use mysql::prelude::Queryable as _;
use serde_json::Value;

use super::{Content, SchemaFacts, SqlConn};
use crate::proc::{Cancel, OnCancel, SecretFile};

pub use engine::Mysql;

/// The databases restored by this run, by their shown url (`Target::remember`): a later
/// `sql` step can use a restore's `target` as is, its password reattached here, never
/// written anywhere.
static RESTORED: std::sync::Mutex<Vec<(String, Target)>> = std::sync::Mutex::new(Vec::new());

/// A parsed `mysql://user:password@host:port/database?socket=...` url.
#[derive(Clone)]
pub struct Target {
    pub opts: mysql::Opts,
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        // The crate's own error would echo the url, password included.
        let opts = mysql::Opts::from_url(url).map_err(|e| {
            anyhow::anyhow!(
                "bad mysql url `{}`: {}",
                redact_url(url),
                e.to_string().replace(url, "<url>")
            )
        })?;
        Ok(Self { opts })
    }

    pub fn database(&self) -> Option<&str> {
        self.opts.get_db_name().filter(|d| !d.is_empty())
    }

    /// The url without its password: safe to log and to name a resource.
    pub fn display(&self) -> String {
        let user = self.opts.get_user().unwrap_or("");
        let db = self.database().unwrap_or("");
        match self.opts.get_socket() {
            Some(socket) => format!("mysql://{user}@localhost/{db}?socket={socket}"),
            None => format!(
                "mysql://{user}@{}:{}/{db}",
                self.opts.get_ip_or_hostname(),
                self.opts.get_tcp_port()
            ),
        }
    }

    /// Remembers this restore target's password (in memory only) for a later step that
    /// names the target as the restore shows it, without its password.
    pub fn remember(&self) {
        let mut restored = RESTORED.lock().unwrap_or_else(|e| e.into_inner());
        restored.push((self.display(), self.clone()));
    }

    /// With the password of the restore target it shows as, when it has none of its own.
    fn with_remembered_password(self) -> Self {
        if self.opts.get_pass().is_some() {
            return self;
        }
        let restored = RESTORED.lock().unwrap_or_else(|e| e.into_inner());
        let shown = self.display();
        match restored.iter().rev().find(|(s, _)| *s == shown) {
            Some((_, target)) => {
                let pass = target.opts.get_pass().map(str::to_string);
                let opts = mysql::OptsBuilder::from_opts(self.opts.clone()).pass(pass);
                Self { opts: opts.into() }
            }
            None => self,
        }
    }

    /// The same server with another (or no) database selected.
    pub fn with_database(&self, db: Option<&str>) -> Self {
        let opts = mysql::OptsBuilder::from_opts(self.opts.clone()).db_name(db);
        Self { opts: opts.into() }
    }

    /// A connection; the TCP connect and the whole handshake are bounded (by the url's
    /// `tcp_connect_timeout_ms`, else 15 s).
    pub fn connect(&self) -> anyhow::Result<mysql::Conn> {
        let limit = self
            .opts
            .get_tcp_connect_timeout()
            .unwrap_or(crate::engines::answer::CONNECT_LIMIT);
        let opts =
            mysql::OptsBuilder::from_opts(self.opts.clone()).tcp_connect_timeout(Some(limit));
        let shown = self.display();
        crate::engines::answer::within(limit, &shown.clone(), move || {
            mysql::Conn::new(opts).with_context(|| format!("cannot connect to {shown}"))
        })
    }
}

/// `mysql://user:secret@host` → `mysql://user:***@host`, for messages about bad urls.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A `[client]` option file, mode 0600, removed when dropped: how the password reaches
/// mysqldump and the mysql client without appearing in any process's arguments.
pub struct OptionFile {
    file: SecretFile,
    password: Option<String>,
}

impl OptionFile {
    pub fn create(dir: &Path, name: &str, target: &Target) -> anyhow::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = dir.join(format!(".{name}.my.cnf"));
        let _ = fs::remove_file(&path);
        let mut text = String::from("[client]\n");
        let mut line =
            |key: &str, value: &str| text.push_str(&format!("{key}=\"{}\"\n", quote_option(value)));
        if let Some(user) = target.opts.get_user() {
            line("user", user);
        }
        if let Some(pass) = target.opts.get_pass() {
            line("password", pass);
        }
        match target.opts.get_socket() {
            Some(socket) => line("socket", socket),
            None => {
                line("host", &target.opts.get_ip_or_hostname());
                line("port", &target.opts.get_tcp_port().to_string());
                // As the crate does: host and port mean TCP, even for `localhost`.
                line("protocol", "TCP");
            }
        }
        Ok(Self {
            file: SecretFile::create(&path, &text)?,
            password: target.opts.get_pass().map(str::to_string),
        })
    }

    /// The client's command, without the inherited variables holding the password it
    /// reads from this file (`MYSQL_PWD`, or the one `[secrets]` read it from).
    pub fn command(&self, expr: duct::Expression) -> duct::Expression {
        match &self.password {
            Some(p) => crate::proc::secret::without_vars_holding(expr, p, &[]),
            None => expr,
        }
    }

    /// The first argument of a client: `--defaults-extra-file=...`.
    pub fn arg(&self) -> String {
        format!("--defaults-extra-file={}", self.file.path().display())
    }
}

fn quote_option(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `name` quoted as a MySQL identifier.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The first of `names` found on PATH (MariaDB's own names first: its `mysqldump`
/// alias warns that it is deprecated).
pub fn program(names: &[&str]) -> anyhow::Result<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        if std::env::split_paths(&path).any(|dir| dir.join(name).is_file()) {
            return Ok(name.to_string());
        }
    }
    bail!(
        "none of {} found on PATH (install the MariaDB or MySQL client)",
        names.join(", ")
    )
}

/// Base tables of the connection's current database, by name.
pub fn base_tables(conn: &mut mysql::Conn) -> anyhow::Result<Vec<String>> {
    Ok(conn.query(
        "SELECT table_name FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name",
    )?)
}

pub fn count_rows(
    conn: &mut mysql::Conn,
    tables: &[String],
) -> anyhow::Result<IndexMap<String, u64>> {
    let existing = base_tables(conn)?;
    tables
        .iter()
        .map(|t| {
            anyhow::ensure!(existing.contains(t), "table `{t}` does not exist");
            let n: Option<u64> = conn.query_first(format!("SELECT COUNT(*) FROM {}", ident(t)))?;
            Ok((t.clone(), n.unwrap_or(0)))
        })
        .collect()
}

/// The database a backup of `target` counts, once `output` is known not to exist yet.
pub fn fresh_backup(target: &Target, output: &Path) -> anyhow::Result<String> {
    let database = target
        .database()
        .context("the url names no database to back up")?;
    anyhow::ensure!(
        !output.exists(),
        "backup output {} already exists",
        output.display()
    );
    Ok(database.to_string())
}

/// The source's counts in a consistent snapshot (`begin_snapshot`, then
/// `facts_in_snapshot`), its indexes and foreign keys, and when the snapshot was taken.
pub fn snapshot_facts(
    conn: &mut MysqlConn,
    digests: Option<Option<f64>>,
) -> anyhow::Result<(SchemaFacts, jiff::Timestamp)> {
    let taken_at = begin_snapshot(conn)?;
    Ok((facts_in_snapshot(conn, digests)?, taken_at))
}

/// `START TRANSACTION WITH CONSISTENT SNAPSHOT`: the moment the counts are of.
pub fn begin_snapshot(conn: &mut MysqlConn) -> anyhow::Result<jiff::Timestamp> {
    let taken_at = jiff::Timestamp::now();
    conn.inner()
        .query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")?;
    Ok(taken_at)
}

/// The exact row counts (and, with `digests`, the tables' digests) in the snapshot
/// `begin_snapshot` took, committed at once (a transaction left open would hold metadata
/// locks), then the indexes, foreign keys and objects.
pub fn facts_in_snapshot(
    conn: &mut MysqlConn,
    digests: Option<Option<f64>>,
) -> anyhow::Result<SchemaFacts> {
    let c = conn.inner();
    let tables = base_tables(c)?;
    let table_counts = count_rows(c, &tables)?;
    let table_digests = match digests {
        Some(sample) => Some(content::digest_all(c, sample)?),
        None => None,
    };
    c.query_drop("COMMIT")?;
    Ok(SchemaFacts {
        table_counts,
        indexes: conn.indexes()?,
        foreign_keys: conn.foreign_keys()?,
        objects: conn.content().objects()?,
        table_digests,
    })
}

/// A verification connection.
pub struct MysqlConn {
    conn: mysql::Conn,
    opts: mysql::Opts,
    /// Kills the running query when the step is cancelled (see `interrupt_on`).
    interrupt: Option<OnCancel>,
}

impl MysqlConn {
    pub fn open(url: &str) -> anyhow::Result<Self> {
        let target = Target::parse(url)?.with_remembered_password();
        anyhow::ensure!(
            target.database().is_some(),
            "the url {} names no database",
            target.display()
        );
        Self::connect(&target)
    }

    pub fn connect(target: &Target) -> anyhow::Result<Self> {
        Ok(Self {
            conn: target.connect()?,
            opts: target.with_database(None).opts,
            interrupt: None,
        })
    }

    /// Every transaction of the session read-only: a connection opened only for checks
    /// never writes, whatever a check's query says.
    pub fn read_only(mut self) -> anyhow::Result<Self> {
        self.conn.query_drop("SET SESSION TRANSACTION READ ONLY")?;
        Ok(self)
    }

    /// On cancel, a second connection kills the running query (`KILL QUERY`).
    pub fn interrupted_by(mut self, cancel: &std::sync::Arc<Cancel>) -> Self {
        let id = self.conn.connection_id();
        let opts = self.opts.clone();
        self.interrupt = Some(cancel.on_cancel(move || {
            if let Ok(mut killer) = (Target { opts: opts.clone() }).connect() {
                let _ = killer.query_drop(format!("KILL QUERY {id}"));
            }
        }));
        self
    }

    pub fn inner(&mut self) -> &mut mysql::Conn {
        &mut self.conn
    }

    /// Foreign keys: (table, constraint, columns, referenced table, referenced columns).
    fn foreign_key_defs(&mut self) -> anyhow::Result<Vec<ForeignKey>> {
        let rows: Vec<(String, String, String, String, String)> = self.conn.query(
            "SELECT table_name, constraint_name, column_name, referenced_table_name, referenced_column_name \
             FROM information_schema.key_column_usage \
             WHERE table_schema = DATABASE() AND referenced_table_name IS NOT NULL \
             ORDER BY table_name, constraint_name, ordinal_position",
        )?;
        let mut fks: Vec<ForeignKey> = Vec::new();
        for (table, name, column, ref_table, ref_column) in rows {
            match fks.last_mut() {
                Some(fk) if fk.table == table && fk.name == name => {
                    fk.columns.push(column);
                    fk.ref_columns.push(ref_column);
                }
                _ => fks.push(ForeignKey {
                    table,
                    name,
                    columns: vec![column],
                    ref_table,
                    ref_columns: vec![ref_column],
                }),
            }
        }
        Ok(fks)
    }
}

struct ForeignKey {
    table: String,
    name: String,
    columns: Vec<String>,
    ref_table: String,
    ref_columns: Vec<String>,
}

impl ForeignKey {
    /// Rows of the child whose (non-null) key has no parent row. The dump loads with
    /// FOREIGN_KEY_CHECKS=0, so a restore can hold rows that the constraint forbids.
    fn orphans_query(&self) -> String {
        let join: Vec<String> = self
            .columns
            .iter()
            .zip(&self.ref_columns)
            .map(|(c, r)| format!("c.{} = p.{}", ident(c), ident(r)))
            .collect();
        let not_null: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("c.{} IS NOT NULL", ident(c)))
            .collect();
        format!(
            "SELECT COUNT(*) FROM {} c LEFT JOIN {} p ON {} WHERE {} AND p.{} IS NULL",
            ident(&self.table),
            ident(&self.ref_table),
            join.join(" AND "),
            not_null.join(" AND "),
            ident(&self.ref_columns[0])
        )
    }
}

impl SqlConn for MysqlConn {
    /// Every statement's result is read: an error in any of them is the batch's (the
    /// crate's `query_drop` would drop it and stop there silently).
    fn execute_batch(&mut self, sql: &str) -> anyhow::Result<()> {
        let mut result = self.conn.query_iter(sql)?;
        while let Some(set) = result.iter() {
            for row in set {
                row?;
            }
        }
        Ok(())
    }

    fn query(&mut self, sql: &str) -> anyhow::Result<Vec<Vec<Value>>> {
        let mut result = self.conn.query_iter(sql)?;
        let mut out = Vec::new();
        if let Some(set) = result.iter() {
            for row in set {
                let row = row?;
                let cells = row
                    .columns_ref()
                    .iter()
                    .enumerate()
                    .map(|(i, col)| to_json(row.as_ref(i), col.column_type()))
                    .collect();
                out.push(cells);
            }
        }
        Ok(out)
    }

    fn tables(&mut self) -> anyhow::Result<Vec<String>> {
        base_tables(&mut self.conn)
    }

    fn indexes(&mut self) -> anyhow::Result<Vec<String>> {
        Ok(self.conn.query(
            "SELECT DISTINCT index_name FROM information_schema.statistics \
             WHERE table_schema = DATABASE() AND index_name <> 'PRIMARY' ORDER BY index_name",
        )?)
    }

    /// `orders` is a table of the current database; `shop.orders` too when `shop` is it.
    fn resolve_tables(&mut self, names: &[String]) -> anyhow::Result<Vec<String>> {
        let current: Option<String> = self.conn.query_first("SELECT DATABASE()")?;
        let unquote = |p: &str| p.trim().trim_matches('`').to_string();
        Ok(names
            .iter()
            .map(|name| match name.split_once('.') {
                Some((db, table)) if current.as_deref() == Some(unquote(db).as_str()) => {
                    unquote(table)
                }
                Some(_) => name.clone(),
                None => unquote(name),
            })
            .collect())
    }

    fn count_rows(&mut self, tables: &[String]) -> anyhow::Result<IndexMap<String, u64>> {
        count_rows(&mut self.conn, tables)
    }

    /// `CHECK TABLE` on every table; anything but an `OK` status is a problem.
    fn integrity_problems(&mut self, quick: bool) -> anyhow::Result<Vec<String>> {
        let tables = base_tables(&mut self.conn)?;
        if tables.is_empty() {
            return Ok(vec!["the database has no tables".into()]);
        }
        let list: Vec<String> = tables.iter().map(|t| ident(t)).collect();
        let sql = format!(
            "CHECK TABLE {}{}",
            list.join(", "),
            if quick { " QUICK" } else { "" }
        );
        let rows: Vec<(String, String, String, String)> = self.conn.query(sql)?;
        Ok(rows
            .into_iter()
            .filter(|(_, _, kind, text)| {
                kind.eq_ignore_ascii_case("error")
                    || (kind.eq_ignore_ascii_case("status") && text != "OK")
            })
            .map(|(table, _, kind, text)| format!("{table}: {kind}: {text}"))
            .collect())
    }

    fn foreign_key_problems(&mut self) -> anyhow::Result<Vec<String>> {
        let mut problems = Vec::new();
        for fk in self.foreign_key_defs()? {
            let orphans: Option<u64> = self.conn.query_first(fk.orphans_query())?;
            if let Some(n) = orphans.filter(|n| *n > 0) {
                problems.push(format!(
                    "{}.{}: {n} row(s) reference missing {}({})",
                    fk.table,
                    fk.name,
                    fk.ref_table,
                    fk.ref_columns.join(", ")
                ));
            }
        }
        Ok(problems)
    }

    fn foreign_key_names(&mut self) -> anyhow::Result<Option<Vec<String>>> {
        self.foreign_keys().map(Some)
    }

    fn content(&mut self) -> Box<dyn Content + '_> {
        Box::new(content::My(&mut self.conn))
    }
}

impl MysqlConn {
    /// Every foreign key constraint, as `table.constraint`.
    pub fn foreign_keys(&mut self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .foreign_key_defs()?
            .into_iter()
            .map(|fk| format!("{}.{}", fk.table, fk.name))
            .collect())
    }
}

/// A text-protocol cell as JSON, numbers as numbers.
fn to_json(v: Option<&mysql::Value>, ty: ColumnType) -> Value {
    use mysql::Value as V;
    match v {
        None | Some(V::NULL) => Value::Null,
        Some(V::Int(i)) => Value::from(*i),
        Some(V::UInt(u)) => Value::from(*u),
        Some(V::Float(f)) => Value::from(*f),
        Some(V::Double(f)) => Value::from(*f),
        Some(V::Bytes(b)) => {
            let text = String::from_utf8_lossy(b);
            let number = match ty {
                ColumnType::MYSQL_TYPE_TINY
                | ColumnType::MYSQL_TYPE_SHORT
                | ColumnType::MYSQL_TYPE_INT24
                | ColumnType::MYSQL_TYPE_LONG
                | ColumnType::MYSQL_TYPE_LONGLONG
                | ColumnType::MYSQL_TYPE_YEAR => text
                    .parse::<i64>()
                    .map(Value::from)
                    .ok()
                    .or_else(|| text.parse::<u64>().map(Value::from).ok()),
                ColumnType::MYSQL_TYPE_FLOAT
                | ColumnType::MYSQL_TYPE_DOUBLE
                | ColumnType::MYSQL_TYPE_DECIMAL
                | ColumnType::MYSQL_TYPE_NEWDECIMAL => text.parse::<f64>().ok().map(Value::from),
                _ => None,
            };
            number.unwrap_or_else(|| Value::from(text.into_owned()))
        }
        Some(other) => Value::from(other.as_sql(true)),
    }
}
