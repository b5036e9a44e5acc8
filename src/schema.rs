//! JSON Schemas generated from the Rust types; `schemas/` holds committed copies and a
//! test fails when they are stale.

use crate::artifact::RunRecord;
use crate::playbook::Playbook;

pub fn playbook() -> String {
    let mut schema = schemars::schema_for!(Playbook);
    // The playbook layer does not know the engines: their names come from the registry.
    if let Some(engine) = schema
        .get_mut("$defs")
        .and_then(|defs| defs.get_mut("Engine"))
        .and_then(|e| e.as_object_mut())
    {
        engine.insert("enum".into(), crate::engines::names().into());
    }
    pretty(schema)
}

pub fn artifact() -> String {
    pretty(schemars::schema_for!(RunRecord))
}

fn pretty(schema: schemars::Schema) -> String {
    serde_json::to_string_pretty(&schema).expect("a schema serializes") + "\n"
}
