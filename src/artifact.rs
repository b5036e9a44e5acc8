//! The run record (`restore_drill_<ts>.json`): its types and atomic writer (redaction:
//! `crate::redact`).
//!
//! The record is rewritten after every step (temp file, fsync, rename), so a crash or a
//! kill leaves a valid record of how far the drill got.

use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const SCHEMA_ID: &str = "restore-drill/v1";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunRecord {
    /// Always `restore-drill/v1`.
    pub schema: String,
    pub run_id: String,
    pub drill: DrillInfo,
    pub mode: Mode,
    pub host: String,
    pub operators: Vec<String>,
    pub tool_version: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_s: f64,
    pub status: RunStatus,
    /// One-line answer to "did the drill pass, and if not, why".
    pub summary: String,
    pub workdir: String,
    pub steps: Vec<StepRecord>,
    pub gates: Vec<GateRecord>,
    pub rto: RtoRecord,
    pub rpo: Option<RpoRecord>,
    /// Files the drill produced (backups, manifests) with their size and checksum.
    pub files: Vec<FileRecord>,
    /// What the drill created (workdir, services, databases) and whether cleanup removed it.
    pub resources: Vec<ResourceRecord>,
    pub warnings: Vec<String>,
    /// Paths of this run's artifacts (json, log, reports).
    pub artifacts: Map<String, Value>,
    /// Set when the runner itself broke (status `error`), or when a drill that failed
    /// anyway could not write one of its artifacts (it keeps status `failed`).
    pub error: Option<String>,
    /// The previous record of the same drill in this directory (null: the first), so
    /// that the records are a hash chain (`restore-drill verify`).
    #[serde(default)]
    pub previous: Option<PreviousRecord>,
    /// The alerts of `[notify]` and whether each was delivered (urls redacted).
    #[serde(default)]
    pub notifications: Vec<NotificationRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct NotificationRecord {
    /// `healthchecks`, `webhook` or `ntfy`.
    pub channel: String,
    /// `start`, `success` or `failure`.
    pub event: String,
    /// Where it was sent (secrets redacted).
    pub url: String,
    pub delivered: bool,
    pub attempts: u32,
    /// The last HTTP status answered, if any answered.
    pub status: Option<u16>,
    /// Why it was not delivered.
    pub error: Option<String>,
}

/// A link of the hash chain: which record came before this one, and its exact bytes' hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PreviousRecord {
    pub run_id: String,
    /// Hex SHA-256 of the previous record's file as it was when this run started.
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DrillInfo {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    pub playbook: String,
    pub playbook_sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Automated,
    Walkthrough,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Passed,
    Failed,
    Error,
    Aborted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Passed => "passed",
            RunStatus::Failed => "failed",
            RunStatus::Error => "error",
            RunStatus::Aborted => "aborted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    NotRun,
    Running,
    Passed,
    Failed,
    TimedOut,
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::NotRun => "not_run",
            StepStatus::Running => "running",
            StepStatus::Passed => "passed",
            StepStatus::Failed => "failed",
            StepStatus::TimedOut => "timed_out",
            StepStatus::Skipped => "skipped",
        }
    }

    pub fn is_failure(self) -> bool {
        matches!(self, StepStatus::Failed | StepStatus::TimedOut)
    }
}

// The part of the playbook a step is in: `[[setup]]`, `[[steps]]` or `[[cleanup]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    Setup,
    Steps,
    Cleanup,
}

