//! Bringing a recovery point to a local path: streamed through a fixed buffer into a
//! temporary file beside `output`, hashed on the way, verified, and only then renamed to
//! `output`. A failed or cancelled download leaves no `output` behind (the temporary file
//! is removed when dropped).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use md5::Digest as _;
use sha2::Digest as _;

use super::Fetched;
use crate::engines::Ctx;
use crate::guard::id_of;

/// The outputs `locate` made in this run (device, inode), which a later attempt of the
/// step may replace. Anything else already at an `output` is never replaced nor removed:
/// it may be live data, another recovery point, or anything the run did not create.
static MADE: std::sync::Mutex<Vec<(u64, u64)>> = std::sync::Mutex::new(Vec::new());

fn made() -> std::sync::MutexGuard<'static, Vec<(u64, u64)>> {
    MADE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fails when something the run did not make is at `output` (see [`MADE`]).
pub fn ensure_free(output: &Path) -> anyhow::Result<()> {
    match id_of(output) {
        Some(id) if !made().contains(&id) => bail!(
            "`output` {} already exists: locate never replaces what it did not make (name a new path, e.g. under {{{{ drill.workdir }}}})",
            output.display()
        ),
        _ => Ok(()),
    }
}

/// Records `output` as made by this run.
pub fn made_here(output: &Path) {
    if let Some(id) = id_of(output) {
        made().push(id);
    }
}

/// Bytes read per call, between cancellation checks and progress updates.
const BUF: usize = 1 << 20;
/// Bytes written between two starts of the writeback of a file that outlives the run.
const WRITEBACK: u64 = 8 << 20;

