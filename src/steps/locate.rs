//! `locate`: use an existing production backup, the newest file matching a glob.

use std::time::SystemTime;

use anyhow::Context as _;

use super::{StepCtx, StepOutcome, required};
use crate::outputs;
use crate::playbook::Step;

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let pattern = required(step.glob.as_deref(), "glob")?;
    let mut newest: Option<(SystemTime, std::path::PathBuf, u64)> = None;
    for entry in glob::glob(pattern).with_context(|| format!("bad glob `{pattern}`"))? {
        let path = entry?;
        let meta = std::fs::metadata(&path)?;
        if !meta.is_file() {
            continue;
        }
        let modified = meta.modified()?;
        if newest.as_ref().is_none_or(|(t, _, _)| modified > *t) {
            newest = Some((modified, path, meta.len()));
        }
    }
    let (modified, path, bytes) =
        newest.with_context(|| format!("no backup file matches `{pattern}`"))?;
    let modified_at = jiff::Timestamp::try_from(modified)?;
    let age_s = SystemTime::now()
        .duration_since(modified)
        .map_or(0.0, |d| d.as_secs_f64());
    ctx.log.write(
        &ctx.step_id,
        &format!(
            "newest backup: {} ({bytes} bytes, modified {modified_at})",
            path.display()
        ),
    );
    Ok(StepOutcome::passed(outputs! {
        "path" => path.display().to_string(),
        "bytes" => bytes,
        "modified_at" => modified_at.to_string(),
        "age_s" => age_s,
    }))
}
