//! What unit tests of a step need: a `StepCtx` over a temporary folder, and its log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use super::{Progress, StepCtx};
use crate::log::LogSink;
use crate::redact::Redactor;

/// A step context whose log is `dir/log`, with no sources, no operator and a progress
/// channel nobody reads.
pub fn ctx(dir: &Path) -> StepCtx {
    ctx_with_progress(dir).0
}

/// [`ctx`], and what the step reports of its progress.
pub fn ctx_with_progress(dir: &Path) -> (StepCtx, Receiver<Progress>) {
    let (progress, seen) = std::sync::mpsc::channel();
    let ctx = StepCtx {
        step_id: "t".into(),
        workdir: dir.join("work"),
        cancel: Arc::default(),
        log: LogSink::create(&dir.join("log"), Arc::new(Redactor::default())).unwrap(),
        sources: crate::guard::Sources::new(&crate::engines::specs()),
        operator: None,
        resources: crate::resources::Resources::default(),
        procs: crate::proc::Registry::default(),
        progress,
        warnings: Default::default(),
    };
    (ctx, seen)
}

/// What the step wrote to the log of [`ctx`] of `dir`.
pub fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("log")).unwrap_or_default()
}

/// A step from its TOML fields (`id` and `kind` included).
pub fn step(toml: &str) -> crate::playbook::Step {
    toml::from_str(toml).unwrap_or_else(|e| panic!("{e}\n{toml}"))
}

/// A temporary folder below the crate's directory, and its path relative to the current
/// directory (tests run in the crate's directory), for relative paths.
pub fn relative_tempdir() -> (tempfile::TempDir, PathBuf) {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let cwd = std::env::current_dir().unwrap();
    let rel = dir.path().strip_prefix(&cwd).unwrap().to_path_buf();
    (dir, rel)
}

/// A path as a TOML string.
pub fn toml_path(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// Asserts that `text` holds `part`, showing the text when it does not.
#[track_caller]
pub fn assert_has(text: &str, part: &str) {
    assert!(text.contains(part), "{part:?} not in {text:?}");
}

/// Asserts that `text` starts with `start` and ends with `end`, showing it when not.
#[track_caller]
pub fn assert_between(text: &str, start: &str, end: &str) {
    assert!(
        text.starts_with(start),
        "{text:?} does not start with {start:?}"
    );
    assert!(text.ends_with(end), "{text:?} does not end with {end:?}");
}

/// Asserts that the check failed and that its detail says `says`.
#[track_caller]
pub fn failed_saying(check: &crate::artifact::CheckRecord, says: &str) {
    assert!(!check.passed, "passed: {}", check.detail);
    assert_has(&check.detail, says);
}