/// What the downloaded bytes must match, each when known.
#[derive(Debug, Default)]
pub struct Expect {
    /// Bytes, with who says so ("the listing", "Content-Length").
    pub sizes: Vec<(u64, &'static str)>,
    /// Hex sha256, with who says so ("SHA256SUMS", "the object's sha256 metadata").
    pub sha256: Vec<(String, String)>,
    /// Hex md5 (a single-part ETag).
    pub md5: Option<String>,
}

/// The directory `output` goes in, created if need be.
pub fn beside(output: &Path) -> anyhow::Result<&Path> {
    let dir = output
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// A new private directory in the directory of `output` (`prefix` names it).
pub fn tempdir_beside(output: &Path, prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    let dir = beside(output)?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(dir)
        .with_context(|| format!("creating a directory in {}", dir.display()))
}

/// `reader` with a buffer of `BUF` bytes, for [`Download::copy_from`].
pub fn buffered<R: Read>(reader: R) -> BufReader<R> {
    BufReader::with_capacity(BUF, reader)
}

/// A download in progress.
pub struct Download {
    tmp: tempfile::NamedTempFile,
    output: PathBuf,
    sha256: sha2::Sha256,
    /// Only when an ETag is to be checked (md5 costs as much as the download).
    md5: Option<md5::Md5>,
    bytes: u64,
    /// Where it comes from, for messages.
    url: String,
    /// What is being done, for messages ("downloading", "decoding").
    doing: &'static str,
    /// Whether `output` outlives the run (synced at the end); the bytes up to which its
    /// writeback was started.
    durable: bool,
    flushed: u64,
}

impl Download {
    /// Starts a download of `url` to `output` (checked against the playbook's sources);
    /// `md5` when an ETag is to be checked.
    pub fn start(url: &str, output: &Path, md5: bool, ctx: &Ctx<'_>) -> anyhow::Result<Self> {
        let output = ctx.sources.check("output", output)?;
        let durable = !ctx.is_throwaway(&output);
        let dir = beside(&output)?;
        let tmp = tempfile::Builder::new()
            .prefix(".restore-drill-download.")
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        Ok(Self {
            tmp,
            output,
            sha256: sha2::Sha256::new(),
            md5: md5.then(md5::Md5::new),
            bytes: 0,
            url: url.to_string(),
            doing: "downloading",
            durable,
            flushed: 0,
        })
    }

    /// Says `doing` instead of "downloading" in its errors.
    pub fn doing(mut self, doing: &'static str) -> Self {
        self.doing = doing;
        self
    }

    /// Appends everything `reader` gives (a reader that holds its own buffer: see
    /// [`buffered`]); `total` is for the progress bar.
    pub fn copy_from(
        &mut self,
        reader: &mut dyn BufRead,
        total: u64,
        ctx: &Ctx<'_>,
    ) -> anyhow::Result<()> {
        loop {
            ctx.cancel.check()?;
            let chunk = match reader.fill_buf() {
                Ok([]) => return Ok(()),
                Ok(chunk) => chunk,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => bail!(
                    "{} {} broke off after {} bytes: {e}",
                    self.doing,
                    self.url,
                    self.bytes
                ),
            };
            let n = chunk.len();
            self.hash(chunk);
            self.tmp
                .as_file_mut()
                .write_all(chunk)
                .with_context(|| format!("writing {}", self.output.display()))?;
            reader.consume(n);
            self.bytes += n as u64;
            self.write_back();
            ctx.progress(self.bytes, total.max(self.bytes));
        }
    }

    /// Starts the disk's writeback of what was written since the last call, every
    /// `WRITEBACK` bytes, when the file outlives the run: the final sync then has little
    /// left to wait for (the writing overlaps the rest of the work).
    fn write_back(&mut self) {
        if !self.durable || self.bytes - self.flushed < WRITEBACK {
            return;
        }
        use std::os::fd::AsRawFd as _;
        let fd = self.tmp.as_file().as_raw_fd();
        let len = (self.bytes - self.flushed) as libc::off64_t;
        // SAFETY: sync_file_range on a descriptor this download owns; it only starts the
        // writeback of a range (a failure just leaves it to the final sync).
        unsafe {
            libc::sync_file_range(
                fd,
                self.flushed as libc::off64_t,
                len,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        self.flushed = self.bytes;
    }

    fn hash(&mut self, chunk: &[u8]) {
        self.sha256.update(chunk);
        if let Some(md5) = &mut self.md5 {
            md5.update(chunk);
        }
    }

    /// The file being written, for writers that place parts themselves (`write_at`).
    pub fn file(&self) -> &std::fs::File {
        self.tmp.as_file()
    }

    /// Takes bytes `start..end` written through [`Download::file`] into account: hashes
    /// them (call in order, from 0).
    pub fn written(&mut self, start: u64, end: u64, ctx: &Ctx<'_>) -> anyhow::Result<()> {
        use std::os::unix::fs::FileExt as _;
        let mut buf = vec![0u8; BUF];
        let mut at = start;
        while at < end {
            ctx.cancel.check()?;
            let want = BUF.min((end - at) as usize);
            let n = self.tmp.as_file().read_at(&mut buf[..want], at)?;
            if n == 0 {
                break;
            }
            self.hash(&buf[..n]);
            at += n as u64;
        }
        self.bytes = at;
        Ok(())
    }

    /// Verifies what came against `expect`, then renames it to `output` (synced when it
    /// outlives the run).
    pub fn finish(self, expect: &Expect, ctx: &Ctx<'_>) -> anyhow::Result<Fetched> {
        let sha256 = super::hex(&self.sha256.finalize());
        let md5 = self.md5.map(|m| super::hex(&m.finalize()));
        let mut verified = Vec::new();
        for (size, who) in &expect.sizes {
            if *size != self.bytes {
                bail!(
                    "{} is truncated or altered: {} bytes downloaded, {who} says {size}",
                    self.url,
                    self.bytes
                );
            }
        }
        if !expect.sizes.is_empty() {
            verified.push("size".to_string());
        }
        for (want, who) in &expect.sha256 {
            if !want.eq_ignore_ascii_case(&sha256) {
                bail!(
                    "{} is altered or truncated: its sha256 is {sha256}, {who} says {want}",
                    self.url
                );
            }
            verified.push(who.clone());
        }
        if let (Some(want), Some(md5)) = (&expect.md5, &md5) {
            if !want.eq_ignore_ascii_case(md5) {
                bail!(
                    "{} is altered or truncated: its md5 is {md5}, the store's ETag says {want}",
                    self.url
                );
            }
            verified.push("the store's ETag (md5)".to_string());
        }
        if !ctx.is_throwaway(&self.output) {
            self.tmp.as_file().sync_all()?;
        }
        let output = self.output.clone();
        // `locate` checked it before it began; anything put there since stays too.
        ensure_free(&output)?;
        self.tmp
            .persist(&output)
            .with_context(|| format!("renaming the download to {}", output.display()))?;
        made_here(&output);
        Ok(Fetched {
            path: output,
            bytes: self.bytes,
            sha256: Some(sha256),
            verified,
        })
    }
}
