//! A physical restore never harms what it restores from: a source whose configuration
//! (ALTER SYSTEM, carried by its base backup) names commands and a pid file of its own,
//! and base backups of a source with a tablespace (plain with `--tablespace-mapping`,
//! tar with and without a manifest, a `base.tar` whose only trace is its
//! `tablespace_map`). The backups, the tablespace directories, the archive and the
//! source's pid file are hashed before and after each drill.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::pitr::{hash_tree, rows_drill};
use super::postgres::cluster_gone;
use super::server::give_to_postgres;
use super::*;

/// The source; its archive, backups, tablespace and markers in its directory.
struct Fixture {
    server: Server,
}

static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();

fn fixture() -> Option<&'static Fixture> {
    server::fixture_once(&FIXTURE, build, |f| f.server.stop())
}

/// What the source's pid file holds (the drill must leave it so).
const PID_FILE: &str = "4242\n/the/source\n";

impl Fixture {
    fn path(&self, rel: &str) -> PathBuf {
        self.server.dir().join(rel)
    }

    /// `pg_basebackup` of the source into `out` with `args`, as its OS user.
    fn base_backup(&self, out: &str, args: &[&str]) {
        let s = &self.server;
        let status = s
            .as_owner(s.program("pg_basebackup"))
            .args(["-h", &s.dir().display().to_string(), "-U", "postgres"])
            .args(["-p", &s.port.to_string(), "-c", "fast", "-D"])
            .arg(self.path(out))
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "pg_basebackup {out} {args:?}");
    }

    /// Everything a drill must leave alone, hashed.
    fn untouchable(&self) -> BTreeMap<String, String> {
        self.server.sql("", "CHECKPOINT");
        let mut all = BTreeMap::new();
        for d in [
            "archive",
            "marks",
            "ts",
            "ts_copy",
            "plain_ts",
            "tar_ts",
            "tar_nomf",
            "base_only",
        ] {
            for (rel, h) in hash_tree(&self.path(d)) {
                all.insert(format!("{d}/{rel}"), h);
            }
        }
        all
    }
}

fn build() -> Option<Fixture> {
    // archive_command runs in the data directory, beside which the archive is.
    let server = Server::archiving_with("pg_confine", "cp %p ../archive/%f")?;
    let f = Fixture { server };
    for d in ["archive", "marks", "ts"] {
        std::fs::create_dir(f.path(d)).unwrap();
        give_to_postgres(&f.path(d));
    }
    let pid = f.path("marks/source.pid");
    std::fs::write(&pid, PID_FILE).unwrap();
    give_to_postgres(&pid);
    let marks = f.path("marks").display().to_string();
    f.server.sql("", "CREATE DATABASE app");
    f.server.sql(
        "app",
        &format!(
            "CREATE TABLE t (id int PRIMARY KEY);
             INSERT INTO t SELECT generate_series(1, 10);
             ALTER SYSTEM SET recovery_end_command = 'touch {marks}/recovery_end_command';
             ALTER SYSTEM SET archive_cleanup_command = 'touch {marks}/archive_cleanup_command';
             ALTER SYSTEM SET external_pid_file = '{}';",
            pid.display()
        ),
    );
    f.base_backup("plain", &[]);
    f.server.sql(
        "app",
        &format!(
            "CREATE TABLESPACE ts LOCATION '{}';
             CREATE TABLE tt (id int) TABLESPACE ts;
             INSERT INTO tt SELECT generate_series(1, 100);",
            f.path("ts").display()
        ),
    );
    let mapping = format!(
        "--tablespace-mapping={}={}",
        f.path("ts").display(),
        f.path("ts_copy").display()
    );
    f.base_backup("plain_ts", &[&mapping]);
    f.base_backup("tar_ts", &["-Ft"]);
    f.base_backup("tar_nomf", &["-Ft", "--no-manifest"]);
    // A base.tar alone: only its tablespace_map names the tablespace.
    std::fs::create_dir(f.path("base_only")).unwrap();
    for tar in ["base.tar", "pg_wal.tar"] {
        std::fs::copy(f.path("tar_nomf").join(tar), f.path("base_only").join(tar)).unwrap();
    }
    // WAL after the backups that replay would write into the tablespace.
    // Archived before any test hashes the archive: the archiver copies it in its own
    // time, which on a loaded machine was after a test's first hash.
    f.server
        .sql("app", "INSERT INTO tt SELECT generate_series(101, 200)");
    f.server.switch_wal_archived();
    Some(f)
}