impl Section {
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Setup => "setup",
            Section::Steps => "steps",
            Section::Cleanup => "cleanup",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StepRecord {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub phase: String,
    pub section: Section,
    pub status: StepStatus,
    pub started_at: Option<String>,
    pub duration_s: f64,
    /// Seconds counted for this step in the RTO when it is assumed (a manual step in an automated run).
    pub assumed_s: Option<f64>,
    pub attempts: u32,
    pub runbook: Option<String>,
    pub outputs: Map<String, Value>,
    pub metrics: Map<String, Value>,
    /// Results of a `sql` step's checks.
    pub checks: Vec<CheckRecord>,
    pub error: Option<String>,
    /// The last lines of the step's output.
    pub log_tail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CheckRecord {
    /// The check's `name` in the playbook.
    pub name: String,
    pub passed: bool,
    /// What was found, or why the check failed.
    pub detail: String,
    /// What the check wanted, where it says (`expect`, `expect_rows`, bounds; an object
    /// of each where a query has several, e.g. `{"min": 1, "max": 9}`; the names wanted).
    pub expected: Option<Value>,
    /// What was found, in `expected`'s shape: the first cell, the number of rows or the
    /// rows; of the names wanted, those present; a count or a problem count.
    pub actual: Option<Value>,
    /// The builtin it ran (`table_counts`, ...); absent for a query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    Rto,
    Rpo,
    MaxDuration,
    Custom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    Passed,
    Failed,
    /// The drill did not get far enough to measure it.
    NotEvaluated,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct GateRecord {
    pub name: String,
    pub kind: GateKind,
    pub status: GateStatus,
    /// The target of a duration gate, for people (`15m`); null for a custom gate.
    pub target: Option<String>,
    /// What was measured, as `target`; null when not measured.
    pub measured: Option<String>,
    /// The target in seconds.
    pub target_s: Option<f64>,
    /// The measured seconds; null when not measured.
    pub measured_s: Option<f64>,
    /// Why it passed, failed or was not evaluated.
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct RtoRecord {
    pub target_s: Option<f64>,
    /// The recovery time; null when it was not measured (the drill stopped before
    /// recovery finished).
    pub measured_s: Option<f64>,
    /// The phases counted in the RTO.
    pub counted_phases: Vec<String>,
    pub phases: Vec<PhaseRecord>,
    /// Phases whose time includes an assumed (not measured) duration.
    pub assumed_phases: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PhaseRecord {
    pub phase: String,
    /// The sum of its steps' durations (with assumed durations where `assumed`).
    pub seconds: f64,
    /// Whether it counts in the RTO.
    pub counted: bool,
    /// Whether an assumed, not measured, duration is part of it.
    pub assumed: bool,
    /// The ids of its steps, in order.
    pub steps: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RpoRecord {
    pub target_s: Option<f64>,
    /// Null when not measured (nothing was restored, or `error` says why).
    pub measured_s: Option<f64>,
    /// The timestamp of the newest restored data, as `rpo_from` rendered it.
    pub source: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FileRecord {
    pub path: String,
    pub bytes: u64,
    /// Hex digests, null until a step hashed the file.
    pub sha256: Option<String>,
    pub blake3: Option<String>,
    /// The step that produced or hashed it.
    pub step: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ResourceRecord {
    /// `workdir`, `service`, `database`, `cluster`, `file`, or `leftover` (what a run
    /// that died left, stopped or removed by this one).
    pub kind: String,
    /// A path, a pid, a connection url (redacted).
    pub id: String,
    pub step: Option<String>,
    /// Whether cleanup removed it (false: left behind).
    pub removed: bool,
    pub detail: Option<String>,
}

impl FileRecord {
    /// A file a step produced, before any checksum step hashed it.
    pub fn produced(path: &std::path::Path, bytes: u64, step: &str) -> Self {
        Self {
            path: path.display().to_string(),
            bytes,
            sha256: None,
            blake3: None,
            step: step.to_string(),
        }
    }
}

/// The last resort when [`write_replacing`] finds no room for a new copy (a full disk
/// or quota): `bytes`, if no longer than the file is, are written over it in place and
/// the rest of it blanked with spaces (JSON's trailing white space), which takes no new
/// blocks on most file systems (copy-on-write ones excepted, where this fails too), then
/// synced. Not atomic: a crash during it tears the file. Only for a final record, whose
/// alternative is one that goes on saying the run is running.
pub fn overwrite_in_place(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new().write(true).open(path)?;
    let Some(room) = file.metadata()?.len().checked_sub(bytes.len() as u64) else {
        return Err(std::io::Error::other(
            "the new content is longer than the old",
        ));
    };
    file.write_all(bytes)?;
    std::io::copy(&mut std::io::repeat(b' ').take(room), &mut file)?;
    file.sync_all()
}

/// Whether a write failed for want of room: the disk or the quota is full.
pub fn is_out_of_room(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{QuotaExceeded, StorageFull};
    matches!(e.kind(), StorageFull | QuotaExceeded)
}

/// Writes `bytes` to `path` so that readers see the old or the new content, never a mix,
/// and makes it durable: temp file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_replacing(path, bytes, true)
}

/// Like [`write_atomic`]; `sync_dir = false` skips the directory's fsync, so after a
/// power loss the rename may be lost and the previous content (itself complete and
/// synced) found instead. For the record's rewrites between steps, which the final,
/// fully synced write supersedes: the fsyncs were most of a short drill's time.
///
/// A write that fails (a full disk, say) removes its temp file: `path` keeps its
/// previous content and nothing else is left.
pub fn write_replacing(path: &Path, bytes: &[u8], sync_dir: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    // A temp file left by a dead run of the same pid goes, as an entry: a symlink there
    // is removed, never followed, nor is one that appears meanwhile.
    let _ = fs::remove_file(&tmp);
    let created = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp);
    let written = created.and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if sync_dir && let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a record the user named (`report <record>`: a pipe will do).
pub fn read(path: &Path) -> anyhow::Result<RunRecord> {
    parse(
        path,
        crate::limits::read_text(path, crate::limits::MAX_RECORD_BYTES),
    )
}

/// Reads a record found in a directory (`list`): only a regular file, so a FIFO named
/// like a record is refused rather than waited on.
pub fn read_listed(path: &Path) -> anyhow::Result<RunRecord> {
    parse(
        path,
        crate::limits::read_regular_text(path, crate::limits::MAX_RECORD_BYTES),
    )
}

fn parse(path: &Path, text: std::io::Result<String>) -> anyhow::Result<RunRecord> {
    use anyhow::Context as _;
    let text = text.with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a restore-drill record", path.display()))
}

/// Whether a file name is a run's record (`restore_drill_<ts>.json`).
pub fn is_record_name(name: &str) -> bool {
    name.starts_with("restore_drill_") && name.ends_with(".json")
}

/// The record files in a directory, oldest first.
pub fn list(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_record_name)
        })
        .collect();
    paths.sort();
    Ok(paths)
}

/// The record files under `dir` and its folders (not through symbolic links, at most 8
/// levels down), by path: a tree of many drills' artifacts folders.
pub fn list_tree(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = list(dir)?;
    let mut folders = vec![(dir.to_path_buf(), 0)];
    while let Some((folder, depth)) = folders.pop() {
        let Ok(entries) = fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && depth < 8 {
                let path = entry.path();
                found.extend(list(&path).unwrap_or_default());
                folders.push((path, depth + 1));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Whether `dir` holds records in folders below it (a fleet), not only its own.
pub fn is_tree(dir: &Path, records: &[PathBuf]) -> bool {
    records.iter().any(|p| p.parent() != Some(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content() {
        let (dir, p) = record_path();
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_atomic_write_leaves_no_temp_file() {
        let (dir, p) = record_path();
        // A directory in the way: the rename fails after the temp file was written.
        fs::create_dir(&p).unwrap();
        fs::write(p.join("inside"), b"keep").unwrap();
        assert!(write_atomic(&p, b"new").is_err());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["r.json"], "the temp file was left behind");
        assert_eq!(fs::read(p.join("inside")).unwrap(), b"keep");
    }

    #[test]
    fn an_overwrite_in_place_blanks_what_is_left_and_refuses_what_does_not_fit() {
        let (_dir, p) = record_path();
        fs::write(&p, b"{\"status\": \"running\"}      ").unwrap();
        overwrite_in_place(&p, b"{\"status\":\"error\"}").unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(text, format!("{{\"status\":\"error\"}}{}", " ".repeat(9)));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["status"], "error");
        assert!(overwrite_in_place(&p, &[b' '; 64]).is_err());
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            text,
            "a refused write changed it"
        );
    }

    #[test]
    fn an_atomic_write_never_writes_through_a_symlink_at_its_temp_file() {
        let (dir, p) = record_path();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        let tmp = dir
            .path()
            .join(format!(".r.json.tmp{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        write_atomic(&p, b"record").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(fs::read(&p).unwrap(), b"record");
        assert!(
            fs::symlink_metadata(&tmp).is_err(),
            "the temp entry is left"
        );
    }

    /// A new temporary folder and the path `r.json` in it, not yet written.
    fn record_path() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        (dir, p)
    }
}
