//! PostgreSQL rows for content digests: `COPY (SELECT t.* ...) TO STDOUT` in text
//! format, one line a row, each line hashed in the drill (XXH3-128) and added up in the
//! range of its key (read from the line). The lines come from `psql` (a child
//! process in the step's process group registry, which streams the COPY at the server's
//! pace), or, where psql is missing or the snapshot is only the connection's own, from
//! the connection's COPY (the same bytes, slower: the `postgres` crate handles each row
//! as a message).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use postgres::Client;

use super::catalog::ident;
use super::url::{PgUrl, db_message, with_password};
use crate::engines::digest::{Part, Piece, Plan, Ranges, row_hash};
use crate::proc::{Cancel, Tool};

/// Session settings that fix how values print, so that the source and its restore print
/// a value alike whatever the servers' defaults: dates and times in UTC and ISO, floats
/// shortest-exact, bytea in hex; and no JIT compilation, which a plain scan does not
/// repay.
const SETTLED: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET bytea_output = 'hex'; SET jit = off";

/// What one COPY reads: the rows of `plan`'s table (its sample) in `piece`, the table
/// being `quoted`, its key (if any) the `key_field`-th column (from 0).
pub struct Rows<'a> {
    pub plan: &'a Plan,
    pub piece: Piece,
    pub quoted: String,
    pub key_field: Option<usize>,
}

impl Rows<'_> {
    /// The COPY: each line one row, its columns in their order.
    pub fn copy_sql(&self) -> String {
        let pages = self
            .piece
            .sql("drill_row_.ctid", |p| format!("'({p},0)'::tid"));
        let filter = self.plan.filter_sql(ident, pages);
        let quoted = &self.quoted;
        format!("COPY (SELECT drill_row_.* FROM {quoted} drill_row_{filter}) TO STDOUT")
    }

    /// The lines of the COPY hashed and added up per range, read in place from the
    /// reader's buffer (a line across two fills is gathered apart).
    pub fn add_lines(&self, mut lines: impl BufRead) -> anyhow::Result<BTreeMap<i64, Part>> {
        let mut by_range = Ranges::default();
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let buf = lines.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', buf) {
                if carry.is_empty() {
                    self.add_line(&buf[start..end], &mut by_range)?;
                } else {
                    carry.extend_from_slice(&buf[start..end]);
                    self.add_line(&carry, &mut by_range)?;
                    carry.clear();
                }
                start = end + 1;
            }
            carry.extend_from_slice(&buf[start..]);
            let read = buf.len();
            lines.consume(read);
        }
        if !carry.is_empty() {
            anyhow::bail!("a row cut short (no end of line)");
        }
        Ok(by_range.into_parts())
    }

    /// One line (without its newline, the columns as COPY's text format prints them:
    /// tab-separated, NULL as `\N`, a tab, newline, carriage return or backslash in a
    /// value escaped, so a row is one line and the columns cannot shift) hashed whole
    /// (`row_hash`) into the range of its key.
    fn add_line(&self, line: &[u8], by_range: &mut Ranges) -> anyhow::Result<()> {
        let range = match self.key_field {
            None => 0,
            Some(k) => {
                let key = field(line, k)
                    .and_then(|f| std::str::from_utf8(f).ok())
                    .and_then(|f| f.parse::<i64>().ok())
                    .with_context(|| {
                        let start = String::from_utf8_lossy(&line[..line.len().min(40)]);
                        format!("a line without a key in column {}: `{start}`", k + 1)
                    })?;
                self.plan.bucket_of(key)
            }
        };
        by_range.add_row(range, row_hash(line));
        Ok(())
    }
}

/// The `k`-th tab-separated field of `line` (from 0).
fn field(line: &[u8], k: usize) -> Option<&[u8]> {
    let mut tabs = memchr::memchr_iter(b'\t', line);
    let start = match k {
        0 => 0,
        k => tabs.nth(k - 1)? + 1,
    };
    let end = tabs.next().unwrap_or(line.len());
    line.get(start..end)
}

