//! `checksum`: hash files while streaming them, and write or verify a manifest in the
//! `sha256sum -c` / `b3sum --check` format (`<hex>  <path>` per line).
//!
//! Both algorithms make 64 hex digits, so a manifest's algorithm is never guessed from
//! its hashes: it is the step's `algorithm`, else the tag of BSD-style lines
//! (`BLAKE3 (path) = hex`), else the manifest's name (`B3SUMS`, `*.b3`: blake3;
//! `SHA256SUMS`, `*.sha256`: sha256), else sha256; two of these that disagree are an
//! error, and `validate` refuses a verify that would read a blake3 manifest as sha256.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};

use super::{StepCtx, StepOutcome};
use crate::artifact::FileRecord;
use crate::engines::files::verify::sha256_read;
use crate::outputs;
use crate::playbook::{Algorithm, Step};
use crate::proc::Cancel;

/// Read size: large enough that syscalls do not matter, small enough to stay flat.
const CHUNK: usize = 4 << 20;

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let listed = match &step.files {
        Some(globs) => expand(globs, step.exclude.as_deref().unwrap_or_default())?,
        None => Vec::new(),
    };
    match (&step.manifest, &step.verify) {
        (Some(manifest), _) => {
            let (algorithm, _) = algorithm_of(manifest, step.algorithm, None)?;
            write_manifest(Path::new(manifest), &listed, algorithm, ctx)
        }
        (None, Some(manifest)) => verify_manifest(manifest, &listed, step.algorithm, ctx),
        (None, None) => bail!("a checksum step needs `manifest` (to write) or `verify` (to check)"),
    }
}

fn write_manifest(
    manifest: &Path,
    files: &[PathBuf],
    algorithm: Algorithm,
    ctx: &StepCtx,
) -> anyhow::Result<StepOutcome> {
    ensure!(
        !files.is_empty(),
        "a checksum step that writes a manifest needs `files`"
    );
    // Checked before anything is hashed or created; the files it lists are sources too.
    let why = "a file this step checksums".to_string();
    let target = ctx
        .sources
        .with(files.iter().map(|f| (f.clone(), why.clone())))
        .check("manifest", manifest)?;
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    let mut text = String::new();
    let mut hashes = serde_json::Map::new();
    let mut records = Vec::new();
    let mut done = 0;
    for file in files {
        let (hex, bytes) = hash_file(file, algorithm, &ctx.cancel, &mut |n| {
            done += n;
            ctx.progress(done, total);
        })?;
        text.push_str(&format!("{hex}  {}\n", file.display()));
        hashes.insert(file.display().to_string(), hex.clone().into());
        records.push(file_record(file, bytes, algorithm, hex, &ctx.step_id));
    }
    if let Some(parent) = target.parent() {
        crate::guard::create_dirs(parent)?;
    }
    std::fs::write(&target, &text)
        .with_context(|| format!("cannot write {}", manifest.display()))?;
    ctx.log.write(
        &ctx.step_id,
        &format!("wrote {}:\n{text}", manifest.display()),
    );
    let mut outcome = StepOutcome::passed(outputs! {
        "manifest" => manifest.display().to_string(),
        "algorithm" => algorithm.name(),
        "bytes" => total,
        "files" => hashes,
    });
    outcome.files = records;
    Ok(outcome)
}

/// The algorithm of `manifest` and what said so: the step's `algorithm` (`said`), the
/// tag of its lines, its name, else sha256 (`sha256sum`'s format). Two that disagree are
/// an error naming both: the wrong one would call an intact backup corrupt.
fn algorithm_of(
    manifest: &str,
    said: Option<Algorithm>,
    tagged: Option<Algorithm>,
) -> anyhow::Result<(Algorithm, &'static str)> {
    let named = Algorithm::from_manifest_name(manifest);
    let known = [
        (said, "the step's `algorithm`"),
        (tagged, "the tags of its lines"),
        (named, "its name"),
    ];
    let mut known = known.into_iter().filter_map(|(a, why)| Some((a?, why)));
    let Some((algorithm, why)) = known.next() else {
        return Ok((Algorithm::Sha256, "the default"));
    };
    if let Some((other, other_why)) = known.find(|(a, _)| *a != algorithm) {
        bail!(
            "manifest {manifest}: {why} says {} but {other_why} says {}",
            algorithm.name(),
            other.name()
        );
    }
    Ok((algorithm, why))
}

