//! `backup`: take a fresh backup of a source with its engine's own consistent method.
//! The engine says what it made; this step turns that into outputs, the same way for
//! every engine.

use serde_json::{Map, Value, json};

use super::{StepCtx, StepOutcome};
use crate::artifact::FileRecord;
use crate::engines::{self, Engine, SchemaFacts, digest};
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
    let mut outcome = outcome(outputs, b.outputs, b.schema.as_ref(), b.metrics);
    let made = std::iter::once((&b.path, b.bytes)).chain(b.also_made.iter().map(|(p, n)| (p, *n)));
    for (path, bytes) in made {
        let record = FileRecord::produced(path, bytes, &ctx.step_id);
        outcome.files.push(record);
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

/// A backup's or restore's outcome: the outputs every engine gives (`common`), the
/// engine's own, and the schema facts of a SQL engine, at backup and at restore alike:
/// `table_counts`, `tables`, `indexes`, `foreign_keys`, `objects` (and `table_digests`).
pub(super) fn outcome(
    mut outputs: Map<String, Value>,
    engine_outputs: Map<String, Value>,
    schema: Option<&SchemaFacts>,
    metrics: Map<String, Value>,
) -> StepOutcome {
    outputs.extend(engine_outputs);
    if let Some(schema) = schema {
        outputs.insert("table_counts".into(), json!(schema.table_counts));
        outputs.insert("tables".into(), json!(schema.tables()));
        outputs.insert("indexes".into(), json!(schema.indexes));
        outputs.insert("foreign_keys".into(), json!(schema.foreign_keys));
        outputs.insert("objects".into(), json!(schema.objects));
        if let Some(digests) = &schema.table_digests {
            outputs.insert("table_digests".into(), digest::to_json(digests));
        }
    }
    let mut outcome = StepOutcome::passed(outputs);
    outcome.metrics = metrics;
    outcome
}
