//! Where a path really leads: symlinks and `..` resolved as the kernel resolves them
//! through every ancestor that exists, the rest normalised by name.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed in one path before giving up (the kernel's ELOOP limit).
const MAX_LINKS: u32 = 40;

/// The absolute path `path` leads to: symlinks and `..` resolved through every ancestor
/// that exists, then the rest (what does not exist yet) normalised lexically, which is
/// where the kernel lands once the missing folders are created. Fails on a symlink loop
/// or an ancestor that cannot be examined.
pub fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut todo: Vec<OsString> = Vec::new();
    let start = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    push_front(&mut todo, &start);
    // `base` exists and has no symlink in it; `missing` are the names below it that
    // do not exist (yet).
    let mut base = PathBuf::from("/");
    let mut missing: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            if missing.pop().is_none() {
                base.pop();
            }
            continue;
        }
        if !missing.is_empty() {
            missing.push(name);
            continue;
        }
        let next = base.join(&name);
        match fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::other(format!(
                        "too many levels of symbolic links at {}",
                        next.display()
                    )));
                }
                let to = fs::read_link(&next)?;
                if to.is_absolute() {
                    base = PathBuf::from("/");
                }
                push_front(&mut todo, &to);
            }
            Ok(_) => base = next,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                missing.push(name)
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot examine {}: {e}", next.display()),
                ));
            }
        }
    }
    base.extend(missing);
    Ok(base)
}

/// `path` made absolute with `.` and `..` removed by name alone.
pub(super) fn lexical(path: &Path) -> PathBuf {
    let mut todo = Vec::new();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    push_front(&mut todo, &cwd.join(path));
    let mut out = PathBuf::from("/");
    while let Some(name) = todo.pop() {
        if name == ".." {
            out.pop();
        } else {
            out.push(name);
        }
    }
    out
}

/// Queues the components of `path` to be walked before what is already queued
/// (`todo` is a stack: its last element is next).
fn push_front(todo: &mut Vec<OsString>, path: &Path) {
    let names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    todo.extend(names.into_iter().rev());
}
