//! Every `sql` check on a real SQLite database: a failing input for each, and the
//! boundaries of `min`, `max`, `expect_rows` and `tolerance`.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::super::testing::{ctx, failed_saying, log, step, toml_path};
use super::*;
use crate::engines::sqlite::SqliteConn;

/// `services` (2 rows) and `dispatches` (5 rows, each referencing a service), an index.
fn db(dir: &Path) -> PathBuf {
    let path = dir.join("db.sqlite");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE services (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
             CREATE TABLE dispatches (id INTEGER PRIMARY KEY,
                 service_id INTEGER NOT NULL REFERENCES services(id), at TEXT);
             CREATE INDEX idx_dispatches_service ON dispatches(service_id);
             INSERT INTO services VALUES (1, 'api'), (2, 'worker');
             INSERT INTO dispatches VALUES (1, 1, 'a'), (2, 2, 'b'), (3, 1, 'c'), (4, 2, 'd'), (5, 1, 'e');",
        )
        .unwrap();
    path
}

fn conn(path: &Path, writable: bool) -> SqliteConn {
    SqliteConn::open(path, writable).unwrap()
}

fn check(toml_fields: &str) -> Check {
    let text = format!("name = \"c\"\n{toml_fields}");
    toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The check's verdict and detail on a fresh database.
fn judge(fields: &str) -> CheckRecord {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    run_check(&mut conn(&path, false), &check(fields))
}

#[track_caller]
fn passes(fields: &str) -> CheckRecord {
    let r = judge(fields);
    assert!(r.passed, "{fields}: {}", r.detail);
    r
}

#[track_caller]
fn fails(fields: &str, says: &str) -> CheckRecord {
    let r = judge(fields);
    failed_saying(&r, says);
    r
}

#[test]
fn expect_compares_the_first_value_loosely() {
    let r = passes(
        r#"query = "SELECT count(*) FROM dispatches"
expect = 5"#,
    );
    assert_eq!(r.detail, "got 5");
    assert_eq!((r.expected, r.actual), (Some(json!(5)), Some(json!(5))));
    passes(
        r#"query = "SELECT 'ok'"
expect = "ok""#,
    );
    passes(
        r#"query = "SELECT 5.0"
expect = "5""#,
    );
    let r = fails(
        r#"query = "SELECT count(*) FROM dispatches"
expect = 4"#,
        "expected 4, got 5",
    );
    assert_eq!(r.actual, Some(json!(5)));
    // No row at all is null, which is not 0.
    fails(
        r#"query = "SELECT 1 WHERE 0"
expect = 0"#,
        "got null",
    );
}

/// Issue 16: the `expect_rows = N` form, passing and failing.
#[test]
fn expect_rows_as_a_number_counts_the_rows() {
    let r = passes(
        r#"query = "SELECT id FROM dispatches"
expect_rows = 5"#,
    );
    // What was compared is the number of rows, not the first cell (id 1).
    assert_eq!((r.expected, r.actual), (Some(json!(5)), Some(json!(5))));
    assert_eq!(r.detail, "got 5 rows");
    let r = fails(
        r#"query = "SELECT id FROM dispatches"
expect_rows = 4"#,
        "expected 4 rows, got 5",
    );
    assert_eq!((r.expected, r.actual), (Some(json!(4)), Some(json!(5))));
    fails(
        r#"query = "SELECT id FROM dispatches WHERE 0"
expect_rows = 1"#,
        "expected 1 rows, got 0",
    );
    passes(
        r#"query = "SELECT id FROM dispatches WHERE 0"
expect_rows = 0"#,
    );
}

/// Issue 16: `expect_rows` as rows fails on any difference.
#[test]
fn expect_rows_as_rows_fails_on_any_difference() {
    let q = r#"query = "SELECT id, name FROM services ORDER BY id""#;
    passes(&format!(
        "{q}\nexpect_rows = [[1, \"api\"], [2, \"worker\"]]"
    ));
    passes(&format!(
        "{q}\nexpect_rows = [[\"1\", \"api\"], [2.0, \"worker\"]]"
    ));
    let r = fails(
        &format!("{q}\nexpect_rows = [[1, \"api\"], [2, \"web\"]]"),
        r#"expected rows [[1,"api"],[2,"web"]], got [[1,"api"],[2,"worker"]]"#,
    );
    assert_eq!(r.expected, Some(json!([[1, "api"], [2, "web"]])));
    assert_eq!(r.actual, Some(json!([[1, "api"], [2, "worker"]])));
    fails(
        &format!("{q}\nexpect_rows = [[1, \"api\"]]"),
        "expected rows",
    );
    fails(&format!("{q}\nexpect_rows = [[1], [2]]"), "expected rows");
    fails(
        &format!("{q}\nexpect_rows = [[1, \"api\", 0], [2, \"worker\", 0]]"),
        "expected rows",
    );
    // A single column's rows may be written as plain values.
    let one = r#"query = "SELECT id FROM services ORDER BY id""#;
    passes(&format!("{one}\nexpect_rows = [1, 2]"));
    fails(&format!("{one}\nexpect_rows = [1, 3]"), "expected rows");
    fails(&format!("{q}\nexpect_rows = [1, 2]"), "expected rows");
    fails(
        &format!("{q}\nexpect_rows = \"two\""),
        "must be a number of rows or an array of rows",
    );
}

/// Issue 16: `min` and `max` hold at their bounds and fail past them.
#[test]
fn min_and_max_are_inclusive_bounds() {
    let q = r#"query = "SELECT count(*) FROM dispatches""#;
    passes(&format!("{q}\nmin = 5\nmax = 5"));
    passes(&format!("{q}\nmin = 1\nmax = 10"));
    fails(&format!("{q}\nmin = 6"), "expected at least 6, got 5");
    fails(&format!("{q}\nmax = 4"), "expected at most 4, got 5");
    let both = fails(
        &format!("{q}\nmin = 6\nmax = 4"),
        "expected at least 6, got 5; expected at most 4, got 5",
    );
    // What was compared: each bound, against the first cell.
    assert_eq!(both.expected, Some(json!({"min": 6, "max": 4})));
    assert_eq!(both.actual, Some(json!({"min": 5, "max": 5})));
    // Numbers as text and booleans count; what is no number fails both ways.
    passes(
        r#"query = "SELECT '7'"
min = 7
max = "7""#,
    );
    passes(
        r#"query = "SELECT 1 = 1"
min = true
max = 1"#,
    );
    fails(
        r#"query = "SELECT 'many'"
min = 0"#,
        "expected at least 0",
    );
    fails(
        r#"query = "SELECT 'many'"
max = 100"#,
        "expected at most 100",
    );
    fails(
        r#"query = "SELECT NULL"
max = 100"#,
        "got null",
    );
}

#[test]
fn a_bad_query_or_a_check_without_query_or_builtin_fails_naming_why() {
    fails(
        r#"query = "SELECT * FROM nope"
expect = 1"#,
        "no such table: nope",
    );
    fails("", "needs a `query` or a `builtin`");
    fails(
        r#"builtin = "json_valid""#,
        "use it in a `kind = \"files\"` step",
    );
    fails(
        r#"builtin = "files_match""#,
        "use it in a `kind = \"files\"` step",
    );
    fails(
        r#"builtin = "file_count""#,
        "use it in a `kind = \"files\"` step",
    );
}

#[test]
fn tables_exist_names_what_is_missing() {
    let r = passes(
        r#"builtin = "tables_exist"
tables = ["services", "dispatches"]"#,
    );
    assert_eq!(r.detail, "all 2 tables present");
    fails(
        r#"builtin = "tables_exist"
tables = ["services", "gone"]"#,
        "missing table: gone",
    );
    let r = fails(
        r#"builtin = "tables_exist"
tables = ["gone", "services", "lost"]"#,
        "missing tables: gone, lost",
    );
    // Wanted, and of those found: never the missing as if they were found.
    assert_eq!(r.expected, Some(json!(["gone", "services", "lost"])));
    assert_eq!(r.actual, Some(json!(["services"])));
    // From what the backup saw: the keys of a map, or a list.
    passes(
        r#"builtin = "tables_exist"
compare_to = { services = 2, dispatches = 5 }"#,
    );
    fails(
        r#"builtin = "tables_exist"
compare_to = { services = 2, gone = 5 }"#,
        "missing table: gone",
    );
    fails(
        r#"builtin = "tables_exist"
compare_to = ["services", "gone"]"#,
        "missing table: gone",
    );
    fails(
        r#"builtin = "tables_exist"
compare_to = [7]"#,
        "missing table: 7",
    );
    // An explicit list wins over compare_to.
    passes(
        r#"builtin = "tables_exist"
tables = ["services"]
compare_to = ["gone"]"#,
    );
    fails(
        r#"builtin = "tables_exist""#,
        "needs `tables` or a `compare_to` list",
    );
    fails(
        r#"builtin = "tables_exist"
compare_to = "services""#,
        "needs `tables` or a `compare_to` list",
    );
}

#[test]
fn indexes_exist_names_what_is_missing() {
    passes(
        r#"builtin = "indexes_exist"
indexes = ["idx_dispatches_service"]"#,
    );
    fails(
        r#"builtin = "indexes_exist"
indexes = ["idx_dispatches_service", "idx_gone"]"#,
        "missing index: idx_gone",
    );
    fails(
        r#"builtin = "indexes_exist"
compare_to = ["idx_a", "idx_b"]"#,
        "missing indexes: idx_a, idx_b",
    );
    fails(
        r#"builtin = "indexes_exist""#,
        "needs `indexes` or a `compare_to` list",
    );
}

/// Issue 16: `table_counts` fails on a lost row, and its `tables` filter compares only
/// the tables it names.
#[test]
fn table_counts_compare_with_the_source_within_the_tolerance() {
    let r = passes(
        r#"builtin = "table_counts"
compare_to = { services = 2, dispatches = 5 }"#,
    );
    assert_eq!(r.detail, "2 tables match the source");
    assert_eq!(r.actual, Some(json!({"services": 2, "dispatches": 5})));
    assert_eq!(r.expected, Some(json!({"services": 2, "dispatches": 5})));
    let r = fails(
        r#"builtin = "table_counts"
compare_to = { services = 2, dispatches = 7 }"#,
        "dispatches: 5 rows, source had 7",
    );
    assert_eq!(r.actual, Some(json!({"services": 2, "dispatches": 5})));
    fails(
        r#"builtin = "table_counts"
compare_to = { dispatches = 3 }"#,
        "dispatches: 5 rows, source had 3",
    );
    // Within the tolerance either way, and not one row past it.
    passes(
        r#"builtin = "table_counts"
compare_to = { dispatches = 7 }
tolerance = 2"#,
    );
    passes(
        r#"builtin = "table_counts"
compare_to = { dispatches = 3 }
tolerance = 2"#,
    );
    fails(
        r#"builtin = "table_counts"
compare_to = { dispatches = 8 }
tolerance = 2"#,
        "source had 8",
    );
    // `tables`: only those are compared.
    let r = passes(
        r#"builtin = "table_counts"
compare_to = { services = 2, dispatches = 7, gone = 1 }
tables = ["services"]"#,
    );
    assert_eq!(r.detail, "1 tables match the source");
    assert_eq!(r.actual, Some(json!({"services": 2})));
    fails(
        r#"builtin = "table_counts"
compare_to = { services = 2, dispatches = 7 }
tables = ["dispatches"]"#,
        "dispatches: 5 rows, source had 7",
    );
    let r = fails(
        r#"builtin = "table_counts"
compare_to = { services = 2, gone = 4 }"#,
        "gone: missing (source had 4 rows)",
    );
    assert_eq!(r.actual, Some(json!({"services": 2, "gone": null})));
    fails(
        r#"builtin = "table_counts"
compare_to = { services = "two" }"#,
        "expected count for `services` is not a number",
    );
    fails(
        r#"builtin = "table_counts"
compare_to = ["services"]"#,
        "`compare_to` must be a map of table to row count",
    );
    fails(r#"builtin = "table_counts""#, "`compare_to` must be a map");
}

/// A database with an orphan row and an index that does not match its table.
fn broken(dir: &Path) -> PathBuf {
    let path = db(dir);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "PRAGMA foreign_keys = OFF;
             INSERT INTO dispatches VALUES (100, 99, 'z');
             CREATE INDEX idx_extra ON dispatches(at);
             PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = 'CREATE INDEX idx_extra ON dispatches(service_id)'
                 WHERE name = 'idx_extra';
             PRAGMA writable_schema = OFF;",
        )
        .unwrap();
    path
}

#[test]
fn integrity_full_and_quick_pass_on_a_good_database_and_fail_on_a_broken_index() {
    passes(r#"builtin = "integrity""#);
    let r = passes(
        r#"builtin = "integrity"
quick = true"#,
    );
    assert_eq!(r.detail, "integrity check passed");
    let dir = tempfile::tempdir().unwrap();
    let path = broken(dir.path());
    let full = run_check(&mut conn(&path, false), &check(r#"builtin = "integrity""#));
    assert!(!full.passed);
    assert!(full.detail.contains("idx_extra"), "{}", full.detail);
    assert!(full.actual.unwrap().as_u64().unwrap() >= 1);
}

/// Issue 16: `foreign_keys` fails on an orphan row, and with `compare_to` (the backup's
/// `foreign_keys`) on a key that is gone; SQLite lists its keys by what they join.
#[test]
fn foreign_keys_fail_on_an_orphan_and_on_a_key_that_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let mut c = conn(&path, false);
    let names = c.foreign_key_names().unwrap().unwrap();
    assert_eq!(names, ["dispatches(service_id) -> services(id)"]);
    let held = format!("builtin = \"foreign_keys\"\ncompare_to = {}", json!(names));
    let r = run_check(&mut c, &check(&held));
    assert!(r.passed, "{}", r.detail);
    assert_eq!(r.detail, "every foreign key holds");
    let gone = r#"builtin = "foreign_keys"
compare_to = ["dispatches(service_id) -> services(id)", "orders(user_id) -> users(id)"]"#;
    let r = run_check(&mut c, &check(gone));
    assert!(!r.passed);
    assert_eq!(
        r.detail,
        "1 problem(s): orders(user_id) -> users(id) is missing"
    );
    assert_eq!(r.actual, Some(json!(1)));
    let not_a_list = run_check(&mut c, &check("builtin = \"foreign_keys\"\ncompare_to = 3"));
    assert!(!not_a_list.passed);
    drop(c);

    let bad = tempfile::tempdir().unwrap();
    let path = broken(bad.path());
    let r = run_check(
        &mut conn(&path, false),
        &check(r#"builtin = "foreign_keys""#),
    );
    failed_saying(&r, "dispatches row 100 references missing services");
}

#[test]
fn many_problems_are_cut_to_ten_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let wanted: Vec<String> = (0..12).map(|i| format!("t{i}(x) -> p(id)")).collect();
    let fields = format!("builtin = \"foreign_keys\"\ncompare_to = {}", json!(wanted));
    let r = run_check(&mut conn(&path, false), &check(&fields));
    assert!(
        r.detail
            .starts_with("12 problem(s): t0(x) -> p(id) is missing; "),
        "{}",
        r.detail
    );
    assert!(
        r.detail.ends_with("t9(x) -> p(id) is missing; and 2 more"),
        "{}",
        r.detail
    );
    assert!(!r.detail.contains("t10"), "{}", r.detail);
    assert_eq!(r.actual, Some(json!(12)));
    let ten = format!(
        "builtin = \"foreign_keys\"\ncompare_to = {}",
        json!(wanted[..10])
    );
    let r = run_check(&mut conn(&path, false), &check(&ten));
    assert!(!r.detail.contains("more"), "{}", r.detail);
}

/// An `sql` step with `fields` on the database of [`db`] in a new folder (which holds
/// the step's log).
fn run_on_db(fields: &str) -> (tempfile::TempDir, StepOutcome) {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("database = {}", toml_path(&db(dir.path())));
    let out = run_step(dir.path(), &format!("{database}\n{fields}"));
    (dir, out)
}

fn run_step(dir: &Path, fields: &str) -> StepOutcome {
    let toml = format!("id = \"t\"\nkind = \"sql\"\nengine = \"sqlite\"\n{fields}");
    super::super::execute(&step(&toml), &ctx(dir))
}

#[test]
fn a_step_passes_when_every_check_passes_and_outputs_the_first_value() {
    let (dir, out) = run_on_db(
        "[[checks]]
name = \"count\"
query = \"SELECT count(*) FROM services\"
expect = 2
[[checks]]
name = \"fks\"
builtin = \"foreign_keys\"",
    );
    assert!(out.passed, "{:?}", out.error);
    assert_eq!(out.outputs["value"], json!(2));
    assert_eq!(out.outputs["checks"], json!({"count": true, "fks": true}));
    assert_eq!(out.checks.len(), 2);
    assert!(log(dir.path()).contains("check count: ok: got 2"));
}

#[test]
fn a_step_fails_naming_every_failed_check() {
    let (dir, one) = run_on_db("[[checks]]\nname = \"n\"\nquery = \"SELECT 1\"\nexpect = 2");
    assert!(!one.passed);
    assert_eq!(
        one.error.as_deref(),
        Some("1 check failed: n: expected 2, got 1")
    );
    assert_eq!(one.log_tail.as_deref(), Some("n: expected 2, got 1"));
    assert_eq!(one.outputs["checks"], json!({"n": false}));
    assert!(log(dir.path()).contains("check n: FAILED: expected 2, got 1"));
    let (_, two) = run_on_db(
        "[[checks]]
name = \"a\"
query = \"SELECT 1\"
expect = 2
[[checks]]
name = \"ok\"
query = \"SELECT 1\"
expect = 1
[[checks]]
name = \"b\"
query = \"SELECT 3\"
max = 2",
    );
    assert_eq!(
        two.error.as_deref(),
        Some("2 checks failed: a: expected 2, got 1; b: expected at most 2, got 3")
    );
    // `value` is the first check's first cell, whatever the check compared.
    let (_, rows) = run_on_db(
        "[[checks]]\nname = \"n\"\nquery = \"SELECT id FROM services ORDER BY id DESC\"\nexpect_rows = 2",
    );
    assert_eq!(rows.outputs["value"], json!(2));
    assert_eq!(rows.checks[0].actual, Some(json!(2)));
    let (_, rows) = run_on_db(
        "[[checks]]\nname = \"n\"\nquery = \"SELECT name FROM services ORDER BY id\"\nexpect_rows = 2",
    );
    assert_eq!(rows.outputs["value"], json!("api"));
    assert_eq!(rows.checks[0].actual, Some(json!(2)));
    // No checks: the value is null and the step passes.
    let (_, none) = run_on_db("");
    assert!(none.passed);
    assert_eq!(none.outputs["value"], json!(null));
}

#[test]
fn execute_runs_statements_on_a_writable_connection() {
    let (dir, out) = run_on_db(
        "execute = \"DELETE FROM dispatches\"\n[[checks]]\nname = \"n\"\nquery = \"SELECT count(*) FROM dispatches\"\nexpect = 0",
    );
    assert!(out.passed, "{:?}", out.error);
    assert!(log(dir.path()).contains("executed 22 bytes of SQL"));
    let out = run_step(dir.path(), "execute = \"SELECT 1\"");
    assert!(out.error.unwrap().contains("database"));
}

#[test]
fn loose_equality_of_numbers_text_and_booleans() {
    assert!(loosely_equal(&json!(1), &json!(true)));
    assert!(loosely_equal(&json!(" 2 "), &json!(2)));
    assert!(!loosely_equal(&json!([1]), &json!([1.0])));
    assert!(!loosely_equal(&json!(null), &json!(0)));
    assert_eq!(number(&json!(false)), Some(0.0));
    assert_eq!(number(&json!("x")), None);
    assert!(rows_equal(
        &[json!([1, "a"])],
        &[vec![json!(1), json!("a")]]
    ));
    assert!(!rows_equal(
        &[json!([1, "a"])],
        &[vec![json!(1), json!("b")]]
    ));
    assert!(!rows_equal(&[json!(1)], &[vec![json!(1), json!(2)]]));
    assert!(!rows_equal(&[json!(1)], &[]));
}
