//! `history` and `status` over an artifacts folder, a tree of many drills' folders, or
//! an `s3://` prefix holding such a tree.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::de::DeserializeOwned;

use super::remote::Bucket;
use crate::artifact;
use crate::cli::StatusFormat;
use crate::exit::ExitCode;
use crate::fmt::{fmt_secs, plural};
use crate::report::fleet::{self, Brief};
use crate::report::history;

/// Where the records are: a folder (or a tree of drills' folders), or a bucket's prefix.
pub(super) enum Place {
    Dir(PathBuf),
    Bucket(Box<Bucket>),
}

/// The records of a place: paths, or keys of its bucket.
struct Listing {
    names: Vec<PathBuf>,
    tree: bool,
}

impl Place {
    /// The place `arg` names (exit 2, saying why, when it is a bad `s3://` url).
    pub fn of(arg: &Path) -> Result<Place, ExitCode> {
        match Bucket::of(arg) {
            None => Ok(Place::Dir(arg.to_path_buf())),
            Some(Ok(bucket)) => Ok(Place::Bucket(Box::new(bucket))),
            Some(Err(e)) => {
                eprintln!("error: {}: {e}", arg.display());
                Err(ExitCode::Usage)
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Place::Dir(dir) => dir.display().to_string(),
            Place::Bucket(bucket) => bucket.shown(),
        }
    }

    /// The records (exit 2 when the folder or the prefix cannot be read).
    fn list(&self) -> Result<Listing, ExitCode> {
        let listed = match self {
            Place::Dir(dir) => artifact::list_tree(dir)
                .map(|names| Listing {
                    tree: artifact::is_tree(dir, &names),
                    names,
                })
                .map_err(|e| e.to_string()),
            Place::Bucket(bucket) => bucket.records("").map(|keys| Listing {
                tree: bucket.is_tree(&keys),
                names: keys.into_iter().map(PathBuf::from).collect(),
            }),
        };
        listed.map_err(|e| {
            eprintln!("error: cannot read {}: {e}", self.name());
            ExitCode::Usage
        })
    }

    /// Every record listed, as `T`; one that cannot be read is a warning naming it.
    fn read<T: DeserializeOwned + Send + Judged>(&self, listing: &Listing) -> Vec<T> {
        self.read_named(listing)
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// [`Place::read`], each with its path (or key); a record that says `running` of a
    /// run that died is marked so.
    fn read_named<T: DeserializeOwned + Send + Judged>(
        &self,
        listing: &Listing,
    ) -> Vec<(PathBuf, T)> {
        let named = |mut t: T, p: &Path| {
            let dir = match self {
                Place::Dir(_) => p.parent(),
                Place::Bucket(_) => None,
            };
            t.judge(dir);
            (p.to_path_buf(), t)
        };
        match self {
            Place::Dir(_) => read_all(&listing.names, |path| {
                let text = crate::limits::read_regular_text(path, crate::limits::MAX_RECORD_BYTES)
                    .map(String::into_bytes);
                parse(&path.display().to_string(), text.map_err(Into::into)).map(|t| named(t, path))
            }),
            Place::Bucket(bucket) => read_all(&listing.names, |key| {
                let text = key.to_string_lossy();
                parse(&bucket.url(&text), bucket.get(&text)).map(|t| named(t, key))
            }),
        }
    }

    /// The drills' records in brief. Drills of one name kept in different folders are
    /// different drills (two teams' `db`): each is then named with its folder too, so
    /// that one's pass never stands for the other.
    fn briefs(&self, listing: &Listing) -> Vec<Brief> {
        let named: Vec<(PathBuf, Brief)> = self.read_named(listing);
        let folder = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut folders: HashMap<&str, HashSet<PathBuf>> = HashMap::new();
        for (path, brief) in &named {
            folders
                .entry(&brief.drill.name)
                .or_default()
                .insert(folder(path));
        }
        let shared: HashSet<String> = folders
            .into_iter()
            .filter(|(_, f)| f.len() > 1)
            .map(|(name, _)| name.to_string())
            .collect();
        let root = match self {
            Place::Dir(dir) => dir.clone(),
            Place::Bucket(_) => PathBuf::new(),
        };
        named
            .into_iter()
            .map(|(path, mut brief)| {
                if shared.contains(&brief.drill.name) {
                    let folder = folder(&path);
                    let shown = folder.strip_prefix(&root).unwrap_or(&folder);
                    brief.drill.name = format!("{} ({})", brief.drill.name, shown.display());
                }
                brief
            })
            .collect()
    }
}

/// A record that may say `running` of a run that died.
trait Judged {
    /// Marks it died when it says `running` but its run is over (see `proc::lockfile`);
    /// `dir`: the folder it was read from (None: a bucket's).
    fn judge(&mut self, dir: Option<&Path>);
}

/// Why the run of a record that says `status` is over, or None (see [`Judged`]).
pub(super) fn died(
    status: artifact::RunStatus,
    dir: Option<&Path>,
    who: [&str; 4],
) -> Option<String> {
    let [drill, run_id, host, started_at] = who;
    (status == artifact::RunStatus::Running)
        .then(|| crate::proc::lockfile::died(dir, drill, run_id, host, started_at))
        .flatten()
}

impl Judged for Brief {
    fn judge(&mut self, dir: Option<&Path>) {
        let who = [
            &*self.drill.name,
            &self.run_id,
            &self.host,
            &self.started_at,
        ];
        self.died = died(self.status, dir, who);
    }
}

impl Judged for history::Line {
    fn judge(&mut self, dir: Option<&Path>) {
        let who = [&*self.drill, &self.run_id, &self.host, &self.started_at];
        self.died = died(self.status, dir, who);
    }
}

/// A record's bytes as `T`, or why not, naming `what`.
fn parse<T: DeserializeOwned>(what: &str, bytes: anyhow::Result<Vec<u8>>) -> anyhow::Result<T> {
    let bytes = bytes.with_context(|| format!("cannot read {what}"))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{what} is not a restore-drill record"))
}

/// Reads every record with `read`, on a few threads; one that cannot be read is a
/// warning naming it.
fn read_all<T: Send>(
    paths: &[PathBuf],
    read: impl Fn(&Path) -> anyhow::Result<T> + Sync,
) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    let chunk = paths.len().div_ceil(threads).max(1);
    let read = &read;
    std::thread::scope(|s| {
        let workers: Vec<_> = paths
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|p| read(p)).collect::<Vec<_>>()))
            .collect();
        let mut found = Vec::new();
        for worker in workers {
            for result in worker.join().unwrap_or_default() {
                match result {
                    Ok(t) => found.push(t),
                    Err(e) => eprintln!("warning: {e:#}"),
                }
            }
        }
        found
    })
}

