//! What the repository sources (restic, borg) share: a snapshot's listing, one file
//! streamed into a [`Download`] or a tree restored into a new directory (`fetch`); each
//! tool says only which arguments do what ([`Repository`]), and runs through `cli.rs`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::cli::Cli;
use super::download::{Download, Expect, buffered, tempdir_beside};
use super::dump;
use super::{Fetched, Point, Source, TakenOf};
use crate::engines::Ctx;
use crate::playbook::Step;

/// What restic and borg each do their own way: the arguments of each call. Each is then
/// a [`Source`].
pub trait Repository: Sync {
    fn base(&self) -> &Base;
    /// Lists the snapshots as one JSON document.
    fn snapshots(&self) -> Vec<String>;
    /// The recovery points of that listing.
    fn points(&self, listing: &Value) -> anyhow::Result<Vec<Point>>;
    /// How a snapshot is named in messages (`snapshot 3afd7e75 of restic repository ...`).
    fn snapshot(&self, point: &Point) -> String;
    /// Checks the repository (`check = true`).
    fn check(&self) -> Vec<String>;
    /// Lists the entries of `paths` (all without any) in the snapshot, as JSON lines.
    fn entries(&self, point: &Point, paths: &[String]) -> Vec<String>;
    /// Writes one regular file of the snapshot to its standard output.
    fn dump(&self, point: &Point, file: &Entry) -> Vec<String>;
    /// Whether a directory is dumped as a tar archive (restic), so that a dump that does
    /// not begin like one is a regular file (see `dump.rs`); false where a directory's
    /// files come one after another (borg): the path is then listed beside the dump.
    fn dumps_trees_as_tar(&self) -> bool {
        false
    }
    /// The arguments that dump `path` of the newest snapshot, with the directory whose
    /// file names are the snapshot ids (a local restic repository's `snapshots/`), which
    /// proves which snapshot that was; None where nothing proves it (see `dump.rs`).
    fn dump_newest(&self, path: &str) -> Option<(Vec<String>, PathBuf)> {
        let _ = path;
        None
    }
    /// Restores `paths` (all without any) into `dir`; with the directory it runs in.
    fn restore(&self, point: &Point, paths: &[String], dir: &Path) -> InDir;
    /// Lists, as one JSON document, what the snapshot `point` was taken of, where the
    /// snapshots' listing does not say it (borg); None where it does (restic).
    fn origin(&self, point: &Point) -> Option<Vec<String>> {
        let _ = point;
        None
    }
    /// What `point` was taken of, from the listing of [`Repository::origin`].
    fn taken_of(&self, point: &Point, listing: &Value) -> anyhow::Result<Option<TakenOf>> {
        let _ = listing;
        Ok(point.taken_of.clone())
    }
}

/// What every repository source holds.
pub struct Base {
    /// As the tool takes it: a path, `s3:...`, `ssh://...`.
    pub repository: String,
    pub cli: Cli,
    pub wanted: Wanted,
}

impl Base {
    /// The repository, for messages (`restic repository /srv/restic`).
    pub fn name(&self) -> String {
        format!("{} repository {}", self.cli.program, self.repository)
    }
}

/// What a `locate` step asks of a repository: `paths` (none: the whole snapshot) and
/// whether to `check` it first.
pub struct Wanted {
    pub paths: Vec<String>,
    pub check: bool,
}

impl Wanted {
    pub fn of(step: &Step) -> Self {
        Self {
            paths: step.paths.clone().unwrap_or_default(),
            check: step.check.unwrap_or(false),
        }
    }
}

impl<R: Repository> Source for R {
    fn describe(&self) -> String {
        self.base().name()
    }

    fn list(&self, ctx: &Ctx<'_>) -> anyhow::Result<Vec<Point>> {
        let base = self.base();
        let listing = base
            .cli
            .json(&self.snapshots(), ctx)
            .with_context(|| format!("listing the snapshots of {}", base.name()))?;
        self.points(&listing)
    }

