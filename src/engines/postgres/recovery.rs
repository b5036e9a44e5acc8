//! Point-in-time recovery of a physical backup: the recovery target a restore step asks
//! for, the settings that make PostgreSQL replay WAL from `wal_archive` (a
//! `restore_command` that only copies out of it) and *pause* when the target is reached,
//! and the reading of the server's log when it could not get there: the missing segment
//! or the last reachable commit, named.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure};

use crate::playbook::Step;

/// What recovery replays up to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The end of the base backup: consistency, no archived WAL.
    Immediate,
    /// Every WAL segment the archive holds.
    Latest,
    /// The first commit after this time (PostgreSQL's form, UTC).
    Time(String),
    Lsn(String),
    Name(String),
}

impl Target {
    /// The step's target: one of `target_time`, `target_lsn`, `target_name`, `target`;
    /// none means `latest` with a `wal_archive`, `immediate` without.
    pub fn of(step: &Step, has_archive: bool) -> anyhow::Result<Self> {
        let given: Vec<&str> = [
            ("target_time", &step.target_time),
            ("target_lsn", &step.target_lsn),
            ("target_name", &step.target_name),
            ("target", &step.target),
        ]
        .iter()
        .filter(|(_, v)| v.as_deref().is_some_and(|v| !v.is_empty()))
        .map(|(k, _)| *k)
        .collect();
        ensure!(
            given.len() <= 1,
            "set one recovery target, not {}",
            given.join(" and ")
        );
        let target = match given.first().copied() {
            None if has_archive => Self::Latest,
            None => Self::Immediate,
            Some("target_time") => Self::Time(pg_time(step.target_time.as_deref().unwrap())?),
            Some("target_lsn") => Self::Lsn(lsn(step.target_lsn.as_deref().unwrap())?),
            Some("target_name") => Self::Name(step.target_name.clone().unwrap()),
            _ => match step.target.as_deref() {
                Some("immediate") => Self::Immediate,
                Some("latest") => Self::Latest,
                Some(other) => bail!(
                    "`target` of a physical restore must be \"immediate\" or \"latest\", not \"{other}\" (a time is `target_time`)"
                ),
                None => unreachable!("one target is given"),
            },
        };
        ensure!(
            has_archive || target == Self::Immediate,
            "recovering to {} needs `wal_archive`, the directory the source archives its WAL into",
            target.describe()
        );
        Ok(target)
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Immediate => "the end of the base backup (target = \"immediate\")".into(),
            Self::Latest => "the last archived WAL (target = \"latest\")".into(),
            Self::Time(t) => format!("target_time {t}"),
            Self::Lsn(l) => format!("target_lsn {l}"),
            Self::Name(n) => format!("target_name `{n}`"),
        }
    }

    /// The `recovery_target*` settings; every reachable target pauses there, so that the
    /// drill promotes only once it is reached.
    pub fn settings(&self) -> Vec<String> {
        let mut s = match self {
            Self::Immediate => vec!["recovery_target=immediate".to_string()],
            Self::Latest => return Vec::new(),
            Self::Time(t) => vec![format!("recovery_target_time={t}")],
            Self::Lsn(l) => vec![format!("recovery_target_lsn={l}")],
            Self::Name(n) => vec![format!("recovery_target_name={n}")],
        };
        s.push("recovery_target_action=pause".into());
        s
    }
}

/// RFC 3339 (`Z` or an offset, a space allowed for `T`) as PostgreSQL reads it, in UTC.
pub fn pg_time(given: &str) -> anyhow::Result<String> {
    let t: jiff::Timestamp = given.trim().replacen(' ', "T", 1).parse().map_err(|e| {
        anyhow::anyhow!(
            "target_time `{given}` is not an RFC 3339 time with `Z` or an offset, such as 2026-12-01T14:30:00Z ({e})"
        )
    })?;
    Ok(t.strftime("%Y-%m-%d %H:%M:%S%.6f+00").to_string())
}

fn lsn(given: &str) -> anyhow::Result<String> {
    let ok = given
        .split_once('/')
        .is_some_and(|(a, b)| hex(a) && hex(b) && a.len() <= 8 && b.len() <= 8);
    ensure!(
        ok,
        "target_lsn `{given}` is not a WAL location such as 0/3000060"
    );
    Ok(given.to_string())
}

