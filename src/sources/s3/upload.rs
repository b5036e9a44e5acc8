//! Uploads for the `copy` step: each file with its sha256 (the object's `sha256`
//! metadata and, where the store keeps one, its sha256 checksum), and a `SHA256SUMS`
//! object beside them that `sha256sum -c` and `locate` both read.

use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;

use super::multipart::{MULTIPART_FROM, Multipart, Watched};
use super::{IF_NONE_MATCH, ObjectAt, Payload, SUMS_LIMIT, check, parse_sums};
use crate::engines::Ctx;

/// An uploaded file.
pub struct Uploaded {
    pub url: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Uploads `path` to the object `at` (in parts from 64 MiB on).
/// `sha256` (hex) is the file's, hashed beforehand (the signature covers it).
pub fn put_file(
    at: ObjectAt<'_>,
    path: &Path,
    sha256: &str,
    ctx: &Ctx<'_>,
) -> anyhow::Result<Uploaded> {
    let url = at.url();
    let bytes = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if bytes >= MULTIPART_FROM {
        let multipart = Multipart {
            at,
            path,
            bytes,
            sha256,
        };
        multipart.upload(ctx)?;
        return Ok(Uploaded {
            url,
            bytes,
            sha256: sha256.to_string(),
        });
    }
    let headers = new_object(sha256_headers(sha256));
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = Watched {
        inner: &mut file,
        done: 0,
        total: bytes,
        ctx,
    };
    let payload = Payload::Reader(&mut reader, bytes, sha256);
    let mut response = at.send("PUT", "", &headers, payload)?;
    check(
        &mut response,
        &format!("uploading {} to {url}", path.display()),
    )?;
    Ok(Uploaded {
        url,
        bytes,
        sha256: sha256.to_string(),
    })
}

/// What is at `at` already: None when nothing, else the sha256 its metadata records (None
/// inside when it records none).
pub fn existing(at: ObjectAt<'_>) -> anyhow::Result<Option<Option<String>>> {
    let mut response = at.send("HEAD", "", &[], Payload::Empty)?;
    if response.status() == 404 {
        return Ok(None);
    }
    check(&mut response, &format!("looking for {}", at.url()))?;
    let meta = response.headers().get("x-amz-meta-sha256");
    Ok(Some(meta.and_then(|v| v.to_str().ok()).map(str::to_string)))
}

/// The headers that store an object's sha256 (hex): its `sha256` metadata, and the
/// store's own checksum, which it verifies on receipt.
fn sha256_headers(sha256: &str) -> [(&'static str, String); 2] {
    let raw = (0..32)
        .map(|i| u8::from_str_radix(&sha256[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect::<Vec<u8>>();
    [
        ("x-amz-meta-sha256", sha256.to_string()),
        (
            "x-amz-checksum-sha256",
            base64::engine::general_purpose::STANDARD.encode(raw),
        ),
    ]
}

/// `headers` and [`IF_NONE_MATCH`].
fn new_object(headers: [(&'static str, String); 2]) -> [(&'static str, String); 3] {
    let [a, b] = headers;
    [a, b, (IF_NONE_MATCH.0, IF_NONE_MATCH.1.to_string())]
}

/// Uploads a file of a run (a record, its log, a report: at most a few hundred MiB, in
/// one PUT) to `at`, with its sha256, outside a step (no progress, no cancelling).
pub fn put_plain(at: ObjectAt<'_>, path: &Path) -> anyhow::Result<Uploaded> {
    use sha2::Digest as _;
    let url = at.url();
    let open = || std::fs::File::open(path).with_context(|| format!("opening {}", path.display()));
    let mut hasher = sha2::Sha256::new();
    let bytes = std::io::copy(&mut open()?, &mut hasher)
        .with_context(|| format!("reading {}", path.display()))?;
    let sha256 = crate::sources::hex(&hasher.finalize());
    let mut file = open()?;
    let payload = Payload::Reader(&mut file, bytes, &sha256);
    let headers = new_object(sha256_headers(&sha256));
    let mut response = at.send("PUT", "", &headers, payload)?;
    check(
        &mut response,
        &format!("uploading {} to {url}", path.display()),
    )?;
    Ok(Uploaded { url, bytes, sha256 })
}

/// A `SHA256SUMS` as it was read: its lines (sha256, name) and what a write of it must
/// find there to replace it.
pub struct Sums {
    pub lines: Vec<(String, String)>,
    /// `if-match` its ETag, `if-none-match: *` when there was none, or nothing when the
    /// store gave no ETag.
    condition: Option<(&'static str, String)>,
}

/// Whether a conditional write of a `SHA256SUMS` landed.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Done,
    /// Another writer changed it since it was read (HTTP 412): nothing was written.
    Changed,
}

/// How many times a `SHA256SUMS` another writer keeps changing is read and written again.
const SUMS_ATTEMPTS: usize = 5;

/// The `SHA256SUMS` object `at`, after checking that none of its lines lists one of
/// `entries` (name, sha256) with another sha256: a line is added, never changed, since
/// the listing may be what a drill verifies against.
pub fn listed_sums(at: ObjectAt<'_>, entries: &[(String, String)]) -> anyhow::Result<Sums> {
    let (old, condition) = match at.client.get_tagged(at.bucket, at.key, SUMS_LIMIT)? {
        None => (Vec::new(), Some(("if-none-match", "*".to_string()))),
        Some((bytes, etag)) => (bytes, etag.map(|e| ("if-match", e))),
    };
    let lines = parse_sums(&String::from_utf8_lossy(&old));
    for (hash, name) in &lines {
        if let Some((_, ours)) = entries.iter().find(|(n, h)| n == name && h != hash) {
            anyhow::bail!(
                "{} lists {name} with sha256 {hash}, not {ours}: a copy never changes a listed file's line",
                at.url()
            );
        }
    }
    Ok(Sums { lines, condition })
}

/// Writes `sums` as the `SHA256SUMS` object `at`, only if it is still what was read.
pub fn put_sums(at: ObjectAt<'_>, sums: &Sums) -> anyhow::Result<Written> {
    let text: String = sums
        .lines
        .iter()
        .map(|(hash, name)| format!("{hash}  {name}\n"))
        .collect();
    let headers: Vec<(&str, String)> = sums.condition.iter().cloned().collect();
    let mut response = at.send("PUT", "", &headers, Payload::Bytes(text.as_bytes()))?;
    if response.status().as_u16() == 412 {
        return Ok(Written::Changed);
    }
    check(&mut response, &format!("writing {}", at.url()))?;
    Ok(Written::Done)
}

/// Adds `entries` (name, sha256) to the `SHA256SUMS` object `at`, keeping the lines of
/// other files (see [`listed_sums`]). A listing that another writer changed meanwhile
/// is read, checked and written again: no writer's line is lost. Returns its url.
pub fn update_sums(at: ObjectAt<'_>, entries: &[(String, String)]) -> anyhow::Result<String> {
    for _ in 0..SUMS_ATTEMPTS {
        let mut sums = listed_sums(at, entries)?;
        sums.lines
            .retain(|(_, name)| !entries.iter().any(|(n, _)| n == name));
        sums.lines.extend(
            entries
                .iter()
                .map(|(name, hash)| (hash.clone(), name.clone())),
        );
        if put_sums(at, &sums)? == Written::Done {
            return Ok(at.url());
        }
    }
    anyhow::bail!(
        "{} was changed by another writer each of {SUMS_ATTEMPTS} times it was written",
        at.url()
    )
}