    fn fetch(
        &self,
        point: &Point,
        output: Option<&Path>,
        ctx: &Ctx<'_>,
    ) -> anyhow::Result<Fetched> {
        fetch(self, point, output, true, ctx)
    }

    fn fetch_listed(&self, point: &Point, output: Option<&Path>, ctx: &Ctx<'_>) -> Result<Fetched> {
        fetch(self, point, output, false, ctx)
    }

    fn list_fetching_newest(
        &self,
        output: Option<&Path>,
        ctx: &Ctx<'_>,
    ) -> anyhow::Result<(Vec<Point>, Option<super::Prefetched>)> {
        newest_while_listing(self, output, ctx)
    }

    fn taken_of(&self, point: &Point, ctx: &Ctx<'_>) -> anyhow::Result<Option<TakenOf>> {
        let Some(args) = self.origin(point) else {
            return Ok(point.taken_of.clone());
        };
        let what = || format!("reading what {} was taken of", self.snapshot(point));
        let listing = self.base().cli.json(&args, ctx).with_context(what)?;
        Repository::taken_of(self, point, &listing).with_context(what)
    }
}

/// Lists the snapshots of `repo` while its newest snapshot's single wanted path is
/// dumped to `output` (see `dump.rs`); the dump is kept only when proven to be of
/// the newest listed snapshot, a regular file, and complete. A dump proven of it that
/// began like a tar archive is remembered, for its fetch not to dump it again to see.
pub fn newest_while_listing<R: Repository>(
    repo: &R,
    output: Option<&Path>,
    ctx: &Ctx<'_>,
) -> anyhow::Result<(Vec<Point>, Option<super::Prefetched>)> {
    let base = repo.base();
    let newest = match (output, base.wanted.paths.as_slice(), base.wanted.check) {
        (Some(output), [only], false) => repo.dump_newest(only).map(|n| (output, n)),
        _ => None,
    };
    let Some((output, (args, ids_dir))) = newest else {
        return Ok((Source::list(repo, ctx)?, None));
    };
    let before = dump::snapshot_ids(&ids_dir);
    let url = format!("{}#latest", base.name());
    let (listed, dumped) = std::thread::scope(|s| {
        let listing = s.spawn(|| Source::list(repo, ctx));
        let dumped = dump::sniffed(&base.cli, &args, &url, output, ctx);
        let listed = listing
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the listing thread panicked")));
        (listed, dumped)
    });
    let after = dump::snapshot_ids(&ids_dir);
    let points = listed?;
    let prefetched = match (dump::proven_newest(&points, before, after), dumped) {
        (Some(id), Ok(Some(download))) => Some(super::Prefetched {
            id,
            early: super::Early::File(Box::new(download), dump::verified_by(base.cli.program)),
        }),
        (Some(id), Ok(None)) => Some(super::Prefetched {
            id,
            early: super::Early::Tar,
        }),
        (None, Ok(Some(_))) => {
            ctx.log("the snapshots changed while the newest was dumped: it is dumped again by id");
            None
        }
        _ => None,
    };
    Ok((points, prefetched))
}

/// A tool's arguments, and the directory it runs in (its own without one).
pub type InDir = (Vec<String>, Option<PathBuf>);

