//! Artifacts in an S3-compatible bucket (`s3://bucket/prefix/`), for runs without a
//! shared volume (Kubernetes Jobs).
//!
//! `run --artifacts s3://bucket/prefix/` writes into a local staging folder as it always
//! writes, after fetching the drill's newest records from `prefix/<drill>/` into it (the
//! hash chain's `previous`, the HTML report's RTO history and `--metrics`' last success
//! read them there), and when the run ends uploads the run's files (`restore_drill_<ts>`
//! `.log`, reports, `.minisig`, the `.json` record last) to `prefix/<drill>/`. `status`
//! and `history` read the records under the prefix, a tree of drills' folders.
//!
//! The endpoint, region and keys come from the AWS CLI's environment variables, so
//! nothing secret is on the command line.

use std::path::Path;

use anyhow::Context as _;

use crate::artifact;
use crate::exit::ExitCode;
use crate::playbook::{LoadedPlaybook, S3Settings};
use crate::runner::{RunOptions, RunResult};
use crate::sources::s3::{self, Client, ObjectAt, upload};

/// At most this many of the drill's newest records are fetched before a run.
const FETCH_MAX: usize = 100;

/// A prefix of a bucket holding drills' records (`prefix` empty or ending in `/`).
pub struct Bucket {
    client: Client,
    /// The store's url, for messages.
    endpoint: String,
    bucket: String,
    prefix: String,
}

/// A set environment variable (an empty one is not set).
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The store the AWS CLI's environment names.
fn settings_from_env() -> S3Settings {
    S3Settings {
        endpoint: env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL")),
        region: env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")),
        access_key: env("AWS_ACCESS_KEY_ID"),
        secret_key: env("AWS_SECRET_ACCESS_KEY"),
        ..S3Settings::default()
    }
}

/// An error of the store, with its hints in the names of the environment (and the
/// password of a url in it, such as `AWS_ENDPOINT_URL`'s, as `***`).
fn explain(e: &anyhow::Error) -> String {
    crate::redact::mask_url_passwords(&format!("{e:#}"))
        .replace("`s3.access_key`", "AWS_ACCESS_KEY_ID")
        .replace("`s3.secret_key`", "AWS_SECRET_ACCESS_KEY")
        .replace("`s3.endpoint`", "AWS_ENDPOINT_URL")
        .replace(
            "`s3` needs both `access_key` and `secret_key`",
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are needed together",
        )
}

/// Whether a key below the prefix is a plain relative path: no `..`, `.` or empty segment
/// (which would lead out of the folder it is fetched into, or nowhere).
fn is_plain(rel: &str) -> bool {
    !rel.split('/').any(|seg| matches!(seg, "" | "." | ".."))
}

/// Whether a file name is a record's signature.
fn is_signature(name: &str) -> bool {
    name.starts_with("restore_drill_") && name.ends_with(".minisig")
}

impl Bucket {
    /// The bucket `arg` names (`s3://bucket/prefix/`), or None when it is a local path.
    /// A bad url or settings are an error naming what is wrong.
    pub fn of(arg: &Path) -> Option<Result<Bucket, String>> {
        let url = arg.to_str()?.strip_prefix("s3://")?;
        let open = || -> anyhow::Result<Bucket> {
            let (bucket, prefix) = s3::split_folder(url)?;
            let settings = settings_from_env();
            let client = Client::new(&settings)?.with_session_token(env("AWS_SESSION_TOKEN"));
            Ok(Bucket {
                client,
                endpoint: settings.endpoint.unwrap_or_else(|| "AWS".into()),
                bucket: bucket.to_string(),
                prefix,
            })
        };
        Some(open().map_err(|e| explain(&e)))
    }

    /// An error of the store, naming the store.
    fn explain(&self, e: &anyhow::Error) -> String {
        let endpoint = crate::redact::mask_url_passwords(&self.endpoint);
        format!("{} (endpoint: {endpoint})", explain(e))
    }

    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The prefix, as a url.
    pub fn shown(&self) -> String {
        self.url(&self.prefix)
    }