/// The COPY on the connection itself, in its transaction (the connection's snapshot).
pub fn parts_on(c: &mut Client, rows: &Rows<'_>) -> anyhow::Result<BTreeMap<i64, Part>> {
    let table = &rows.plan.table;
    c.batch_execute(SETTLED)?;
    let parts = {
        let lines = c
            .copy_out(&rows.copy_sql())
            .map_err(|e| anyhow::anyhow!("{table}: {}", db_message(&e)))?;
        rows.add_lines(lines)
            .map_err(|e| anyhow::anyhow!("{table}: {e:#}"))?
    };
    c.batch_execute("RESET jit")?;
    Ok(parts)
}

/// `psql`, to run the COPYs on connections of its own, in the exported `snapshot` when
/// there is one.
#[derive(Clone)]
pub struct Psql {
    bin: PathBuf,
    url: PgUrl,
    /// A private directory for the password file and psql's messages.
    scratch: PathBuf,
    cancel: Arc<Cancel>,
    snapshot: Option<String>,
}

/// Numbers psql's message files apart (workers run side by side).
static RUNS: AtomicU64 = AtomicU64::new(0);

impl Psql {
    /// psql at `bin` connecting to `url`, its password file and messages in `scratch`,
    /// stopped with `cancel`; in the connection's own snapshot.
    pub fn new(bin: PathBuf, url: &PgUrl, scratch: PathBuf, cancel: &Arc<Cancel>) -> Self {
        Self {
            bin,
            url: url.clone(),
            scratch,
            cancel: Arc::clone(cancel),
            snapshot: None,
        }
    }

    /// The same, each COPY in the exported `snapshot`.
    pub fn in_snapshot(self, snapshot: &str) -> Self {
        Self {
            snapshot: Some(snapshot.to_string()),
            ..self
        }
    }

    /// psql's arguments: no psqlrc, no prompt for a password, no command tags (its
    /// stdout is the COPY's lines only), stopping at the first error; the settings, the
    /// snapshot's transaction, the COPY.
    fn args(&self, copy: String) -> Vec<String> {
        let mut sql = vec![SETTLED.to_string()];
        if let Some(s) = &self.snapshot {
            sql.push("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY".into());
            sql.push(format!(
                "SET TRANSACTION SNAPSHOT '{}'",
                s.replace('\'', "''")
            ));
        }
        sql.push(copy);
        if self.snapshot.is_some() {
            sql.push("COMMIT".into());
        }
        let fixed = [
            "--no-psqlrc",
            "--quiet",
            "--no-password",
            "--set=ON_ERROR_STOP=1",
        ];
        let mut args: Vec<String> = fixed.iter().map(|a| a.to_string()).collect();
        args.push(format!("--dbname={}", self.url.public));
        for s in sql {
            args.push(format!("--command={s}"));
        }
        args
    }

    /// The COPY through psql, its lines read as they come (a bounded buffer: memory
    /// stays flat); psql failing (or the step cancelled) is an error naming the table.
    pub fn parts(&self, rows: &Rows<'_>) -> anyhow::Result<BTreeMap<i64, Part>> {
        let failed = |e: anyhow::Error| anyhow::anyhow!("{}: {e:#}", rows.plan.table);
        std::fs::create_dir_all(&self.scratch)
            .with_context(|| format!("cannot create {}", self.scratch.display()))?;
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let stderr = self.scratch.join(format!("psql-digest-{n}.stderr"));
        let (reader, writer) = os_pipe::pipe()?;
        let cmd = duct::cmd(&self.bin, self.args(rows.copy_sql()))
            .env("PGCLIENTENCODING", "UTF8")
            .stdin_null()
            .stdout_file(writer);
        let (cmd, _passfile) = with_password(cmd, &self.url, &self.scratch)?;
        let running = Tool::new(cmd, "psql")
            .stderr_to(&stderr)
            .start(&self.cancel)
            .map_err(failed)?;
        let parts = rows.add_lines(std::io::BufReader::with_capacity(1 << 16, reader));
        let done = match parts {
            Ok(parts) => running.wait().map(|()| parts),
            // A line that is not a row: psql is killed (the read end is closed already).
            Err(e) => {
                running.kill();
                match self.cancel.is_cancelled() {
                    true => Err(anyhow::anyhow!("psql was stopped (cancelled)")),
                    false => Err(e),
                }
            }
        };
        let _ = std::fs::remove_file(&stderr);
        done.map_err(failed)
    }
}

#[cfg(test)]
#[path = "copy_tests.rs"]
mod tests;