/// `args` as owned strings, for [`Cli`].
pub fn args(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// Brings `paths` of the snapshot `point` to `output`: one regular file is streamed
/// (hashed on the way): restic's dump without a listing when it is plainly a file (see
/// `dump.rs`), else beginning while it is listed and verified against its listed size;
/// anything else is restored as a tree into the directory `output` (its files counted
/// and added up against the listing). Without `sniff` (a dump of `point` already began
/// like a tar archive), restic's path is listed without dumping it first.
fn fetch(
    repo: &dyn Repository,
    point: &Point,
    output: Option<&Path>,
    sniff: bool,
    ctx: &Ctx<'_>,
) -> anyhow::Result<Fetched> {
    let base = repo.base();
    let Wanted { paths, check } = &base.wanted;
    let snapshot = repo.snapshot(point);
    let output = output.with_context(|| {
        format!("`output` is required for a repository: where {snapshot} is restored")
    })?;
    let cli = &base.cli;
    if *check {
        let (program, name) = (cli.program, base.name());
        cli.run(&repo.check(), None, ctx)
            .with_context(|| format!("`{program} check` found a problem in {name}"))?;
        ctx.log("the repository check found no error");
    }
    let mut listed = Listed::new(paths);
    let one = |wanted| One {
        repo,
        point,
        wanted,
        output,
    };
    match paths.as_slice() {
        [only] if repo.dumps_trees_as_tar() => {
            if let Some(fetched) = dump_else_list(&one(only), sniff, &mut listed, ctx)? {
                return Ok(fetched);
            }
        }
        [only] => {
            let streamed = stream_while_listing(&one(only), &mut listed, ctx)?;
            if let Some(file) = listed.single_file(paths, &snapshot)? {
                let download =
                    streamed.with_context(|| format!("reading `{}` of {snapshot}", file.path))?;
                return finish_listed(download, &file, ctx);
            }
            // A directory: what was streamed is thrown away (the temporary file goes).
        }
        _ => list_entries(repo, point, &mut listed, &AtomicBool::new(false), ctx)?,
    }
    let bytes = restore_tree(output, &listed, ctx, &mut |dir| {
        let (args, cwd) = repo.restore(point, paths, dir);
        cli.run(&args, cwd.as_deref(), ctx)
            .with_context(|| format!("restoring {snapshot}"))
    })?;
    Ok(Fetched {
        path: output.to_path_buf(),
        bytes,
        sha256: None,
        verified: vec!["file count and size".into()],
    })
}

/// The one wanted path of a snapshot and where it goes.
#[derive(Clone, Copy)]
struct One<'a> {
    repo: &'a dyn Repository,
    point: &'a Point,
    wanted: &'a str,
    output: &'a Path,
}

/// Verifies a download of the listed regular `file` against its listed size.
fn finish_listed(download: Download, file: &Entry, ctx: &Ctx<'_>) -> anyhow::Result<Fetched> {
    let expect = Expect {
        sizes: vec![(file.size, "the snapshot's listing")],
        ..Expect::default()
    };
    download.finish(&expect, ctx)
}

/// One wanted path of a tool that dumps a tree as a tar archive (restic), dumped without
/// a listing (see `dump.rs`). A stream that begins like a tar archive, or a failed dump,
/// is then listed: a file that is a tar is dumped again and checked against its listed
/// size, a missing path fails naming it, else the dump's failure is returned. None for
/// a tree (its entries in `listed`). Without `sniff` (a dump of it already began like a
/// tar archive) it is listed at once.
fn dump_else_list(
    one: &One<'_>,
    sniff: bool,
    listed: &mut Listed,
    ctx: &Ctx<'_>,
) -> anyhow::Result<Option<Fetched>> {
    let (repo, point, wanted, output) = (one.repo, one.point, one.wanted, one.output);
    let cli = &repo.base().cli;
    let snapshot = repo.snapshot(point);
    let reading = || format!("reading `{wanted}` of {snapshot}");
    let args = repo.dump(point, &Entry::file(wanted));
    let dumped = match sniff {
        true => dump::sniffed(cli, &args, &point.url, output, ctx),
        false => Ok(None),
    };
    if let Ok(Some(download)) = dumped {
        let mut fetched = download.finish(&Expect::default(), ctx)?;
        fetched.verified.push(dump::verified_by(cli.program));
        return Ok(Some(fetched));
    }
    let listing = list_entries(repo, point, listed, &AtomicBool::new(false), ctx);
    let dumped = dumped.with_context(reading);
    if let Err(e) = listing {
        return Err(dumped.err().unwrap_or(e));
    }
    let file = listed.single_file(&repo.base().wanted.paths, &snapshot)?;
    dumped?;
    let Some(file) = file else { return Ok(None) };
    let mut download = Download::start(&point.url, output, false, ctx)?;
    cli.read(&repo.dump(point, &file), ctx, &mut |out| {
        download.copy_from(&mut buffered(out), 0, ctx)
    })
    .with_context(reading)?;
    finish_listed(download, &file, ctx).map(Some)
}