    /// The keys of the records under the prefix (and `below` it), through every page of
    /// the listing, sorted.
    pub fn records(&self, below: &str) -> Result<Vec<String>, String> {
        self.keys(below, artifact::is_record_name)
    }

    /// The keys under the prefix (and `below` it) whose file name is `wanted`, through
    /// every page of the listing, sorted.
    fn keys(&self, below: &str, wanted: fn(&str) -> bool) -> Result<Vec<String>, String> {
        let under = format!("{}{below}", self.prefix);
        let cancel = crate::proc::Cancel::default();
        let (objects, _) = self
            .client
            .list(&self.bucket, &under, &cancel)
            .map_err(|e| self.explain(&e))?;
        let mut keys: Vec<String> = objects
            .into_iter()
            .map(|o| o.key)
            .filter(|k| wanted(k.rsplit('/').next().unwrap_or(k)))
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// The records under the prefix and their signatures, fetched into a new private
    /// folder at their paths below the prefix: what `verify s3://...` checks. A key that
    /// would lead out of the folder (`..`, an empty segment) is left out and named.
    pub fn mirror(&self) -> Result<(tempfile::TempDir, Vec<String>), String> {
        let dir = tempfile::tempdir().map_err(|e| format!("a temporary folder: {e}"))?;
        let mut left_out = Vec::new();
        for key in self.keys("", |name| {
            artifact::is_record_name(name) || is_signature(name)
        })? {
            let rel = &key[self.prefix.len()..];
            if !is_plain(rel) {
                left_out.push(format!("{}: left out (not a plain path)", self.url(&key)));
                continue;
            }
            let bytes = self.get(&key).map_err(|e| format!("{e:#}"))?;
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap_or(dir.path()))
                .and_then(|()| std::fs::write(&path, bytes))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok((dir, left_out))
    }

    /// Whether the records are in folders below the prefix (a fleet).
    pub fn is_tree(&self, keys: &[String]) -> bool {
        keys.iter().any(|k| {
            k.get(self.prefix.len()..)
                .is_some_and(|rest| rest.contains('/'))
        })
    }

    /// A record's exact bytes (at most the size of a record).
    pub fn get(&self, key: &str) -> anyhow::Result<Vec<u8>> {
        self.client
            .get_small(&self.bucket, key, crate::limits::MAX_RECORD_BYTES)
            .map_err(|e| anyhow::anyhow!(self.explain(&e)))?
            .with_context(|| format!("{} is not there (any more)", self.url(key)))
    }

    /// The folder of `drill`'s records.
    fn drill_prefix(&self, drill: &str) -> String {
        format!("{}{drill}/", self.prefix)
    }

    /// Fetches `drill`'s newest records into `dir`, newest first, until enough passing
    /// ones for the RTO history are there (at most [`FETCH_MAX`]); how many.
    fn stage(&self, drill: &str, dir: &Path) -> Result<usize, String> {
        let below = format!("{drill}/");
        let keys = self.records(&below)?;
        let own = self.drill_prefix(drill);
        let (mut fetched, mut passing) = (0, 0);
        for key in keys.iter().rev().filter(|k| !k[own.len()..].contains('/')) {
            if fetched == FETCH_MAX || passing == crate::report::RTO_HISTORY_RUNS {
                break;
            }
            let bytes = self.get(key).map_err(|e| format!("{e:#}"))?;
            let name = &key[own.len()..];
            std::fs::write(dir.join(name), &bytes)
                .map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))?;
            let status = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("status").cloned());
            passing += usize::from(status.is_some_and(|s| s == "passed"));
            fetched += 1;
        }
        Ok(fetched)
    }

    /// Uploads the files of the run whose record is `json` (`<stem>.*` beside it) to
    /// `drill`'s folder, the record last (a record there has its reports there); their
    /// urls. An object of one of their names fails it before anything is written, and
    /// every PUT is conditional on there being none.
    fn upload(&self, drill: &str, json: &Path) -> anyhow::Result<Vec<String>> {
        let dir = json.parent().unwrap_or(Path::new("."));
        let stem = json.file_stem().unwrap_or_default().to_string_lossy();
        let ours = format!("{stem}.");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(&ours))
            .collect();
        names.sort_by_key(|n| (n.ends_with(".json"), n.clone()));
        let folder = self.drill_prefix(drill);
        let keys: Vec<String> = names.iter().map(|n| format!("{folder}{n}")).collect();
        let at = |key| ObjectAt {
            client: &self.client,
            bucket: &self.bucket,
            key,
        };
        // Another run's files of the same name (two runs in one second, from two
        // machines): nothing of this run is written, so neither run is half replaced.
        for key in &keys {
            let there = upload::existing(at(key)).map_err(|e| anyhow::anyhow!(self.explain(&e)))?;
            if there.is_some() {
                anyhow::bail!(
                    "{} exists already (another run of the same second?); none of this run's files was uploaded",
                    self.url(key)
                );
            }
        }
        let mut urls = Vec::new();
        for (name, key) in names.iter().zip(&keys) {
            let up = upload::put_plain(at(key), &dir.join(name))
                .map_err(|e| anyhow::anyhow!(self.explain(&e)))?;
            urls.push(up.url);
        }
        Ok(urls)
    }
}

