//! `sql`: run statements and verification checks against a database, through the
//! connection its engine gives (`Engine::connect`, a `SqlConn`).

use anyhow::bail;
use indexmap::IndexMap;
use serde_json::{Value, json};

use super::backup::engine_of;
use super::sql_content;
use super::sql_records::{
    builtin_name, missing_record, names_from, nothing_record, problem_record, record,
};
use super::{StepCtx, StepOutcome, required};
use crate::artifact::CheckRecord;
use crate::engines::SqlConn;
use crate::playbook::{Builtin, Check, Step};

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let database = required(step.database.as_deref(), "database")?;
    let writable = step.execute.is_some();
    // What `execute` writes to is checked as any path a step writes: never a source.
    let resolved = ctx.sources.check_writable_sql(step)?;
    let database = resolved
        .as_deref()
        .and_then(|p| p.to_str())
        .unwrap_or(database);
    let mut conn = ctx.with_engine(|e| engine_of(step)?.connect(database, writable, e))?;
    if let Some(sql) = &step.execute {
        conn.execute_batch(sql)?;
        ctx.log.write(
            &ctx.step_id,
            &format!("executed {} bytes of SQL", sql.len()),
        );
    }
    let (checks, values): (Vec<CheckRecord>, Vec<Value>) = step
        .checks
        .iter()
        .flatten()
        .map(|check| checked(conn.as_mut(), check))
        .unzip();
    let value = values.into_iter().next().unwrap_or(Value::Null);
    Ok(outcome_of_checks(checks, value, ctx))
}

