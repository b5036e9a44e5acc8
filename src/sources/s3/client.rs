//! A small synchronous S3 client: SigV4-signed requests over ureq, the ListObjectsV2
//! pages, streamed GETs and PUTs. Only what `locate`, `copy` and records in a bucket
//! (`run --artifacts s3://...`, `status s3://...`) need.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context as _, bail};
use ureq::http::{Response, Uri};

use super::sigv4::{self, Canonical, Signer};
pub use super::xml::Object;
use crate::playbook::S3Settings;

/// How long one request may take unless `s3.timeout` says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The most objects a listing keeps: a prefix holding more is refused (name a narrower
/// one) instead of filling the memory. A million objects take about 100 MiB.
pub const MAX_LISTED: usize = 1_000_000;
/// The most pages a listing reads (a million objects are a thousand full pages of 1000):
/// a store whose listing never ends (a new truncated page each time) is given up on.
pub const MAX_PAGES: usize = 2_000;

/// A connection to one S3-compatible store.
pub struct Client {
    scheme: String,
    authority: String,
    base_path: String,
    region: String,
    access_key: String,
    secret_key: String,
    /// A temporary credential's session token (`x-amz-security-token`, signed).
    session_token: Option<String>,
    path_style: bool,
    agent: ureq::Agent,
}

/// The header that makes a PUT (or a multipart completion) fail with 412 where an object
/// of that name exists: two writers that both checked before writing (two runs in one
/// second, two copies to one prefix) cannot replace each other's object. A store that
/// ignores it still had the object looked for first (`upload::existing`).
pub const IF_NONE_MATCH: (&str, &str) = ("if-none-match", "*");

/// One object of one store: what a request is about.
#[derive(Clone, Copy)]
pub struct ObjectAt<'a> {
    pub client: &'a Client,
    pub bucket: &'a str,
    pub key: &'a str,
}

impl ObjectAt<'_> {
    /// `s3://bucket/key`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// [`Client::send`] about this object.
    pub fn send(
        &self,
        method: &str,
        query: &str,
        extra: &[(&str, String)],
        payload: Payload<'_>,
    ) -> anyhow::Result<Response<ureq::Body>> {
        self.client
            .send(method, self.bucket, self.key, query, extra, payload)
    }
}

/// A request's body.
pub enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A reader of `len` bytes whose sha256 (hex) is known.
    Reader(&'a mut dyn Read, u64, &'a str),
}