/// What runs the drill (`commands::run`'s): its result, or its exit code after saying why.
pub type Drive = fn(&LoadedPlaybook, &RunOptions) -> Result<RunResult, ExitCode>;

/// `run --artifacts s3://...`: the drill's newest records fetched into a staging folder,
/// the run there, its files uploaded. The store unreachable before the run: nothing runs
/// (exit 3). An upload that fails is an error naming the object, the staging folder is
/// kept (its path printed), and a run that passed exits 3 (one that failed or was
/// interrupted keeps its exit code, as for an artifact that cannot be written); the
/// record keeps its verdict.
pub fn run(bucket: &Bucket, pb: &LoadedPlaybook, mut opts: RunOptions, drive: Drive) -> ExitCode {
    let drill = pb.playbook.drill.name.as_str();
    let staging = match tempfile::Builder::new()
        .prefix(&format!("restore-drill-artifacts-{drill}-"))
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot create a staging folder for the artifacts: {e}");
            return ExitCode::Broken;
        }
    };
    let folder = bucket.url(&bucket.drill_prefix(drill));
    if let Err(e) = bucket.stage(drill, staging.path()) {
        eprintln!("error: cannot read the previous records of {folder}: {e}\nnothing was run");
        return ExitCode::Broken;
    }
    opts.artifacts_dir = staging.path().to_path_buf();
    opts.artifacts_url = Some(folder.clone());
    let result = match drive(pb, &opts) {
        Ok(result) => result,
        Err(code) => return code,
    };
    // The drill's located bucket areas are known once it ran: its files go to none.
    let into = bucket.drill_prefix(drill);
    let uploaded = (result.sources)
        .check_s3("the run's artifacts to", &bucket.bucket, &into)
        .and_then(|()| bucket.upload(drill, &result.json_path));
    match uploaded {
        Ok(urls) => {
            eprintln!(
                "uploaded {} to {folder}",
                crate::fmt::plural(urls.len(), "file")
            );
            result.exit_code()
        }
        Err(e) => {
            let kept = staging.keep();
            eprintln!(
                "error: the run's artifacts were not all uploaded: {e:#}\n  they are kept in {}",
                kept.display()
            );
            match result.exit_code() {
                ExitCode::Passed => ExitCode::Broken,
                other => other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_keys_are_fetched_into_the_mirror() {
        assert!(is_plain("team-a/restore_drill_1.json"));
        assert!(is_plain("restore_drill_1.minisig"));
        for bad in [
            "../x.json",
            "a/../../x.json",
            "a//x.json",
            "/x.json",
            "./x.json",
            "a/",
        ] {
            assert!(!is_plain(bad), "{bad}");
        }
    }
}