/// A restore of `from` with the source's archive (to `latest` unless `fields` say).
fn restore_of(f: &Fixture, from: &str, fields: &str) -> Step {
    let archive = f.path("archive").display().to_string();
    restore("postgres", &f.path(from).display().to_string())
        .set("wal_archive", archive.as_str())
        .fields(fields)
}

/// Every kind of base backup of a source with a tablespace is refused before any
/// cluster starts, naming the tablespace; the backups, the tablespace directories (the
/// source's live one and the mapped copy) and the archive are unchanged.
#[test]
fn a_backup_with_a_tablespace_is_refused_and_nothing_is_touched() {
    let Some(f) = fixture() else { return };
    for (backup, names) in [
        ("plain_ts", "pg_tblspc/"),
        ("tar_ts", "tablespace archive "),
        ("tar_nomf", "tablespace archive "),
        ("base_only", "tablespace_map: "),
    ] {
        let before = f.untouchable();
        let out = rows_drill(&f.server, restore_of(f, backup, ""), 10)
            .run()
            .expect_code(1);
        out.step("restore")
            .failed_with("with tablespaces is not supported yet")
            .says(names);
        let record = out.record();
        let clusters = record["resources"].as_array().map_or(0, |r| {
            r.iter()
                .filter(|r| r["kind"] == "cluster" && r["removed"] != true)
                .count()
        });
        assert_eq!(clusters, 0, "{backup}: {}", record["resources"]);
        assert_eq!(
            f.untouchable(),
            before,
            "{backup}: a drill changed a source"
        );
    }
}

/// The backup's configuration names a `recovery_end_command`, an
/// `archive_cleanup_command` and the source's `external_pid_file`: the drill passes,
/// runs neither command and leaves the source's pid file as it was.
#[test]
fn the_sources_commands_and_pid_file_are_not_the_drills() {
    let Some(f) = fixture() else { return };
    let before = f.untouchable();
    let restore = restore_of(f, "plain", "target = \"immediate\"");
    let out = rows_drill(&f.server, restore, 10).run().expect_code(0);
    out.step("verify").all_checks_passed();
    cluster_gone(&out);
    // A marker of a command that ran; the pid file rewritten or removed.
    let marks = listing(&f.path("marks"));
    let pid = std::fs::read_to_string(f.path("marks/source.pid")).unwrap_or_default();
    assert_eq!(
        (marks, pid.as_str()),
        (vec!["source.pid".to_string()], PID_FILE)
    );
    assert_eq!(f.untouchable(), before, "a drill changed a source");
}

/// A backup taken before `CREATE TABLESPACE`, restored to `latest`: replaying the
/// creation would link the cluster to the source's live tablespace directory and write
/// into it. The restore fails naming the tablespace; nothing of the source changes.
#[test]
fn wal_replay_never_creates_a_tablespace_outside_the_cluster() {
    let Some(f) = fixture() else { return };
    let before = f.untouchable();
    let out = rows_drill(&f.server, restore_of(f, "plain", ""), 10)
        .run()
        .expect_code(1);
    out.step("restore")
        .failed_with("creates a tablespace")
        .says(&f.path("ts").display().to_string());
    cluster_gone(&out);
    assert_eq!(f.untouchable(), before, "a drill changed a source");
}
