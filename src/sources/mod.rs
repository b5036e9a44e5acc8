//! Where existing backups live, for `locate`: one module per kind of source behind one
//! trait, like borgmatic's data-source hooks. Each lists its recovery points and fetches
//! one of them to a local path; `locate` (in `steps/`) chooses among them (`pick`,
//! `within`), audits the schedule (`expect_every`, `audit.rs`) and reports.
//!
//! - `local.rs`: files matching a glob (the recovery point is the file itself).
//! - `s3/`: objects of an S3-compatible store matching `s3://bucket/prefix-glob`.
//! - `restic.rs`, `borg.rs`: a repository's snapshots (`repo.rs`: what they share;
//!   `cli.rs`: running the tool; `dump.rs`: restic's file dumped without a listing, its
//!   newest snapshot's while listing).
//!
//! `decode.rs` decrypts (age) and decompresses (zstd, gzip) what a source brought.
//!
//! Adding a kind is one module here with an `impl Source` and an `open`, and one line in
//! [`KINDS`]. Steps import this layer; it imports no step nor the runner: what it may
//! use comes in an `engines::Ctx`.

pub mod audit;
mod borg;
mod cli;
pub mod decode;
pub mod download;
mod dump;
mod local;
mod repo;
mod restic;
pub mod s3;
mod stages;

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::engines::Ctx;
use crate::playbook::Step;

/// A backup that can be restored: a file, an object, a snapshot.
#[derive(Debug, Clone)]
pub struct Point {
    /// Where it is, as a person reads it: a path, `s3://bucket/key`,
    /// `restic:<repository>#<short id>`, `borg:<repository>::<archive>`.
    pub url: String,
    /// When it was taken (object mtime, file mtime, snapshot time).
    pub time: jiff::Timestamp,
    pub bytes: u64,
    /// A repository's snapshot id (restic) or archive id (borg).
    pub id: Option<String>,
    /// What a snapshot was taken of, where the listing says (restic); borg's is read for
    /// the chosen point alone ([`Source::taken_of`]).
    pub taken_of: Option<TakenOf>,
}

/// The host a snapshot was taken on and the paths it was taken of there: on that host,
/// the live data.
#[derive(Debug, Clone)]
pub struct TakenOf {
    pub host: String,
    pub paths: Vec<String>,
}

impl Point {
    /// Whether `snapshot = name` names it: a prefix (4 characters or more) of its id, or
    /// its borg archive name.
    pub fn is_named(&self, name: &str) -> bool {
        let by_id = name.len() >= 4 && self.id.as_deref().is_some_and(|id| id.starts_with(name));
        by_id
            || self
                .url
                .rsplit_once("::")
                .is_some_and(|(_, archive)| archive == name)
    }
}

/// A recovery point brought to a local path.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub path: PathBuf,
    pub bytes: u64,
    /// Hex sha256 of what was downloaded, when the source computed it.
    pub sha256: Option<String>,
    /// What the copy was checked against ("size", "sha256 of the store", "SHA256SUMS").
    pub verified: Vec<String>,
}

