//! `locate`: use an existing production backup instead of a fresh one. The recovery
//! points come from a source (`sources/`: a local glob, an S3 bucket); this step keeps
//! the candidates (`within`), audits the schedule (`expect_every`), picks one (`pick`)
//! and brings it to `output`.

use std::path::Path;

use anyhow::Context as _;

use super::{StepCtx, StepOutcome, duration};
use crate::outputs;
use crate::playbook::Step;
use crate::sources::{self, Pick, audit};

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let source = sources::open(step)?;
    let pick = Pick::parse(step.pick.as_deref())?;
    let within = duration(step.within.as_deref(), "within")?;
    let every = duration(step.expect_every.as_deref(), "expect_every")?;
    let now = jiff::Timestamp::now();
    ctx.with_engine(|ectx| {
        let points = source.list(ectx)?;
        let listed = points.len();
        let candidates = sources::candidates(points, within, now);
        let audit = audit::audit(&candidates, every, now);
        let what = source.describe();
        let chosen = pick
            .choose(&candidates)
            .with_context(|| match (listed, &step.within) {
                (0, _) | (_, None) => format!("no backup file matches `{what}`"),
                (n, Some(w)) => format!("no backup within {w} matches `{what}` ({n} older)"),
            })?;
        let fetched = source.fetch(chosen, step.output.as_deref().map(Path::new), ectx)?;
        let age_s = now.duration_since(chosen.time).as_secs_f64().max(0.0);
        let verified = match fetched.verified.is_empty() {
            true => String::new(),
            false => format!("; verified: {}", fetched.verified.join(", ")),
        };
        ectx.log(&format!(
            "{pick:?} of {} candidates: {} ({} bytes, modified {}){verified}",
            candidates.len(),
            chosen.url,
            fetched.bytes,
            chosen.time,
        ));
        let mut outcome = StepOutcome::passed(outputs! {
            "path" => fetched.path.display().to_string(),
            "url" => chosen.url,
            "bytes" => fetched.bytes,
            "modified_at" => chosen.time.to_string(),
            "age_s" => age_s,
            "candidates" => candidates.len(),
            "largest_gap_s" => audit.largest_gap_s,
        });
        if let Some(sha256) = fetched.sha256 {
            outcome
                .outputs
                .insert("sha256".into(), sha256.clone().into());
            outcome.files.push(crate::artifact::FileRecord {
                path: fetched.path.display().to_string(),
                bytes: fetched.bytes,
                sha256: Some(sha256),
                blake3: None,
                step: step.id.clone(),
            });
        }
        let expect_every = step.expect_every.as_deref().unwrap_or_default();
        Ok(match audit.failure(expect_every, now) {
            Some(failure) => outcome.fail(failure),
            None => outcome,
        })
    })
}
