//! What the SQLite checks are built on: a backup file's header, the schema listings,
//! quoting, and the restore's own checks.

use super::*;

fn build(path: &Path, sql: &str) {
    Connection::open(path).unwrap().execute_batch(sql).unwrap();
}

/// A database `db.sqlite` made by `sql` in a new temporary folder (kept while it lives).
pub(super) fn db(sql: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    build(&path, sql);
    (dir, path)
}

/// A database of 2000 rows whose page 3 (a page of its table) is damaged: its header's
/// cell count made absurd. The quick check finds it.
pub(super) fn damaged_page_db() -> (tempfile::TempDir, PathBuf) {
    let (dir, path) = db("PRAGMA page_size = 1024;
         CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO t SELECT i, hex(randomblob(40)) FROM n;");
    let mut bytes = fs::read(&path).unwrap();
    bytes[2 * 1024 + 3] = 0xff;
    bytes[2 * 1024 + 4] = 0xff;
    fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn what_is_not_a_database_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    let says = |path: &Path| check_backup_file(path).unwrap_err().to_string();
    assert!(says(&at("none.db")).ends_with("none.db not found"));
    assert!(says(dir.path()).ends_with("is not a file"));
    fs::write(at("empty.db"), b"").unwrap();
    assert!(says(&at("empty.db")).contains("empty.db is empty (0 bytes)"));
    fs::write(at("short.db"), &HEADER[..15]).unwrap();
    assert!(says(&at("short.db")).contains("short.db is not a SQLite database (bad header)"));
    fs::write(at("text.db"), "SQLite format 2\0 and more").unwrap();
    assert!(says(&at("text.db")).contains("bad header"));
    build(&at("good.db"), "CREATE TABLE t (x)");
    check_backup_file(&at("good.db")).unwrap();
}

#[test]
fn odd_names_are_quoted_and_keys_named_with_their_columns() {
    let (_dir, path) = db(r#"CREATE TABLE "we""ird" (x);
           INSERT INTO "we""ird" VALUES (1), (2);
           CREATE TABLE p (a, b, PRIMARY KEY (a, b));
           CREATE TABLE q (id INTEGER PRIMARY KEY);
           CREATE TABLE c (x, y, z REFERENCES q, FOREIGN KEY (x, y) REFERENCES p(a, b));"#);
    let conn = open_read_only(&path).unwrap();
    assert_eq!(quote(r#"we"ird"#), r#""we""ird""#);
    assert_eq!(user_tables(&conn).unwrap(), ["c", "p", "q", r#"we"ird"#]);
    assert_eq!(user_indexes(&conn).unwrap(), Vec::<String>::new());
    let counts = count_rows(&conn, &[r#"we"ird"#.to_string()]).unwrap();
    assert_eq!(counts[r#"we"ird"#], 2);
    assert_eq!(
        foreign_keys(&conn).unwrap(),
        ["c(x, y) -> p(a, b)", "c(z) -> q"]
    );
    assert!(quick_check(&conn).unwrap().is_empty());
    let cancel = Arc::new(Cancel::default());
    let tables = user_tables(&conn).unwrap();
    let problems = integrity::parallel_integrity_check(&path, &tables, &cancel).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

/// A database without a table whose freelist is damaged: the full check still looks at
/// it (the schema table and the page accounting need no user table).
#[test]
fn a_damaged_freelist_fails_the_full_check_without_any_table() {
    let (_dir, path) = db("PRAGMA page_size = 1024;
         CREATE TABLE t (v);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
         INSERT INTO t SELECT randomblob(500) FROM n;
         DROP TABLE t;");
    let mut bytes = fs::read(&path).unwrap();
    // The header's count of freelist pages, one too many.
    let count = u32::from_be_bytes(bytes[36..40].try_into().unwrap());
    assert!(count > 10, "{count}");
    bytes[36..40].copy_from_slice(&(count + 1).to_be_bytes());
    fs::write(&path, bytes).unwrap();
    let conn = open_read_only(&path).unwrap();
    assert!(user_tables(&conn).unwrap().is_empty());
    let cancel = Arc::new(Cancel::default());
    let problems = integrity::parallel_integrity_check(&path, &[], &cancel).unwrap();
    assert!(!problems.is_empty());
    assert!(
        problems.iter().any(|p| p.contains("freelist")),
        "{problems:?}"
    );
}

fn restore_into(from: &Path, target: &Path) -> anyhow::Result<Snapshot> {
    let cancel = Cancel::default();
    let copying = Copying {
        cancel: &cancel,
        progress: &|_, _| {},
        durable: false,
    };
    restore(from, target, &copying)
}

/// Issue 16: a restore proves what it restored: a good backup restores with its facts;
/// one whose copy fails `quick_check`, or that holds no table, fails naming why.
#[test]
fn a_restore_checks_the_database_it_restored() {
    let (dir, good) = db("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         CREATE INDEX idx_v ON t(v);
         INSERT INTO t VALUES (1, 'a'), (2, 'b');");
    let target = dir.path().join("restored.db");
    let snap = restore_into(&good, &target).unwrap();
    assert_eq!(snap.bytes, fs::metadata(&good).unwrap().len());
    assert_eq!(snap.bytes, fs::metadata(&target).unwrap().len());
    assert_eq!(
        snap.schema.table_counts.into_iter().collect::<Vec<_>>(),
        [("t".to_string(), 2)]
    );
    assert_eq!(snap.schema.indexes, ["idx_v"]);

    let (_empty_dir, empty) = db("CREATE TABLE t (x); DROP TABLE t;");
    let err = restore_into(&empty, &dir.path().join("empty.db")).unwrap_err();
    let says = format!("{err:#}");
    assert!(
        says.starts_with("restored database has no tables: the backup "),
        "{says}"
    );

    let (_damaged_dir, damaged) = damaged_page_db();
    let err = restore_into(&damaged, &dir.path().join("damaged.db")).unwrap_err();
    let says = format!("{err:#}");
    assert!(
        says.starts_with("restored database fails quick_check: "),
        "{says}"
    );
}

/// A table of 20,000 keys is split among two read connections, into two spans of keys;
/// the pieces add up, range by range, to what one connection reading it whole finds.
#[test]
fn a_large_table_split_among_connections_digests_as_read_whole() {
    use crate::engines::digest::{self, Digester as _};
    let (_dir, path) = db("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO t SELECT i, hex(randomblob(8)) FROM n;");
    let tables = vec!["t".to_string()];
    let open = || content::Lite {
        conn: open_read_only(&path).unwrap(),
        path: None,
    };
    let whole = digest::digest_tables(&mut open(), Vec::new(), &tables, None).unwrap();
    assert_eq!(open().split(&whole["t"].plan, 2).unwrap(), [10001]);
    assert_eq!(open().split(&whole["t"].plan, 3).unwrap(), [6667, 13334]);
    assert_eq!(open().split(&whole["t"].plan, 1).unwrap(), [] as [i64; 0]);
    let more = content::readers(&path, 1).unwrap();
    let split = digest::digest_tables(&mut open(), more, &tables, None).unwrap();
    assert_eq!(split, whole);
    assert_eq!(split["t"].total.rows, 20000);
    // A table too small to be worth two pieces (fewer keys than two of MIN_PIECE_KEYS)
    // is read whole.
    let (_dir, small) = db("CREATE TABLE s (id INTEGER PRIMARY KEY);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO s SELECT i FROM n;");
    let mut lite = content::Lite {
        conn: open_read_only(&small).unwrap(),
        path: None,
    };
    let plans = digest::digest_tables(&mut lite, Vec::new(), &["s".to_string()], None).unwrap();
    assert_eq!(lite.split(&plans["s"].plan, 2).unwrap(), [] as [i64; 0]);
}

/// The `-wal` and `-shm` an unwatched read-only reader of the WAL database `path` leaves,
/// as `open_read_only` did before it watched them; their (device, inode).
fn left_by_a_reader(path: &Path) -> [(u64, u64); 2] {
    let reader = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    reader
        .query_row("SELECT count(*) FROM t", [], |_| Ok(()))
        .unwrap();
    drop(reader);
    ["-wal", "-shm"].map(|s| side::id_of(&side::side_path(path, s)).expect("left behind"))
}

#[test]
fn side_files_we_made_go_only_while_no_connection_holds_the_database() {
    use std::io::{BufRead as _, Write as _};
    let (_dir, path) =
        db("PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);");
    let exist = || ["-wal", "-shm"].map(|s| side::side_path(&path, s).exists());
    // Another process holds the database open (it reads through our -wal and -shm).
    let mut app = std::process::Command::new("sqlite3")
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sqlite3 runs");
    let ours = left_by_a_reader(&path);
    let mut stdin = app.stdin.take().unwrap();
    writeln!(stdin, "SELECT count(*) FROM t;").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(app.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "1");
    for writable in [true, false] {
        side::remove_if_unused(&path, ours, writable);
        assert_eq!(
            exist(),
            [true, true],
            "removed while in use (writable: {writable})"
        );
    }
    drop(stdin);
    app.wait().unwrap();
    // Both ways remove them once no connection remains; files not ours stay.
    for writable in [true, false] {
        let ours = left_by_a_reader(&path);
        side::remove_if_unused(&path, [ours[0], (0, 0)], writable);
        assert_eq!(exist(), [true, true], "removed files not ours");
        side::remove_if_unused(&path, ours, writable);
        assert_eq!(exist(), [false, false], "left them (writable: {writable})");
    }
    // Through `open_read_only`: gone once the last of two connections closes.
    let (a, b) = (
        open_read_only(&path).unwrap(),
        open_read_only(&path).unwrap(),
    );
    drop(a);
    b.query_row("SELECT count(*) FROM t", [], |_| Ok(()))
        .unwrap();
    assert_eq!(exist(), [true, true]);
    drop(b);
    assert_eq!(exist(), [false, false]);
}

/// A database must be a regular file: a named pipe (SQLite would wait for its writer for
/// ever), a device (`/dev/zero` reads as an empty database) or a folder is refused,
/// naming it, before SQLite opens it.
#[test]
fn only_a_regular_file_is_a_database() {
    let (dir, path) = db("CREATE TABLE t (x)");
    let fifo = dir.path().join("pipe.db");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path this test owns.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for bad in [fifo.as_path(), Path::new("/dev/zero"), dir.path()] {
        let e = ensure_file(bad).unwrap_err().to_string();
        assert!(e.contains("is not a regular file"), "{e}");
        assert!(open_read_only(bad).is_err(), "{}", bad.display());
    }
    let e = ensure_file(&dir.path().join("nope.db")).unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    ensure_file(&path).unwrap();
}