/// A kind of place holding recovery points.
pub trait Source {
    /// What the source is, for messages (`s3://bucket/hourly/*.db`).
    fn describe(&self) -> String;
    /// Every recovery point there is, in no particular order.
    fn list(&self, ctx: &Ctx<'_>) -> anyhow::Result<Vec<Point>>;
    /// Brings `point` to `output` (required where the point is not a local file already;
    /// a local one stays where it is without `output`). Never leaves a partial `output`.
    fn fetch(&self, point: &Point, output: Option<&Path>, ctx: &Ctx<'_>)
    -> anyhow::Result<Fetched>;
    /// Whether `fetch` without `output` gives the point where it is (a local file).
    fn in_place(&self) -> bool {
        false
    }
    /// Brings `point` to `output` as `fetch` does, once a dump of it began like a tar
    /// archive ([`Prefetched`]): listing it without dumping it again to see. By default
    /// `fetch`.
    fn fetch_listed(&self, point: &Point, output: Option<&Path>, ctx: &Ctx<'_>) -> Result<Fetched> {
        self.fetch(point, output, ctx)
    }
    /// Lists the recovery points and, where the source can, brings the newest to
    /// `output` at the same time (restic: `dump latest` beside `snapshots`) when it can
    /// prove which point that was; the step keeps it when it chooses that point. By
    /// default it only lists.
    fn list_fetching_newest(
        &self,
        output: Option<&Path>,
        ctx: &Ctx<'_>,
    ) -> anyhow::Result<(Vec<Point>, Option<Prefetched>)> {
        let _ = output;
        Ok((self.list(ctx)?, None))
    }
    /// What the snapshot `point` was taken of (the host, and the paths there), where the
    /// source says: its listing's ([`Point::taken_of`]) by default; borg reads it for
    /// this point alone, its listing of all archives not saying it.
    fn taken_of(&self, point: &Point, ctx: &Ctx<'_>) -> anyhow::Result<Option<TakenOf>> {
        let _ = ctx;
        Ok(point.taken_of.clone())
    }
}

/// A recovery point brought, or begun, while the points were listed: used
/// ([`Prefetched::finish`]) when it is the point chosen, else dropped (a download's
/// temporary file with it).
pub struct Prefetched {
    /// The point's id ([`Point::id`]).
    pub id: String,
    early: Early,
}

/// What the early dump of a point brought.
enum Early {
    /// Its file, not yet verified nor renamed to `output`; and what the source checked
    /// on the way.
    File(Box<download::Download>, String),
    /// Nothing kept: it began like a tar archive (a tree, or a file that is itself a tar).
    Tar,
}

impl Prefetched {
    /// Brings the chosen `point` of `source` to `output`: the early file verified and
    /// renamed to `output`; after a tar, fetched without dumping it again to see.
    pub fn finish(
        self,
        source: &dyn Source,
        point: &Point,
        output: Option<&Path>,
        ctx: &Ctx<'_>,
    ) -> anyhow::Result<Fetched> {
        match self.early {
            Early::File(download, verified) => {
                let mut fetched = download.finish(&download::Expect::default(), ctx)?;
                fetched.verified.push(verified);
                Ok(fetched)
            }
            Early::Tar => source.fetch_listed(point, output, ctx),
        }
    }
}

/// How a kind of source opens from a step: None when the step does not name it.
type Opener = fn(&Step) -> anyhow::Result<Option<Box<dyn Source>>>;

/// Every kind of source: the step field that names it, and its opener.
const KINDS: &[(&str, Opener)] = &[
    ("glob", open_glob),
    ("restic", restic::open),
    ("borg", borg::open),
];

/// The source a `locate` step names (its fields rendered): exactly one kind.
pub fn open(step: &Step) -> anyhow::Result<Box<dyn Source>> {
    let mut opened = Vec::new();
    for (field, opener) in KINDS {
        if let Some(source) = opener(step)? {
            opened.push((*field, source));
        }
    }
    let repository = step.restic.is_some() || step.borg.is_some();
    for (set, field) in [
        (step.paths.is_some(), "paths"),
        (step.snapshot.is_some(), "snapshot"),
        (step.check.is_some(), "check"),
    ] {
        if set && !repository {
            anyhow::bail!("`{field}` applies to a restic or borg repository");
        }
    }
    let fields: Vec<&str> = opened.iter().map(|(f, _)| *f).collect();
    match opened.pop() {
        Some((_, source)) if fields.len() == 1 => Ok(source),
        Some(_) => anyhow::bail!(
            "a locate step takes one source, not `{}`",
            fields.join("` and `")
        ),
        None => anyhow::bail!("a locate step needs `glob`, `restic` or `borg`"),
    }
}

fn open_glob(step: &Step) -> anyhow::Result<Option<Box<dyn Source>>> {
    let Some(glob) = step.glob.as_deref() else {
        // A restic repository reads the table itself (`restic::open`).
        if step.s3.is_some() && step.borg.is_some() {
            anyhow::bail!("`s3` does not apply to a borg repository");
        }
        if step.s3.is_some() && step.restic.is_none() {
            anyhow::bail!("`s3` is set but `glob` is not");
        }
        return Ok(None);
    };
    if let Some(url) = glob.strip_prefix("s3://") {
        let settings = step.s3.clone().unwrap_or_default();
        return Ok(Some(Box::new(s3::S3Source::new(url, &settings)?)));
    }
    if step.s3.is_some() {
        anyhow::bail!("`s3` is set but `glob` is not an s3:// url: `{glob}`");
    }
    Ok(Some(Box::new(local::Local::new(glob))))
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Which recovery point a drill restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Newest,
    Oldest,
    Random,
}

impl Pick {
    pub fn parse(value: Option<&str>) -> anyhow::Result<Self> {
        match value.unwrap_or("newest") {
            "newest" => Ok(Pick::Newest),
            "oldest" => Ok(Pick::Oldest),
            "random" => Ok(Pick::Random),
            other => anyhow::bail!("`pick` must be newest, oldest or random, not `{other}`"),
        }
    }

    /// The chosen one of `candidates` (sorted oldest first), None when there is none.
    pub fn choose(self, candidates: &[Point]) -> Option<&Point> {
        match self {
            Pick::Newest => candidates.last(),
            Pick::Oldest => candidates.first(),
            Pick::Random if candidates.is_empty() => None,
            Pick::Random => candidates.get(fastrand::usize(..candidates.len())),
        }
    }
}

/// The points younger than `within` at `now` (all without it), oldest first.
pub fn candidates(
    mut points: Vec<Point>,
    within: Option<std::time::Duration>,
    now: jiff::Timestamp,
) -> Vec<Point> {
    if let Some(within) = within {
        let since = jiff::SignedDuration::try_from(within)
            .ok()
            .and_then(|d| now.checked_sub(d).ok());
        if let Some(since) = since {
            points.retain(|p| p.time >= since);
        }
    }
    points.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.url.cmp(&b.url)));
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Point {
        Point {
            url: s.into(),
            time: s.parse().unwrap(),
            bytes: 1,
            id: None,
            taken_of: None,
        }
    }

    #[test]
    fn within_keeps_the_young_points_oldest_first_and_pick_chooses() {
        let now: jiff::Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        let points = vec![
            at("2026-11-28T10:00:00Z"),
            at("2026-11-20T10:00:00Z"),
            at("2026-11-28T09:00:00Z"),
        ];
        let all = candidates(points.clone(), None, now);
        assert_eq!(all.len(), 3);
        let young = candidates(points, Some(std::time::Duration::from_secs(86400)), now);
        let urls: Vec<&str> = young.iter().map(|p| p.url.as_str()).collect();
        assert_eq!(urls, ["2026-11-28T09:00:00Z", "2026-11-28T10:00:00Z"]);
        assert_eq!(
            Pick::Newest.choose(&young).unwrap().url,
            "2026-11-28T10:00:00Z"
        );
        assert_eq!(
            Pick::Oldest.choose(&young).unwrap().url,
            "2026-11-28T09:00:00Z"
        );
        assert!(Pick::Random.choose(&young).is_some());
        assert!(Pick::Random.choose(&[]).is_none());
        assert!(
            Pick::parse(Some("latest"))
                .unwrap_err()
                .to_string()
                .contains("`latest`")
        );
    }
}
