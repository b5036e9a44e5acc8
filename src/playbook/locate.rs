//! Where `locate` finds a backup and what it does on the way: an S3-compatible store, a
//! restic or borg repository, age decryption, decompression.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An S3-compatible object store (`locate` with an `s3://` glob, `copy`).
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
