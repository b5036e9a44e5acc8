//! A borg repository's archives as recovery points (`borg = { repository, passphrase }`).
//!
//! Every call reads and never writes: `--bypass-lock` (no lock in the repository), and the
//! check is `borg check --repository-only` (the segments' checksums, every byte read):
//! borg's archives check reserves nonces, which writes the repository's `nonce` file.
//! The archives' own chunks are verified by borg as `extract` reads them.
//!
//! What the chosen archive was taken of (its host, and the paths `borg create` was given)
//! is read for it alone, by a second `borg list` (see [`Borg::origin`]): `borg info`
//! would say it too, but builds borg's whole cache of the repository to count sizes.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::Value;

use super::cli::{Cli, PrivateState, Via};
use super::repo::{self, Base, Entry, InDir, Repository, Wanted};
use super::{Point, Source, TakenOf};
use crate::playbook::{self, Step};

pub struct Borg {
    base: Base,
}

/// The source of a step with `borg = { ... }`, None without. A local repository whose
/// index is not its last commit's is refused (see [`index_is_current`]).
pub fn open(step: &Step) -> anyhow::Result<Option<Box<dyn Source>>> {
    let Some(settings) = &step.borg else {
        return Ok(None);
    };
    if let Some(repo) = step.local_repository() {
        index_is_current(Path::new(repo))?;
    }
    Ok(Some(Box::new(Borg::new(settings, step))))
}

/// How a committed segment ends: borg's COMMIT entry (crc32, size 9, tag 2).
const COMMIT: [u8; 9] = [0x40, 0xf4, 0x3c, 0x25, 9, 0, 0, 0, 2];

/// Fails when the index of the local borg repository `repo` is not the one of its last
/// commit (the newest segment ending in a COMMIT): borg then rebuilds it as it opens the
/// repository, even to read with `--bypass-lock`, writing `index.N`, `hints.N` and
/// `integrity.N` into it. That is the state while a backup is being written (its commit
/// lands before its index) and after one crashed. What cannot be read is left to borg.
fn index_is_current(repo: &Path) -> anyhow::Result<()> {
    let numbered = |dir: &Path, prefix: &str| -> Vec<(u64, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut found: Vec<(u64, PathBuf)> = entries
            .filter_map(|e| {
                let e = e.ok()?;
                let n = e.file_name().to_str()?.strip_prefix(prefix)?.parse().ok()?;
                Some((n, e.path()))
            })
            .collect();
        found.sort();
        found
    };
    let data = repo.join("data");
    if !data.is_dir() {
        return Ok(());
    }
    let index = numbered(repo, "index.")
        .into_iter()
        .rev()
        .find(|(_, p)| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
        .map(|(n, _)| n);
    let ends_committed = |path: &Path| -> bool {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let mut tail = [0u8; 9];
        std::fs::File::open(path)
            .and_then(|mut f| {
                f.seek(SeekFrom::End(-9))?;
                f.read_exact(&mut tail)
            })
            .is_ok_and(|()| tail == COMMIT)
    };
    let mut segments: Vec<(u64, PathBuf)> = numbered(&data, "")
        .into_iter()
        .flat_map(|(_, dir)| numbered(&dir, ""))
        .collect();
    segments.sort();
    let committed = segments.iter().rev().find(|(_, p)| ends_committed(p));
    let committed = committed.map(|(n, _)| *n);
    if committed.is_none() || committed == index {
        return Ok(());
    }
    let index = index.map_or("no index".to_string(), |n| format!("index.{n}"));
    anyhow::bail!(
        "borg repository {} has {index}, but its last commit is segment {}: borg would rebuild the index, writing into the repository (a backup is being written, or one did not finish); run the drill when no backup is running, or after a `borg list` with write access has rebuilt it",
        repo.display(),
        committed.unwrap_or_default()
    )
}

impl Borg {
    pub fn new(settings: &playbook::Borg, step: &Step) -> Self {
        // A drill machine has often never seen the repository (or sees it at another
        // path): borg would ask, and with no one to answer, refuse.
        let mut env = Vec::new();
        for var in [
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK",
            "BORG_RELOCATED_REPO_ACCESS_IS_OK",
        ] {
            if std::env::var_os(var).is_none() {
                env.push((var, "yes".to_string()));
            }
        }
        let base = Base {
            repository: settings.repository.clone(),
            cli: Cli {
                program: "borg",
                env,
                remove: &["BORG_PASSPHRASE", "BORG_PASSCOMMAND", "BORG_PASSPHRASE_FD"],
                password: settings
                    .passphrase
                    .clone()
                    .map(|p| (Via::Fd("BORG_PASSPHRASE_FD"), p)),
                private_state: Some(PrivateState {
                    var: "BORG_SECURITY_DIR",
                    from: security_dir(),
                }),
                ..Cli::default()
            },
            wanted: Wanted::of(step),
        };
        Self { base }
    }

    fn archive(&self, point: &Point) -> String {
        point
            .url
            .strip_prefix("borg:")
            .unwrap_or(&point.url)
            .to_string()
    }
}

/// Where borg (1.1 to 1.4) keeps what this host knows of each repository, as borg
/// works it out: `BORG_SECURITY_DIR`, else `security` in its config directory
/// (`BORG_CONFIG_DIR`, else `borg` in `$BORG_BASE_DIR/.config`, `$XDG_CONFIG_HOME` or
/// `~/.config`).
fn security_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("BORG_SECURITY_DIR") {
        return Some(dir.into());
    }
    let config = match (var("BORG_CONFIG_DIR"), var("BORG_BASE_DIR")) {
        (Some(config), _) => PathBuf::from(config),
        (None, Some(base)) => Path::new(&base).join(".config/borg"),
        (None, None) => match var("XDG_CONFIG_HOME") {
            Some(home) => Path::new(&home).join("borg"),
            None => Path::new(&var("HOME")?).join(".config/borg"),
        },
    };
    Some(config.join("security"))
}