impl Client {
    /// The client of an `s3` table (rendered). Keys are optional (anonymous requests).
    pub fn new(settings: &S3Settings) -> anyhow::Result<Self> {
        let region = settings
            .region
            .clone()
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = settings
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let uri: Uri = endpoint
            .parse()
            .with_context(|| format!("`s3.endpoint` is not a url: `{endpoint}`"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            bail!("`s3.endpoint` needs a scheme and a host: `{endpoint}`");
        };
        if scheme != "http" && scheme != "https" {
            bail!("`s3.endpoint` must be http:// or https://, not `{endpoint}`");
        }
        let (access_key, secret_key) = match (&settings.access_key, &settings.secret_key) {
            (Some(a), Some(s)) => (a.clone(), s.clone()),
            (None, None) => (String::new(), String::new()),
            _ => bail!("`s3` needs both `access_key` and `secret_key`, or neither"),
        };
        let timeout = match &settings.timeout {
            Some(t) => crate::limits::parse_duration(t)
                .map_err(|e| anyhow::anyhow!("`s3.timeout`: bad duration `{t}`: {e}"))?,
            None => DEFAULT_TIMEOUT,
        };
        // Every body is bounded (listings 64 MiB, GETs and PUTs of parts), so a whole-body
        // timeout is a stall detector: a store that stops sending cannot hang the drill.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(timeout.min(Duration::from_secs(30))))
            .timeout_recv_response(Some(timeout))
            .timeout_recv_body(Some(timeout))
            .timeout_send_body(Some(timeout))
            .build()
            .into();
        Ok(Self {
            scheme: scheme.to_string(),
            authority: authority.as_str().to_string(),
            base_path: uri.path().trim_end_matches('/').to_string(),
            region,
            access_key,
            secret_key,
            session_token: None,
            path_style: settings.path_style.unwrap_or(settings.endpoint.is_some()),
            agent,
        })
    }

    /// Signs with a temporary credential's session token too (`AWS_SESSION_TOKEN`).
    pub fn with_session_token(mut self, token: Option<String>) -> Self {
        self.session_token = token;
        self
    }

    /// Sends a signed request; answers of any status come back (see [`check`]).
    pub fn send(
        &self,
        method: &str,
        bucket: &str,
        key: &str,
        query: &str,
        extra: &[(&str, String)],
        payload: Payload<'_>,
    ) -> anyhow::Result<Response<ureq::Body>> {
        let key = sigv4::uri_encode(key, true);
        let (host, path) = if self.path_style {
            let path = format!("{}/{bucket}/{key}", self.base_path);
            (self.authority.clone(), path)
        } else {
            let path = format!("{}/{key}", self.base_path);
            (format!("{bucket}.{}", self.authority), path)
        };
        let payload_sha256 = match &payload {
            Payload::Empty => sigv4::EMPTY_SHA256.to_string(),
            Payload::Bytes(b) => sha256_hex(b),
            Payload::Reader(_, _, sha) => sha.to_string(),
        };
        let amz_date = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let mut headers = vec![
            ("host".to_string(), host.clone()),
            ("x-amz-content-sha256".to_string(), payload_sha256.clone()),
            ("x-amz-date".to_string(), amz_date.clone()),
        ];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        if let Some(token) = &self.session_token {
            headers.push(("x-amz-security-token".into(), token.clone()));
        }
        let url = format!(
            "{}://{host}{path}{}{query}",
            self.scheme,
            if query.is_empty() { "" } else { "?" }
        );
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        if !self.access_key.is_empty() {
            let signer = Signer {
                access_key: &self.access_key,
                secret_key: &self.secret_key,
                region: &self.region,
            };
            let canonical = Canonical {
                method,
                path: &path,
                query,
                headers: &headers,
                payload_sha256: &payload_sha256,
            };
            req = req.header("authorization", signer.authorization(&canonical, &amz_date));
        }
        let what = || format!("{method} s3://{bucket}/{}", decode_display(&key));
        let response = match payload {
            Payload::Empty => self.agent.run(req.body(()).with_context(what)?),
            Payload::Bytes(b) => self.agent.run(req.body(b.to_vec()).with_context(what)?),
            Payload::Reader(reader, len, _) => {
                let req = req.header("content-length", len.to_string());
                let body = ureq::SendBody::from_reader(reader);
                self.agent.run(req.body(body).with_context(what)?)
            }
        };
        response.map_err(|e| anyhow::anyhow!("{}: {e}", what()))
    }

    /// Every object whose key starts with `prefix`, through all the listing's pages
    /// (how many pages it took, too).
    pub fn list(
        &self,
        bucket: &str,
        prefix: &str,
        cancel: &crate::proc::Cancel,
    ) -> anyhow::Result<(Vec<Object>, usize)> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        let mut tokens = std::collections::HashSet::new();
        let mut pages = 0;
        let listing = || format!("listing s3://{bucket}/{prefix}");
        loop {
            pages += 1;
            cancel.check()?;
            if pages > MAX_PAGES {
                bail!(
                    "{}: the store's listing did not end after {} pages (every page says more follow)",
                    listing(),
                    crate::limits::thousands(MAX_PAGES)
                );
            }
            let mut query = format!(
                "encoding-type=url&list-type=2&prefix={}",
                sigv4::uri_encode(prefix, false)
            );
            if let Some(t) = &token {
                query.push_str(&format!(
                    "&continuation-token={}",
                    sigv4::uri_encode(t, false)
                ));
            }
            let mut response = self.send("GET", bucket, "", &query, &[], Payload::Empty)?;
            check(&mut response, &listing())?;
            let body = response
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_string()
                .with_context(listing)?;
            let page = super::xml::ListPage::parse(&body)
                .with_context(|| format!("{}: unreadable answer", listing()))?;
            objects.extend(page.objects);
            if objects.len() > MAX_LISTED {
                bail!(
                    "{}: more than {} objects; name a narrower prefix (the glob's part before its first wildcard)",
                    listing(),
                    crate::limits::thousands(MAX_LISTED)
                );
            }
            match page.next {
                Some(next) if page.truncated && !tokens.insert(sha256_hex(next.as_bytes())) => {
                    bail!(
                        "{}: the store gave the same continuation token twice: its listing would never end",
                        listing()
                    )
                }
                Some(next) if page.truncated => token = Some(next),
                _ if page.truncated => {
                    bail!("{}: a page is truncated but names no next page", listing())
                }
                _ => return Ok((objects, pages)),
            }
        }
    }

    /// A small object (at most `limit` bytes), or None when it does not exist.
    pub fn get_small(
        &self,
        bucket: &str,
        key: &str,
        limit: u64,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.get_tagged(bucket, key, limit)?.map(|(bytes, _)| bytes))
    }

    /// A small object (at most `limit` bytes) and its ETag (when the store gives one),
    /// or None when it does not exist.
    pub fn get_tagged(
        &self,
        bucket: &str,
        key: &str,
        limit: u64,
    ) -> anyhow::Result<Option<(Vec<u8>, Option<String>)>> {
        let mut response = self.send("GET", bucket, key, "", &[], Payload::Empty)?;
        if response.status().as_u16() == 404 {
            return Ok(None);
        }
        check(&mut response, &format!("reading s3://{bucket}/{key}"))?;
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut bytes = Vec::new();
        response
            .body_mut()
            .with_config()
            .limit(limit)
            .reader()
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading s3://{bucket}/{key}"))?;
        Ok(Some((bytes, etag)))
    }
}

/// Fails with the store's error code and message when `response` is not a success.
/// Only the code and message of the answer are repeated (never the request's headers).
pub fn check(response: &mut Response<ureq::Body>, doing: &str) -> anyhow::Result<()> {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_string()
        .unwrap_or_default();
    let code = super::xml::element(&body, "Code").unwrap_or_default();
    let message = super::xml::element(&body, "Message").unwrap_or_default();
    let hint = match (status, code.as_str()) {
        (_, "SignatureDoesNotMatch") => " (check `s3.secret_key`)",
        (_, "InvalidAccessKeyId") => " (check `s3.access_key`)",
        (403, _) => " (check the credentials and their permissions)",
        (_, "NoSuchBucket") => " (check the bucket name in the url)",
        (412, _) => " (an object of this name was written meanwhile; it was not replaced)",
        _ => "",
    };
    let what = match (code.is_empty(), message.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!(" {code}"),
        (false, false) => format!(" {code}: {message}"),
    };
    bail!("{doing}: HTTP {status}{what}{hint}")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    crate::sources::hex(&sha2::Sha256::digest(bytes))
}

/// An encoded key as a person reads it.
fn decode_display(key: &str) -> String {
    percent_encoding::percent_decode_str(key)
        .decode_utf8_lossy()
        .into_owned()
}
