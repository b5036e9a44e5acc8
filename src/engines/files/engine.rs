//! The `files` engine: backup/files archives `paths` with a manifest, restore/files
//! extracts into a new or empty directory. (The `files` step kind, which verifies the
//! restored tree, is a step of its own: `steps/files.rs`.)

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::ensure;

use super::{Compression, archive, extract, manifest};
use crate::engines::{Backup, Ctx, Engine, Restored};
use crate::guard;
use crate::outputs;
use crate::playbook::{EngineSpec, KindSpec, Step, required};

pub struct Files;

impl Engine for Files {
    fn backup(&self, step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Backup> {
        let paths = required(step.paths.as_ref(), "paths")?;
        // The backed-up `paths` are among the sources: checked before anything is created.
        let (given, output) = &ctx.backup_output(step)?;
        ctx.sources.check("manifest", &manifest::path_for(output))?;
        if let Some(parent) = output.parent() {
            guard::create_dirs(parent)?;
        }
        let compression = Compression::parse(step.compression.as_deref())?;
        let req = archive::Request {
            paths,
            exclude: step.exclude.as_deref().unwrap_or_default(),
            output,
            compression,
        };
        // The archive holds every change made before it started (later ones maybe not):
        // the conservative point for the RPO.
        let snapshot_at = jiff::Timestamp::now();
        let started = std::time::Instant::now();
        let done = archive::backup(&req, &ctx.copying(output))?;
        let secs = started.elapsed().as_secs_f64();
        for s in &done.skipped {
            ctx.log(&format!("skipped {s}"));
        }
        ctx.log(&format!(
            "archived {} files ({} bytes) into {} ({} bytes, {})",
            done.file_count,
            done.source_bytes,
            given.display(),
            done.bytes,
            compression.as_str()
        ));
        let manifest_bytes = fs::metadata(&done.manifest)?.len();
        Ok(Backup {
            path: given.to_path_buf(),
            bytes: done.bytes,
            source: None,
            snapshot_at: Some(snapshot_at.to_string()),
            schema: None,
            outputs: outputs! {
                "file_count" => done.file_count,
                "symlink_count" => done.symlink_count,
                "dir_count" => done.dir_count,
                "source_bytes" => done.source_bytes,
                "manifest" => done.manifest.display().to_string(),
                "compression" => compression.as_str(),
            },
            metrics: outputs! {
                "bytes_per_s" => done.source_bytes as f64 / secs.max(1e-9),
                "compression_ratio" => done.source_bytes as f64 / (done.bytes.max(1)) as f64,
            },
            also_made: vec![(done.manifest, manifest_bytes)],
        })
    }

    fn restore(&self, step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Restored> {
        let from = Path::new(required(step.from.as_deref(), "from")?);
        let given = required(step.target_dir.as_deref(), "target_dir")?;
        let target = &refuse_unsafe_target(from, Path::new(given), ctx)?;
        // Only the folders created here are the drill's to remove, never one that was there.
        let created = guard::create_dirs(target)?;
        if let Some(outer) = created.first()
            && !ctx.is_throwaway(&outer.path)
        {
            // Outside the work directory nothing else removes them.
            ctx.resources.register(
                "directory",
                &target.display().to_string(),
                ctx.step_id,
                move || guard::remove_created(&created),
            );
        }
        let done = extract::extract(from, target, ctx.cancel, &|d, t| ctx.progress(d, t))?;
        ctx.log(&format!(
            "restored {} files ({} bytes) from {} into {}",
            done.file_count,
            done.bytes,
            from.display(),
            target.display()
        ));
        Ok(Restored {
            target: given.to_string(),
            from: from.to_path_buf(),
            bytes: done.bytes,
            schema: None,
            outputs: outputs! {
                "file_count" => done.file_count,
                "symlink_count" => done.symlink_count,
            },
            metrics: Default::default(),
        })
    }

    fn spec(&self) -> &'static EngineSpec {
        &SPEC
    }
}

/// Where the target really is: refused when it is, contains or lies inside a source of
/// the playbook or a folder the backup's manifest says it was taken from, or when it
/// exists and is not an empty directory.
fn refuse_unsafe_target(from: &Path, given: &Path, ctx: &Ctx<'_>) -> anyhow::Result<PathBuf> {
    // Where it leads, to check it is new or empty there (the source check below repeats
    // the resolution and refuses what cannot be resolved).
    if let Ok(resolved) = guard::resolve(given)
        && resolved.exists()
    {
        ensure!(
            resolved.is_dir(),
            "target_dir {} exists and is not a directory",
            given.display()
        );
        let empty = fs::read_dir(&resolved)?.next().is_none();
        ensure!(
            empty,
            "target_dir {} exists and is not empty; a drill restores into a new or empty directory",
            given.display()
        );
    }
    let manifest_path = manifest::path_for(from);
    let roots = if manifest_path.exists() {
        manifest::read_header(&manifest_path)?.roots
    } else {
        Vec::new()
    };
    let why = format!("a folder the backup {} was taken from", from.display());
    ctx.sources
        .with(roots.into_iter().map(|r| (r, why.clone())))
        .check("target_dir", given)
}

/// What validation, the path guard and `init` know of it.
static SPEC: EngineSpec = EngineSpec {
    name: "files",
    example: include_str!("../../../templates/init/files.toml"),
    run: "restore-drill run {playbook} --var tree=/path/to/your/dir",
    kinds: &[
        KindSpec::backup(&["paths", "exclude", "output", "compression"])
            .needs(&[&["paths"], &["output"]])
            .reads(&["paths"])
            .values(&[("compression", Compression::NAMES)])
            .outputs(&[
                "file_count",
                "symlink_count",
                "dir_count",
                "source_bytes",
                "manifest",
                "compression",
            ]),
        // `compression` is accepted and not needed: the archive's first bytes tell it.
        KindSpec::restore(&["from", "target_dir", "compression"])
            .needs(&[&["from"], &["target_dir"]])
            .reads(&["from"])
            .makes(&["target_dir"])
            .outputs(&["file_count", "symlink_count"]),
    ],
    run_as_root: "",
};
