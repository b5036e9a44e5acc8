//! Multipart uploads for large files (`copy`): parts of at least 16 MiB, each read from
//! the file twice (hashed, then sent with that sha256 signed), so memory stays flat. A
//! failed upload is aborted, leaving no parts behind in the bucket.

use std::io::{Read, Seek as _, SeekFrom};
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use sha2::Digest as _;

use super::sigv4::uri_encode;
use super::{IF_NONE_MATCH, ObjectAt, Payload, check, xml};
use crate::engines::Ctx;
use crate::sources::hex;

/// Files from this size on go up in parts.
pub const MULTIPART_FROM: u64 = 64 << 20;
const MIN_PART: u64 = 16 << 20;
const MAX_PARTS: u64 = 10_000;

/// One file, where it goes, and its whole sha256 (stored as the object's metadata).
pub struct Multipart<'a> {
    pub at: ObjectAt<'a>,
    pub path: &'a Path,
    pub bytes: u64,
    pub sha256: &'a str,
}

impl Multipart<'_> {
    fn doing(&self) -> String {
        format!(
            "uploading {} to s3://{}/{}",
            self.path.display(),
            self.at.bucket,
            self.at.key
        )
    }

    pub fn upload(&self, ctx: &Ctx<'_>) -> anyhow::Result<()> {
        let meta = [("x-amz-meta-sha256", self.sha256.to_string())];
        let mut response = self
            .at
            .send("POST", "uploads=", &meta, Payload::Bytes(&[]))?;
        check(&mut response, &self.doing())?;
        let body = read_body(&mut response, &self.doing())?;
        let upload_id = xml::element(&body, "UploadId")
            .with_context(|| format!("{}: the store named no upload id", self.doing()))?;
        let id = uri_encode(&upload_id, false);
        let result = self
            .parts(&id, ctx)
            .and_then(|etags| self.complete(&id, &etags));
        if result.is_err() {
            let query = format!("uploadId={id}");
            let _ = self.at.send("DELETE", &query, &[], Payload::Empty);
        }
        result
    }

    fn parts(&self, id: &str, ctx: &Ctx<'_>) -> anyhow::Result<Vec<String>> {
        let part_size = MIN_PART.max(self.bytes.div_ceil(MAX_PARTS));
        let mut file = std::fs::File::open(self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        let mut etags = Vec::new();
        let mut start = 0;
        while start < self.bytes {
            let len = part_size.min(self.bytes - start);
            let sha256 = hash_range(&file, start, len, ctx)?;
            file.seek(SeekFrom::Start(start))?;
            let mut take = (&mut file).take(len);
            let mut reader = Watched {
                inner: &mut take,
                done: start,
                total: self.bytes,
                ctx,
            };
            let query = format!("partNumber={}&uploadId={id}", etags.len() + 1);
            let payload = Payload::Reader(&mut reader, len, &sha256);
            let mut response = self.at.send("PUT", &query, &[], payload)?;
            let doing = format!("{} (part {})", self.doing(), etags.len() + 1);
            check(&mut response, &doing)?;
            let etag = response
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .with_context(|| format!("{doing}: the store answered no ETag"))?;
            etags.push(etag.to_string());
            start += len;
        }
        Ok(etags)
    }

    fn complete(&self, id: &str, etags: &[String]) -> anyhow::Result<()> {
        let parts: String = etags
            .iter()
            .enumerate()
            .map(|(i, etag)| {
                format!(
                    "<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag></Part>",
                    i + 1
                )
            })
            .collect();
        let body = format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>");
        let query = format!("uploadId={id}");
        let headers = [(IF_NONE_MATCH.0, IF_NONE_MATCH.1.to_string())];
        let mut response =
            self.at
                .send("POST", &query, &headers, Payload::Bytes(body.as_bytes()))?;
        check(&mut response, &self.doing())?;
        // S3 may answer 200 and still fail the completion in the body.
        let answer = read_body(&mut response, &self.doing())?;
        if answer.contains("<Error>") {
            let code = xml::element(&answer, "Code").unwrap_or_default();
            let message = xml::element(&answer, "Message").unwrap_or_default();
            bail!(
                "{}: completing the upload failed: {code} {message}",
                self.doing()
            );
        }
        Ok(())
    }
}

fn read_body(
    response: &mut ureq::http::Response<ureq::Body>,
    doing: &str,
) -> anyhow::Result<String> {
    response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .with_context(|| doing.to_string())
}

/// The hex sha256 of `len` bytes of `file` from `start`.
fn hash_range(file: &std::fs::File, start: u64, len: u64, ctx: &Ctx<'_>) -> anyhow::Result<String> {
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        ctx.cancel.check()?;
        let want = buf.len().min((len - at) as usize);
        let n = file.read_at(&mut buf[..want], start + at)?;
        if n == 0 {
            bail!("the file shrank while it was uploaded");
        }
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(hex(&hasher.finalize()))
}

/// A reader that stops when the step is cancelled and reports its progress.
pub struct Watched<'a, 'c> {
    pub inner: &'a mut dyn Read,
    pub done: u64,
    pub total: u64,
    pub ctx: &'a Ctx<'c>,
}

impl Read for Watched<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.ctx.cancel.is_cancelled() {
            return Err(std::io::Error::other("cancelled"));
        }
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        self.ctx.progress(self.done, self.total);
        Ok(n)
    }
}
