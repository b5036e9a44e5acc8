//! The `files` step kind: verifies a restored tree (of a `files` backup) with builtin
//! checks, the counterpart of `sql` checks for a database: same `[[steps.checks]]` list,
//! same outputs.

use std::path::Path;

use anyhow::{Context as _, bail, ensure};
use serde_json::json;

use super::sql_records::{nothing_record, record};
use super::{StepCtx, StepOutcome, required};
use crate::artifact::CheckRecord;
use crate::engines::files::verify;
use crate::playbook::{Builtin, Check, Step};

/// The `files` step kind: checks over a directory tree.
pub fn verify(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let dir = Path::new(required(step.directory.as_deref(), "directory")?);
    ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    let checks: Vec<CheckRecord> = step
        .checks
        .iter()
        .flatten()
        .map(|c| run_check(dir, c, ctx))
        .collect();
    let value = checks.first().and_then(|c| c.actual.clone());
    Ok(super::sql::outcome_of_checks(
        checks,
        value.unwrap_or_default(),
        ctx,
    ))
}

fn run_check(dir: &Path, check: &Check, ctx: &StepCtx) -> CheckRecord {
    let result = match check.builtin {
        Some(Builtin::FilesMatch) => files_match(dir, check, ctx),
        Some(Builtin::JsonValid) => json_valid(dir, check, ctx),
        Some(Builtin::FileCount) => file_count(dir, check),
        _ => Err(anyhow::anyhow!(
            "a files step takes builtin files_match, json_valid or file_count"
        )),
    };
    result.unwrap_or_else(|e| record(check, false, format!("{e:#}"), None, None))
}

fn files_match(dir: &Path, check: &Check, ctx: &StepCtx) -> anyhow::Result<CheckRecord> {
    let Some(manifest) = &check.manifest else {
        bail!("`files_match` needs `manifest`");
    };
    let cmp = verify::files_match(dir, Path::new(manifest), &ctx.cancel)?;
    Ok(if cmp.problems.is_empty() && cmp.matched == 0 {
        // An empty manifest and an empty tree: nothing was compared.
        nothing_record(check, &format!("{manifest} lists no entry"))
    } else if cmp.problems.is_empty() {
        let detail = format!(
            "{} entries match the backup ({} bytes)",
            cmp.matched, cmp.bytes
        );
        record(check, true, detail, None, Some(json!(cmp.matched)))
    } else {
        record(
            check,
            false,
            summarize(&cmp.problems),
            None,
            Some(json!(cmp.problems.len())),
        )
    })
}

fn json_valid(dir: &Path, check: &Check, ctx: &StepCtx) -> anyhow::Result<CheckRecord> {
    let patterns = check
        .paths
        .clone()
        .unwrap_or_else(|| vec!["**/*.json".into()]);
    let select = verify::Selection::new(&patterns)?;
    let (checked, problems) = verify::json_problems(dir, &select, &ctx.cancel)?;
    Ok(if checked == 0 {
        // A check over nothing proves nothing.
        record(
            check,
            false,
            format!("no file matches {}", patterns.join(", ")),
            None,
            Some(json!(0)),
        )
    } else if problems.is_empty() {
        record(
            check,
            true,
            format!("{checked} JSON files parse"),
            None,
            Some(json!(checked)),
        )
    } else {
        record(
            check,
            false,
            summarize(&problems),
            None,
            Some(json!(problems.len())),
        )
    })
}

fn file_count(dir: &Path, check: &Check) -> anyhow::Result<CheckRecord> {
    let select = check
        .paths
        .as_deref()
        .map(verify::Selection::new)
        .transpose()?;
    let n = verify::count_files(dir, select.as_ref())?;
    let min = check
        .min
        .as_ref()
        .map(|v| v.as_u64().context("`min` must be a whole number"))
        .transpose()?;
    let max = check
        .max
        .as_ref()
        .map(|v| v.as_u64().context("`max` must be a whole number"))
        .transpose()?;
    let mut problems = Vec::new();
    if let Some(min) = min.filter(|m| n < *m) {
        problems.push(format!("{n} files, expected at least {min}"));
    }
    if let Some(max) = max.filter(|m| n > *m) {
        problems.push(format!("{n} files, expected at most {max}"));
    }
    let expected = Some(json!({ "min": min, "max": max }));
    Ok(if problems.is_empty() {
        record(check, true, format!("{n} files"), expected, Some(json!(n)))
    } else {
        record(check, false, problems.join("; "), expected, Some(json!(n)))
    })
}

/// The first problems and how many more there were.
fn summarize(problems: &[String]) -> String {
    let mut detail = format!(
        "{} problem(s): {}",
        problems.len(),
        problems
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    );
    if problems.len() > 10 {
        detail.push_str(&format!("; and {} more", problems.len() - 10));
    }
    detail
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod more_tests;
