//! The one rule for every path a step writes or removes (restore targets, backup
//! outputs, manifests, downloads, teardown removals): it is resolved as the kernel
//! would resolve it (symlinks and `..` through every existing ancestor, what does not
//! exist yet lexically), compared by device and inode as well as by name, **before**
//! anything is created, and refused when it is, contains or lies inside a *source* of
//! the playbook: what the drill reads from and must never harm.
//!
//! A leaf module: it knows paths and the playbook's fields, nothing of the runner.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::playbook::{EngineSpec, Step, StepKind, field_value, kind_spec};

mod globbed;
mod resolve;

use resolve::lexical;
pub use resolve::resolve;

/// What a drill must never write to nor remove.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The engines, which say which fields of their steps name sources.
    engines: Vec<&'static EngineSpec>,
    list: Vec<Source>,
    seen: HashSet<PathBuf>,
    /// Paths this run wrote (restore targets): reading them later makes no source.
    made: Vec<PathBuf>,
    /// Areas of buckets read (bucket, key prefix: empty or ending in `/`, why).
    s3: Vec<(String, String, String)>,
    /// The patterns of local `locate` globs: what they would match is a backup too.
    globs: Vec<globbed::Globbed>,
}

#[derive(Debug, Clone)]
struct Source {
    path: PathBuf,
    /// Why it is a source, e.g. "`source` of step `backup`".
    why: String,
}

/// Where a path leads, and the device/inode of it and of each existing ancestor.
struct Place {
    resolved: PathBuf,
    /// (dev, ino) of the path itself, when it exists.
    id: Option<(u64, u64)>,
    /// (dev, ino) of the path and every existing ancestor (bind mounts, hard links).
    chain: Vec<(u64, u64)>,
}

impl Place {
    fn of(path: &Path) -> io::Result<Self> {
        Ok(Self::at(resolve(path)?))
    }

    /// A source that cannot be resolved is still compared by its lexical path.
    fn of_source(path: &Path) -> Self {
        Self::of(path).unwrap_or_else(|_| Self::at(lexical(path)))
    }

    fn at(resolved: PathBuf) -> Self {
        let id = fs::metadata(&resolved).ok().map(|m| (m.dev(), m.ino()));
        let chain = resolved
            .ancestors()
            .filter_map(|a| fs::metadata(a).ok())
            .map(|m| (m.dev(), m.ino()))
            .collect();
        Self {
            resolved,
            id,
            chain,
        }
    }
}

