//! Files that hold a secret (a libpq password file, a MySQL client's option file): created
//! 0600, never over an existing file or through a symlink, and removed when dropped unless
//! kept. `create_private` is the first half, for any file others must not read while it
//! is written (an extracted file before its own mode is set).
//!
//! A tool given its password through such a file must not also inherit it in a variable
//! (the one `[secrets]` read it from), where it would sit in `/proc/<pid>/environ` for as
//! long as the tool runs, and reach whatever the tool starts (`without_vars_holding`).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub struct SecretFile {
    path: PathBuf,
}

impl SecretFile {
    /// Creates `path`, which must not exist, readable by this user only, with `contents`.
    pub fn create(path: &Path, contents: &str) -> anyhow::Result<Self> {
        let mut file =
            create_private(path).with_context(|| format!("cannot create {}", path.display()))?;
        let secret = Self {
            path: path.to_path_buf(),
        };
        // On failure the guard goes: a half-written secret is removed.
        file.write_all(contents.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(secret)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the file in place (the removal of its directory takes it).
    pub fn keep(mut self) -> PathBuf {
        std::mem::take(&mut self.path)
    }
}

/// `expr` without the inherited variables that hold `secret` (3 bytes or more), but for
/// `kept`: the variables the expression sets itself are applied after these removals.
pub fn without_vars_holding(
    mut expr: duct::Expression,
    secret: &str,
    kept: &[&str],
) -> duct::Expression {
    if secret.len() < 3 {
        return expr;
    }
    for key in vars_holding(&[secret.as_bytes()]) {
        if !kept.iter().any(|k| key == *k) {
            expr = expr.env_remove(key);
        }
    }
    expr
}

/// The environment variables of this process whose value holds one of `secrets`.
pub fn vars_holding(secrets: &[&[u8]]) -> Vec<OsString> {
    if secrets.is_empty() {
        return Vec::new();
    }
    std::env::vars_os()
        .filter(|(_, value)| {
            let value = value.as_encoded_bytes();
            secrets
                .iter()
                .any(|s| value.windows(s.len()).any(|w| w == *s))
        })
        .map(|(key, _)| key)
        .collect()
}

/// Creates `path`, which must not exist (nor be a symlink), readable by this user only.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    create_new(path, 0o600)
}

/// Creates `path` with `mode` (less the umask): it must not exist, and a symlink there is
/// not followed (`O_EXCL | O_NOFOLLOW`), even one that appeared a moment ago.
pub fn create_new(path: &Path, mode: u32) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(mode)
        .open(path)
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_secret_file_is_private_new_and_removed_with_its_guard() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass");
        let secret = SecretFile::create(&path, "s3cret\n").unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap(), "s3cret\n");
        let again = SecretFile::create(&path, "other").err().unwrap();
        assert!(format!("{again:#}").contains(&path.display().to_string()));
        assert_eq!(fs::read_to_string(&path).unwrap(), "s3cret\n");
        drop(secret);
        assert!(!path.exists());

        let kept = SecretFile::create(&path, "x").unwrap().keep();
        assert!(kept.exists());
    }
}
