//! A restic repository's snapshots as recovery points (`restic = { repository, password }`).
//!
//! Every call reads and never writes: `--no-lock` (no lock file in the repository) and
//! `--no-cache` (nothing cached from an earlier run stands in for the repository's own
//! index and trees: a drill reads what a restore on a new machine would read).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::Value;

use super::cli::{Cli, Via};
use super::repo::{self, Base, Entry, InDir, Repository, Wanted};
use super::{Point, Source, TakenOf};
use crate::playbook::{self, Step};

/// The share of the data packs `check = true` reads back (`--read-data-subset`).
const CHECK_SUBSET: &str = "10%";

/// What restic says when the store refuses an S3 key pair (`Access Denied`: a HEAD,
/// whose answer has no body; else the store's message), and the hint then added.
const REFUSED_KEYS: [&str; 2] = [
    "Access Denied",
    "The request signature we calculated does not match",
];
const CHECK_KEYS: &str =
    "(the S3 store refused the key pair: check `s3.access_key` and `s3.secret_key`)";

/// Flags of every call.
const READ_ONLY: [&str; 2] = ["--no-lock", "--no-cache"];

pub struct Restic {
    base: Base,
    /// `-o` options of every call (`s3.bucket-lookup` from `s3.path_style`).
    options: Vec<String>,
}

/// The source of a step with `restic = { ... }`, None without. An `s3` table beside it
/// must fit the repository (see [`playbook::S3Settings::restic_misfits`]).
pub fn open(step: &Step) -> anyhow::Result<Option<Box<dyn Source>>> {
    let Some(settings) = &step.restic else {
        return Ok(None);
    };
    let s3 = step.s3.as_ref();
    let misfits = s3.map(|s3| s3.restic_misfits(&settings.repository, false));
    if let Some(misfits) = misfits.filter(|m| !m.is_empty()) {
        let whys: Vec<String> = misfits.into_iter().map(|(_, why)| why).collect();
        anyhow::bail!(whys.join("; "));
    }
    Ok(Some(Box::new(Restic::new(settings, s3, step))))
}

impl Restic {
    pub fn new(
        settings: &playbook::Restic,
        s3: Option<&playbook::S3Settings>,
        step: &Step,
    ) -> Self {
        // The repository goes in the environment too: a rest: url may hold a password,
        // which argv would show to every user of the machine.
        let mut env = vec![("RESTIC_REPOSITORY", settings.repository.clone())];
        let (mut credentials, mut unset, mut options) = (Vec::new(), Vec::new(), Vec::new());
        let mut hints = Vec::new();
        if let Some(s3) = s3 {
            if let Some(region) = &s3.region {
                env.push(("AWS_DEFAULT_REGION", region.clone()));
            }
            if let (Some(key), Some(secret)) = (&s3.access_key, &s3.secret_key) {
                credentials.push(("AWS_ACCESS_KEY_ID", key.clone()));
                credentials.push(("AWS_SECRET_ACCESS_KEY", secret.clone()));
                // A token of the shell's own keys would be sent with these and refused.
                unset.push("AWS_SESSION_TOKEN");
                hints.extend(REFUSED_KEYS.map(|said| (said, CHECK_KEYS)));
            }
            if let Some(path_style) = s3.path_style {
                let lookup = if path_style { "path" } else { "dns" };
                options.extend(["-o".to_string(), format!("s3.bucket-lookup={lookup}")]);
            }
        }
        let base = Base {
            repository: settings.repository.clone(),
            cli: Cli {
                program: "restic",
                env,
                remove: &[
                    "RESTIC_PASSWORD",
                    "RESTIC_PASSWORD_COMMAND",
                    "RESTIC_REPOSITORY_FILE",
                ],
                password: settings
                    .password
                    .clone()
                    .map(|p| (Via::File("RESTIC_PASSWORD_FILE"), p)),
                credentials,
                unset,
                hints,
                // restic keeps nothing of a repository on the host but its cache, which
                // `--no-cache` leaves alone.
                private_state: None,
            },
            wanted: Wanted::of(step),
        };
        Self { base, options }
    }

    /// `args`, the flags that keep every call read-only, and the options.
    fn args(&self, args: &[&str]) -> Vec<String> {
        let mut all = repo::args(args);
        all.extend(repo::args(&READ_ONLY));
        all.extend(self.options.iter().cloned());
        all
    }

    fn id<'p>(&self, point: &'p Point) -> &'p str {
        point.id.as_deref().unwrap_or_default()
    }
}

