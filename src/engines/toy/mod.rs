//! A toy engine: a plain copy of one file, to prove the add-an-engine recipe.

use std::path::Path;

use anyhow::ensure;

use crate::engines::{Backup, Ctx, Engine, Restored};
use crate::playbook::{EngineSpec, KindSpec, Step, required};

pub struct Toy;

static SPEC: EngineSpec = EngineSpec {
    name: "toy",
    example: include_str!("../../../playbooks/toy.toml"),
    kinds: &[
        KindSpec::backup(&["source", "output"])
            .needs(&[&["source"], &["output"]])
            .reads(&["source"]),
        KindSpec::restore(&["from", "target"])
            .needs(&[&["from"], &["target"]])
            .reads(&["from"])
            .makes(&["target"]),
    ],
};

fn copy(field: &str, from: &Path, given: &Path, ctx: &Ctx<'_>) -> anyhow::Result<u64> {
    let to = ctx.sources.check(field, given)?;
    ensure!(!to.exists(), "{} already exists", given.display());
    if let Some(parent) = to.parent() {
        crate::guard::create_dirs(parent)?;
    }
    let bytes = std::fs::copy(from, &to)?;
    ctx.progress(bytes, bytes);
    ctx.log(&format!("copied {} to {}", from.display(), given.display()));
    Ok(bytes)
}

impl Engine for Toy {
    fn spec(&self) -> &'static EngineSpec {
        &SPEC
    }

    fn backup(&self, step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Backup> {
        let source = Path::new(required(step.source.as_deref(), "source")?);
        let output = Path::new(required(step.output.as_deref(), "output")?);
        let taken = jiff::Timestamp::now();
        let bytes = copy("output", source, output, ctx)?;
        Ok(Backup {
            path: output.to_path_buf(),
            bytes,
            source: Some(source.display().to_string()),
            snapshot_at: Some(taken.to_string()),
            ..Backup::default()
        })
    }

    fn restore(&self, step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Restored> {
        let from = Path::new(required(step.from.as_deref(), "from")?);
        let target = required(step.target.as_deref(), "target")?;
        let bytes = copy("target", from, Path::new(target), ctx)?;
        Ok(Restored {
            target: target.to_string(),
            from: from.to_path_buf(),
            bytes,
            ..Restored::default()
        })
    }
}
