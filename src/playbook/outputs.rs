//! What each step kind outputs, so that `validate` can refuse `{{ steps.backup.tablecounts }}`
//! before a drill runs. Backup and restore steps add their engine's (its `KindSpec`).

use super::engine::{EngineSpec, SCHEMA_OUTPUTS, kind_spec};
use super::model::{Step, StepKind};

/// What every finished step shows to later templates besides its outputs.
pub const STEP_VIEW: &[&str] = &[
    "status",
    "duration_s",
    "attempts",
    "error",
    "skipped_because",
];

/// The outputs of a step of `kind` itself.
#[rustfmt::skip]
pub fn kind_outputs(kind: StepKind) -> &'static [&'static str] {
    match kind {
        StepKind::Backup => &["path", "source", "bytes", "snapshot_at"],
        StepKind::Restore => &["target", "from", "bytes"],
        StepKind::Locate => &[
            "path", "url", "bytes", "modified_at", "age_s", "candidates", "largest_gap_s",
            "sha256", "snapshot_id", "snapshot_host", "snapshot_paths",
        ],
        StepKind::Copy => &["urls", "bytes", "sums"],
        StepKind::Checksum => &["manifest", "algorithm", "bytes", "files", "verified", "failed"],
        StepKind::Sql | StepKind::Files => &["value", "checks"],
        StepKind::Http => &["url", "status", "latency_ms", "body", "probes"],
        StepKind::Exec => &["exit_code", "stdout", "stderr"],
        StepKind::Service => &["pid", "pgid", "url", "ready_s"],
        StepKind::Manual => &["assumed", "assume_s", "note", "done_by"],
        StepKind::Wait => &[],
    }
}

/// Every name a later template may read of `step` (`steps.<id>.<name>`); None when it
/// cannot be known (a backup or restore of an unknown engine).
pub fn step_outputs(step: &Step, engines: &[&EngineSpec]) -> Option<Vec<&'static str>> {
    let mut names: Vec<&'static str> = STEP_VIEW.to_vec();
    names.extend(kind_outputs(step.kind));
    if matches!(step.kind, StepKind::Backup | StepKind::Restore) {
        let spec = kind_spec(engines, step)?;
        names.extend(spec.outputs);
        if spec.schema {
            names.extend(SCHEMA_OUTPUTS);
            // Only a backup asked for them computes them.
            if step.kind == StepKind::Backup && step.digests == Some(true) {
                names.push("table_digests");
            }
        }
    }
    Some(names)
}