/// A local repository's `snapshots/` directory, whose file names are the snapshot ids;
/// None for a remote one (`sftp:`, `s3:`, `rest:`, ...: a scheme before any `/`).
fn snapshots_dir(repository: &str) -> Option<PathBuf> {
    let path = repository.strip_prefix("local:").unwrap_or(repository);
    let first = path.split('/').next().unwrap_or_default();
    if path.is_empty() || first.contains(':') {
        return None;
    }
    let dir = Path::new(path).join("snapshots");
    dir.is_dir().then_some(dir)
}

/// The recovery points of `restic snapshots --json`.
fn points(repository: &str, listing: &Value) -> anyhow::Result<Vec<Point>> {
    let Some(snapshots) = listing.as_array() else {
        anyhow::bail!("restic snapshots printed no list");
    };
    let mut points = Vec::new();
    for snapshot in snapshots {
        let field = |name: &str| snapshot.get(name).and_then(Value::as_str);
        let (Some(id), Some(time)) = (field("id"), field("time")) else {
            continue;
        };
        let short = field("short_id").unwrap_or(&id[..id.len().min(8)]);
        let paths = snapshot.get("paths").and_then(Value::as_array);
        let taken_of = field("hostname").zip(paths).map(|(host, paths)| TakenOf {
            host: host.to_string(),
            paths: paths
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        });
        points.push(Point {
            url: format!("restic:{repository}#{short}"),
            time: time
                .parse()
                .with_context(|| format!("restic snapshot {short} has the time `{time}`"))?,
            bytes: 0,
            id: Some(id.to_string()),
            taken_of,
        });
    }
    Ok(points)
}

impl Repository for Restic {
    fn base(&self) -> &Base {
        &self.base
    }

    fn snapshots(&self) -> Vec<String> {
        self.args(&["snapshots", "--json"])
    }

    fn points(&self, listing: &Value) -> anyhow::Result<Vec<Point>> {
        points(&self.base.repository, listing)
    }

    fn snapshot(&self, point: &Point) -> String {
        let id = self.id(point);
        format!(
            "snapshot {} of {}",
            &id[..id.len().min(8)],
            self.base.name()
        )
    }

    fn check(&self) -> Vec<String> {
        self.args(&["check", "--read-data-subset", CHECK_SUBSET])
    }

    fn entries(&self, point: &Point, paths: &[String]) -> Vec<String> {
        let mut args = self.args(&["ls", "--json", "--recursive", self.id(point)]);
        args.extend(paths.iter().cloned());
        args
    }

    fn dump(&self, point: &Point, file: &Entry) -> Vec<String> {
        self.args(&["dump", self.id(point), &file.path])
    }

    fn dumps_trees_as_tar(&self) -> bool {
        true
    }

    fn dump_newest(&self, path: &str) -> Option<(Vec<String>, PathBuf)> {
        let dir = snapshots_dir(&self.base.repository)?;
        Some((self.args(&["dump", "latest", path]), dir))
    }

    fn restore(&self, point: &Point, paths: &[String], dir: &Path) -> InDir {
        let target = dir.to_string_lossy();
        let mut args = self.args(&["restore", self.id(point), "--target", &target]);
        for path in paths {
            args.extend(["--include".to_string(), path.clone()]);
        }
        (args, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_become_points_with_their_id_and_time() {
        let listing = serde_json::json!([
            {"time": "2026-11-28T03:00:00.123456789Z", "id": "72953b61f7845191882dd8e4", "short_id": "72953b61"},
            {"time": "2026-11-28T04:00:00+01:00", "id": "3afd7e754a50f145"},
            {"paths": ["/no/id"]}
        ]);
        let points = points("/srv/restic", &listing).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].url, "restic:/srv/restic#72953b61");
        assert_eq!(points[0].id.as_deref(), Some("72953b61f7845191882dd8e4"));
        assert_eq!(points[1].url, "restic:/srv/restic#3afd7e75");
        assert_eq!(points[1].time.to_string(), "2026-11-28T03:00:00Z");
        let bad = serde_json::json!([{"time": "yesterday", "id": "abc"}]);
        assert!(super::points("r", &bad).is_err());
    }

    #[test]
    fn only_a_local_repository_has_its_snapshot_files_read() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().display().to_string();
        assert_eq!(snapshots_dir(&repo), None, "no snapshots/ yet");
        std::fs::create_dir(dir.path().join("snapshots")).unwrap();
        let want = Some(dir.path().join("snapshots"));
        assert_eq!(snapshots_dir(&repo), want);
        assert_eq!(snapshots_dir(&format!("local:{repo}")), want);
        for remote in [
            "sftp:host:/srv/restic",
            "s3:s3.amazonaws.com/bucket",
            "rest:http://h/",
        ] {
            assert_eq!(snapshots_dir(remote), None, "{remote}");
        }
    }
}
