//! The manifest written beside a files archive: one JSON object per line, so that it is
//! written and read as a stream whatever the number of files.
//!
//! The first line is a header (format, compression, the source roots, so a restore can
//! refuse to land on them); every other line is an entry: a regular file with its size
//! and sha256, or a symbolic link with its target.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

pub const FORMAT: &str = "restore-drill-files/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub compression: String,
    /// The directories (or files) the archive was taken from, resolved.
    pub roots: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The name inside the archive (and under the restore's `target_dir`).
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// For a symbolic link: where it points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symlink: Option<String>,
}

/// The path of the manifest of the archive at `archive`.
pub fn path_for(archive: &Path) -> PathBuf {
    let mut name = archive.as_os_str().to_os_string();
    name.push(".manifest.jsonl");
    PathBuf::from(name)
}

pub struct Writer {
    out: BufWriter<File>,
}

impl Writer {
    pub fn create(path: &Path, header: &Header) -> anyhow::Result<Self> {
        let file = crate::guard::create_file(path)?;
        let mut w = Self {
            out: BufWriter::new(file),
        };
        w.line(header)?;
        Ok(w)
    }

    pub fn entry(&mut self, entry: &Entry) -> anyhow::Result<()> {
        self.line(entry)
    }

    fn line(&mut self, value: &impl Serialize) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    /// Flushes the manifest, and syncs it when it outlives the run.
    pub fn finish(self, durable: bool) -> anyhow::Result<()> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        if durable {
            file.sync_all()?;
        }
        Ok(())
    }
}

/// Reads the header only (the restore needs the roots, not the entries).
pub fn read_header(path: &Path) -> anyhow::Result<Header> {
    let mut first = String::new();
    BufReader::new(open(path)?).read_line(&mut first)?;
    parse_header(path, &first)
}

fn open(path: &Path) -> anyhow::Result<File> {
    File::open(path).with_context(|| format!("cannot open manifest {}", path.display()))
}

/// The first line of a manifest, checked to be one this version reads.
fn parse_header(path: &Path, line: &str) -> anyhow::Result<Header> {
    let header: Header = serde_json::from_str(line)
        .with_context(|| format!("{} is not a files manifest", path.display()))?;
    if header.format != FORMAT {
        bail!(
            "{}: unknown manifest format `{}`",
            path.display(),
            header.format
        );
    }
    Ok(header)
}

/// Every entry, by path: what `files_match` compares a restored tree against.
pub fn read_entries(path: &Path) -> anyhow::Result<HashMap<String, Entry>> {
    let mut lines = BufReader::new(open(path)?).lines();
    let first = lines.next().transpose()?.unwrap_or_default();
    parse_header(path, &first)?;
    let mut entries = HashMap::new();
    for (i, line) in lines.enumerate() {
        let line = line?;
        let entry: Entry = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}: bad entry", path.display(), i + 2))?;
        entries.insert(entry.path.clone(), entry);
    }
    Ok(entries)
}
