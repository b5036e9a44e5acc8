//! A borg repository's archives as recovery points (`borg = { repository, passphrase }`).
//!
//! Every call reads and never writes: `--bypass-lock` (no lock in the repository), and the
//! check is `borg check --repository-only` (the segments' checksums, every byte read):
//! borg's archives check reserves nonces, which writes the repository's `nonce` file.
//! The archives' own chunks are verified by borg as `extract` reads them.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::Value;

use super::cli::{Cli, PrivateState, Via};
use super::repo::{self, Base, Entry, InDir, Repository, Wanted};
use super::{Point, Source};
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
}
