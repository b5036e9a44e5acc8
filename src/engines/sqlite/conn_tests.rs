//! `SqliteConn` on real files: what each query returns, and that each check finds the
//! damage it is for.

use serde_json::json;

use super::super::tests::{damaged_page_db, db};
use super::*;

fn read_only(path: &Path) -> SqliteConn {
    SqliteConn::open(path, false).unwrap()
}

/// A read-only connection to [`SCHEMA`] that the returned `Cancel` interrupts.
fn cancellable() -> (tempfile::TempDir, Arc<Cancel>, SqliteConn) {
    let (dir, path) = db(SCHEMA);
    let cancel = Arc::new(Cancel::default());
    let c = read_only(&path).interrupted_by(&cancel);
    (dir, cancel, c)
}

const SCHEMA: &str = "CREATE TABLE services (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE dispatches (id INTEGER PRIMARY KEY, service_id INTEGER REFERENCES services(id), at TEXT);
CREATE TABLE kv (k TEXT PRIMARY KEY, service_id INTEGER REFERENCES services(id)) WITHOUT ROWID;
CREATE INDEX idx_b ON dispatches(at);
CREATE INDEX idx_a ON dispatches(service_id);
INSERT INTO services VALUES (1, 'api');
INSERT INTO dispatches VALUES (1, 1, 'x'), (2, 1, 'y');";

#[test]
fn a_writable_connection_creates_its_folder_and_a_read_only_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/sub/db.sqlite");
    assert!(SqliteConn::open(&path, false).is_err());
    assert!(!dir.path().join("new").exists());
    let mut c = SqliteConn::open(&path, true).unwrap();
    c.execute_batch("CREATE TABLE t (x)").unwrap();
    assert!(path.exists());
    let mut ro = read_only(&path);
    let denied = ro.execute_batch("INSERT INTO t VALUES (1)").unwrap_err();
    assert!(denied.to_string().contains("readonly"), "{denied}");
}

#[test]
fn queries_return_every_type_as_json() {
    let (_dir, path) = db(SCHEMA);
    let mut c = read_only(&path);
    let rows = c
        .query("SELECT NULL, 7, 2.5, 'text', x'00ff10' UNION ALL SELECT 1, 2, 3, 4, 5")
        .unwrap();
    assert_eq!(
        rows,
        [
            vec![
                json!(null),
                json!(7),
                json!(2.5),
                json!("text"),
                json!("<3 bytes>")
            ],
            vec![json!(1), json!(2), json!(3), json!(4), json!(5)],
        ]
    );
    assert!(c.query("SELECT 1 WHERE 0").unwrap().is_empty());
    assert!(c.query("SELECT nope").is_err());
}

#[test]
fn tables_indexes_counts_and_keys_are_listed_in_order() {
    let (_dir, path) = db(SCHEMA);
    let mut c = read_only(&path);
    assert_eq!(c.tables().unwrap(), ["dispatches", "kv", "services"]);
    assert_eq!(c.indexes().unwrap(), ["idx_a", "idx_b"]);
    let counts = c
        .count_rows(&["services".into(), "dispatches".into()])
        .unwrap();
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [("services".into(), 1), ("dispatches".into(), 2)]
    );
    let missing = c.count_rows(&["nope".into()]).unwrap_err();
    assert!(missing.to_string().contains("table `nope` does not exist"));
    assert_eq!(
        c.foreign_key_names().unwrap().unwrap(),
        [
            "dispatches(service_id) -> services(id)",
            "kv(service_id) -> services(id)"
        ]
    );
    assert!(c.foreign_key_problems().unwrap().is_empty());
    assert!(c.integrity_problems(false).unwrap().is_empty());
    assert!(c.integrity_problems(true).unwrap().is_empty());
}

#[test]
fn orphans_are_named_with_their_row_or_a_question_mark() {
    let (_dir, path) = db(&format!(
        "PRAGMA foreign_keys = OFF;
             {SCHEMA}
             INSERT INTO dispatches VALUES (9, 42, 'z');
             INSERT INTO kv VALUES ('k', 42);"
    ));
    let mut c = read_only(&path);
    let mut problems = c.foreign_key_problems().unwrap();
    problems.sort();
    assert_eq!(
        problems,
        [
            "dispatches row 9 references missing services",
            "kv row ? references missing services"
        ]
    );
}

/// An index whose entries do not match its table: the full check finds it, the quick one
/// (which does not compare indexes with their tables) does not.
#[test]
fn the_full_check_finds_a_broken_index_and_the_quick_one_does_not() {
    let (_dir, path) = db(&format!(
        "{SCHEMA}
             CREATE INDEX idx_extra ON dispatches(at);
             PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = 'CREATE INDEX idx_extra ON dispatches(service_id)'
                 WHERE name = 'idx_extra';"
    ));
    let mut c = read_only(&path);
    let full = c.integrity_problems(false).unwrap();
    assert!(!full.is_empty());
    assert!(full.iter().all(|p| p != "ok"));
    assert!(full.iter().any(|p| p.contains("idx_extra")), "{full:?}");
    assert!(c.integrity_problems(true).unwrap().is_empty());
}

/// A page whose bytes are damaged: the quick check finds it too.
#[test]
fn both_checks_find_a_damaged_page() {
    let (_dir, path) = damaged_page_db();
    let mut c = read_only(&path);
    assert!(
        !c.integrity_problems(true)
            .unwrap_or_else(|e| vec![e.to_string()])
            .is_empty()
    );
    assert!(
        !c.integrity_problems(false)
            .unwrap_or_else(|e| vec![e.to_string()])
            .is_empty()
    );
}

#[test]
fn a_cancelled_step_interrupts_the_full_check() {
    let (_dir, cancel, mut c) = cancellable();
    assert!(c.integrity_problems(false).unwrap().is_empty());
    cancel.stop(Duration::ZERO);
    let stopped = c.integrity_problems(false).unwrap_err();
    assert!(stopped.to_string().contains("cancelled"), "{stopped}");
}

#[test]
fn a_cancel_interrupts_a_running_query() {
    let (_dir, cancel, mut c) = cancellable();
    let stopper = Arc::clone(&cancel);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        stopper.stop(Duration::ZERO);
    });
    let started = std::time::Instant::now();
    let endless =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";
    let err = c.query(endless).unwrap_err();
    t.join().unwrap();
    assert!(err.to_string().contains("interrupt"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