/// Lists the entries of the wanted paths of the snapshot `point` into `listed`. Sets
/// `not_a_file` once it is clear that the first wanted path is no regular file of the
/// snapshot (listed as another kind, missing, or the listing failed).
fn list_entries(
    repo: &dyn Repository,
    point: &Point,
    listed: &mut Listed,
    not_a_file: &AtomicBool,
    ctx: &Ctx<'_>,
) -> anyhow::Result<()> {
    let paths = &repo.base().wanted.paths;
    let listing = repo
        .base()
        .cli
        .json_lines(&repo.entries(point, paths), ctx, &mut |item| {
            if let Some(entry) = Entry::of(&item) {
                listed.add(paths, entry);
                if matches!(listed.found.first(), Some(Some(e)) if !e.is_file) {
                    not_a_file.store(true, Ordering::Relaxed);
                }
            }
        })
        .with_context(|| format!("listing {}", repo.snapshot(point)));
    if !matches!(listed.found.first(), Some(Some(e)) if e.is_file) {
        not_a_file.store(true, Ordering::Relaxed);
    }
    listing
}

/// One wanted path, most often a regular file: streamed into a download while the
/// listing (run beside it, a second process) confirms that it is one and gives its size.
/// The stream stops as soon as the listing shows it is not a file. The listing's failure
/// is returned; the stream's (and its download) is for the caller once it knows.
fn stream_while_listing(
    one: &One<'_>,
    listed: &mut Listed,
    ctx: &Ctx<'_>,
) -> anyhow::Result<anyhow::Result<Download>> {
    let (repo, point, wanted, output) = (one.repo, one.point, one.wanted, one.output);
    let file = Entry::file(wanted);
    let mut download = Download::start(&point.url, output, false, ctx)?;
    let not_a_file = AtomicBool::new(false);
    std::thread::scope(|s| {
        let listing = s.spawn(|| list_entries(repo, point, listed, &not_a_file, ctx));
        let streamed = repo
            .base()
            .cli
            .read(&repo.dump(point, &file), ctx, &mut |out| {
                let out = Unless {
                    inner: out,
                    stop: &not_a_file,
                };
                download.copy_from(&mut buffered(out), 0, ctx)
            });
        listing
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the listing thread panicked")))?;
        Ok(streamed.map(|()| download))
    })
}

/// A reader that fails once `stop` is set.
struct Unless<'a, R> {
    inner: R,
    stop: &'a AtomicBool,
}

impl<R: Read> Read for Unless<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("not a regular file of the snapshot"));
        }
        self.inner.read(buf)
    }
}

/// A file or directory of a snapshot, as its tool lists it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub is_file: bool,
    pub size: u64,
}

impl Entry {
    /// The wanted `path`, taken for a regular file (its size unknown).
    fn file(path: &str) -> Self {
        Self {
            path: path.trim_end_matches('/').to_string(),
            is_file: true,
            size: 0,
        }
    }

    /// An entry of `restic ls --json` (a node: type `file`) or `borg list --json-lines`
    /// (an item: type `-`); None for any other line.
    fn of(item: &Value) -> Option<Self> {
        let field = |name: &str| item.get(name).and_then(Value::as_str);
        Some(Self {
            path: field("path")?.to_string(),
            is_file: matches!(field("type")?, "file" | "-"),
            size: item.get("size").and_then(Value::as_u64).unwrap_or(0),
        })
    }
}

/// What a listing of the wanted `paths` says: the entry of each, and the regular files
/// it holds (count, bytes). An empty `wanted` means the whole snapshot.
#[derive(Debug, Default)]
pub struct Listed {
    pub found: Vec<Option<Entry>>,
    pub files: u64,
    pub bytes: u64,
}

impl Listed {
    pub fn new(wanted: &[String]) -> Self {
        Self {
            found: vec![None; wanted.len()],
            ..Self::default()
        }
    }

