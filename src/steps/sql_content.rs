//! The builtins of what row counts cannot see: `table_digests` (each table's content
//! against the backup's digests), `sequences`, `objects_exist`, `roles_exist`.

use anyhow::bail;
use indexmap::IndexMap;
use serde_json::{Value, json};

use super::sql_records::{missing_record, names_from, nothing_record, problem_record, record};
use crate::artifact::CheckRecord;
use crate::engines::digest::{self, TableDigest};
use crate::engines::{SqlConn, roles};
use crate::playbook::Check;

pub(super) fn sequences(conn: &mut dyn SqlConn, check: &Check) -> anyhow::Result<CheckRecord> {
    let found = conn.content().sequences()?;
    if found.checked == 0 {
        let why = "no sequence (AUTO_INCREMENT, sqlite_sequence entry, SEQUENCE) feeds a key";
        return Ok(nothing_record(check, why));
    }
    let ok = format!(
        "each of the {} sequences is ahead of the largest key it feeds",
        found.checked
    );
    Ok(problem_record(check, found.behind, &ok))
}

pub(super) fn objects_exist(conn: &mut dyn SqlConn, check: &Check) -> anyhow::Result<CheckRecord> {
    let wanted = names_from(None, check.compare_to.as_ref(), "objects")?;
    let present = conn.content().objects()?;
    Ok(missing_record(
        check,
        &wanted,
        &present,
        ("object", "objects"),
    ))
}

pub(super) fn roles_exist(conn: &mut dyn SqlConn, check: &Check) -> anyhow::Result<CheckRecord> {
    let roles = check.roles.clone().unwrap_or_default();
    let grants = check.grants.clone().unwrap_or_default();
    let mut content = conn.content();
    let Some(r) = content.roles() else {
        bail!("this engine has no roles");
    };
    let granted: usize = grants.values().map(Vec::len).sum();
    if roles.is_empty() && granted == 0 {
        return Ok(nothing_record(check, "no role or grant listed"));
    }
    let problems = roles::role_problems(r, &roles, &grants)?;
    let ok = format!(
        "{} exist and can log in; {} hold",
        crate::fmt::plural(roles.len(), "role"),
        crate::fmt::plural(granted, "grant")
    );
    Ok(problem_record(check, problems, &ok))
}

/// The source's digests (`compare_to`), the tables of `tables` only when listed.
fn sources(conn: &mut dyn SqlConn, check: &Check) -> anyhow::Result<Vec<TableDigest>> {
    let Some(Value::Object(expected)) = &check.compare_to else {
        bail!(
            "`compare_to` must be a map of table to digest, such as {{{{ steps.backup.table_digests }}}} (a backup with `digests = true`)"
        );
    };
    let only = check
        .tables
        .as_deref()
        .map(|t| conn.resolve_tables(t))
        .transpose()?;
    if let Some(t) = only.iter().flatten().find(|t| !expected.contains_key(*t)) {
        bail!("{t}: not among the tables of `compare_to`");
    }
    expected
        .iter()
        .filter(|(t, _)| only.as_ref().is_none_or(|only| only.contains(t)))
        .map(|(t, v)| TableDigest::from_json(t, v))
        .collect()
}

pub(super) fn table_digests(conn: &mut dyn SqlConn, check: &Check) -> anyhow::Result<CheckRecord> {
    let sources = sources(conn, check)?;
    if sources.is_empty() {
        return Ok(nothing_record(check, "no table's digest to compare"));
    }
    let present = conn.tables()?;
    let mut problems = Vec::new();
    let mut actual: IndexMap<String, Value> = IndexMap::new();
    let (there, gone): (Vec<&TableDigest>, Vec<&TableDigest>) = sources
        .iter()
        .partition(|s| present.contains(&s.plan.table));
    for s in gone {
        problems.push(format!(
            "{}: missing (source had {} rows)",
            s.plan.table, s.total.rows
        ));
        actual.insert(s.plan.table.clone(), Value::Null);
    }
    let plans: Vec<digest::Plan> = there.iter().map(|s| s.plan.clone()).collect();
    let mut content = conn.content();
    // As many as the engine takes: a large table is split among them.
    let more = content.more_digesters(usize::MAX)?;
    let restored = digest::digest_by_plans(content.as_mut(), more, &plans);
    let mut rows = 0;
    for (source, restored) in there.into_iter().zip(restored) {
        let table = &source.plan.table;
        let restored = restored.map_err(|e| e.context(format!("digesting {table}")))?;
        rows += restored.total.rows;
        if let Some(diff) = source.difference(&restored) {
            problems.push(format!("{table}: {diff}"));
        }
        actual.insert(table.clone(), restored.to_json());
    }
    let (passed, detail) = if problems.is_empty() {
        let n = crate::fmt::plural(actual.len(), "table");
        let verb = if actual.len() == 1 {
            "matches"
        } else {
            "match"
        };
        (
            true,
            format!("{n} {verb} the source's digests ({rows} rows hashed)"),
        )
    } else {
        (false, problems.join("; "))
    };
    let expected = check.compare_to.clone();
    Ok(record(check, passed, detail, expected, Some(json!(actual))))
}
