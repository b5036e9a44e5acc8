//! `locate`: use an existing production backup instead of a fresh one. The recovery
//! points come from a source (`sources/`: a local glob, an S3 bucket, a restic or borg
//! repository); this step keeps the candidates (`within`), audits the schedule
//! (`expect_every`), picks one (`pick`, or names it: `snapshot`) and brings it to
//! `output`, decrypted and decompressed when asked (`sources/decode.rs`).

use std::path::Path;

use anyhow::Context as _;

use super::{StepCtx, StepOutcome, duration};
use crate::outputs;
use crate::playbook::Step;
use crate::sources::{self, Pick, Point, audit, decode::Decode};

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let source = sources::open(step)?;
    let decode = Decode::of(step)?;
    let pick = Pick::parse(step.pick.as_deref())?;
    let within = duration(step.within.as_deref(), "within")?;
    let every = duration(step.expect_every.as_deref(), "expect_every")?;
    let now = jiff::Timestamp::now();
    let named = step.snapshot.as_deref().filter(|s| *s != "latest");
    let output = step.output.as_deref().map(Path::new);
    if let Some(output) = output {
        sources::download::ensure_free(output)?;
    }
    ctx.with_engine(|ectx| {
        // The newest, plainly brought: the source may bring it while it lists.
        let (points_all, prefetched) = match (named, pick, &decode) {
            (None, Pick::Newest, None) => source.list_fetching_newest(output, ectx)?,
            _ => (source.list(ectx)?, None),
        };
        let listed = points_all.len();
        let candidates = sources::candidates(points_all.clone(), within, now);
        let audit = audit::audit(&candidates, every, now);
        let what = source.describe();
        let chosen = match named {
            Some(name) => named_point(&points_all, name, &what)?,
            None => pick
                .choose(&candidates)
                .with_context(|| match (listed, &step.within) {
                    (0, _) | (_, None) => format!("no backup file matches `{what}`"),
                    (n, Some(w)) => format!("no backup within {w} matches `{what}` ({n} older)"),
                })?,
        };
        // What the snapshot was taken of (on this host, the live data: no later step writes
        // into it), read before anything is brought, since `output` must not lie in it
        // either (borg: one more listing, 0.3 s or so). A newest file restic brought
        // while it listed is still in its temporary file beside `output`, removed if
        // this refuses.
        let taken_of = source.taken_of(chosen, ectx)?;
        if let (Some(taken_of), Some(output)) = (&taken_of, output) {
            let (host, paths) = (&taken_of.host, &taken_of.paths);
            ctx.sources
                .check_beside_snapshot(output, &step.id, host, paths)?;
        }
        let fetched = match (&decode, prefetched) {
            (None, Some(early)) if chosen.id.as_ref() == Some(&early.id) => {
                early.finish(source.as_ref(), chosen, output, ectx)?
            }
            (None, _) => source.fetch(chosen, output, ectx)?,
            (Some(decode), _) => {
                let name = match step.paths.as_deref() {
                    Some([one]) => one.as_str(),
                    _ => chosen.url.as_str(),
                };
                decode.fetch(source.as_ref(), chosen, name, output, ectx)?
            }
        };
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
        if let Some(id) = &chosen.id {
            outcome
                .outputs
                .insert("snapshot_id".into(), id.clone().into());
        }
        if let Some(taken_of) = taken_of {
            let outputs = &mut outcome.outputs;
            outputs.insert("snapshot_host".into(), taken_of.host.into());
            outputs.insert("snapshot_paths".into(), taken_of.paths.into());
        }
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

/// The recovery point `snapshot = name` names (an id or its prefix, an archive name).
fn named_point<'p>(points: &'p [Point], name: &str, what: &str) -> anyhow::Result<&'p Point> {
    let mut named = points.iter().filter(|p| p.is_named(name));
    match (named.next(), named.next()) {
        (Some(point), None) => Ok(point),
        (Some(_), Some(_)) => {
            anyhow::bail!("`snapshot = \"{name}\"` names several snapshots of {what}")
        }
        (None, _) => anyhow::bail!("{what} has no snapshot `{name}` ({} listed)", points.len()),
    }
}
