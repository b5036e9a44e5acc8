//! The SQLite `integrity` builtin checks its tables in parallel, one
//! `PRAGMA integrity_check(table)` each, and accounts for every page of the file itself
//! (what a per-table check skips). These tests hold it to what the single
//! `PRAGMA integrity_check` says, on valid files of every layout and on damaged ones.

use super::*;

/// A playbook with one `integrity` check per database, steps `check0`, `check1`, ...,
/// each with `fields` added.
fn integrity_drill(dbs: &[&str], fields: &str) -> Drill {
    let check = |(i, db): (usize, &&str)| {
        sql(&format!("check{i}"), "sqlite", db)
            .set("continue_on_failure", true)
            .fields(fields)
            .checks(builtin("integrity", "integrity"))
    };
    pb("pages").step(dbs.iter().enumerate().map(check)).drill()
}

fn sqlite_says(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare("PRAGMA integrity_check").unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn build(path: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(sql).unwrap();
    drop(conn);
    assert_eq!(sqlite_says(path), ["ok"], "{}", path.display());
}

/// Sets the bytes reserved at the end of every page (what encryption extensions use).
fn reserve_bytes(path: &Path, n: i32) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut n = n;
    // SAFETY: a valid connection handle, a NUL-terminated name and a pointer to a live int,
    // as SQLITE_FCNTL_RESERVE_BYTES expects.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_RESERVE_BYTES,
            (&mut n as *mut i32).cast(),
        )
    };
    assert_eq!(rc, 0);
    conn.execute_batch("VACUUM").unwrap();
}

const FILL: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)";

#[test]
fn every_valid_page_layout_passes() {
    let d = integrity_drill(
        &[
            "autovacuum.db",
            "incremental.db",
            "small_pages.db",
            "large_pages.db",
            "overflow.db",
            "without_rowid.db",
            "reserved.db",
            "wal.db",
            "empty.db",
            "zero_bytes.db",
        ],
        "",
    );
    let at = |name: &str| d.path().join(name);
    // Pointer-map pages, and a freelist of several trunk pages.
    let churn = format!(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         CREATE INDEX t_v ON t(v);
         {FILL} INSERT INTO t SELECT i, hex(randomblob(100)) FROM n;
         DELETE FROM t WHERE id % 3 = 0;"
    );
    build(
        &at("autovacuum.db"),
        &format!("PRAGMA auto_vacuum = FULL; {churn}"),
    );
    build(
        &at("incremental.db"),
        &format!("PRAGMA auto_vacuum = INCREMENTAL; {churn} PRAGMA incremental_vacuum(5);"),
    );
    build(
        &at("small_pages.db"),
        &format!("PRAGMA page_size = 512; {churn}"),
    );
    build(
        &at("large_pages.db"),
        &format!("PRAGMA page_size = 65536; {churn}"),
    );
    // Overflow chains from table leaves, index leaves and index interior pages.
    build(
        &at("overflow.db"),
        &format!(
            "CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB, k TEXT);
             CREATE INDEX blobs_k ON blobs(k);
             {FILL} INSERT INTO blobs SELECT i, randomblob(i * 7 % 20000), hex(randomblob(600 + i % 900)) FROM n;"
        ),
    );
    build(
        &at("without_rowid.db"),
        &format!(
            "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
             {FILL} INSERT INTO kv SELECT hex(randomblob(1500)), hex(randomblob(50)) FROM n;"
        ),
    );
    build(&at("reserved.db"), &churn);
    reserve_bytes(&at("reserved.db"), 32);
    assert_eq!(std::fs::read(at("reserved.db")).unwrap()[20], 32);
    assert_eq!(sqlite_says(&at("reserved.db")), ["ok"]);
    build(&at("empty.db"), "PRAGMA user_version = 1;");
    std::fs::write(at("zero_bytes.db"), b"").unwrap();

    // WAL with committed pages not yet checkpointed, kept open by a connection so that
    // the WAL is not folded into the file before the check runs.
    let wal = rusqlite::Connection::open(at("wal.db")).unwrap();
    wal.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; {churn}"
    ))
    .unwrap();
    assert!(std::fs::metadata(at("wal.db-wal")).unwrap().len() > 32);

    let out = d.run();
    let steps = out.record()["steps"].clone();
    for step in steps.as_array().unwrap() {
        assert_eq!(step["status"], "passed", "{step:#}");
    }
    out.expect_code(0);
    drop(wal);
}