/// `history`: a folder's runs, one line each; a tree's drills, one line each.
pub(super) fn history(place: &Place) -> ExitCode {
    let listing = match place.list() {
        Ok(l) => l,
        Err(code) => return code,
    };
    if listing.names.is_empty() {
        eprintln!("no drills recorded in {}", place.name());
        return ExitCode::Passed;
    }
    if listing.tree {
        let rows = fleet::rows(place.briefs(&listing));
        print!("{}", fleet::table(&rows, now()));
    } else {
        let lines: Vec<history::Line> = place.read(&listing);
        print!("{}", history::table(&lines));
    }
    ExitCode::Passed
}

/// `35d` for whole days, else as `fmt_secs` says it.
fn age_text(secs: f64) -> String {
    match secs >= 86_400.0 && secs % 86_400.0 == 0.0 {
        true => format!("{}d", secs / 86_400.0),
        false => fmt_secs(secs),
    }
}

fn now() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64 / 1000.0
}

/// `status`: one row per drill; exit 1 when a drill (or `--drill`) has not passed within
/// `max_age`. `--format prom` prints when each last passed and always exits 0.
pub(super) fn status(
    place: &Place,
    max_age: std::time::Duration,
    drill: Option<&str>,
    format: StatusFormat,
) -> ExitCode {
    // A folder that is not there is a mistake in the command (exit 2), not a drill that
    // has not passed.
    let listing = match place.list() {
        Ok(l) => l,
        Err(code) => return code,
    };
    let mut briefs = place.briefs(&listing);
    briefs.retain(|b| {
        drill.is_none_or(|d| b.drill.name == d || b.drill.name.starts_with(&format!("{d} (")))
    });
    let rows = fleet::rows(briefs);
    let (now, max_age) = (now(), max_age.as_secs_f64());
    match format {
        StatusFormat::Prom => {
            let mut last = fleet::last_successes(&rows);
            if let Some(d) = drill.filter(|_| rows.is_empty()) {
                last.entry(d.to_string()).or_default();
            }
            print!("{}", history::last_success_metric(&last));
            print!("{}", fleet::died_metric(&rows));
            return ExitCode::Passed;
        }
        StatusFormat::Json => print!("{}", fleet::to_json(&rows, now, max_age)),
        StatusFormat::Text if !rows.is_empty() => print!("{}", fleet::table(&rows, now)),
        StatusFormat::Text => {}
    }
    let text = format == StatusFormat::Text;
    let what = |name: &str| format!("drill `{name}`");
    let mut bad = 0;
    for r in &rows {
        let line = match r.last_pass {
            Some(t) if now - t <= max_age => continue,
            Some(t) => format!(
                "stale: the last passing run of {} was {} ago, more than {}",
                what(&r.drill),
                fmt_secs(now - t),
                age_text(max_age)
            ),
            None => format!("missing: no passing run of {}", what(&r.drill)),
        };
        bad += 1;
        if text {
            println!("{line}");
        }
    }
    if rows.is_empty() {
        let what = drill.map_or("any drill".to_string(), what);
        if text {
            println!("missing: no passing run of {what} in {}", place.name());
        }
        return ExitCode::Failed;
    }
    if bad > 0 {
        return ExitCode::Failed;
    }
    if text {
        let drills = plural(rows.len(), "drill");
        println!("ok: {drills} passed within {}", age_text(max_age));
    }
    ExitCode::Passed
}
