//! `copy`: the off-site copy of a backup flow: uploads `files` (globs) to
//! `to = "s3://bucket/prefix/"`, each object with its sha256, and a `SHA256SUMS` beside
//! them listing every file uploaded.

use anyhow::{Context as _, bail};

use super::checksum::hash_file;
use super::{StepCtx, StepOutcome, required};
use crate::artifact::FileRecord;
use crate::outputs;
use crate::playbook::{Algorithm, Step};
use crate::sources::s3::{self, Client, ObjectAt, upload};

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let to = required(step.to.as_deref(), "to")?;
    let Some(url) = to.strip_prefix("s3://") else {
        bail!("`to` must be an s3:// url, not `{to}`");
    };
    let (bucket, dir) = s3::split_folder(url)?;
    let files = super::checksum::expand(required(step.files.as_deref(), "files")?, &[])?;
    let client = Client::new(&step.s3.clone().unwrap_or_default())?;
    // A bucket's area a `locate` read from is a source: nothing is added to it.
    ctx.sources.check_s3("to", bucket, &dir)?;
    ctx.with_engine(|ectx| {
        // Everything is checked before anything is written: the bucket may hold the
        // backups a drill reads, so a copy never overwrites an object nor changes a
        // listed line of its SHA256SUMS.
        let mut planned = Vec::new();
        for path in &files {
            let name = path
                .file_name()
                .with_context(|| format!("{} names no file", path.display()))?
                .to_string_lossy()
                .into_owned();
            let (sha256, _) = hash_file(path, Algorithm::Sha256, ectx.cancel, &mut |_| {})?;
            let key = format!("{dir}{name}");
            let at = ObjectAt {
                client: &client,
                bucket,
                key: &key,
            };
            let there = match upload::existing(at)? {
                None => false,
                Some(Some(theirs)) if theirs == sha256 => true,
                Some(theirs) => bail!(
                    "s3://{bucket}/{key} already exists with other content ({}): a copy never overwrites an object",
                    theirs.map_or("no sha256 recorded".into(), |t| format!("sha256 {t}"))
                ),
            };
            planned.push((path, name, key, sha256, there));
        }
        let entries: Vec<(String, String)> = planned
            .iter()
            .map(|(_, name, _, sha256, _)| (name.clone(), sha256.clone()))
            .collect();
        // The folder's SHA256SUMS, which gets a line for each file.
        let sums_key = format!("{dir}{}", s3::SUMS);
        let sums_at = ObjectAt {
            client: &client,
            bucket,
            key: &sums_key,
        };
        upload::listed_sums(sums_at, &entries)?;
        let (mut records, mut urls, mut total) = (Vec::new(), Vec::new(), 0);
        for (path, _, key, sha256, there) in planned {
            let at = ObjectAt {
                client: &client,
                bucket,
                key: &key,
            };
            let up = match there {
                false => upload::put_file(at, path, &sha256, ectx)?,
                true => upload::Uploaded {
                    url: at.url(),
                    bytes: std::fs::metadata(path)?.len(),
                    sha256,
                },
            };
            let how = if there { "already there, same sha256" } else { "uploaded" };
            ectx.log(&format!(
                "{} to {} ({how}: {} bytes, sha256 {})",
                path.display(),
                up.url,
                up.bytes,
                up.sha256
            ));
            total += up.bytes;
            records.push(FileRecord {
                path: up.url.clone(),
                bytes: up.bytes,
                sha256: Some(up.sha256.clone()),
                blake3: None,
                step: step.id.clone(),
            });
            urls.push(up.url);
        }
        let sums = upload::update_sums(sums_at, &entries)?;
        ectx.log(&format!("wrote {sums}"));
        let mut outcome = StepOutcome::passed(outputs! {
            "urls" => urls,
            "bytes" => total,
            "sums" => sums,
        });
        outcome.files = records;
        Ok(outcome)
    })
}