    /// Takes one listed entry into account; paths compare without a trailing `/`.
    pub fn add(&mut self, wanted: &[String], entry: Entry) {
        let path = entry.path.trim_end_matches('/');
        let mut inside = wanted.is_empty();
        for (want, found) in wanted.iter().zip(self.found.iter_mut()) {
            let want = want.trim_end_matches('/');
            if path == want {
                *found = Some(entry.clone());
                inside = true;
            } else if path.strip_prefix(want).is_some_and(|r| r.starts_with('/')) {
                inside = true;
            }
        }
        if inside && entry.is_file {
            self.files += 1;
            self.bytes += entry.size;
        }
    }

    /// The single regular file to stream, when one path was asked for and it is one;
    /// fails naming a path the snapshot does not hold.
    pub fn single_file(&self, wanted: &[String], snapshot: &str) -> anyhow::Result<Option<Entry>> {
        for (want, found) in wanted.iter().zip(&self.found) {
            if found.is_none() {
                bail!("`{want}` is not in {snapshot}");
            }
        }
        Ok(match self.found.as_slice() {
            [Some(entry)] if entry.is_file => Some(entry.clone()),
            _ => None,
        })
    }
}

/// Restores a tree into `output`, a directory: `restore` fills a new directory beside
/// it, whose regular files must add up to `listed`; then it takes `output`'s place (an
/// earlier one is replaced). A failure leaves no `output`.
pub fn restore_tree(
    output: &Path,
    listed: &Listed,
    ctx: &Ctx<'_>,
    restore: &mut dyn FnMut(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let output = ctx.sources.check("output", output)?;
    let tmp = tempdir_beside(&output, ".restore-drill-tree.")?;
    restore(tmp.path())?;
    let (files, bytes) = tree_size(tmp.path())?;
    if (files, bytes) != (listed.files, listed.bytes) {
        bail!(
            "the restored tree has {files} files ({bytes} bytes), the snapshot lists {} ({} bytes)",
            listed.files,
            listed.bytes
        );
    }
    // An earlier attempt's tree (the only one `ensure_free` lets through) goes aside.
    super::download::ensure_free(&output)?;
    if output.is_dir() {
        let old = tempdir_beside(&output, ".restore-drill-old.")?;
        std::fs::rename(&output, old.path().join("old"))
            .with_context(|| format!("moving the earlier {} aside", output.display()))?;
    }
    let tmp = tmp.keep();
    std::fs::rename(&tmp, &output).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp);
        anyhow::anyhow!("renaming the restored tree to {}: {e}", output.display())
    })?;
    super::download::made_here(&output);
    Ok(bytes)
}

/// Regular files under `dir` and their bytes.
fn tree_size(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                todo.push(entry.path());
            } else if kind.is_file() {
                files += 1;
                bytes += entry.metadata()?.len();
            }
        }
    }
    Ok((files, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, is_file: bool, size: u64) -> Entry {
        Entry {
            path: path.into(),
            is_file,
            size,
        }
    }

    #[test]
    fn a_listing_finds_the_wanted_paths_and_adds_up_what_they_hold() {
        let wanted = vec!["/data/sub/".to_string(), "/data/a.txt".to_string()];
        let mut listed = Listed::new(&wanted);
        for e in [
            entry("/data", false, 0),
            entry("/data/a.txt", true, 6),
            entry("/data/sub", false, 0),
            entry("/data/sub/b.txt", true, 3),
            entry("/data/subway.txt", true, 100),
        ] {
            listed.add(&wanted, e);
        }
        assert_eq!((listed.files, listed.bytes), (2, 9));
        assert!(listed.single_file(&wanted, "x").unwrap().is_none());
        let one = vec!["/data/a.txt".to_string()];
        let mut listed = Listed::new(&one);
        listed.add(&one, entry("/data/a.txt", true, 6));
        assert_eq!(listed.single_file(&one, "x").unwrap().unwrap().size, 6);
        let missing = vec!["/nope".to_string()];
        let err = Listed::new(&missing)
            .single_file(&missing, "snapshot 1234")
            .unwrap_err();
        assert_eq!(err.to_string(), "`/nope` is not in snapshot 1234");
    }
}
