//! The one integration-test binary: the real `restore-drill` against real SQLite files,
//! real processes (and, in their modules, real database servers).
//!
//! `Drill` is a small builder in the manner of just's `Test`: a playbook in a fresh
//! directory, optional files beside it, then `run()` and assertions on the outcome. The
//! kit builds playbooks from fragments (`kit.rs`) and holds the expectations on an
//! outcome (`expect.rs`); `server.rs` starts throwaway PostgreSQL and MariaDB servers.

mod borg_state;
mod checks;
mod cli;
mod commands;
mod content;
mod decode;
mod died;
mod docs;
mod docs_facts;
mod engines;
mod evidence;
mod expect;
mod files;
mod fleet;
mod fleet_s3;
mod fuzz;
mod hangs;
mod hostile;
mod hostile_files;
mod hostile_peers;
mod kit;
mod leaks;
mod mariabackup;
mod mysql;
mod names;
mod notify;
mod orphans;
mod pg_confine;
mod pgbackrest;
mod pitr;
mod postgres;
mod receiver;
mod reports;
mod repos;
mod repos_newest;
mod restic_s3;
mod s3;
mod s3store;
mod safety;
mod schedule;
mod secrets_io;
mod server;
mod service;
mod skips;
mod sqlite;
mod sqlite_pages;
mod sqlite_side;
mod validate;
mod verdicts;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub use expect::*;
pub use kit::*;
pub use server::{Engine, Server};

pub struct Drill {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    subcommand: String,
}

pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub dir: tempfile::TempDir,
}

impl Drill {
    /// A drill whose `playbook.toml` is `toml`.
    pub fn new(toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("playbook.toml"), toml).expect("write playbook");
        Self {
            dir,
            args: Vec::new(),
            env: Vec::new(),
            subcommand: "run".into(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(self, rel: &str, content: &[u8]) -> Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn subcommand(mut self, s: &str) -> Self {
        self.subcommand = s.into();
        self
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_restore-drill"));
        cmd.current_dir(self.dir.path());
        cmd.arg(&self.subcommand).arg("playbook.toml");
        if self.subcommand == "run" {
            cmd.args(["--artifacts", "artifacts", "--quiet"]);
        }
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Hands over the directory (for tests that run the binary themselves).
    pub fn dir_for_tests(self) -> tempfile::TempDir {
        self.dir
    }

    pub fn run(self) -> Outcome {
        let out = self.command().output().expect("run restore-drill");
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            dir: self.dir,
        }
    }
}

impl Outcome {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fails the test with everything the run printed when the exit code differs.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            code,
            "exit code {} (expected {code})\n{}\n--- stdout\n{}",
            self.code,
            self.summary(),
            self.stdout
        );
        self
    }

    fn artifact(&self, ext: &str) -> PathBuf {
        newest_artifact(&self.dir.path().join("artifacts"), ext)
    }

    pub fn record(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.artifact(".json")).unwrap()).unwrap()
    }

    pub fn report(&self) -> String {
        std::fs::read_to_string(self.artifact(".md")).unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.artifact(".log")).unwrap()
    }

    /// The work directory a `--keep-workdir` run left, removed when the guard is dropped
    /// (a failed assertion too): it lies outside the test's own temp directory.
    pub fn kept_workdir(&self) -> KeptWorkdir {
        let record = self.record();
        let path = record["workdir"]
            .as_str()
            .expect("the record names its workdir");
        KeptWorkdir(PathBuf::from(path))
    }
}

pub struct KeptWorkdir(pub PathBuf);

impl Drop for KeptWorkdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The newest artifact ending in `ext` in `dir` (e.g. ".json", ".html").
pub fn newest_artifact(dir: &Path, ext: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("no artifacts in {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no *{ext} in {}", dir.display()))
}

/// The newest run record in `dir`, parsed.
pub fn newest_record(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(newest_artifact(dir, ".json")).unwrap()).unwrap()
}

/// Creates a small SQLite database with related tables, foreign keys and indexes.
pub fn make_db(path: &Path, rows: i64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE services (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
         CREATE TABLE dispatches (id INTEGER PRIMARY KEY, service_id INTEGER NOT NULL REFERENCES services(id), created_at TEXT NOT NULL);
         CREATE INDEX idx_dispatches_service ON dispatches(service_id);
         INSERT INTO services VALUES (1, 'api'), (2, 'worker');
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO dispatches SELECT i, 1 + i % 2, '2026-01-01T00:00:00Z' FROM n;"
    ))
    .unwrap();
}

/// Whether servers are required here (CI): a missing one is then a failure.
pub fn servers_required() -> bool {
    std::env::var("RESTORE_DRILL_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

/// Says loudly that a suite is skipped, or fails when servers are required.
pub fn skip_or_fail(suite: &str, why: &str) {
    if servers_required() {
        panic!("{suite}: {why} (RESTORE_DRILL_REQUIRE_SERVERS=1)");
    }
    skip(suite, why);
}

/// Says loudly that a test (or a part of one) is skipped, for a reason no machine fixes:
/// at once on the real stderr, and counted in a summary when the binary exits.
pub fn skip(suite: &str, why: &str) {
    skips::record(suite, why);
}