/// An archive's time: RFC 3339, or (borg 1.2) local time without an offset.
fn archive_time(text: &str) -> anyhow::Result<jiff::Timestamp> {
    if let Ok(at) = text.parse::<jiff::Timestamp>() {
        return Ok(at);
    }
    let civil: jiff::civil::DateTime = text.parse()?;
    Ok(civil.to_zoned(jiff::tz::TimeZone::system())?.timestamp())
}

/// A `--glob-archives` pattern matching the archive `name` (and maybe others: `[`, which
/// borg's patterns cannot escape without a warning, becomes `?`); the archive is then
/// told by its id.
fn glob_of(name: &str) -> String {
    let mut glob = String::new();
    for c in name.chars() {
        match c {
            '*' => glob.push_str("[*]"),
            '?' => glob.push_str("[?]"),
            '[' => glob.push('?'),
            c => glob.push(c),
        }
    }
    glob
}

/// The paths an archive was created from, as its `command_line` (borg's argv) names them,
/// taken broadly: every absolute path after `create`, but the first `repository::archive`.
/// An option's own value is taken too when it is an absolute path (`--exclude
/// /srv/app/cache`: protecting more is safe), and so is the root of a `--pattern "R
/// /srv/app"`. A relative path is left out: the directory `borg create` ran in is not
/// recorded. Roots from `--patterns-from`, `--paths-from-stdin` or `--paths-from-command`
/// are not in the command line and stay unknown.
fn created_from(command_line: &[&str]) -> Vec<String> {
    let Some(create) = command_line.iter().skip(1).position(|a| *a == "create") else {
        return Vec::new();
    };
    let mut spec_seen = false;
    let mut paths = Vec::new();
    for arg in &command_line[create + 2..] {
        if !spec_seen && arg.contains("::") {
            spec_seen = true;
            continue;
        }
        let pattern = arg.strip_prefix("--pattern=").unwrap_or(arg);
        let root = pattern.strip_prefix('R').map(str::trim_start);
        let path = root.filter(|r| r.starts_with('/')).unwrap_or(arg);
        if path.starts_with('/') {
            paths.push(path.to_string());
        }
    }
    paths
}

