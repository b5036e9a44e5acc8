//! SQLite's side files (`-wal`, `-shm`, `-journal`): a restore never lets an old one be
//! replayed over what it restored, and a drill leaves none beside the database it reads.

use std::path::Path;

use rusqlite::Connection;

use super::*;

/// A WAL-mode database of `rows` rows in `t`, closed cleanly: no `-wal`, no `-shm`.
fn wal_db(path: &Path, rows: i64) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
        .unwrap();
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO t SELECT i, hex(randomblob(8)) FROM n",
        [rows],
    )
    .unwrap();
}

/// `path` as a writer that crashed leaves it: 1000 rows in the file, 4000 more committed
/// only in its `-wal` (copied from a writer still open elsewhere, so never checkpointed).
fn crashed_writer(path: &Path) {
    let live = path.with_extension("live");
    wal_db(&live, 1000);
    let writer = Connection::open(&live).unwrap();
    writer
        .execute_batch(
            "PRAGMA wal_autocheckpoint = 0;
             WITH RECURSIVE n(i) AS (SELECT 1001 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
             INSERT INTO t SELECT i, 'stale' FROM n;",
        )
        .unwrap();
    std::fs::copy(&live, path).unwrap();
    std::fs::copy(
        live.with_extension("live-wal"),
        format!("{}-wal", path.display()),
    )
    .unwrap();
}

fn side_files(dir: &Path) -> Vec<String> {
    listing(dir)
        .into_iter()
        .filter(|n| n.ends_with("-wal") || n.ends_with("-shm") || n.contains("restoring"))
        .collect()
}

/// Backup of `src.db`, restored into `target` (over it, with `overwrite`), then a count.
fn restore_into(target: &str, overwrite: bool) -> Playbook {
    pb("t")
        .step(sqlite_backup("src.db", "{{ drill.workdir }}/b/src.db"))
        .step(sqlite_restore("{{ steps.backup.path }}", target).set("overwrite", overwrite))
        .step(
            sql("verify", "sqlite", "{{ steps.restore.target }}").checks([query(
                "n",
                "SELECT count(*) FROM t",
                1000,
            )]),
        )
}

#[test]
fn a_wal_left_beside_the_target_is_refused_by_name_never_replayed_over_the_restore() {
    for (target, overwrite) in [("target.db", true), ("fresh.db", false)] {
        let d = restore_into(target, overwrite).drill();
        wal_db(&d.path().join("src.db"), 1000);
        let old = d.path().join("old.db");
        crashed_writer(&old);
        let wal = d.path().join(format!("{target}-wal"));
        std::fs::rename(format!("{}-wal", old.display()), &wal).unwrap();
        if overwrite {
            std::fs::rename(&old, d.path().join(target)).unwrap();
        }
        let at = d.path().join(target);
        let files = || [&at, &wal].map(|f| f.exists().then(|| sha256_of(f)));
        let before = files();
        let out = d.run();
        out.step("restore").failed_with(&format!(
            "{} exists beside the restore target",
            wal.display()
        ));
        assert_eq!(files(), before, "{target}: the refused restore changed it");
    }
}

#[test]
fn a_restore_over_a_wal_database_reads_exactly_the_backup_and_leaves_no_side_files() {
    let d = restore_into("target.db", true).drill();
    wal_db(&d.path().join("src.db"), 1000);
    wal_db(&d.path().join("target.db"), 5000);
    let out = d.run();
    out.step("restore").passed();
    out.step("verify").passed();
    assert_eq!(side_files(out.path()), Vec::<String>::new());
    let conn = Connection::open(out.path().join("target.db")).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1000);
}

#[test]
fn reading_a_wal_source_leaves_no_wal_or_shm_beside_it_and_it_unchanged() {
    let d = pb("t")
        .step(sqlite_backup("src.db", "{{ drill.workdir }}/b/src.db"))
        .step(sql("look", "sqlite", "src.db").checks([
            query("n", "SELECT count(*) FROM t", 1000),
            builtin("integrity", "integrity"),
        ]))
        .drill();
    let source = d.path().join("src.db");
    wal_db(&source, 1000);
    assert_eq!(side_files(d.path()), Vec::<String>::new());
    let before = sha256_of(&source);
    let out = d.run();
    out.step("look").passed();
    assert_eq!(side_files(out.path()), Vec::<String>::new());
    assert_eq!(sha256_of(&source), before);
}

#[test]
fn side_files_that_were_there_before_the_drill_stay() {
    let d = pb("t")
        .step(sqlite_backup("src.db", "{{ drill.workdir }}/b/src.db"))
        .drill();
    let source = d.path().join("src.db");
    wal_db(&source, 10);
    let app = Connection::open(&source).unwrap();
    app.query_row("SELECT count(*) FROM t", [], |_| Ok(()))
        .unwrap();
    let seen = |p: &str| {
        let m = std::fs::metadata(d.path().join(p)).unwrap();
        std::os::unix::fs::MetadataExt::ino(&m)
    };
    let before = [seen("src.db-wal"), seen("src.db-shm")];
    d.run_again().expect_code(0);
    assert_eq!([seen("src.db-wal"), seen("src.db-shm")], before);
    drop(app);
}
