//! `backup`: take a fresh backup of a source with its engine's own consistent method.
//! The engine says what it made; this step turns that into outputs, the same way for
//! every engine.

use serde_json::{Map, Value, json};

use super::{StepCtx, StepOutcome};
use crate::artifact::FileRecord;
use crate::engines::{self, Engine, SchemaFacts};
use crate::playbook::{Step, required};

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let b = ctx.with_engine(|e| engine_of(step)?.backup(step, e))?;
    let mut outputs = Map::new();
    outputs.insert("path".into(), json!(b.path.display().to_string()));
    if let Some(source) = b.source {
        outputs.insert("source".into(), json!(source));
    }
    outputs.insert("bytes".into(), json!(b.bytes));
    outputs.insert("snapshot_at".into(), json!(b.snapshot_at));
    outputs.extend(b.outputs);
    if let Some(schema) = &b.schema {
        schema_outputs(schema, &mut outputs);
    }
    let mut outcome = StepOutcome::passed(outputs);
    outcome.metrics = b.metrics;
    outcome
        .files
        .push(FileRecord::produced(&b.path, b.bytes, &ctx.step_id));
    for (path, bytes) in &b.also_made {
        outcome
            .files
            .push(FileRecord::produced(path, *bytes, &ctx.step_id));
    }
    Ok(outcome)
}

/// The engine a backup or restore step names.
pub(super) fn engine_of(step: &Step) -> anyhow::Result<&'static dyn Engine> {
    let name = required(step.engine.as_deref(), "engine")?;
    engines::find(name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown engine `{name}` (engines: {})",
            engines::names().join(", ")
        )
    })
}

/// The schema facts of a SQL engine, at backup and at restore alike: `table_counts`,
/// `tables`, `indexes`, `foreign_keys`.
pub(super) fn schema_outputs(schema: &SchemaFacts, outputs: &mut Map<String, Value>) {
    outputs.insert("table_counts".into(), json!(schema.table_counts));
    outputs.insert("tables".into(), json!(schema.tables()));
    outputs.insert("indexes".into(), json!(schema.indexes));
    outputs.insert("foreign_keys".into(), json!(schema.foreign_keys));
}