/// What the archive `point` was taken of, from a `borg list --json` holding it with its
/// `hostname` and `command_line`; None when borg recorded either not.
fn taken_of(point: &Point, listing: &Value) -> anyhow::Result<Option<TakenOf>> {
    let archives = listing.get("archives").and_then(Value::as_array);
    let field = |a: &Value, name: &str| a.get(name).and_then(Value::as_str).map(str::to_string);
    let this = |a: &&Value| match &point.id {
        Some(id) => field(a, "id").as_ref() == Some(id),
        None => field(a, "name").is_some_and(|n| point.is_named(&n)),
    };
    let Some(archive) = archives.into_iter().flatten().find(this) else {
        anyhow::bail!("borg lists the archive no more");
    };
    let command_line = archive.get("command_line").and_then(Value::as_array);
    let Some((host, command_line)) = field(archive, "hostname").zip(command_line) else {
        return Ok(None);
    };
    let command_line: Vec<&str> = command_line.iter().filter_map(Value::as_str).collect();
    Ok(Some(TakenOf {
        host,
        paths: created_from(&command_line),
    }))
}

/// The recovery points of `borg list --json`.
fn points(repository: &str, listing: &Value) -> anyhow::Result<Vec<Point>> {
    let archives = listing.get("archives").and_then(Value::as_array);
    let Some(archives) = archives else {
        anyhow::bail!("borg list printed no archives");
    };
    let mut points = Vec::new();
    for archive in archives {
        let field = |name: &str| archive.get(name).and_then(Value::as_str);
        let (Some(name), Some(time)) = (field("name"), field("time").or(field("start"))) else {
            continue;
        };
        points.push(Point {
            url: format!("borg:{repository}::{name}"),
            time: archive_time(time)
                .with_context(|| format!("borg archive `{name}` has the time `{time}`"))?,
            bytes: 0,
            id: field("id").map(str::to_string),
            taken_of: None,
        });
    }
    Ok(points)
}

impl Repository for Borg {
    fn base(&self) -> &Base {
        &self.base
    }

    fn snapshots(&self) -> Vec<String> {
        repo::args(&["list", "--json", "--bypass-lock", &self.base.repository])
    }

    fn points(&self, listing: &Value) -> anyhow::Result<Vec<Point>> {
        points(&self.base.repository, listing)
    }

    fn snapshot(&self, point: &Point) -> String {
        format!("borg archive {}", self.archive(point))
    }

    fn check(&self) -> Vec<String> {
        repo::args(&[
            "check",
            "--repository-only",
            "--bypass-lock",
            &self.base.repository,
        ])
    }

    fn entries(&self, point: &Point, paths: &[String]) -> Vec<String> {
        let mut args = repo::args(&[
            "list",
            "--json-lines",
            "--bypass-lock",
            &self.archive(point),
        ]);
        args.extend(paths.iter().cloned());
        args
    }

    fn dump(&self, point: &Point, file: &Entry) -> Vec<String> {
        let archive = self.archive(point);
        repo::args(&["extract", "--stdout", "--bypass-lock", &archive, &file.path])
    }

    fn restore(&self, point: &Point, paths: &[String], dir: &Path) -> InDir {
        let mut args = repo::args(&["extract", "--bypass-lock", &self.archive(point)]);
        args.extend(paths.iter().cloned());
        (args, Some(dir.to_path_buf()))
    }

