//! A checksum manifest is read with the algorithm it was written with: sha256 and blake3
//! both make 64 hex digits, so a verify that would take a blake3 manifest for sha256
//! (and call an intact backup corrupt) is refused here, before anything runs.

use super::super::model::{Algorithm, Step, StepKind};
use super::super::spans::Seg;
use super::Validator;

/// A checksum step's algorithm as written: its `algorithm`, else its manifest's name.
fn declared(step: &Step, manifest: &str) -> Option<Algorithm> {
    step.algorithm.or(Algorithm::from_manifest_name(manifest))
}

/// Whether `verify` names the manifest `producer` writes: the same text, or
/// `{{ steps.<id>.manifest }}`.
fn reads(verify: &str, producer: &Step, manifest: &str) -> bool {
    let reference = verify
        .trim()
        .strip_prefix("{{")
        .and_then(|s| s.strip_suffix("}}"))
        .map(str::trim);
    verify.trim() == manifest.trim()
        || reference == Some(&format!("steps.{}.manifest", producer.id))
}

impl Validator<'_> {
    /// Every checksum step's algorithm agrees with its manifest's name, and a verify with
    /// the step that wrote its manifest.
    pub(super) fn manifests(&mut self) {
        let mut writers: Vec<(&Step, &str)> = Vec::new();
        let layout = &self.layout.steps;
        for (section, raw, _, parsed) in layout {
            let steps = self.pb.section(*section);
            let Some(step) = parsed.and_then(|i| steps.get(i)) else {
                continue;
            };
            if step.kind != StepKind::Checksum {
                continue;
            }
            let path = [Seg::Key(section.as_str()), Seg::Index(*raw)];
            let (field, text) = match (&step.manifest, &step.verify) {
                (Some(m), _) => ("manifest", m.as_str()),
                (None, Some(v)) => ("verify", v.as_str()),
                (None, None) => continue,
            };
            let span = self.spans.value(&[&path[..], &[Seg::Key(field)]].concat());
            let named = Algorithm::from_manifest_name(text);
            if let (Some(said), Some(named)) = (step.algorithm, named)
                && said != named
            {
                self.error(
                    format!(
                        "`algorithm = \"{}\"` but the manifest's name says {}",
                        said.name(),
                        named.name()
                    ),
                    span.clone(),
                )
                .help = Some("B3SUMS, *.b3, *.b3sum: blake3; SHA256SUMS, *.sha256: sha256".into());
                continue;
            }
            if field == "manifest" {
                writers.push((step, text));
                continue;
            }
            let Some((writer, written)) = writers.iter().rev().find(|(w, m)| reads(text, w, m))
            else {
                continue;
            };
            let wrote = declared(writer, written).unwrap_or(Algorithm::Sha256);
            let reading = declared(step, text)
                .or(Algorithm::from_manifest_name(written))
                .unwrap_or(Algorithm::Sha256);
            if wrote != reading {
                self.error(
                    format!(
                        "step `{}` would verify the {} manifest of step `{}` with {}",
                        step.id,
                        wrote.name(),
                        writer.id,
                        reading.name()
                    ),
                    span,
                )
                .help = Some(format!(
                    "add `algorithm = \"{}\"` to this step, or name the manifest {} (sha256 and blake3 hashes look alike)",
                    wrote.name(),
                    match wrote {
                        Algorithm::Blake3 => "B3SUMS or *.b3",
                        Algorithm::Sha256 => "SHA256SUMS or *.sha256",
                    }
                ));
            }
        }
    }
}
