//! Objects of an S3-compatible store as recovery points: `s3://bucket/prefix-glob`.
//!
//! The client is synchronous and small (SigV4 on sha2, HTTP on ureq, both already used by
//! the tool) rather than an async SDK: a drill downloads one object at a time, from a
//! worker thread that must stop when cancelled, and a runtime and a hundred crates would
//! buy nothing for that. See docs/sources.md.

mod client;
mod multipart;
mod ranged;
mod sigv4;
pub mod upload;
mod xml;

use std::io::Read as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine as _;

pub use client::{Client, IF_NONE_MATCH, ObjectAt, Payload, check, sha256_hex};

use super::download::{Download, Expect, buffered};
use super::{Fetched, Point, Source, hex};
use crate::engines::Ctx;
use crate::playbook::S3Settings;
use anyhow::Result;

/// The name of the checksum list a backup flow keeps beside its objects.
pub const SUMS: &str = "SHA256SUMS";

/// Objects larger than this list no SHA256SUMS of theirs (a sums file is small).
pub const SUMS_LIMIT: u64 = 16 << 20;

pub struct S3Source {
    bucket: String,
    pattern: String,
    prefix: String,
    matcher: glob::Pattern,
    client: Client,
}

/// `bucket/key` of an `s3://` url (without the scheme).
pub fn split(url: &str) -> anyhow::Result<(&str, &str)> {
    match url.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() => Ok((bucket, key)),
        None if !url.is_empty() => Ok((url, "")),
        _ => bail!("`s3://{url}` names no bucket"),
    }
}

/// The bucket and folder `url` (the part after `s3://`) names: its key prefix, empty or
/// ending in `/` (`bucket/a/b` is the folder `a/b/`).
pub fn split_folder(url: &str) -> anyhow::Result<(&str, String)> {
    let (bucket, prefix) = split(url)?;
    let folder = match prefix {
        p if p.is_empty() || p.ends_with('/') => p.to_string(),
        p => format!("{p}/"),
    };
    Ok((bucket, folder))
}

impl S3Source {
    /// `url` is `bucket/prefix-glob` (the part after `s3://`).
    pub fn new(url: &str, settings: &S3Settings) -> anyhow::Result<Self> {
        let (bucket, pattern) = split(url)?;
        let prefix_len = pattern.find(['*', '?', '[']).unwrap_or(pattern.len());
        let matcher =
            glob::Pattern::new(pattern).with_context(|| format!("bad glob in `s3://{url}`"))?;
        Ok(Self {
            bucket: bucket.to_string(),
            pattern: pattern.to_string(),
            prefix: pattern[..prefix_len].to_string(),
            matcher,
            client: Client::new(settings)?,
        })
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// What the `SHA256SUMS` beside `key` says of it: Some(hash) when it lists it, None
    /// when there is no such file or it does not list the object.
    fn listed_sum(&self, key: &str, ctx: &Ctx<'_>) -> anyhow::Result<Option<String>> {
        let (dir, name) = key.rsplit_once('/').map_or(("", key), |(d, n)| (d, n));
        let sums_key = if dir.is_empty() {
            SUMS.to_string()
        } else {
            format!("{dir}/{SUMS}")
        };
        let Some(bytes) = self.client.get_small(&self.bucket, &sums_key, SUMS_LIMIT)? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        let found = parse_sums(&text)
            .into_iter()
            .find(|(_, n)| n == name || n == key);
        match &found {
            Some(_) => ctx.log(&format!("{} lists {}", self.url(&sums_key), self.url(key))),
            None => ctx.log(&format!("{} does not list {name}", self.url(&sums_key))),
        }
        Ok(found.map(|(hash, _)| hash))
    }
}

/// Adds what the answer's headers say of the object to `expect`; returns its ETag.
fn expect_headers(headers: &ureq::http::HeaderMap, expect: &mut Expect) -> Option<String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(len) = header("content-length").and_then(|l| l.parse().ok()) {
        expect.sizes.push((len, "Content-Length"));
    }
    if let Some(sum) = header("x-amz-checksum-sha256").filter(|s| !s.contains('-')) {
        let raw = base64::engine::general_purpose::STANDARD.decode(sum.trim());
        if let Some(raw) = raw.ok().filter(|r| r.len() == 32) {
            expect
                .sha256
                .push((hex(&raw), "the store's sha256 checksum".into()));
        }
    }
    if let Some(sum) = header("x-amz-meta-sha256") {
        expect
            .sha256
            .push((sum, "the object's sha256 metadata".into()));
    }
    let encrypted = header("x-amz-server-side-encryption").is_some_and(|s| s.contains("kms"))
        || header("x-amz-server-side-encryption-customer-algorithm").is_some();
    let etag = header("etag");
    expect.md5 = etag
        .as_deref()
        .map(|e| e.trim_matches('"').to_ascii_lowercase())
        .filter(|e| e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit()))
        .filter(|_| !encrypted);
    etag
}

