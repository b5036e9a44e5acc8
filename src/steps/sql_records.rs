//! How `sql` checks record their result: a record, a list of problems, names missing
//! from a list; shared by the builtins of `sql.rs` and `sql_content.rs`.

use anyhow::bail;
use serde_json::{Value, json};

use crate::artifact::CheckRecord;
use crate::playbook::Check;

pub fn record(
    check: &Check,
    passed: bool,
    detail: String,
    expected: Option<Value>,
    actual: Option<Value>,
) -> CheckRecord {
    CheckRecord {
        name: check.name.clone(),
        passed,
        detail,
        expected,
        actual,
        builtin: builtin_name(check),
    }
}

/// The name of the check's builtin, as the playbook writes it.
pub fn builtin_name(check: &Check) -> Option<String> {
    let name = serde_json::to_value(check.builtin?).ok()?;
    name.as_str().map(str::to_string)
}

pub fn problem_record(check: &Check, problems: Vec<String>, ok: &str) -> CheckRecord {
    if problems.is_empty() {
        return record(check, true, ok.into(), None, None);
    }
    let shown: Vec<&String> = problems.iter().take(10).collect();
    let more = problems.len().saturating_sub(10);
    let mut detail = format!(
        "{} problem(s): {}",
        problems.len(),
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
    if more > 0 {
        detail.push_str(&format!("; and {more} more"));
    }
    record(check, false, detail, None, Some(json!(problems.len())))
}

/// The record of a check that had nothing to compare (an empty list, a `compare_to`
/// naming nothing): failed, since a check over nothing proves nothing.
pub fn nothing_record(check: &Check, why: &str) -> CheckRecord {
    let detail = format!("nothing to check: {why}");
    record(check, false, detail, check.compare_to.clone(), None)
}

/// Whether every `wanted` name is `present`: `expected` lists the wanted, `actual` those
/// of them found, and a failure's detail names the missing (none wanted fails).
pub fn missing_record(
    check: &Check,
    wanted: &[String],
    present: &[String],
    (one, many): (&str, &str),
) -> CheckRecord {
    if wanted.is_empty() {
        return nothing_record(check, &format!("no {many} to look for"));
    }
    let (found, missing): (Vec<&String>, Vec<&String>) =
        wanted.iter().partition(|w| present.contains(w));
    let (passed, detail) = match missing.as_slice() {
        [] => (true, format!("all {} {many} present", wanted.len())),
        [only] => (false, format!("missing {one}: {only}")),
        _ => {
            let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            (false, format!("missing {many}: {}", list.join(", ")))
        }
    };
    record(
        check,
        passed,
        detail,
        Some(json!(wanted)),
        Some(json!(found)),
    )
}

/// An explicit list, or the names (keys or items) of `compare_to`.
pub fn names_from(
    list: Option<&[String]>,
    compare_to: Option<&Value>,
    field: &str,
) -> anyhow::Result<Vec<String>> {
    if let Some(list) = list {
        return Ok(list.to_vec());
    }
    match compare_to {
        Some(Value::Object(map)) => Ok(map.keys().cloned().collect()),
        Some(Value::Array(items)) => Ok(items
            .iter()
            .map(|v| v.as_str().map_or(v.to_string(), str::to_string))
            .collect()),
        _ => bail!("needs `{field}` or a `compare_to` list"),
    }
}