fn verify_manifest(
    manifest_text: &str,
    only: &[PathBuf],
    said: Option<Algorithm>,
    ctx: &StepCtx,
) -> anyhow::Result<StepOutcome> {
    let manifest = Path::new(manifest_text);
    let text = crate::limits::read_text(manifest, crate::limits::MAX_MANIFEST_BYTES)
        .with_context(|| format!("cannot read manifest {}", manifest.display()))?;
    let (entries, tagged) = parse_manifest(&text)?;
    let (algorithm, why) = algorithm_of(manifest_text, said, tagged)?;
    ctx.log.write(
        &ctx.step_id,
        &format!("{}: {} ({why})", manifest.display(), algorithm.name()),
    );
    ensure!(
        !entries.is_empty(),
        "manifest {} lists no files",
        manifest.display()
    );
    // Every entry, or one per listed file (a listed file missing from it is a problem):
    // whatever happens, each is verified or is a problem, so a pass verified something.
    let (entries, mut problems) = selected(entries, only, manifest);
    let total: u64 = entries
        .iter()
        .map(|(_, f)| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    let mut done = 0;
    let mut records = Vec::new();
    for (expected, path) in &entries {
        match hash_file(path, algorithm, &ctx.cancel, &mut |n| {
            done += n;
            ctx.progress(done, total);
        }) {
            Ok((actual, bytes)) if actual == *expected => {
                ctx.log
                    .write(&ctx.step_id, &format!("{}: OK", path.display()));
                records.push(file_record(path, bytes, algorithm, actual, &ctx.step_id));
            }
            Ok((actual, _)) => problems.push(format!(
                "{}: checksum mismatch (manifest {}…, file {}…)",
                path.display(),
                &expected[..12.min(expected.len())],
                &actual[..12]
            )),
            Err(e) => {
                ctx.cancel.check()?;
                problems.push(format!("{}: {e:#}", path.display()));
            }
        }
    }
    let mut outcome = StepOutcome::passed(outputs! {
        "manifest" => manifest.display().to_string(),
        "algorithm" => algorithm.name(),
        "verified" => records.len(),
        "failed" => problems.len(),
        "bytes" => total,
    });
    outcome.files = records;
    if !problems.is_empty() {
        ctx.log.write(&ctx.step_id, &problems.join("\n"));
        outcome.log_tail = Some(problems.join("\n"));
        return Ok(outcome.fail(format!(
            "checksum verification failed: {}",
            problems.join("; ")
        )));
    }
    Ok(outcome)
}

/// The entries of the manifest to verify: all of them, or, when `files` lists some, the
/// entry of each listed file; a listed file the manifest does not list is a problem. Paths
/// are compared by where they lead, both sides resolved the same way: a relative path
/// (in the manifest as in `files`) from the directory the drill runs in, as
/// `sha256sum -c` run there reads it, then symlinks and `..` followed.
fn selected(
    entries: Vec<(String, PathBuf)>,
    only: &[PathBuf],
    manifest: &Path,
) -> (Vec<(String, PathBuf)>, Vec<String>) {
    if only.is_empty() {
        return (entries, Vec::new());
    }
    let leads = |p: &Path| crate::guard::resolve(p).unwrap_or_else(|_| p.to_path_buf());
    let listed: Vec<PathBuf> = entries.iter().map(|(_, p)| leads(p)).collect();
    let mut keep = Vec::new();
    let mut problems = Vec::new();
    for file in only {
        let wanted = leads(file);
        match listed.iter().position(|p| *p == wanted) {
            Some(i) => keep.push((entries[i].0.clone(), file.clone())),
            None => problems.push(format!(
                "{}: not in manifest {}",
                file.display(),
                manifest.display()
            )),
        }
    }
    (keep, problems)
}

/// A manifest's (hash, path) lines.
type Entries = Vec<(String, PathBuf)>;

/// Lines of `<hex>  <path>` (`sha256sum` text mode), `<hex> *<path>` (binary mode) or
/// `SHA256 (<path>) = <hex>` / `BLAKE3 (<path>) = <hex>` (BSD style, `sha256sum --tag`),
/// and the algorithm the tagged lines name (one for all of them).
fn parse_manifest(text: &str) -> anyhow::Result<(Entries, Option<Algorithm>)> {
    let mut tags = Vec::new();
    let entries = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let (hex, path) = match tagged_line(line) {
                Some((tag, path, hex)) => {
                    tags.push(tag);
                    (hex, path)
                }
                None => {
                    let (hex, rest) = line.split_once(' ').with_context(|| {
                        format!("manifest line {} is not `<hash>  <path>`", i + 1)
                    })?;
                    let path = rest
                        .strip_prefix(' ')
                        .or_else(|| rest.strip_prefix('*'))
                        .unwrap_or(rest);
                    (hex, path)
                }
            };
            ensure!(
                hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()),
                "manifest line {} has no 64-digit hash (sha256 or blake3)",
                i + 1
            );
            Ok((hex.to_lowercase(), PathBuf::from(path)))
        })
        .collect::<anyhow::Result<_>>()?;
    let tag = tags.first().copied();
    ensure!(
        tags.iter().all(|t| Some(*t) == tag),
        "the manifest's lines are tagged with both sha256 and blake3"
    );
    Ok((entries, tag))
}

