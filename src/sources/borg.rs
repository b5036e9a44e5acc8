//! A borg repository's archives as recovery points (`borg = { repository, passphrase }`).
//!
//! Every call reads and never writes: `--bypass-lock` (no lock in the repository), and the
//! check is `borg check --repository-only` (the segments' checksums, every byte read):
//! borg's archives check reserves nonces, which writes the repository's `nonce` file.
//! The archives' own chunks are verified by borg as `extract` reads them.

use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

use super::download::Download;
use super::repo::{self, Cli, Entry, Repository, Via};
use super::{Fetched, Point, Source};
use crate::engines::Ctx;
use crate::playbook::{self, Step};

pub struct Borg {
    repository: String,
    cli: Cli,
    paths: Vec<String>,
    check: bool,
}

/// The source of a step with `borg = { ... }`, None without.
pub fn open(step: &Step) -> anyhow::Result<Option<Box<dyn Source>>> {
    Ok(step
        .borg
        .as_ref()
        .map(|s| Box::new(Borg::new(s, step)) as Box<dyn Source>))
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
        Self {
            repository: settings.repository.clone(),
            cli: Cli {
                program: "borg",
                env,
                remove: &["BORG_PASSPHRASE", "BORG_PASSCOMMAND", "BORG_PASSPHRASE_FD"],
                password: settings
                    .passphrase
                    .clone()
                    .map(|p| (Via::Fd("BORG_PASSPHRASE_FD"), p)),
            },
            paths: step.paths.clone().unwrap_or_default(),
            check: step.check.unwrap_or(false),
        }
    }

    fn archive(&self, point: &Point) -> String {
        point
            .url
            .strip_prefix("borg:")
            .unwrap_or(&point.url)
            .to_string()
    }
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
        });
    }
    Ok(points)
}

impl Source for Borg {
    fn describe(&self) -> String {
        format!("borg repository {}", self.repository)
    }

    fn list(&self, ctx: &Ctx<'_>) -> anyhow::Result<Vec<Point>> {
        let listing = self
            .cli
            .json(&["list", "--json", "--bypass-lock", &self.repository], ctx)
            .with_context(|| format!("listing the archives of {}", self.describe()))?;
        points(&self.repository, &listing)
    }

    fn fetch(
        &self,
        point: &Point,
        output: Option<&Path>,
        ctx: &Ctx<'_>,
    ) -> anyhow::Result<Fetched> {
        repo::fetch(self, point, &self.paths, self.check, output, ctx)
    }
}

impl Repository for Borg {
    fn snapshot(&self, point: &Point) -> String {
        format!("borg archive {}", self.archive(point))
    }

    fn check(&self, ctx: &Ctx<'_>) -> anyhow::Result<()> {
        let args = [
            "check",
            "--repository-only",
            "--bypass-lock",
            &self.repository,
        ];
        self.cli
            .run(&args, None, ctx)
            .with_context(|| format!("`borg check` of {} found a problem", self.repository))
    }

    fn entries(
        &self,
        point: &Point,
        paths: &[String],
        ctx: &Ctx<'_>,
        each: &mut dyn FnMut(Entry),
    ) -> anyhow::Result<()> {
        let archive = self.archive(point);
        let mut args = vec!["list", "--json-lines", "--bypass-lock", &archive];
        args.extend(paths.iter().map(String::as_str));
        self.cli.json_lines(&args, ctx, &mut |item| {
            let field = |name: &str| item.get(name).and_then(Value::as_str);
            if let (Some(path), Some(kind)) = (field("path"), field("type")) {
                each(Entry {
                    path: path.to_string(),
                    is_file: kind == "-",
                    size: item.get("size").and_then(Value::as_u64).unwrap_or(0),
                });
            }
        })
    }

    fn dump(
        &self,
        point: &Point,
        file: &Entry,
        download: &mut Download,
        ctx: &Ctx<'_>,
    ) -> anyhow::Result<()> {
        let archive = self.archive(point);
        let args = ["extract", "--stdout", "--bypass-lock", &archive, &file.path];
        self.cli.stream(&args, download, file.size, ctx)
    }

    fn restore(
        &self,
        point: &Point,
        paths: &[String],
        dir: &Path,
        ctx: &Ctx<'_>,
    ) -> anyhow::Result<()> {
        let archive = self.archive(point);
        let mut args = vec!["extract", "--bypass-lock", &archive];
        args.extend(paths.iter().map(String::as_str));
        self.cli.run(&args, Some(dir), ctx)
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
        assert!(points("r", &serde_json::json!({})).is_err());
    }
}
