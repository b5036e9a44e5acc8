//! Parallel ranged GETs for large objects: a few workers each fetch 16 MiB parts
//! (`Range: bytes=a-b`, `If-Match` the object's ETag, so an object replaced meanwhile
//! fails instead of mixing two versions) and write them in place into the download's
//! file. Memory stays flat: each worker reads through its own 1 MiB buffer. A hashing
//! thread reads the parts back in order as they complete (from the page cache).

use std::io::Read as _;
use std::os::unix::fs::FileExt as _;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, bail};

use super::{ObjectAt, Payload, check};
use crate::engines::Ctx;
use crate::sources::download::Download;

/// Objects from this size on are fetched in parallel parts.
pub const MIN_PARALLEL: u64 = 64 << 20;
const PART: u64 = 16 << 20;
const WORKERS: usize = 4;

/// One object, where it goes, and the ETag its parts must match.
pub struct Ranged<'a> {
    pub at: ObjectAt<'a>,
    pub size: u64,
    pub etag: Option<&'a str>,
    pub url: &'a str,
}

impl Ranged<'_> {
    /// Fetches every part into the download's file (at the part's offset) while a
    /// hashing thread follows the parts in order, so the hashes are ready with the last part.
    pub fn fetch(&self, download: &mut Download, ctx: &Ctx<'_>) -> anyhow::Result<()> {
        let file = download.file().try_clone()?;
        let next = AtomicU64::new(0);
        let done = AtomicU64::new(0);
        let (parts, finished) = std::sync::mpsc::channel::<(u64, u64)>();
        std::thread::scope(|scope| {
            let hasher = scope.spawn(move || -> anyhow::Result<()> {
                let (mut waiting, mut at) = (std::collections::BTreeMap::new(), 0);
                while at < self.size {
                    // None: the workers stopped; their error is the one reported.
                    let Ok((start, end)) = finished.recv() else {
                        return Ok(());
                    };
                    waiting.insert(start, end);
                    while let Some(end) = waiting.remove(&at) {
                        download.written(at, end, ctx)?;
                        at = end;
                    }
                }
                Ok(())
            });
            let workers: Vec<_> = (0..WORKERS)
                .map(|_| {
                    let parts = parts.clone();
                    let (file, next, done) = (&file, &next, &done);
                    scope.spawn(move || self.worker(file, next, done, &parts, ctx))
                })
                .collect();
            drop(parts);
            let mut first_error = None;
            for worker in workers {
                let result = worker
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a download worker panicked")));
                if let Err(e) = result {
                    // The others stop at their next part.
                    next.store(u64::MAX / 2, Ordering::SeqCst);
                    first_error.get_or_insert(e);
                }
            }
            let hashed = hasher
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the hashing thread panicked")));
            first_error.map_or(hashed, Err)
        })
    }

    fn worker(
        &self,
        file: &std::fs::File,
        next: &AtomicU64,
        done: &AtomicU64,
        parts: &std::sync::mpsc::Sender<(u64, u64)>,
        ctx: &Ctx<'_>,
    ) -> anyhow::Result<()> {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            ctx.cancel.check()?;
            let start = next.fetch_add(PART, Ordering::SeqCst);
            if start >= self.size {
                return Ok(());
            }
            let end = (start + PART).min(self.size);
            let mut headers = vec![("range", format!("bytes={start}-{}", end - 1))];
            if let Some(etag) = self.etag {
                headers.push(("if-match", etag.to_string()));
            }
            let part = || format!("downloading {} (bytes {start}-{})", self.url, end - 1);
            let mut response = self.at.send("GET", "", &headers, Payload::Empty)?;
            check(&mut response, &part())?;
            if response.status().as_u16() != 206 {
                bail!("{}: the store ignored the Range request", part());
            }
            let mut reader = response.body_mut().as_reader();
            let mut at = start;
            loop {
                if ctx.cancel.is_cancelled() {
                    ctx.cancel.check()?;
                }
                let n = reader
                    .read(&mut buf)
                    .with_context(|| format!("{}: broke off after {} bytes", part(), at - start))?;
                if n == 0 {
                    break;
                }
                if at + n as u64 > end {
                    bail!("{}: the store sent more than asked", part());
                }
                file.write_all_at(&buf[..n], at)
                    .context("writing the download")?;
                at += n as u64;
                let total = done.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                ctx.progress(total, self.size);
            }
            if at != end {
                bail!(
                    "{} is truncated: part {start}-{} ended after {} bytes",
                    self.url,
                    end - 1,
                    at - start
                );
            }
            let _ = parts.send((start, end));
        }
    }
}