/// `SHA256 (<path>) = <hex>` or `BLAKE3 (<path>) = <hex>`: the algorithm, path and hash.
fn tagged_line(line: &str) -> Option<(Algorithm, &str, &str)> {
    let (tag, rest) = line.split_once(" (")?;
    let algorithm = match tag {
        "SHA256" => Algorithm::Sha256,
        "BLAKE3" => Algorithm::Blake3,
        _ => return None,
    };
    let (path, hex) = rest.rsplit_once(") = ")?;
    Some((algorithm, path, hex))
}

pub(super) fn expand(globs: &[String], exclude: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let exclude: Vec<glob::Pattern> = exclude
        .iter()
        .map(|p| glob::Pattern::new(p).with_context(|| format!("bad exclude pattern `{p}`")))
        .collect::<Result<_, _>>()?;
    let mut files = Vec::new();
    for pattern in globs {
        let before = files.len();
        for entry in crate::globs::glob(pattern).with_context(|| format!("bad glob `{pattern}`"))? {
            let path = entry?;
            if path.is_file() && !exclude.iter().any(|x| x.matches_path(&path)) {
                files.push(path);
            }
        }
        ensure!(files.len() > before, "no file matches `{pattern}`");
    }
    Ok(files)
}

/// Hashes a file in fixed-size pieces; `progress` receives the bytes of each piece.
pub fn hash_file(
    path: &Path,
    algorithm: Algorithm,
    cancel: &Cancel,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<(String, u64)> {
    let file = crate::limits::open_file(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match algorithm {
        Algorithm::Sha256 => {
            let mut buf = vec![0u8; CHUNK];
            let (bytes, hex) = sha256_read(&mut &file, &mut buf, cancel, progress)?;
            Ok((hex, bytes))
        }
        Algorithm::Blake3 => blake3_file(&file, cancel, progress),
    }
}

/// Bytes of the file mapped at a time: resident memory stays bounded by this. Each
/// window costs an unmap (page tables torn down, the other cores' TLBs flushed): at 1 GiB,
/// 64 MiB windows measured 1.10× b3sum's time, 128 MiB 1.00×, 256 MiB 0.96×.
const WINDOW: u64 = 128 << 20;

/// BLAKE3 hashes on every core; it is fed memory-mapped windows of the file, like b3sum,
/// so no core is spent copying the file into a buffer, and each window is unmapped
/// before the next so memory stays flat whatever the file's size.
fn blake3_file(
    file: &File,
    cancel: &Cancel,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<(String, u64)> {
    let len = file.metadata()?.len();
    let mut hasher = blake3::Hasher::new();
    let mut offset = 0;
    while offset < len {
        cancel.check()?;
        // A file truncated under a live map faults on access: check it still has the bytes.
        anyhow::ensure!(
            file.metadata()?.len() >= len,
            "the file shrank while it was hashed"
        );
        let size = WINDOW.min(len - offset) as usize;
        // SAFETY: a read-only private map of a file we opened; it is dropped before the
        // next window, and the length was checked just above.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(size)
                .map(file)?
        };
        let _ = map.advise(memmap2::Advice::Sequential);
        hasher.update_rayon(&map);
        offset += size as u64;
        progress(size as u64);
    }
    Ok((hasher.finalize().to_hex().to_string(), len))
}

fn file_record(
    path: &Path,
    bytes: u64,
    algorithm: Algorithm,
    hex: String,
    step: &str,
) -> FileRecord {
    let (sha256, blake3) = match algorithm {
        Algorithm::Sha256 => (Some(hex), None),
        Algorithm::Blake3 => (None, Some(hex)),
    };
    FileRecord {
        path: path.display().to_string(),
        bytes,
        sha256,
        blake3,
        step: step.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_sha256sum_modes() {
        let h = "a".repeat(64);
        let (m, _) = parse_manifest(&format!("{h}  dir/a b.db\n{h} *c.db\n")).unwrap();
        assert_eq!(m[0].1, PathBuf::from("dir/a b.db"));
        assert_eq!(m[1].1, PathBuf::from("c.db"));
        assert!(parse_manifest("nothex  x\n").is_err());
    }
}

#[cfg(test)]
#[path = "checksum_tests.rs"]
mod more_tests;
