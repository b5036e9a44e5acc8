//! Where `locate` finds a backup and what it does on the way: an S3-compatible store, a
//! restic or borg repository, age decryption, decompression.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An S3-compatible object store (`locate` with an `s3://` glob or a restic `s3:`
/// repository, `copy`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// Base url (default: AWS, `https://s3.<region>.amazonaws.com`).
    pub endpoint: Option<String>,
    /// Signing region (default `us-east-1`).
    pub region: Option<String>,
    /// Access key id; use `{{ secrets.NAME }}`.
    pub access_key: Option<String>,
    /// Secret access key; use `{{ secrets.NAME }}`.
    pub secret_key: Option<String>,
    /// `endpoint/bucket/key` urls instead of `bucket.endpoint/key` (default: true with an
    /// `endpoint`, false for AWS).
    pub path_style: Option<bool>,
    /// The longest one request may take, its body included (a body moves at most 64 MiB:
    /// larger objects go in parts); a store that stalls fails the step after it (default 5m).
    pub timeout: Option<String>,
}

/// Where an `s3` table does not fit a restic repository: its field at fault (None: the
/// table itself) and why.
pub type Misfit = (Option<&'static str>, String);

impl S3Settings {
    /// What is wrong with this table beside `restic = { repository }`; None when it fits.
    /// restic takes the endpoint in the repository (`s3:http://host:port/bucket/prefix`)
    /// and has no per-request timeout, so `endpoint` and `timeout` are refused rather than
    /// silently ignored or rewritten into it. `templated`: the repository is rendered
    /// later (its scheme is checked then).
    pub fn restic_misfit(&self, repository: &str, templated: bool) -> Option<Misfit> {
        if !templated && !repository.starts_with("s3:") {
            return Some((
                None,
                format!("`s3` applies to a restic repository on S3 (`s3:...`), not `{repository}`"),
            ));
        }
        if self.endpoint.is_some() {
            let why =
                "restic takes the endpoint in the repository: `s3:http://host:port/bucket/prefix`";
            return Some((
                Some("endpoint"),
                format!("`s3.endpoint` does not apply to a restic repository: {why}"),
            ));
        }
        if self.timeout.is_some() {
            let why = "restic has no per-request timeout; the step's `timeout` bounds it";
            return Some((
                Some("timeout"),
                format!("`s3.timeout` does not apply to a restic repository: {why}"),
            ));
        }
        if self.access_key.is_some() != self.secret_key.is_some() {
            return Some((
                None,
                "`s3` of a restic repository needs both `access_key` and `secret_key` (or neither: restic then reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the environment)".into(),
            ));
        }
        None
    }
}

/// A restic repository (`locate`): read, never written (`--no-lock`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Restic {
    /// What `restic -r` takes: a path, `s3:...`, `sftp:...`, `rest:...`.
    pub repository: String,
    /// The repository password; use `{{ secrets.NAME }}`.
    pub password: Option<String>,
}

/// A borg repository (`locate`): read, never written (`--bypass-lock`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Borg {
    /// What borg takes: a path or `ssh://user@host/path`.
    pub repository: String,
    /// The passphrase (none for an unencrypted repository); use `{{ secrets.NAME }}`.
    pub passphrase: Option<String>,
}

/// An age-encrypted backup (`locate`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Decrypt {
    /// An age identity (`AGE-SECRET-KEY-1...`, as `age-keygen` writes it) or the path of
    /// an identity file; use `{{ secrets.NAME }}`.
    pub age_identity: String,
}

/// How `locate` decompresses what it brings back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decompress {
    /// By the name's extension: `.zst`/`.zstd` (zstd), `.gz` (gzip), else nothing.
    Auto,
    Zstd,
    Gzip,
    None,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_table_fits_a_restic_repository_on_s3_with_keys_region_and_path_style() {
        let keys = S3Settings {
            access_key: Some("k".into()),
            secret_key: Some("s".into()),
            region: Some("eu-west-1".into()),
            path_style: Some(true),
            ..S3Settings::default()
        };
        assert!(keys.restic_misfit("s3:http://h:9000/b/r", false).is_none());
        assert!(keys.restic_misfit("{{ vars.repo }}", true).is_none());
        let (field, why) = keys.restic_misfit("sftp:h:/srv/r", false).unwrap();
        assert_eq!(field, None);
        assert!(why.contains("not `sftp:h:/srv/r`"), "{why}");
        let timeout = S3Settings {
            timeout: Some("5m".into()),
            ..keys.clone()
        };
        let misfit = timeout
            .restic_misfit("s3:http://h:9000/b/r", false)
            .unwrap();
        assert_eq!(misfit.0, Some("timeout"));
        let half = S3Settings {
            secret_key: None,
            ..keys
        };
        let misfit = half.restic_misfit("s3:http://h:9000/b/r", false).unwrap();
        assert!(misfit.1.contains("both `access_key` and `secret_key`"));
    }
}