impl Sources {
    /// None yet, for a playbook whose steps run with `engines`.
    pub fn new(engines: &[&'static EngineSpec]) -> Self {
        Self {
            engines: engines.to_vec(),
            list: Vec::new(),
            seen: HashSet::new(),
            made: Vec::new(),
            s3: Vec::new(),
            globs: Vec::new(),
        }
    }

    /// Adds a source; an empty path (a field rendered empty) is no path and is skipped,
    /// and so is one already listed or leading inside the last one listed (a glob's
    /// matches come after their folder: what is inside a source is protected with it).
    /// Compared where they lead, never by their text: `data/../app.db` is not inside
    /// `data`.
    pub fn add(&mut self, path: impl Into<PathBuf>, why: impl Into<String>) {
        let path = path.into();
        let inside_last = self.list.last().is_some_and(|l| {
            let last = Place::of_source(&l.path).resolved;
            Place::of_source(&path).resolved.starts_with(last)
        });
        if !path.as_os_str().is_empty() && !inside_last && self.seen.insert(path.clone()) {
            self.list.push(Source {
                path,
                why: why.into(),
            });
        }
    }

    /// The sources a rendered step names, added before it runs: the fields its engine
    /// says it reads (a backup's `source` (sqlite) and `paths` (files, each glob
    /// expanded), a restore's `from`), a pgBackRest stanza's repositories, the `database`
    /// of a read-only `sql` step whose engine reads a file (unless this run restored it),
    /// the local repository of a `locate` step, the `paths` its snapshot was taken of (on
    /// this host, the live data) and every file its local `glob` matches.
    pub fn add_step(&mut self, step: &Step) {
        let of = |field: &str| format!("`{field}` of step `{}`", step.id);
        if let Some(repo) = step.local_repository() {
            let field = if step.restic.is_some() {
                "restic"
            } else {
                "borg"
            };
            self.add(repo, of(&format!("{field}.repository")));
        }
        // What a snapshot was taken of is where the live data is, on this host most often.
        if step.kind == StepKind::Locate && (step.restic.is_some() || step.borg.is_some()) {
            for path in step.paths.iter().flatten() {
                // borg names its paths without the leading `/`.
                let live = Path::new("/").join(path);
                self.add(live, of("paths"));
            }
        }
        let s3 = step.s3_source().filter(|_| step.kind == StepKind::Locate);
        if let Some((bucket, prefix, field)) = s3 {
            let area = (bucket, prefix, of(field));
            if !self.s3.contains(&area) {
                self.s3.push(area);
            }
        }
        // Every recovery point a local `glob` matches, not only the one it picks.
        let local_glob = step.glob.as_deref().filter(|g| !g.starts_with("s3://"));
        if let Some(glob) = local_glob.filter(|_| step.kind == StepKind::Locate) {
            for path in expand(glob) {
                self.add(path, of("glob"));
            }
            self.globs.extend(globbed::Globbed::new(glob, of("glob")));
        }
        let Some(engine) = kind_spec(&self.engines, step) else {
            return;
        };
        match step.kind {
            StepKind::Backup | StepKind::Restore => {
                for field in engine.reads {
                    for path in field_paths(step, field) {
                        self.add(path, of(field));
                    }
                }
                // A pgBackRest stanza's repositories, named in its configuration file.
                for (path, option) in step.pgbackrest.iter().flat_map(|p| p.repo_paths()) {
                    let why = format!("the pgBackRest repository of step `{}`: {option}", step.id);
                    self.add(path, why);
                }
            }
            StepKind::Sql if step.execute.is_none() => {
                for field in engine.reads {
                    for path in field_paths(step, field) {
                        let restored = resolve(&path).is_ok_and(|r| self.made.contains(&r));
                        if !restored {
                            self.add(path, of(field));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// What a step that ran adds: the backup a `locate` found is a source; what a restore
    /// made (its target) is the drill's own (a later read-only check of it makes no source).
    pub fn add_outcome(&mut self, step: &Step, passed: bool, outputs: &Map<String, Value>) {
        match step.kind {
            StepKind::Locate if passed => {
                // The local copy, and the original when it is a local file too.
                let url = outputs.get("url").and_then(Value::as_str);
                let local = url.filter(|u| !u.contains("://"));
                let path = outputs.get("path").and_then(Value::as_str);
                for path in [path, local].into_iter().flatten() {
                    self.add(path, format!("the backup step `{}` located", step.id));
                }
                for path in live_paths_of_snapshot(outputs) {
                    let why = format!("what the snapshot step `{}` located was taken of", step.id);
                    self.add(path, why);
                }
            }
            StepKind::Restore if passed => {
                let made = kind_spec(&self.engines, step).map_or(&[][..], |k| k.makes);
                for field in made {
                    for target in field_paths(step, field) {
                        if let Ok(r) = resolve(&target) {
                            self.made.push(r);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Checks a path a step is about to write or remove (`field` names it in the error)
    /// and returns where it really leads, for the step to use. Refused when it is,
    /// contains or lies inside a source, when it cannot be resolved, or when it is an
    /// existing file with other hard links (one of them may be a source).
    pub fn check(&self, field: &str, path: &Path) -> anyhow::Result<PathBuf> {
        self.check_new(field, path, false)
    }

    /// Checks the `output` of the `locate` step `step_id` as [`Sources::check`] does, with
    /// what the snapshot it brings was taken of (`host`, `paths`: on this host, the live
    /// data), known only once the snapshot is chosen, before anything is brought there.
    pub fn check_beside_snapshot(
        &self,
        output: &Path,
        step_id: &str,
        host: &str,
        paths: &[String],
    ) -> anyhow::Result<PathBuf> {
        let mut with = self.clone();
        for live in live_paths(host, paths.iter().map(String::as_str)) {
            let why = format!("what the snapshot step `{step_id}` locates was taken of");
            with.add(live, why);
        }
        with.check("output", output)
    }

    /// Checks the `database` a writable `sql` step (one with `execute`) opens, as any
    /// path a step writes (see [`Sources::check`]), and returns where it leads (None for
    /// a step that writes no file). A database that does not exist yet harms nothing
    /// when created new, even where a backup will read it later (a demo's source).
    pub fn check_writable_sql(&self, step: &Step) -> anyhow::Result<Option<PathBuf>> {
        let engine = kind_spec(&self.engines, step).filter(|_| step.execute.is_some());
        let Some(engine) = engine.filter(|_| step.kind == StepKind::Sql) else {
            return Ok(None);
        };
        let mut checked = None;
        for field in engine.reads {
            for path in field_paths(step, field) {
                checked = Some(self.check_new(field, &path, true)?);
            }
        }
        Ok(checked)
    }

    /// [`Sources::check`]; with `may_create`, a path that is a source not there yet
    /// passes (it is created new: nothing was there to harm).
    fn check_new(&self, field: &str, path: &Path, may_create: bool) -> anyhow::Result<PathBuf> {
        let given = path.display();
        let target = Place::of(path).map_err(|e| {
            anyhow::anyhow!("refusing to write {field} {given}: cannot tell where it leads ({e})")
        })?;
        let leads = if target.resolved == path {
            String::new()
        } else {
            format!(" (it leads to {})", target.resolved.display())
        };
        for source in &self.list {
            let src = Place::of_source(&source.path);
            let same = |a: Option<(u64, u64)>, chain: &[(u64, u64)]| {
                a.is_some_and(|id| chain.contains(&id))
            };
            let relation = if target.resolved == src.resolved
                || (target.id.is_some() && target.id == src.id)
            {
                if may_create && target.id.is_none() {
                    continue;
                }
                "is"
            } else if target.resolved.starts_with(&src.resolved) || same(src.id, &target.chain) {
                "lies inside"
            } else if src.resolved.starts_with(&target.resolved) || same(target.id, &src.chain) {
                "contains"
            } else {
                continue;
            };
            anyhow::bail!(
                "refusing to write {field} {given}{leads}: it {relation} {}, a source of this playbook ({}); a drill writes only where it cannot harm what it tests",
                source.path.display(),
                source.why
            );
        }
        if let Some(glob) = self.globs.iter().find(|g| g.matches(&target.resolved)) {
            anyhow::bail!(
                "refusing to write {field} {given}{leads}: it is a backup {} would find, a source of this playbook; a drill writes only where it cannot harm what it tests",
                glob.why
            );
        }
        if let Ok(meta) = fs::metadata(&target.resolved)
            && meta.is_file()
            && meta.nlink() > 1
        {
            anyhow::bail!(
                "refusing to write {field} {given}{leads}: the file has {} hard links, and another of its names may be a source",
                meta.nlink()
            );
        }
        Ok(target.resolved)
    }

    /// Checks the area of a bucket a step is about to write (`prefix` empty or ending
    /// in `/`): refused when it is, contains or lies inside one a `locate` read from.
    /// Compared by bucket name and key, whatever the store.
    pub fn check_s3(&self, field: &str, bucket: &str, prefix: &str) -> anyhow::Result<()> {
        for (b, p, why) in self.s3.iter().filter(|(b, ..)| b == bucket) {
            let relation = match () {
                _ if prefix == p => "is",
                _ if prefix.starts_with(p.as_str()) => "lies inside",
                _ if p.starts_with(prefix) => "contains",
                _ => continue,
            };
            anyhow::bail!(
                "refusing to write {field} s3://{bucket}/{prefix}: it {relation} s3://{b}/{p}, a source of this playbook ({why}); a drill writes only where it cannot harm what it tests"
            );
        }
        Ok(())
    }

    /// The same sources and more, for one step's own check (e.g. the folders a files
    /// backup's manifest says it was taken from).
    pub fn with(&self, more: impl IntoIterator<Item = (PathBuf, String)>) -> Self {
        let mut all = self.clone();
        for (path, why) in more {
            all.add(path, why);
        }
        all
    }
}

/// What a located snapshot was taken of (its `snapshot_paths`), when it was taken on this
/// host (its `snapshot_host`): the live data. `/` is left out: it holds the work
/// directory too, and no drill could write anywhere.
fn live_paths_of_snapshot(outputs: &Map<String, Value>) -> Vec<PathBuf> {
    let host = outputs.get("snapshot_host").and_then(Value::as_str);
    let paths = outputs.get("snapshot_paths").and_then(Value::as_array);
    let paths = paths.into_iter().flatten().filter_map(Value::as_str);
    live_paths(host.unwrap_or_default(), paths)
}

/// Of the `paths` a snapshot taken on `host` was taken of, those that are live data here
/// (see [`live_paths_of_snapshot`]).
fn live_paths<'a>(host: &str, paths: impl IntoIterator<Item = &'a str>) -> Vec<PathBuf> {
    if *host != *gethostname::gethostname() {
        return Vec::new();
    }
    let paths = paths.into_iter().map(PathBuf::from);
    paths
        .filter(|p| p.is_absolute() && p != Path::new("/"))
        .collect()
}

/// The file at `path` itself (a link, not what it leads to): its device and inode, which
/// tell it from anything later put in its place.
pub fn id_of(path: &Path) -> Option<(u64, u64)> {
    fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The paths a field of the step names: a text field is one path, each item of a list
/// field a glob, expanded. An empty value (a field rendered empty) names none.
fn field_paths(step: &Step, field: &str) -> Vec<PathBuf> {
    match field_value(step, field) {
        Some(Value::String(path)) => vec![PathBuf::from(path)],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .flat_map(expand)
            .collect(),
        _ => Vec::new(),
    }
}

/// A backup pattern's matches; a pattern without glob characters is a path even when
/// nothing is there yet.
fn expand(pattern: &str) -> Vec<PathBuf> {
    if !pattern.contains(['*', '?', '[']) {
        return vec![PathBuf::from(pattern)];
    }
    crate::globs::trees(pattern)
        .map(|paths| paths.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// A folder this run created, and which one it was (device and inode): what teardown may
/// remove, only while that same folder is still at that same resolved path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub path: PathBuf,
    id: (u64, u64),
}

impl Created {
    /// Whether it is still there and still the folder this run made, reached with no
    /// symlink on the way (Ok(false): gone). An error, naming what it leads to now,
    /// when a folder on its way, or the folder itself, was replaced meanwhile.
    fn still_ours(&self) -> anyhow::Result<bool> {
        let path = self.path.display();
        let meta = match fs::symlink_metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => anyhow::bail!("cannot look at {path}: {e}"),
        };
        let elsewhere = leads_elsewhere(&self.path)
            .map_err(|e| anyhow::anyhow!("cannot tell where {path} leads: {e}"))?;
        if elsewhere.is_some() || (meta.dev(), meta.ino()) != self.id {
            let leads = elsewhere.unwrap_or_else(|| self.path.clone());
            anyhow::bail!(
                "{path} is no longer the folder this run created (it leads to {}): kept, with what is in it",
                leads.display()
            );
        }
        Ok(true)
    }
}

/// Where `path`, a path [`resolve`]d when it was checked, leads now when that is not
/// itself: a folder on its way (or itself) was swapped for a symlink since.
pub fn leads_elsewhere(path: &Path) -> io::Result<Option<PathBuf>> {
    let leads = fs::canonicalize(path)?;
    Ok((leads != path).then_some(leads))
}

/// Creates `dir` (a resolved path, see [`resolve`]) and its missing parents, and returns
/// the folders it created, outermost first: what this run may remove, and nothing else.
pub fn create_dirs(dir: &Path) -> io::Result<Vec<Created>> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|a| fs::symlink_metadata(a).is_err())
        .collect();
    let mut created = Vec::new();
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {
                let meta = fs::symlink_metadata(d)?;
                created.push(Created {
                    path: d.to_path_buf(),
                    id: (meta.dev(), meta.ino()),
                });
            }
            // Made by someone else meanwhile: not ours to remove.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot create {}: {e}", d.display()),
                ));
            }
        }
    }
    Ok(created)
}

/// Creates the file `path` for writing, new: whatever is at `path` already (a stale
/// partial file, or a symlink planted there, pointing anywhere) is removed first, as an
/// entry (a symlink itself, never what it points to), and the file is then created with
/// `O_EXCL | O_NOFOLLOW`, so that no symlink is followed even if one appears meanwhile;
/// refused when its folder no longer resolves to itself. For the partial files a step
/// writes and renames, and the outputs it replaces.
pub fn create_file(path: &Path) -> io::Result<fs::File> {
    same_folder(path, "create")?;
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "cannot create {}: a directory is in the way",
                    path.display()
                ),
            ));
        }
        Ok(_) => fs::remove_file(path)?,
        Err(_) => {}
    }
    crate::proc::secret::create_new(path, 0o666)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display())))
}

