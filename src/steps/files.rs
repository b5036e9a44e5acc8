//! The `files` engine's steps: backup/files, restore/files, and the `files` step kind
//! that verifies a restored tree with builtin checks (the counterpart of `sql` checks
//! for a database: same `[[steps.checks]]` list, same outputs).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};
use serde_json::json;

use super::sql::record;
use super::{StepCtx, StepOutcome, required};
use crate::artifact::{CheckRecord, FileRecord};
use crate::engines::files::{Compression, archive, extract, manifest, verify};
use crate::guard;
use crate::outputs;
use crate::playbook::{Builtin, Check, Step};

pub fn backup(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let paths = required(step.paths.as_ref(), "paths")?;
    let given = Path::new(required(step.output.as_deref(), "output")?);
    // The backed-up `paths` are among the sources: checked before anything is created.
    let output = &ctx.sources.check("output", given)?;
    ctx.sources.check("manifest", &manifest::path_for(output))?;
    if let Some(parent) = output.parent() {
        guard::create_dirs(parent)?;
    }
    let compression = Compression::parse(step.compression.as_deref())?;
    let req = archive::Request {
        paths,
        exclude: step.exclude.as_deref().unwrap_or_default(),
        output,
        compression,
    };
    // The archive holds every change made before it started (later ones maybe not):
    // the conservative point for the RPO.
    let snapshot_at = jiff::Timestamp::now();
    let started = std::time::Instant::now();
    let progress = |d, t| ctx.progress(d, t);
    let done = archive::backup(&req, &ctx.copying(output, &progress))?;
    let secs = started.elapsed().as_secs_f64();
    for s in &done.skipped {
        ctx.log.write(&ctx.step_id, &format!("skipped {s}"));
    }
    ctx.log.write(
        &ctx.step_id,
        &format!(
            "archived {} files ({} bytes) into {} ({} bytes, {})",
            done.file_count,
            done.source_bytes,
            given.display(),
            done.bytes,
            compression.as_str()
        ),
    );
    let mut outcome = StepOutcome::passed(outputs! {
        "path" => given.display().to_string(),
        "bytes" => done.bytes,
        "file_count" => done.file_count,
        "symlink_count" => done.symlink_count,
        "dir_count" => done.dir_count,
        "source_bytes" => done.source_bytes,
        "manifest" => done.manifest.display().to_string(),
        "compression" => compression.as_str(),
        "snapshot_at" => snapshot_at.to_string(),
    });
    outcome.metrics = outputs! {
        "bytes_per_s" => done.source_bytes as f64 / secs.max(1e-9),
        "compression_ratio" => done.source_bytes as f64 / (done.bytes.max(1)) as f64,
    };
    for (path, bytes) in [
        (given.to_path_buf(), done.bytes),
        (done.manifest.clone(), fs::metadata(&done.manifest)?.len()),
    ] {
        outcome
            .files
            .push(FileRecord::produced(&path, bytes, &ctx.step_id));
    }
    Ok(outcome)
}

pub fn restore(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let from = Path::new(required(step.from.as_deref(), "from")?);
    let given = required(step.target_dir.as_deref(), "target_dir")?;
    let target = &refuse_unsafe_target(from, Path::new(given), ctx)?;
    // Only the folders created here are the drill's to remove, never one that was there.
    let created = guard::create_dirs(target)?;
    if let Some(outer) = created.first()
        && !ctx.is_throwaway(outer)
    {
        // Outside the work directory nothing else removes them.
        ctx.resources.register(
            "directory",
            &target.display().to_string(),
            &ctx.step_id,
            move || guard::remove_created(&created),
        );
    }
    let done = extract::extract(from, target, &ctx.cancel, &|d, t| ctx.progress(d, t))?;
    ctx.log.write(
        &ctx.step_id,
        &format!(
            "restored {} files ({} bytes) from {} into {}",
            done.file_count,
            done.bytes,
            from.display(),
            target.display()
        ),
    );
    Ok(StepOutcome::passed(outputs! {
        "target" => given,
        "from" => from.display().to_string(),
        "file_count" => done.file_count,
        "symlink_count" => done.symlink_count,
        "bytes" => done.bytes,
    }))
}

/// Where the target really is: refused when it is, contains or lies inside a source of
/// the playbook or a folder the backup's manifest says it was taken from, or when it
/// exists and is not an empty directory.
fn refuse_unsafe_target(from: &Path, given: &Path, ctx: &StepCtx) -> anyhow::Result<PathBuf> {
    // Where it leads, to check it is new or empty there (the source check below repeats
    // the resolution and refuses what cannot be resolved).
    if let Ok(resolved) = guard::resolve(given)
        && resolved.exists()
    {
        ensure!(
            resolved.is_dir(),
            "target_dir {} exists and is not a directory",
            given.display()
        );
        let empty = fs::read_dir(&resolved)?.next().is_none();
        ensure!(
            empty,
            "target_dir {} exists and is not empty; a drill restores into a new or empty directory",
            given.display()
        );
    }
    let manifest_path = manifest::path_for(from);
    let roots = if manifest_path.exists() {
        manifest::read_header(&manifest_path)?.roots
    } else {
        Vec::new()
    };
    let why = format!("a folder the backup {} was taken from", from.display());
    ctx.sources
        .with(roots.into_iter().map(|r| (r, why.clone())))
        .check("target_dir", given)
}

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
    Ok(super::sql::outcome_of_checks(checks, ctx))
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
    Ok(if cmp.problems.is_empty() {
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