/// Logs the checks and makes the step's outcome: outputs `value` (the first check's
/// value: a query's first cell, a builtin's finding) and `checks` (name → passed);
/// failed when any check failed.
pub fn outcome_of_checks(checks: Vec<CheckRecord>, value: Value, ctx: &StepCtx) -> StepOutcome {
    for c in &checks {
        let mark = if c.passed { "ok" } else { "FAILED" };
        ctx.log.write(
            &ctx.step_id,
            &format!("check {}: {mark}: {}", c.name, c.detail),
        );
    }
    let mut outputs = serde_json::Map::new();
    outputs.insert("value".into(), value);
    outputs.insert(
        "checks".into(),
        checks
            .iter()
            .map(|c| (c.name.clone(), Value::Bool(c.passed)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    );
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    let mut outcome = StepOutcome::passed(outputs);
    outcome.checks = checks;
    if !failed.is_empty() {
        outcome.log_tail = Some(failed.join("\n"));
        return outcome.fail(format!(
            "{} failed: {}",
            crate::fmt::plural(failed.len(), "check"),
            failed.join("; ")
        ));
    }
    outcome
}

/// Runs one check; an error (bad SQL, missing table) is a failed check, not a crash.
pub fn run_check(conn: &mut dyn SqlConn, check: &Check) -> CheckRecord {
    checked(conn, check).0
}

/// One check's record, and its value (output `value` when it is the first check): a
/// query's first cell, whatever it compared; a builtin's `actual`.
fn checked(conn: &mut dyn SqlConn, check: &Check) -> (CheckRecord, Value) {
    let result = match (&check.query, check.builtin) {
        (Some(query), _) => query_check(conn, check, query),
        (None, Some(builtin)) => builtin_check(conn, check, builtin).map(|r| {
            let value = r.actual.clone().unwrap_or(Value::Null);
            (r, value)
        }),
        (None, None) => Err(anyhow::anyhow!("needs a `query` or a `builtin`")),
    };
    result.unwrap_or_else(|e| {
        let record = CheckRecord {
            name: check.name.clone(),
            passed: false,
            detail: format!("{e:#}"),
            expected: None,
            actual: None,
            builtin: builtin_name(check),
        };
        (record, Value::Null)
    })
}

/// A query and its expectations: `expect` (the single value, loosely), `expect_rows` (the
/// number of rows, or the rows exactly), `min` / `max` (bounds of the single value). The
/// record's `expected` and `actual` are what was compared: the one expectation's, or an
/// object of each (`{"expect_rows": 2, "min": 1}`) where there are several.
fn query_check(
    conn: &mut dyn SqlConn,
    check: &Check,
    query: &str,
) -> anyhow::Result<(CheckRecord, Value)> {
    let rows = conn.query(query)?;
    let cell = rows.first().and_then(|r| r.first());
    let cell = cell.cloned().unwrap_or(Value::Null);
    // What the record keeps and messages quote; the comparisons read `cell` and `rows`.
    let first = kept(&cell);
    let mut failures = Vec::new();
    // `expect`, `min` and `max` read the query's single value: of a longer result, every
    // row and column but the first would go unchecked.
    let columns = rows.first().map_or(0, Vec::len);
    let reads_one = check.expect.is_some() || check.min.is_some() || check.max.is_some();
    if reads_one && (rows.len() > 1 || columns > 1) {
        let got = crate::fmt::plural(rows.len(), "row");
        failures.push(format!(
            "`expect`, `min` and `max` read a single value, but the query returned {got} of {}",
            crate::fmt::plural(columns, "column")
        ));
    }
    let mut compared: Vec<(&str, Value, Value)> = Vec::new();
    if let Some(expect) = &check.expect {
        if !loosely_equal(expect, &cell) {
            failures.push(format!("expected {expect}, got {first}"));
        }
        compared.push(("expect", expect.clone(), first.clone()));
    }
    if let Some(expect_rows) = &check.expect_rows {
        let got = match expect_rows {
            Value::Number(n) => {
                if n.as_u64() != Some(rows.len() as u64) {
                    failures.push(format!("expected {n} rows, got {}", rows.len()));
                }
                json!(rows.len())
            }
            Value::Array(expected) => {
                let got = kept_rows(&rows);
                if !rows_equal(expected, &rows) {
                    failures.push(format!("expected rows {}, got {got}", kept(expect_rows)));
                }
                got
            }
            other => {
                bail!("`expect_rows` must be a number of rows or an array of rows, not {other}")
            }
        };
        compared.push(("expect_rows", expect_rows.clone(), got));
    }
    if let Some(min) = &check.min {
        if !(number(&cell).zip(number(min)).is_some_and(|(v, m)| v >= m)) {
            failures.push(format!("expected at least {min}, got {first}"));
        }
        compared.push(("min", min.clone(), first.clone()));
    }
    if let Some(max) = &check.max {
        if !(number(&cell).zip(number(max)).is_some_and(|(v, m)| v <= m)) {
            failures.push(format!("expected at most {max}, got {first}"));
        }
        compared.push(("max", max.clone(), first.clone()));
    }
    let (expected, actual) = match compared.as_slice() {
        [] => (None, first.clone()),
        [(_, want, got)] => (Some(want.clone()), got.clone()),
        many => {
            let (mut want, mut got) = (serde_json::Map::new(), serde_json::Map::new());
            for (field, wanted, found) in many {
                want.insert(field.to_string(), wanted.clone());
                got.insert(field.to_string(), found.clone());
            }
            (Some(want.into()), got.into())
        }
    };
    let passed = failures.is_empty();
    let detail = match (passed, &check.expect_rows) {
        (false, _) => failures.join("; "),
        (true, Some(_)) if compared.len() == 1 => {
            format!("got {}", crate::fmt::plural(rows.len(), "row"))
        }
        (true, _) => format!("got {first}"),
    };
    Ok((record(check, passed, detail, expected, Some(actual)), first))
}

/// The most of a query's result the record keeps and a message quotes (the comparisons
/// read all of it): a text cell's first 4 KiB, the first 100 rows. A check's query that
/// returns a large blob or a whole table made records of gigabytes, past what `report`
/// and `status` read back.
const KEEP_TEXT: usize = 4096;
const KEEP_ROWS: usize = 100;

/// `value` as the record keeps it: long text cut (`… (N bytes)`), long lists cut with a
/// last entry saying how many more there were.
fn kept(value: &Value) -> Value {
    match value {
        Value::String(s) if s.len() > KEEP_TEXT => {
            let cut = super::http::truncate(s, KEEP_TEXT);
            json!(format!("{cut} ({} bytes)", s.len()))
        }
        Value::Array(items) => cut_list(items.len(), items.iter().take(KEEP_ROWS).map(kept)),
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), kept(v))).collect(),
        other => other.clone(),
    }
}