/// Fails when the folder of `path`, a path [`resolve`]d when it was checked, no longer
/// resolves to itself: a folder on its way was swapped for a symlink since, and nothing
/// is to be created nor removed through it (`doing` says which, for the error).
pub fn same_folder(path: &Path, doing: &str) -> io::Result<()> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    match leads_elsewhere(parent)? {
        Some(leads) => Err(io::Error::other(format!(
            "cannot {doing} {}: its folder now leads to {}",
            path.display(),
            leads.display()
        ))),
        None => Ok(()),
    }
}

/// Removes what a failed step left at `output` (a file or a tree; resolved when it was
/// checked), never through a folder swapped for a symlink since.
pub fn remove_failed_output(output: &Path) {
    if same_folder(output, "remove").is_err() {
        return;
    }
    let _ = if output.is_dir() {
        fs::remove_dir_all(output)
    } else {
        fs::remove_file(output)
    };
}

/// Removes what [`create_dirs`] created: `created`'s innermost folder with everything
/// in it (the drill filled it), then each parent it created while it is empty; each only
/// while it is still the folder created, by the same path (see [`Created`]), so that
/// nothing is removed through a folder swapped for a symlink meanwhile.
pub fn remove_created(created: &[Created]) -> anyhow::Result<()> {
    let Some((inner, parents)) = created.split_last() else {
        return Ok(());
    };
    if inner.still_ours()? {
        fs::remove_dir_all(&inner.path)
            .map_err(|e| anyhow::anyhow!("cannot remove {}: {e}", inner.path.display()))?;
    }
    for parent in parents.iter().rev() {
        // Not empty: something else was put there, which is not the drill's to remove.
        if parent.still_ours()? {
            let _ = fs::remove_dir(&parent.path);
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