/// The `(hash, name)` lines of a `sha256sum` output (`HASH  name` or `HASH *name`).
pub fn parse_sums(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (hash, name) = line.trim_end().split_once(' ')?;
            let name = name.strip_prefix([' ', '*']).unwrap_or(name);
            let valid = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
            valid.then(|| (hash.to_ascii_lowercase(), name.to_string()))
        })
        .collect()
}

impl Source for S3Source {
    fn describe(&self) -> String {
        self.url(&self.pattern)
    }

    fn list(&self, ctx: &Ctx<'_>) -> anyhow::Result<Vec<Point>> {
        // As a local glob matches a path: case tells, a wildcard never crosses a `/`.
        let options = crate::globs::as_walked();
        let (objects, pages) = self.client.list(&self.bucket, &self.prefix, ctx.cancel)?;
        ctx.log(&format!(
            "{} objects under {} ({pages} pages)",
            objects.len(),
            self.url(&self.prefix)
        ));
        Ok(objects
            .into_iter()
            .filter(|o| self.matcher.matches_with(&o.key, options))
            .filter(|o| !o.key.ends_with(SUMS))
            .map(|o| Point {
                url: self.url(&o.key),
                time: o.last_modified,
                bytes: o.size,
                id: None,
                taken_of: None,
            })
            .collect())
    }

    fn fetch(&self, point: &Point, output: Option<&Path>, ctx: &Ctx<'_>) -> Result<Fetched> {
        let output =
            output.context("`output` is required for a backup in S3: where it is downloaded")?;
        let key = point
            .url
            .strip_prefix(&format!("s3://{}/", self.bucket))
            .context("a recovery point of another bucket")?;
        let mut expect = Expect {
            sizes: vec![(point.bytes, "the listing")],
            ..Expect::default()
        };
        if let Some(hash) = self.listed_sum(key, ctx)? {
            expect.sha256.push((hash, SUMS.to_string()));
        }
        let parallel = point.bytes >= ranged::MIN_PARALLEL;
        let method = if parallel { "HEAD" } else { "GET" };
        let headers = [("x-amz-checksum-mode", "ENABLED".to_string())];
        let mut response =
            self.client
                .send(method, &self.bucket, key, "", &headers, Payload::Empty)?;
        check(&mut response, &format!("downloading {}", point.url))?;
        let etag = expect_headers(response.headers(), &mut expect);
        let mut download = Download::start(&point.url, output, expect.md5.is_some(), ctx)?;
        if parallel {
            let ranged = ranged::Ranged {
                at: ObjectAt {
                    client: &self.client,
                    bucket: &self.bucket,
                    key,
                },
                size: point.bytes,
                etag: etag.as_deref(),
                url: &point.url,
            };
            ranged.fetch(&mut download, ctx)?;
        } else {
            // One byte past the listed size is enough to fail the size check: a body
            // without end is not written to the disk until the request times out.
            let reader = response.body_mut().as_reader().take(point.bytes + 1);
            download.copy_from(&mut buffered(reader), point.bytes, ctx)?;
        }
        download.finish(&expect, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_lines_of_both_modes_are_read_and_junk_is_skipped() {
        let h = "a".repeat(64);
        let text = format!("{h}  cortex.db\n{h} *bin.db\nnot a line\n");
        let sums = parse_sums(&text);
        assert_eq!(sums.len(), 2);
        assert_eq!(sums[0], (h.clone(), "cortex.db".to_string()));
        assert_eq!(sums[1].1, "bin.db");
    }

    #[test]
    fn a_url_splits_into_bucket_and_key_and_the_prefix_ends_at_the_glob() {
        assert_eq!(split("b/h/x.db").unwrap(), ("b", "h/x.db"));
        assert!(split("/x").is_err());
        let s = S3Source::new("b/cortex/hourly/*.db", &S3Settings::default()).unwrap();
        assert_eq!(s.prefix, "cortex/hourly/");
        assert_eq!(s.describe(), "s3://b/cortex/hourly/*.db");
    }
}