/// The rows of a result as the record keeps them (see [`kept`]).
fn kept_rows(rows: &[Vec<Value>]) -> Value {
    let shown = rows.iter().take(KEEP_ROWS);
    cut_list(
        rows.len(),
        shown.map(|r| Value::Array(r.iter().map(kept).collect())),
    )
}

/// The first items of a list of `len`, and `… and N more` when some were left out.
fn cut_list(len: usize, first: impl Iterator<Item = Value>) -> Value {
    let mut out: Vec<Value> = first.collect();
    if len > out.len() {
        out.push(json!(format!("… and {} more", len - out.len())));
    }
    Value::Array(out)
}

fn builtin_check(
    conn: &mut dyn SqlConn,
    check: &Check,
    builtin: Builtin,
) -> anyhow::Result<CheckRecord> {
    Ok(match builtin {
        Builtin::Integrity => {
            let problems = conn.integrity_problems(check.quick.unwrap_or(false))?;
            problem_record(check, problems, "integrity check passed")
        }
        Builtin::ForeignKeys => {
            let mut problems = conn.foreign_key_problems()?;
            if let Some(wanted) = &check.compare_to {
                problems.extend(missing_foreign_keys(conn, wanted)?);
            }
            problem_record(check, problems, "every foreign key holds")
        }
        Builtin::TablesExist => {
            let listed = check
                .tables
                .as_deref()
                .map(|t| conn.resolve_tables(t))
                .transpose()?;
            let wanted = names_from(listed.as_deref(), check.compare_to.as_ref(), "tables")?;
            let present = conn.tables()?;
            missing_record(check, &wanted, &present, ("table", "tables"))
        }
        Builtin::IndexesExist => {
            let wanted = names_from(
                check.indexes.as_deref(),
                check.compare_to.as_ref(),
                "indexes",
            )?;
            let present = conn.indexes()?;
            missing_record(check, &wanted, &present, ("index", "indexes"))
        }
        Builtin::TableCounts => table_counts(conn, check)?,
        Builtin::TableDigests => sql_content::table_digests(conn, check)?,
        Builtin::Sequences => sql_content::sequences(conn, check)?,
        Builtin::ObjectsExist => sql_content::objects_exist(conn, check)?,
        Builtin::RolesExist => sql_content::roles_exist(conn, check)?,
        Builtin::FilesMatch | Builtin::JsonValid | Builtin::FileCount => {
            bail!("a files check: use it in a `kind = \"files\"` step")
        }
    })
}

/// The constraints of `compare_to` (e.g. the backup's `foreign_keys`) that are gone.
fn missing_foreign_keys(conn: &mut dyn SqlConn, wanted: &Value) -> anyhow::Result<Vec<String>> {
    let wanted = names_from(None, Some(wanted), "foreign keys")?;
    let Some(present) = conn.foreign_key_names()? else {
        bail!("this engine cannot list foreign keys by name to compare with `compare_to`");
    };
    Ok(wanted
        .into_iter()
        .filter(|w| !present.contains(w))
        .map(|w| format!("{w} is missing"))
        .collect())
}

