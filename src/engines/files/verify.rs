//! Verification of a restored tree: `files_match` (against the backup's manifest),
//! `json_valid` and `file_count`. Every file is streamed; nothing is loaded whole.

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::Digest as _;

use super::manifest;
use crate::proc::Cancel;

/// What a walk meets: a regular file, a symlink, or anything else (never followed).
pub enum Found {
    File(u64),
    Symlink(PathBuf),
    Other,
}

/// Visits everything under `dir` but directories, in name order, without following
/// links; `rel` is the path under `dir`.
pub fn walk(
    dir: &Path,
    visit: &mut dyn FnMut(&Path, &Path, Found) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    walk_inner(dir, Path::new(""), visit)
}

fn walk_inner(
    dir: &Path,
    rel: &Path,
    visit: &mut dyn FnMut(&Path, &Path, Found) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut children: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let path = child.path();
        let child_rel = rel.join(child.file_name());
        let ft = child.file_type()?;
        if ft.is_dir() {
            walk_inner(&path, &child_rel, visit)?;
        } else if ft.is_symlink() {
            visit(&path, &child_rel, Found::Symlink(fs::read_link(&path)?))?;
        } else if ft.is_file() {
            visit(&path, &child_rel, Found::File(child.metadata()?.len()))?;
        } else {
            visit(&path, &child_rel, Found::Other)?;
        }
    }
    Ok(())
}

/// How a tree compares with a manifest.
#[derive(Debug, Default)]
pub struct Comparison {
    pub matched: u64,
    pub bytes: u64,
    pub problems: Vec<String>,
}

/// Every file of the manifest is in `dir` with the same size and sha256 (every
/// symlink with the same target), and `dir` holds nothing else.
pub fn files_match(
    dir: &Path,
    manifest_path: &Path,
    cancel: &Cancel,
) -> anyhow::Result<Comparison> {
    let mut expected = manifest::read_entries(manifest_path)?;
    let mut out = Comparison::default();
    let mut buf = vec![0u8; 256 << 10];
    walk(dir, &mut |path, rel, found| {
        cancel.check()?;
        let name = rel.to_string_lossy().into_owned();
        let Some(want) = expected.remove(&name) else {
            out.problems
                .push(format!("{name}: extra (not in the backup)"));
            return Ok(());
        };
        match (found, &want.symlink) {
            (Found::Symlink(target), Some(want_target))
                if target.to_string_lossy() == *want_target =>
            {
                out.matched += 1
            }
            (Found::Symlink(target), Some(want_target)) => out.problems.push(format!(
                "{name}: symlink to {}, backup had {want_target}",
                target.display()
            )),
            (Found::File(size), None) => {
                let (bytes, sha256) = sha256_file(path, &mut buf, cancel)?;
                out.bytes += bytes;
                if Some(size) != want.bytes || Some(bytes) != want.bytes {
                    out.problems.push(format!(
                        "{name}: {bytes} bytes, backup had {}",
                        want.bytes.unwrap_or(0)
                    ));
                } else if Some(&sha256) != want.sha256.as_ref() {
                    out.problems
                        .push(format!("{name}: sha256 differs from the backup's"));
                } else {
                    out.matched += 1;
                }
            }
            _ => out.problems.push(format!(
                "{name}: not the same kind of entry as in the backup"
            )),
        }
        Ok(())
    })?;
    let mut missing: Vec<String> = expected.into_keys().collect();
    missing.sort();
    out.problems
        .extend(missing.into_iter().map(|m| format!("{m}: missing")));
    Ok(out)
}

/// The size and hex sha256 of the file at `path`, read through `buf`, stopping when
/// `cancel` fires.
pub fn sha256_file(path: &Path, buf: &mut [u8], cancel: &Cancel) -> anyhow::Result<(u64, String)> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    sha256_read(&mut file, buf, cancel, &mut |_| {})
}

/// The size and hex sha256 of what `reader` yields, read in pieces of `buf`'s size (each
/// full but the last: fewer, larger updates), each piece's size given to `progress`;
/// stops when `cancel` fires. SHA-256 is single-threaded (SHA-NI where the CPU has it):
/// buffered reads keep up.
pub fn sha256_read(
    reader: &mut impl Read,
    buf: &mut [u8],
    cancel: &Cancel,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<(u64, String)> {
    let mut sha = sha2::Sha256::new();
    let mut bytes = 0u64;
    loop {
        cancel.check()?;
        let n = read_full(reader, buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        bytes += n as u64;
        progress(n as u64);
    }
    Ok((
        bytes,
        sha.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

/// Fills `buf` unless the reader ends first.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Glob patterns matched against paths under the verified directory.
pub struct Selection(Vec<glob::Pattern>);

impl Selection {
    pub fn new(patterns: &[String]) -> anyhow::Result<Self> {
        patterns
            .iter()
            .map(|p| glob::Pattern::new(p).with_context(|| format!("bad pattern `{p}`")))
            .collect::<Result<_, _>>()
            .map(Selection)
    }

    fn selects(&self, rel: &Path) -> bool {
        self.0.iter().any(|p| p.matches_path(rel))
    }
}

/// Parses every selected file as JSON (streaming, without building the value).
/// Returns how many were checked and the problems found.
pub fn json_problems(
    dir: &Path,
    select: &Selection,
    cancel: &Cancel,
) -> anyhow::Result<(u64, Vec<String>)> {
    let mut checked = 0;
    let mut problems = Vec::new();
    let root =
        fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    walk(dir, &mut |path, rel, found| {
        cancel.check()?;
        if !select.selects(rel) {
            return Ok(());
        }
        checked += 1;
        // A link is read through only when it leads to a file inside the tree.
        let inside = fs::canonicalize(path).is_ok_and(|p| p.starts_with(&root) && p.is_file());
        if !matches!(found, Found::File(_)) && !inside {
            problems.push(format!(
                "{}: not a regular file inside the tree",
                rel.display()
            ));
            return Ok(());
        }
        let reader = BufReader::with_capacity(256 << 10, File::open(path)?);
        if let Err(e) = serde_json::from_reader::<_, serde::de::IgnoredAny>(reader) {
            problems.push(format!("{}: {e}", rel.display()));
        }
        Ok(())
    })?;
    Ok((checked, problems))
}

/// The number of regular files under `dir` (the selected ones, when a selection is given).
pub fn count_files(dir: &Path, select: Option<&Selection>) -> anyhow::Result<u64> {
    let mut n = 0;
    walk(dir, &mut |_, rel, found| {
        if matches!(found, Found::File(_)) && select.is_none_or(|s| s.selects(rel)) {
            n += 1;
        }
        Ok(())
    })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_json_selection_reaches_every_depth() {
        let s = Selection::new(&["**/*.json".into()]).unwrap();
        assert!(s.selects(Path::new("a.json")));
        assert!(s.selects(Path::new("kb/deep/a.json")));
        assert!(!s.selects(Path::new("kb/a.toml")));
    }
}