/// Writes `bytes` at `offset` of the file.
fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt as _;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

/// A database with a freelist: its first trunk page and the first leaf that trunk lists.
fn with_free_pages(path: &Path) -> (u32, u32) {
    build(
        path,
        &format!(
            "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT);
             CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT);
             INSERT INTO a VALUES (1, 'x');
             {FILL} INSERT INTO b SELECT i, hex(randomblob(200)) FROM n;
             DELETE FROM b WHERE id > 1000;"
        ),
    );
    let file = std::fs::read(path).unwrap();
    let be32 = |at: usize| u32::from_be_bytes(file[at..at + 4].try_into().unwrap());
    let trunk = be32(32);
    assert!(trunk > 0 && be32(36) > 1, "no freelist to damage");
    let leaf = be32((trunk as usize - 1) * 4096 + 8);
    (trunk, leaf)
}

#[test]
fn pages_no_b_tree_owns_and_pages_owned_twice_fail_integrity() {
    let d = integrity_drill(&["lost.db", "twice.db", "good.db"], "");
    // The header forgets the freelist: its pages are left owned by nothing.
    let lost = d.path().join("lost.db");
    let (_, leaf) = with_free_pages(&lost);
    patch(&lost, 32, &[0; 8]);
    // The freelist lists page 2, the root of table `a`.
    let twice = d.path().join("twice.db");
    let (trunk, _) = with_free_pages(&twice);
    patch(
        &twice,
        (u64::from(trunk) - 1) * 4096 + 8,
        &2u32.to_be_bytes(),
    );
    with_free_pages(&d.path().join("good.db"));
    // SQLite's own full check agrees that both are damaged, and what a per-table check
    // (the parallel part) would have missed.
    for db in ["lost.db", "twice.db"] {
        let path = d.path().join(db);
        assert_ne!(sqlite_says(&path), ["ok"], "{db}");
        let conn = rusqlite::Connection::open(&path).unwrap();
        for table in ["a", "b", "sqlite_schema"] {
            let r: String = conn
                .query_row(&format!("PRAGMA integrity_check({table})"), [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(r, "ok", "{db} {table}");
        }
    }

    let out = d.run().expect_code(1);
    let problems = |id: &str| out.step(id).failed().check("integrity").message();
    let lost = problems("check0");
    assert!(lost.contains(&format!("Page {leaf}: never used")), "{lost}");
    let twice = problems("check1");
    assert!(twice.contains("2nd reference to page 2"), "{twice}");
    out.step("check2").passed();
}

#[test]
fn a_timeout_interrupts_every_integrity_worker() {
    // Narrow rows, three indexes each: a check that takes a while.
    let mut sql = String::new();
    for t in 0..2 {
        sql.push_str(&format!(
            "CREATE TABLE t{t} (id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c INTEGER);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150000)
             INSERT INTO t{t} SELECT i, random(), hex(randomblob(8)), random() FROM n;
             CREATE INDEX t{t}_a ON t{t}(a); CREATE INDEX t{t}_b ON t{t}(b); CREATE INDEX t{t}_ca ON t{t}(c, a);"
        ));
    }
    let whole = integrity_drill(&["slow.db"], "");
    let db = whole.path().join("slow.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(&sql).unwrap();
    drop(conn);
    let stopped = integrity_drill(&["slow.db"], "timeout = \"100ms\"");
    std::fs::copy(&db, stopped.path().join("slow.db")).unwrap();

    let whole = whole.run().expect_code(0).step("check0");
    let stopped = stopped.run().expect_code(1).step("check0");
    stopped.status("timed_out");
    // Interrupted, not left to finish (or abandoned after the grace period).
    let (full, cut) = (
        whole["duration_s"].as_f64().unwrap(),
        stopped["duration_s"].as_f64().unwrap(),
    );
    assert!(
        cut < full / 2.0,
        "stopped after {cut}s; the whole check takes {full}s"
    );
}