fn hex(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// `s` in single quotes for `sh`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A `restore_command` that copies a file out of `archive` and never writes to it; each
/// name the archive does not hold is appended to `misses` (the server asks for the
/// next segment until one is missing, and for timeline history files that may not
/// exist). A file that is there but cannot be copied (permissions) exits 127, which
/// makes the server abort recovery rather than take it for the end of the archive.
pub fn restore_command(archive: &Path, misses: &Path) -> String {
    let a = sh_quote(&archive.display().to_string());
    let m = sh_quote(&misses.display().to_string());
    format!(
        "test -f {a}/\"%f\" || {{ echo \"%f\" >> {m}; exit 1; }}; cp {a}/\"%f\" \"%p\" || exit 127"
    )
}

/// A WAL segment file name: timeline, log and segment, 24 hex digits.
fn is_segment(name: &str) -> bool {
    name.len() == 24 && hex(name)
}

/// The number of a segment in its timeline, given the segment size.
fn seg_no(name: &str, seg_size: u64) -> Option<u64> {
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
    Some(log * (0x1_0000_0000 / seg_size.max(1)) + seg)
}

/// The archive's segments of timeline `tli` (8 hex digits), sorted.
fn archived(archive: &Path, tli: &str) -> Vec<(String, u64)> {
    let mut names: Vec<(String, u64)> = std::fs::read_dir(archive)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.to_string();
                    let len = e.metadata().ok()?.len();
                    (is_segment(&name) && name.starts_with(tli)).then_some((name, len))
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The first segment missing between `start` (the base backup's first) and the last
/// of its timeline in the archive, with that last one: a gap recovery cannot cross.
pub fn first_gap(archive: &Path, start: &str) -> Option<(String, String)> {
    let segs = archived(archive, &start[..8]);
    let size = segs.iter().map(|(_, l)| *l).max().unwrap_or(16 << 20);
    let last = segs.last()?.0.clone();
    let mut want = seg_no(start, size)?;
    for (name, _) in segs.iter().filter(|(n, _)| n.as_str() >= start) {
        let n = seg_no(name, size)?;
        if n > want {
            let per_log = 0x1_0000_0000 / size;
            return Some((
                format!(
                    "{}{:08X}{:08X}",
                    &start[..8],
                    want / per_log,
                    want % per_log
                ),
                last,
            ));
        }
        want = n + 1;
    }
    None
}

/// The first WAL segment of a base backup, from its `backup_label`.
pub fn start_segment(backup_label: &str) -> Option<String> {
    let line = backup_label
        .lines()
        .find(|l| l.starts_with("START WAL LOCATION:"))?;
    let file = line.split("(file ").nth(1)?.trim_end_matches(')');
    is_segment(file).then(|| file.to_string())
}

/// Why recovery ended without reaching `target`, from the server's log and the names
/// the restore command missed: the missing segment (a gap: later ones are archived) or
/// the last commit the archive reaches.
pub fn unreachable(target: &Target, log: &str, misses: &Path, archive: Option<&Path>) -> String {
    let last_commit = log
        .lines()
        .rev()
        .find_map(|l| {
            l.split("last completed transaction was at log time ")
                .nth(1)
        })
        .map(str::trim);
    let reach = match last_commit {
        Some(t) => format!("the last reachable commit is at {t}"),
        None => "no transaction after the base backup is reachable".into(),
    };
    let missed = std::fs::read_to_string(misses).unwrap_or_default();
    let last_missed = missed.lines().rev().find(|l| is_segment(l));
    if let (Some(seg), Some(archive)) = (last_missed, archive) {
        let later = archived(archive, &seg[..8]);
        if let Some((last, _)) = later.last().filter(|(n, _)| n.as_str() > seg) {
            return format!(
                "WAL segment {seg} is missing from wal_archive {} (later segments up to {last} are there): recovery cannot reach {} past it; {reach}; not promoted",
                archive.display(),
                target.describe()
            );
        }
    }
    let ends = last_missed.map_or(String::new(), |s| {
        format!(" (the archive ends before segment {s})")
    });
    format!(
        "{} is after the last commit the WAL archive reaches{ends}: {reach}; not promoted",
        target.describe()
    )
}

/// The server's log, whole (it is the cluster's own, in its directory).
pub fn read_log(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_passed_on_in_utc() {
        assert_eq!(
            pg_time("2026-12-01T14:30:00Z").unwrap(),
            "2026-12-01 14:30:00.000000+00"
        );
        assert_eq!(
            pg_time("2026-12-01 16:30:00.25+02:00").unwrap(),
            "2026-12-01 14:30:00.250000+00"
        );
        let e = pg_time("yesterday").unwrap_err().to_string();
        assert!(e.contains("target_time `yesterday`"), "{e}");
    }

    #[test]
    fn restore_command_only_copies_out_of_the_archive() {
        let c = restore_command(Path::new("/srv/it's"), Path::new("/tmp/m"));
        assert_eq!(
            c,
            r#"test -f '/srv/it'\''s'/"%f" || { echo "%f" >> '/tmp/m'; exit 1; }; cp '/srv/it'\''s'/"%f" "%p" || exit 127"#
        );
    }

    #[test]
    fn a_gap_in_the_archive_is_found() {
        let dir = tempfile::tempdir().unwrap();
        for s in ["02", "03", "05", "06"] {
            std::fs::write(dir.path().join(format!("0000000100000000000000{s}")), b"x").unwrap();
        }
        assert_eq!(
            first_gap(dir.path(), "000000010000000000000002"),
            Some((
                "000000010000000000000004".into(),
                "000000010000000000000006".into()
            ))
        );
        assert_eq!(first_gap(dir.path(), "000000010000000000000005"), None);
        let label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n";
        assert_eq!(start_segment(label).unwrap(), "000000010000000000000002");
    }
}