    /// The repository's listing of that archive alone, with the fields that `--format`
    /// names added (the listing of all archives leaves them out: each is one more read
    /// of an archive's metadata).
    fn origin(&self, point: &Point) -> Option<Vec<String>> {
        let archive = self.archive(point);
        let name = archive.rsplit_once("::").map_or("", |(_, name)| name);
        Some(repo::args(&[
            "list",
            "--json",
            "--bypass-lock",
            "--format",
            "{hostname}{command_line}",
            "--glob-archives",
            &glob_of(name),
            &self.base.repository,
        ]))
    }

    fn taken_of(&self, point: &Point, listing: &Value) -> anyhow::Result<Option<TakenOf>> {
        taken_of(point, listing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_become_points_with_their_name_id_and_time() {
        let listing = serde_json::json!({"archives": [
            {"name": "host-2026-11-28", "id": "370ae6c5", "time": "2026-11-28T03:00:00.000000"},
            {"name": "tz", "id": "e4c49202", "time": "2026-11-28T04:00:00.000000+01:00"},
            {"id": "no-name"}
        ]});
        let points = points("/srv/borg", &listing).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].url, "borg:/srv/borg::host-2026-11-28");
        assert_eq!(points[0].id.as_deref(), Some("370ae6c5"));
        let local = jiff::civil::datetime(2026, 11, 28, 3, 0, 0, 0)
            .to_zoned(jiff::tz::TimeZone::system())
            .unwrap()
            .timestamp();
        assert_eq!(points[0].time, local);
        assert_eq!(points[1].time.to_string(), "2026-11-28T03:00:00Z");
        assert!(super::points("r", &serde_json::json!({})).is_err());
    }

    #[test]
    fn what_an_archive_was_created_from_is_every_absolute_path_after_create() {
        let command_line = [
            "/usr/bin/borg",
            "--lock-wait",
            "/etc/create",
            "create",
            "--exclude",
            "/srv/app/cache",
            "--exclude=/srv/app/tmp",
            "--comment",
            "nightly",
            "-x",
            "--pattern=R/var/lib/app",
            "--pattern",
            "R /opt/app",
            "/srv/borg::host-{now}",
            "/srv/app",
            "relative/data",
            "./also-relative",
            "/",
            "/odd::name",
        ];
        assert_eq!(
            created_from(&command_line),
            [
                "/srv/app/cache",
                "/var/lib/app",
                "/opt/app",
                "/srv/app",
                "/",
                "/odd::name"
            ],
            "`/` is kept, as restic lists it: the guard leaves it out"
        );
        assert!(created_from(&["borg", "import-tar", "/r::a", "/x.tar"]).is_empty());
        assert!(created_from(&["borg", "create", "::a", "data"]).is_empty());
        assert_eq!(glob_of("we[i]rd*?"), "we?i]rd[*][?]");
    }

    #[test]
    fn the_chosen_archive_is_told_by_its_id_in_the_listing() {
        let listing = serde_json::json!({"archives": [
            {"name": "a?", "id": "1111", "hostname": "other", "command_line": ["borg", "create", "r::a?", "/x"]},
            {"name": "a[", "id": "2222", "hostname": "db1", "command_line": ["borg", "create", "r::a[", "/srv/app", "rel"]},
            {"name": "old", "id": "3333"}
        ]});
        let point = |id: &str| Point {
            url: "borg:r::x".into(),
            time: jiff::Timestamp::UNIX_EPOCH,
            bytes: 0,
            id: Some(id.into()),
            taken_of: None,
        };
        let taken_of = taken_of(&point("2222"), &listing).unwrap().unwrap();
        assert_eq!(
            (taken_of.host.as_str(), taken_of.paths),
            ("db1", vec!["/srv/app".to_string()])
        );
        assert!(super::taken_of(&point("3333"), &listing).unwrap().is_none());
        let gone = super::taken_of(&point("4444"), &listing).unwrap_err();
        assert_eq!(gone.to_string(), "borg lists the archive no more");
    }
}
