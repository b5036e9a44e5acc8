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
    /// What is wrong with this table beside `restic = { repository }`, every problem;
    /// none when it fits.
    /// restic takes the endpoint in the repository (`s3:http://host:port/bucket/prefix`)
    /// and has no per-request timeout, so `endpoint` and `timeout` are refused rather than
    /// silently ignored or rewritten into it. `templated`: the repository is rendered
    /// later (its scheme is checked then).
    pub fn restic_misfits(&self, repository: &str, templated: bool) -> Vec<Misfit> {
        if !templated && !repository.starts_with("s3:") {
            return vec![(
                None,
                format!("`s3` applies to a restic repository on S3 (`s3:...`), not `{repository}`"),
            )];
        }
        let mut misfits = Vec::new();
        if self.endpoint.is_some() {
            let why =
                "restic takes the endpoint in the repository: `s3:http://host:port/bucket/prefix`";
            misfits.push((
                Some("endpoint"),
                format!("`s3.endpoint` does not apply to a restic repository: {why}"),
            ));
        }
        if self.timeout.is_some() {
            let why = "restic has no per-request timeout; the step's `timeout` bounds it";
            misfits.push((
                Some("timeout"),
                format!("`s3.timeout` does not apply to a restic repository: {why}"),
            ));
        }
        if self.access_key.is_some() != self.secret_key.is_some() {
            misfits.push((
                None,
                "`s3` of a restic repository needs both `access_key` and `secret_key` (or neither: restic then reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the environment)".into(),
            ));
        }
        misfits
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

impl super::Step {
    /// The area of a bucket a `locate` step reads its recovery points from: the bucket
    /// and the folder of its `s3://` glob (the key prefix up to its last `/` before any
    /// wildcard: a `SHA256SUMS` there is read too), or the bucket and prefix of its
    /// restic `s3:` repository (`s3:http://host:port/bucket/prefix` or
    /// `s3:host/bucket/prefix`), with the field naming it. A prefix is empty or ends in `/`.
    pub fn s3_source(&self) -> Option<(String, String, &'static str)> {
        let folder = |key: &str| key[..key.rfind('/').map_or(0, |i| i + 1)].to_string();
        if let Some(url) = self.glob.as_deref().and_then(|g| g.strip_prefix("s3://")) {
            let (bucket, pattern) = url.split_once('/').unwrap_or((url, ""));
            let fixed = &pattern[..pattern.find(['*', '?', '[']).unwrap_or(pattern.len())];
            return Some((bucket.to_string(), folder(fixed), "glob"));
        }
        let repo = self.restic.as_ref()?.repository.strip_prefix("s3:")?;
        let path = repo.split_once("://").map_or(repo, |(_, rest)| rest);
        let mut parts = path.splitn(3, '/').skip(1);
        let bucket = parts.next().filter(|b| !b.is_empty())?;
        let prefix = parts.next().unwrap_or_default().trim_end_matches('/');
        let prefix = match prefix {
            "" => String::new(),
            p => format!("{p}/"),
        };
        Some((bucket.to_string(), prefix, "restic.repository"))
    }
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
    fn the_s3_source_of_a_locate_is_its_bucket_and_folder() {
        let step = |fields: &str| -> super::super::Step {
            toml::from_str(&format!("id = \"l\"\nkind = \"locate\"\n{fields}")).unwrap()
        };
        let of = |fields: &str| {
            step(fields)
                .s3_source()
                .map(|(b, p, f)| format!("{b} {p} {f}"))
        };
        let glob = |g: &str| of(&format!("glob = \"{g}\""));
        assert_eq!(glob("s3://b/hourly/cortex-*.db").unwrap(), "b hourly/ glob");
        assert_eq!(glob("s3://b/a/b/c.db").unwrap(), "b a/b/ glob");
        assert_eq!(glob("s3://b/*.db").unwrap(), "b  glob");
        assert_eq!(glob("s3://b").unwrap(), "b  glob");
        assert_eq!(glob("/srv/backups/*.db"), None);
        let restic = |r: &str| of(&format!("restic = {{ repository = \"{r}\" }}"));
        let want = "bkt repo/r1/ restic.repository";
        assert_eq!(
            restic("s3:http://127.0.0.1:9000/bkt/repo/r1").unwrap(),
            want
        );
        assert_eq!(restic("s3:s3.amazonaws.com/bkt/repo/r1/").unwrap(), want);
        assert_eq!(
            restic("s3:https://h/bkt").unwrap(),
            "bkt  restic.repository"
        );
        assert_eq!(restic("/srv/restic"), None);
        assert_eq!(restic("s3:http://h/"), None);
    }

    #[test]
    fn an_s3_table_fits_a_restic_repository_on_s3_with_keys_region_and_path_style() {
        let keys = S3Settings {
            access_key: Some("k".into()),
            secret_key: Some("s".into()),
            region: Some("eu-west-1".into()),
            path_style: Some(true),
            ..S3Settings::default()
        };
        let on_s3 = "s3:http://h:9000/b/r";
        assert!(keys.restic_misfits(on_s3, false).is_empty());
        assert!(keys.restic_misfits("{{ vars.repo }}", true).is_empty());
        let [(field, why)] = &keys.restic_misfits("sftp:h:/srv/r", false)[..] else {
            panic!("one misfit")
        };
        assert_eq!(*field, None);
        assert!(why.contains("not `sftp:h:/srv/r`"), "{why}");
        // Every problem at once: an endpoint, a timeout and half a key pair.
        let all_wrong = S3Settings {
            endpoint: Some("http://h:9000".into()),
            timeout: Some("5m".into()),
            secret_key: None,
            ..keys
        };
        let misfits = all_wrong.restic_misfits(on_s3, false);
        let fields: Vec<_> = misfits.iter().map(|(field, _)| *field).collect();
        assert_eq!(fields, [Some("endpoint"), Some("timeout"), None]);
        assert!(misfits[2].1.contains("both `access_key` and `secret_key`"));
    }
}
