//! backup/files: a tar of the matched paths, compressed as it is written, with a
//! manifest of every file's size and sha256 computed from the very bytes archived.
//!
//! Names inside the archive are relative to the parent of each pattern's literal
//! prefix, like `tar -C /srv kb`: `paths = ["/srv/kb"]` stores `kb/...`, and
//! `paths = ["demo/config/*.toml"]` stores `config/app.toml`.
//! Two different files (by device and inode) that would get one name fail the backup;
//! the same file matched twice is archived once.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, ensure};
use sha2::Digest as _;

use super::Compression;
use super::manifest::{self, Entry as ManifestEntry, Header};
use crate::engines::Copying;
use crate::engines::compress::Sink;
use crate::proc::Cancel;

/// What was archived.
#[derive(Debug, Default)]
pub struct Archived {
    pub bytes: u64,
    pub source_bytes: u64,
    pub file_count: u64,
    pub symlink_count: u64,
    pub dir_count: u64,
    pub manifest: PathBuf,
    pub skipped: Vec<String>,
}

#[derive(Debug)]
enum Kind {
    Dir,
    File(u64),
    Symlink,
}

/// One thing to archive: where it is, and its name in the archive.
#[derive(Debug)]
struct Item {
    source: PathBuf,
    name: PathBuf,
    kind: Kind,
}

pub struct Request<'a> {
    pub paths: &'a [String],
    pub exclude: &'a [String],
    pub output: &'a Path,
    pub compression: Compression,
}

pub fn backup(req: &Request<'_>, copying: &Copying<'_>) -> anyhow::Result<Archived> {
    ensure!(
        !req.output.exists(),
        "backup output {} already exists",
        req.output.display()
    );
    let exclude = Exclude::new(req.exclude)?;
    let mut skipped = Vec::new();
    let (items, roots) = collect(req.paths, &exclude, &mut skipped)?;
    // That the output is not inside what is archived was checked by the step, with the
    // playbook's other sources (`crate::guard`), before anything was created.
    let total: u64 = items
        .iter()
        .map(|i| if let Kind::File(n) = i.kind { n } else { 0 })
        .sum();
    let manifest_path = manifest::path_for(req.output);
    let partial = with_suffix(req.output, ".partial");
    let result = write_archive(
        req,
        &items,
        &roots,
        &partial,
        &manifest_path,
        total,
        copying,
    );
    match result {
        Ok(mut archived) => {
            fs::rename(&partial, req.output)?;
            archived.bytes = fs::metadata(req.output)?.len();
            archived.skipped = skipped;
            Ok(archived)
        }
        Err(e) => {
            let _ = fs::remove_file(&partial);
            let _ = fs::remove_file(&manifest_path);
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn write_archive(
    req: &Request<'_>,
    items: &[Item],
    roots: &[PathBuf],
    partial: &Path,
    manifest_path: &Path,
    total: u64,
    copying: &Copying<'_>,
) -> anyhow::Result<Archived> {
    let (cancel, progress) = (copying.cancel, copying.progress);
    let file = crate::guard::create_file(partial)?;
    let sink = Sink::new(BufWriter::with_capacity(1 << 20, file), req.compression)?;
    // tar copies each file in 8 KiB pieces: large buffers on both sides keep those
    // pieces from turning into as many syscalls and compressor calls.
    let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, sink));
    tar.follow_symlinks(false);
    let header = Header {
        format: manifest::FORMAT.into(),
        compression: req.compression.as_str().into(),
        roots: roots.to_vec(),
    };
    let mut manifest = manifest::Writer::create(manifest_path, &header)?;
    let mut out = Archived {
        manifest: manifest_path.to_path_buf(),
        ..Archived::default()
    };
    let mut done = 0u64;
    let mut reported = 0u64;
    for item in items {
        cancel.check()?;
        let name = item.name.to_string_lossy().into_owned();
        match item.kind {
            Kind::Dir => {
                append_dir(&mut tar, item)?;
                out.dir_count += 1;
            }
            Kind::Symlink => {
                let target = append_symlink(&mut tar, item)?;
                manifest.entry(&ManifestEntry {
                    path: name,
                    bytes: None,
                    sha256: None,
                    symlink: Some(target),
                })?;
                out.symlink_count += 1;
            }
            Kind::File(_) => {
                let (bytes, sha256) = append_file(&mut tar, item, cancel, &mut |n| {
                    done += n;
                    // Every 4 MiB is plenty for a progress bar.
                    if done - reported >= 4 << 20 || done == total {
                        reported = done;
                        progress(done, total);
                    }
                })?;
                manifest.entry(&ManifestEntry {
                    path: name,
                    bytes: Some(bytes),
                    sha256: Some(sha256),
                    symlink: None,
                })?;
                out.file_count += 1;
                out.source_bytes += bytes;
            }
        }
    }
    let sink = tar.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    let file = sink.finish()?.into_inner().map_err(|e| e.into_error())?;
    if copying.durable {
        file.sync_all()?;
    }
    manifest.finish(copying.durable)?;
    Ok(out)
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, item: &Item) -> anyhow::Result<()> {
    let meta = fs::symlink_metadata(&item.source)?;
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    tar.append_data(&mut header, &item.name, io::empty())
        .with_context(|| format!("cannot archive {}", item.source.display()))
}

fn append_symlink<W: Write>(tar: &mut tar::Builder<W>, item: &Item) -> anyhow::Result<String> {
    let meta = fs::symlink_metadata(&item.source)?;
    let target = fs::read_link(&item.source)?;
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    tar.append_link(&mut header, &item.name, &target)
        .with_context(|| format!("cannot archive {}", item.source.display()))?;
    Ok(target.to_string_lossy().into_owned())
}

/// Streams one file into the archive through a sha256 hasher. The size in the tar
/// header comes from the open file; a file that shrinks meanwhile fails the backup
/// (the archive would be corrupt), one that grows is cut at that size.
fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    item: &Item,
    cancel: &Cancel,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<(u64, String)> {
    let file = File::open(&item.source)
        .with_context(|| format!("cannot open {}", item.source.display()))?;
    let meta = file.metadata()?;
    let size = meta.len();
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    header.set_size(size);
    let mut reader = HashingReader {
        inner: io::BufReader::with_capacity(1 << 20, file).take(size),
        sha: sha2::Sha256::new(),
        count: 0,
        cancel,
        progress,
    };
    tar.append_data(&mut header, &item.name, &mut reader)
        .with_context(|| format!("cannot archive {}", item.source.display()))?;
    ensure!(
        reader.count == size,
        "{} shrank from {size} to {} bytes while it was archived",
        item.source.display(),
        reader.count
    );
    let sha = reader.sha.finalize();
    Ok((size, sha.iter().map(|b| format!("{b:02x}")).collect()))
}

/// Hashes, counts and reports what passes through; fails the read once cancelled.
struct HashingReader<'a, R> {
    inner: R,
    sha: sha2::Sha256,
    count: u64,
    cancel: &'a Cancel,
    progress: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(io::Error::other("cancelled"));
        }
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.count += n as u64;
        (self.progress)(n as u64);
        Ok(n)
    }
}

