//! restore/files: extracts an archive into `target_dir`, refusing every entry that
//! would land outside it. Each entry is checked before anything is written for it:
//! its name must be relative without `..`; no directory on its way may be a symlink
//! (an earlier entry could have planted one); a symlink must point inside the target;
//! a hard link must name a file already extracted inside it. Files are created with
//! `O_CREAT | O_EXCL | O_NOFOLLOW`, so nothing existing is followed or overwritten.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, bail, ensure};

use crate::proc::Cancel;
use crate::proc::secret::create_private;

#[derive(Debug, Default)]
pub struct Extracted {
    pub file_count: u64,
    pub bytes: u64,
    pub symlink_count: u64,
    pub dir_count: u64,
}

/// Extracts `archive` (zstd, gzip or plain tar, told by its first bytes) into `target`,
/// which exists and is empty.
pub fn extract(
    archive: &Path,
    target: &Path,
    cancel: &Cancel,
    progress: &dyn Fn(u64, u64),
) -> anyhow::Result<Extracted> {
    let total = fs::metadata(archive)
        .with_context(|| format!("backup {} not found", archive.display()))?
        .len();
    ensure!(total > 0, "backup {} is empty (0 bytes)", archive.display());
    let read = Arc::new(AtomicU64::new(0));
    let counted = CountingReader {
        inner: File::open(archive)?,
        count: Arc::clone(&read),
    };
    let mut archive_reader =
        tar::Archive::new(crate::engines::compress::decompressor(archive, counted)?);
    let mut out = Extracted::default();
    for entry in archive_reader
        .entries()
        .context("cannot read the archive")?
    {
        cancel.check()?;
        let mut entry = entry.context("corrupt archive")?;
        extract_entry(&mut entry, target, cancel, &mut out)?;
        progress(read.load(Ordering::Relaxed), total);
    }
    Ok(out)
}

fn extract_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    target: &Path,
    cancel: &Cancel,
    out: &mut Extracted,
) -> anyhow::Result<()> {
    let raw = entry.path().context("bad entry name")?.into_owned();
    let Some(rel) = safe_relative(&raw)? else {
        return Ok(());
    };
    let dest = target.join(&rel);
    let kind = entry.header().entry_type();
    if kind == tar::EntryType::XGlobalHeader {
        // pax global metadata (e.g. `git archive`'s commit id), not a file.
        return Ok(());
    }
    let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
    prepare_parents(target, &rel)?;
    match kind {
        tar::EntryType::Directory => {
            make_dir(&dest)?;
            out.dir_count += 1;
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let bytes = write_file(entry, &dest, mode, cancel)?;
            out.file_count += 1;
            out.bytes += bytes;
        }
        tar::EntryType::Symlink => {
            let link = entry
                .link_name()?
                .context("symlink without a target")?
                .into_owned();
            ensure!(
                link_stays_inside(&rel, &link),
                "refusing entry `{}`: symlink to `{}` points outside the target",
                raw.display(),
                link.display()
            );
            std::os::unix::fs::symlink(&link, &dest)
                .with_context(|| format!("cannot create {}", dest.display()))?;
            out.symlink_count += 1;
        }
        tar::EntryType::Link => {
            let link = entry
                .link_name()?
                .context("hard link without a target")?
                .into_owned();
            let Some(link_rel) = safe_relative(&link)? else {
                bail!(
                    "refusing entry `{}`: hard link to an empty name",
                    raw.display()
                );
            };
            prepare_parents(target, &link_rel)?;
            let existing = target.join(&link_rel);
            let is_file = fs::symlink_metadata(&existing).is_ok_and(|m| m.file_type().is_file());
            ensure!(
                is_file,
                "refusing entry `{}`: hard link to `{}`, which is not a file extracted inside the target",
                raw.display(),
                link.display()
            );
            fs::hard_link(&existing, &dest)
                .with_context(|| format!("cannot create {}", dest.display()))?;
            out.file_count += 1;
        }
        other => bail!(
            "refusing entry `{}`: unsupported entry type {other:?}",
            raw.display()
        ),
    }
    Ok(())
}

