//! JSON Schemas generated from the Rust types; `schemas/` holds committed copies and a
//! test fails when they are stale.

use crate::artifact::RunRecord;
use crate::playbook::Playbook;

pub fn playbook() -> String {
    pretty(schemars::schema_for!(Playbook))
}

pub fn artifact() -> String {
    pretty(schemars::schema_for!(RunRecord))
}

fn pretty(schema: schemars::Schema) -> String {
    serde_json::to_string_pretty(&schema).expect("a schema serializes") + "\n"
}