/// `exclude` patterns: one without `/` matches a file or directory name anywhere
/// (like `.gitignore`); one with `/` matches the archive name or the source path.
struct Exclude {
    names: Vec<glob::Pattern>,
    paths: Vec<glob::Pattern>,
}

impl Exclude {
    fn new(patterns: &[String]) -> anyhow::Result<Self> {
        let mut x = Exclude {
            names: Vec::new(),
            paths: Vec::new(),
        };
        for p in patterns {
            let pat =
                glob::Pattern::new(p).with_context(|| format!("bad exclude pattern `{p}`"))?;
            if p.contains('/') {
                x.paths.push(pat)
            } else {
                x.names.push(pat)
            }
        }
        Ok(x)
    }

    fn excludes(&self, source: &Path, name: &Path) -> bool {
        let file_name = source
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        self.names.iter().any(|p| p.matches(&file_name))
            || self
                .paths
                .iter()
                .any(|p| p.matches_path(name) || p.matches_path(source))
    }
}

/// Expands the patterns into the list of items (directories walked, symlinks kept as
/// links), and the roots they were taken from.
fn collect(
    patterns: &[String],
    exclude: &Exclude,
    skipped: &mut Vec<String>,
) -> anyhow::Result<(Vec<Item>, Vec<PathBuf>)> {
    let mut items = Vec::new();
    let mut seen = HashMap::new();
    let mut roots = Vec::new();
    for pattern in patterns {
        let (_, base) = literal_base(pattern);
        let before = items.len();
        for matched in
            crate::globs::trees(pattern).with_context(|| format!("bad glob `{pattern}`"))?
        {
            let path = matched?;
            // A restore must never land in (or inside) a directory that was backed up.
            let abs = absolute(&path);
            if path.is_dir() && !roots.iter().any(|r| abs.starts_with(r)) {
                roots.push(abs);
            }
            let name = path.strip_prefix(&base).unwrap_or(&path).to_path_buf();
            walk(&path, &name, exclude, &mut seen, &mut items, skipped)?;
        }
        ensure!(
            items.len() > before,
            "`{pattern}` matches nothing to archive"
        );
    }
    Ok((items, roots))
}

