//! Files matching a local glob: each file is a recovery point, its mtime the time.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::download::{Download, Expect, buffered};
use super::s3::{SUMS, SUMS_LIMIT, parse_sums};
use super::{Fetched, Point, Source};
use crate::engines::Ctx;
use anyhow::Result;

pub struct Local {
    pattern: String,
}

impl Local {
    pub fn new(pattern: &str) -> Self {
        Self {
            pattern: pattern.to_string(),
        }
    }
}

impl Source for Local {
    fn describe(&self) -> String {
        self.pattern.clone()
    }

    fn list(&self, _ctx: &Ctx<'_>) -> anyhow::Result<Vec<Point>> {
        let pattern = &self.pattern;
        let mut points = Vec::new();
        for entry in crate::globs::glob(pattern).with_context(|| format!("bad glob `{pattern}`"))? {
            let path = entry?;
            let meta = std::fs::metadata(&path)?;
            if !meta.is_file() {
                continue;
            }
            points.push(Point {
                url: path.display().to_string(),
                time: jiff::Timestamp::try_from(meta.modified()?)?,
                bytes: meta.len(),
                id: None,
                taken_of: None,
            });
        }
        Ok(points)
    }

    fn in_place(&self) -> bool {
        true
    }

    /// Without `output` the file is used where it is (read once to check it, when the
    /// `SHA256SUMS` beside it lists it); with one, it is copied there, checked on the way.
    fn fetch(&self, point: &Point, output: Option<&Path>, ctx: &Ctx<'_>) -> Result<Fetched> {
        let path = PathBuf::from(&point.url);
        let Some(output) = output else {
            let (sha256, verified) = match listed_sum(&path, ctx)? {
                Some(listed) => (
                    Some(in_place_matches(&path, &listed, ctx)?),
                    vec![SUMS.into()],
                ),
                None => (None, Vec::new()),
            };
            return Ok(Fetched {
                path,
                bytes: point.bytes,
                sha256,
                verified,
            });
        };
        let file = std::fs::File::open(&path).with_context(|| format!("opening {}", point.url))?;
        let mut download = Download::start(&point.url, output, false, ctx)?;
        download.copy_from(&mut buffered(file), point.bytes, ctx)?;
        let mut expect = Expect {
            sizes: vec![(point.bytes, "its size when listed")],
            ..Expect::default()
        };
        if let Some(hash) = listed_sum(&path, ctx)? {
            expect.sha256.push((hash, SUMS.to_string()));
        }
        download.finish(&expect, ctx)
    }
}

/// The sha256 of the file at `path` (read, never written), when it is `listed`.
fn in_place_matches(path: &Path, listed: &str, ctx: &Ctx<'_>) -> Result<String> {
    let mut buf = vec![0u8; 1 << 20];
    let (_, sha256) = crate::engines::files::verify::sha256_file(path, &mut buf, ctx.cancel)?;
    anyhow::ensure!(
        sha256.eq_ignore_ascii_case(listed),
        "{} is altered or truncated: its sha256 is {sha256}, {SUMS} says {listed}",
        path.display()
    );
    Ok(sha256)
}

/// What the `SHA256SUMS` beside `path` says of it, as for an object in a bucket: Some(hash)
/// when it lists it, None when there is no such file or it does not list `path`.
fn listed_sum(path: &Path, ctx: &Ctx<'_>) -> Result<Option<String>> {
    let sums = path.with_file_name(SUMS);
    if !sums.is_file() {
        return Ok(None);
    }
    let bytes = crate::limits::read_regular(&sums, SUMS_LIMIT)
        .with_context(|| format!("reading {}", sums.display()))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let found = parse_sums(&String::from_utf8_lossy(&bytes))
        .into_iter()
        .find(|(_, listed)| *listed == name);
    let (sums, path) = (sums.display(), path.display());
    match &found {
        Some(_) => ctx.log(&format!("{sums} lists {path}")),
        None => ctx.log(&format!("{sums} does not list {name}")),
    }
    Ok(found.map(|(hash, _)| hash))
}
