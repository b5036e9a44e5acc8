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
    let (bucket, prefix) = s3::split(url)?;
    let dir = match prefix {
        "" => String::new(),
        p if p.ends_with('/') => p.to_string(),
        p => format!("{p}/"),
    };
    let files = super::checksum::expand(required(step.files.as_deref(), "files")?, &[])?;
    let client = Client::new(&step.s3.clone().unwrap_or_default())?;
    ctx.with_engine(|ectx| {
        let mut records = Vec::new();
        let mut entries = Vec::new();
        let mut urls = Vec::new();
        let mut total = 0;
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
            let up = upload::put_file(at, path, &sha256, ectx)?;
            ectx.log(&format!(
                "uploaded {} to {} ({} bytes, sha256 {})",
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
            entries.push((name, up.sha256));
            urls.push(up.url);
        }
        let sums = upload::update_sums(&client, bucket, &dir, &entries)?;
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