/// The entry's name as a relative path without `.`; `None` for the archive root
/// itself. Absolute names and `..` are refused.
pub fn safe_relative(name: &Path) -> anyhow::Result<Option<PathBuf>> {
    let mut rel = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(part) => rel.push(part),
            Component::CurDir => {}
            Component::ParentDir => bail!(
                "refusing entry `{}`: `..` would leave the target",
                name.display()
            ),
            Component::RootDir | Component::Prefix(_) => {
                bail!("refusing entry `{}`: absolute path", name.display())
            }
        }
    }
    Ok((!rel.as_os_str().is_empty()).then_some(rel))
}

/// Whether a symlink at `rel` (inside the target) pointing at `link` resolves inside
/// the target, judged on the names alone (the target may not exist yet). `..` is only
/// allowed before any other name: after a name that may itself be a symlink, `..`
/// could climb from wherever that link leads.
pub fn link_stays_inside(rel: &Path, link: &Path) -> bool {
    if link.is_absolute() {
        return false;
    }
    let mut depth: i64 = rel.components().count() as i64 - 1;
    let mut named = false;
    for c in link.components() {
        match c {
            Component::Normal(_) => {
                depth += 1;
                named = true;
            }
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 || named {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Creates the directories leading to `rel` under `target`, refusing any that is a
/// symlink or not a directory: writing through it could land outside the target.
fn prepare_parents(target: &Path, rel: &Path) -> anyhow::Result<()> {
    let mut dir = target.to_path_buf();
    let parents: Vec<Component<'_>> = rel.components().collect();
    for c in &parents[..parents.len().saturating_sub(1)] {
        dir.push(c);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                bail!(
                    "refusing entry `{}`: its directory {} is a symlink",
                    rel.display(),
                    dir.display()
                )
            }
            Ok(_) => bail!(
                "refusing entry `{}`: {} is not a directory",
                rel.display(),
                dir.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => make_dir(&dir)?,
            Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", dir.display())),
        }
    }
    Ok(())
}

fn make_dir(dir: &Path) -> anyhow::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_dir() => Ok(()),
        Ok(_) => bail!(
            "cannot create directory {}: something else is there",
            dir.display()
        ),
        Err(_) => fs::create_dir(dir).with_context(|| format!("cannot create {}", dir.display())),
    }
}

fn write_file<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    dest: &Path,
    mode: u32,
    cancel: &Cancel,
) -> anyhow::Result<u64> {
    let file = create_private(dest)
        .with_context(|| format!("cannot create {} (duplicate entry?)", dest.display()))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let mut buf = vec![0u8; 256 << 10];
    let mut bytes = 0u64;
    loop {
        cancel.check()?;
        let n = entry.read(&mut buf).context("corrupt archive")?;
        if n == 0 {
            break;
        }
        io::Write::write_all(&mut writer, &buf[..n])?;
        bytes += n as u64;
    }
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    if let Ok(Some(mtime)) = entry
        .header()
        .mtime()
        .map(|t| std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(t)))
    {
        let _ = file.set_modified(mtime);
    }
    // Permission bits only: set-uid/gid and sticky bits from an archive are dropped.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    Ok(bytes)
}

struct CountingReader {
    inner: File,
    count: Arc<AtomicU64>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_the_target_are_refused() {
        assert!(safe_relative(Path::new("../escape")).is_err());
        assert!(safe_relative(Path::new("a/../../escape")).is_err());
        assert!(safe_relative(Path::new("/etc/passwd")).is_err());
        assert_eq!(
            safe_relative(Path::new("./a/b")).unwrap(),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(safe_relative(Path::new("./")).unwrap(), None);
    }

    #[test]
    fn symlinks_must_resolve_inside() {
        assert!(link_stays_inside(Path::new("a/link"), Path::new("../b")));
        assert!(link_stays_inside(Path::new("a/link"), Path::new("c/d")));
        assert!(link_stays_inside(
            Path::new("a/b/link"),
            Path::new("../../c")
        ));
        assert!(!link_stays_inside(
            Path::new("link"),
            Path::new("../outside")
        ));
        assert!(!link_stays_inside(
            Path::new("a/link"),
            Path::new("../../outside")
        ));
        assert!(!link_stays_inside(Path::new("a/link"), Path::new("/etc")));
        assert!(!link_stays_inside(
            Path::new("a/link"),
            Path::new("x/../../../y")
        ));
        assert!(!link_stays_inside(Path::new("a/link"), Path::new("s/..")));
    }
}