fn table_counts(conn: &mut dyn SqlConn, check: &Check) -> anyhow::Result<CheckRecord> {
    let Some(Value::Object(expected)) = &check.compare_to else {
        bail!(
            "`compare_to` must be a map of table to row count, such as {{{{ steps.backup.table_counts }}}}"
        );
    };
    let tolerance = check.tolerance.unwrap_or(0);
    let present = conn.tables()?;
    let mut actual: IndexMap<String, Value> = IndexMap::new();
    let mut problems = Vec::new();
    // The tables listed, named as the engine names them; each must be in `compare_to`
    // (else nothing would be compared for it, and the check could pass on nothing).
    let only = check
        .tables
        .as_deref()
        .map(|t| conn.resolve_tables(t))
        .transpose()?;
    for table in only.iter().flatten().filter(|t| !expected.contains_key(*t)) {
        problems.push(format!("{table}: not among the tables of `compare_to`"));
    }
    for (table, want) in expected {
        if only.as_ref().is_some_and(|only| !only.contains(table)) {
            continue;
        }
        let Some(want) = want.as_u64() else {
            bail!("expected count for `{table}` is not a number: {want}");
        };
        if !present.contains(table) {
            problems.push(format!("{table}: missing (source had {want} rows)"));
            actual.insert(table.clone(), Value::Null);
            continue;
        }
        let got = conn.count_rows(std::slice::from_ref(table))?[table];
        actual.insert(table.clone(), json!(got));
        if got.abs_diff(want) > tolerance {
            problems.push(format!("{table}: {got} rows, source had {want}"));
        }
    }
    let compared = actual.len();
    if compared == 0 && problems.is_empty() {
        let why = match only {
            Some(_) => "`tables` lists no table",
            None => "`compare_to` names no table",
        };
        return Ok(nothing_record(check, why));
    }
    let actual = Some(json!(actual));
    Ok(if problems.is_empty() {
        record(
            check,
            true,
            format!("{compared} tables match the source"),
            check.compare_to.clone(),
            actual,
        )
    } else {
        record(
            check,
            false,
            problems.join("; "),
            check.compare_to.clone(),
            actual,
        )
    })
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// Equal as the same JSON, or as numbers (`1` = `1.0` = `"1"`; SQLite's booleans are 0/1).
pub fn loosely_equal(expected: &Value, actual: &Value) -> bool {
    if expected == actual {
        return true;
    }
    match (number(expected), number(actual)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn rows_equal(expected: &[Value], rows: &[Vec<Value>]) -> bool {
    expected.len() == rows.len()
        && expected.iter().zip(rows).all(|(e, row)| match e {
            Value::Array(cells) => {
                cells.len() == row.len() && cells.iter().zip(row).all(|(a, b)| loosely_equal(a, b))
            }
            single => row.len() == 1 && loosely_equal(single, &row[0]),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_equality() {
        assert!(loosely_equal(&json!(3), &json!(3.0)));
        assert!(loosely_equal(&json!("3"), &json!(3)));
        assert!(loosely_equal(&json!("ok"), &json!("ok")));
        assert!(!loosely_equal(&json!(3), &json!(4)));
        assert!(!loosely_equal(&json!("ok"), &json!(null)));
    }

    /// The record keeps a text of up to `KEEP_TEXT` bytes and `KEEP_ROWS` items whole;
    /// one byte or one item more is cut, saying how much there was.
    #[test]
    fn what_the_record_keeps_of_a_result() {
        let whole = "x".repeat(KEEP_TEXT);
        assert_eq!(kept(&json!(whole)), json!(whole));
        let long = kept(&json!(format!("{whole}y"))).to_string();
        assert!(
            long.ends_with(&format!(" ({} bytes)\"", KEEP_TEXT + 1)),
            "{long}"
        );
        let items: Vec<Value> = (0..KEEP_ROWS).map(|i| json!(i)).collect();
        assert_eq!(kept(&json!(items)), json!(items));
        let more: Vec<Value> = (0..=KEEP_ROWS).map(|i| json!(i)).collect();
        let cut = kept(&json!(more));
        assert_eq!(cut.as_array().unwrap().len(), KEEP_ROWS + 1);
        assert_eq!(cut[KEEP_ROWS], json!("… and 1 more"));
        assert_eq!(kept_rows(&[vec![json!(1)]]), json!([[1]]));
    }
}

#[cfg(test)]
#[path = "sql_tests.rs"]
mod more_tests;
