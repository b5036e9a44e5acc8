//! `restore`: put a backup back, into a place that can never be production, with its
//! engine; the engine says what it restored, and this step turns that into outputs.

use serde_json::{Map, json};

use super::backup::{engine_of, outcome};
use super::{StepCtx, StepOutcome};
use crate::playbook::Step;

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let r = ctx.with_engine(|e| engine_of(step)?.restore(step, e))?;
    let mut outputs = Map::new();
    outputs.insert("target".into(), json!(r.target));
    outputs.insert("from".into(), json!(r.from.display().to_string()));
    outputs.insert("bytes".into(), json!(r.bytes));
    Ok(outcome(outputs, r.outputs, r.schema.as_ref(), r.metrics))
}