/// Each archive name taken so far: the source it was taken by, and that source's
/// device and inode.
type Seen = HashMap<PathBuf, (PathBuf, (u64, u64))>;

fn walk(
    source: &Path,
    name: &Path,
    exclude: &Exclude,
    seen: &mut Seen,
    items: &mut Vec<Item>,
    skipped: &mut Vec<String>,
) -> anyhow::Result<()> {
    if name.as_os_str().is_empty() || exclude.excludes(source, name) {
        return Ok(());
    }
    let meta = fs::symlink_metadata(source)
        .with_context(|| format!("cannot read {}", source.display()))?;
    // The same file matched twice (same device and inode) is archived once; two
    // different ones on one name would leave one of them silently out of the backup.
    let id = (meta.dev(), meta.ino());
    if let Some((first, first_id)) = seen.get(name) {
        ensure!(
            *first_id == id,
            "{} and {} would both be archived as `{}`: one would be missing from the \
             backup (change `paths` so that their names differ)",
            first.display(),
            source.display(),
            name.display()
        );
        return Ok(());
    }
    seen.insert(name.to_path_buf(), (source.to_path_buf(), id));
    let ft = meta.file_type();
    let kind = if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File(meta.size())
    } else {
        skipped.push(format!(
            "{} (not a file, directory or link)",
            source.display()
        ));
        return Ok(());
    };
    let is_dir = matches!(kind, Kind::Dir);
    items.push(Item {
        source: source.to_path_buf(),
        name: name.to_path_buf(),
        kind,
    });
    if is_dir {
        let mut children: Vec<_> = fs::read_dir(source)
            .with_context(|| format!("cannot list {}", source.display()))?
            .collect::<Result<_, _>>()?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            walk(
                &child.path(),
                &name.join(child.file_name()),
                exclude,
                seen,
                items,
                skipped,
            )?;
        }
    }
    Ok(())
}

/// The pattern's components before the first one with a glob character, and that
/// prefix's parent (the directory names in the archive are relative to).
fn literal_base(pattern: &str) -> (PathBuf, PathBuf) {
    let mut prefix = PathBuf::new();
    for c in Path::new(pattern).components() {
        let text = c.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[']) {
            break;
        }
        prefix.push(c);
    }
    let base = match prefix.components().next_back() {
        Some(Component::Normal(_)) => prefix.parent().map(Path::to_path_buf).unwrap_or_default(),
        _ => prefix.clone(),
    };
    (prefix, base)
}

/// Where a path really is (`crate::guard::resolve`), for the manifest's roots.
fn absolute(path: &Path) -> PathBuf {
    crate::guard::resolve(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_match_names_anywhere_or_paths() {
        let x = Exclude::new(&["*.tmp".into(), "cache".into(), "kb/drafts/**".into()]).unwrap();
        assert!(x.excludes(Path::new("/srv/kb/a.tmp"), Path::new("kb/a.tmp")));
        assert!(x.excludes(Path::new("/srv/kb/x/cache"), Path::new("kb/x/cache")));
        assert!(x.excludes(
            Path::new("/srv/kb/drafts/a.json"),
            Path::new("kb/drafts/a.json")
        ));
        assert!(!x.excludes(Path::new("/srv/kb/a.json"), Path::new("kb/a.json")));
        assert!(!x.excludes(Path::new("/srv/kb/cached"), Path::new("kb/cached")));
    }

    #[test]
    fn names_are_relative_to_the_literal_prefix_parent() {
        assert_eq!(literal_base("/srv/kb"), ("/srv/kb".into(), "/srv".into()));
        assert_eq!(
            literal_base("/srv/kb/**/*.json"),
            ("/srv/kb".into(), "/srv".into())
        );
        assert_eq!(
            literal_base("demo/config/*.toml"),
            ("demo/config".into(), "demo".into())
        );
        assert_eq!(literal_base("*.toml"), ("".into(), "".into()));
    }
}
