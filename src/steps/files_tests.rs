//! The `files` step on real trees: `files_match` against a manifest, `json_valid` and
//! `file_count`, each with the inputs that fail it.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::super::testing::{ctx, failed_saying, log, step};
use super::*;
use crate::engines::files::manifest::{self, Entry, Header};

/// `tree/` with `a.json` (valid), `sub/b.txt`, and a link `l -> a.json`.
fn tree(dir: &Path) -> PathBuf {
    let root = dir.join("tree");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.json"), r#"{"k": [1, 2]}"#).unwrap();
    std::fs::write(root.join("sub/b.txt"), "hello").unwrap();
    symlink("a.json", root.join("l")).unwrap();
    root
}

/// A manifest line: path, bytes, sha256, symlink target.
type Line = (
    &'static str,
    Option<u64>,
    Option<String>,
    Option<&'static str>,
);

const HELLO_SHA256: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

/// A manifest of `entries` (path, bytes, sha256, symlink target).
fn manifest_of(dir: &Path, entries: &[Line]) -> PathBuf {
    let path = dir.join("m.jsonl");
    let header = Header {
        format: manifest::FORMAT.into(),
        compression: "none".into(),
        roots: Vec::new(),
    };
    let mut w = manifest::Writer::create(&path, &header).unwrap();
    for (p, bytes, sha, link) in entries {
        w.entry(&Entry {
            path: p.to_string(),
            bytes: *bytes,
            sha256: sha.clone(),
            symlink: link.map(Into::into),
        })
        .unwrap();
    }
    w.finish(false).unwrap();
    path
}

/// The manifest of [`tree`] as it is.
fn good_entries(dir: &Path) -> Vec<Line> {
    use sha2::Digest as _;
    let sha = sha2::Sha256::digest(std::fs::read(dir.join("tree/a.json")).unwrap());
    let a: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        ("a.json", Some(13), Some(a), None),
        ("l", None, None, Some("a.json")),
        ("sub/b.txt", Some(5), Some(HELLO_SHA256.into()), None),
    ]
}

fn manifest_with(dir: &Path, change: impl FnOnce(&mut Vec<Line>)) -> PathBuf {
    let mut entries = good_entries(dir);
    change(&mut entries);
    manifest_of(dir, &entries)
}

fn run_checks(dir: &Path, directory: &Path, checks: &str) -> StepOutcome {
    let toml = format!(
        "id = \"t\"\nkind = \"files\"\ndirectory = {:?}\n{checks}",
        directory.display().to_string()
    );
    super::super::execute(&step(&toml), &ctx(dir))
}

fn one_check(dir: &Path, fields: &str) -> CheckRecord {
    let root = dir.join("tree");
    let out = run_checks(dir, &root, &format!("[[checks]]\nname = \"c\"\n{fields}"));
    assert_eq!(out.checks.len(), 1, "{:?}", out.error);
    assert_eq!(out.passed, out.checks[0].passed);
    out.checks[0].clone()
}

fn files_match(dir: &Path, manifest: &Path) -> CheckRecord {
    one_check(
        dir,
        &format!(
            "builtin = \"files_match\"\nmanifest = {:?}",
            manifest.display().to_string()
        ),
    )
}

#[test]
fn files_match_passes_on_the_tree_its_manifest_lists() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let m = manifest_with(dir.path(), |_| {});
    let r = files_match(dir.path(), &m);
    assert!(r.passed, "{}", r.detail);
    assert_eq!(r.detail, "3 entries match the backup (18 bytes)");
    assert_eq!(r.actual, Some(json!(3)));
    assert!(log(dir.path()).contains("check c: ok: 3 entries match"));
}

#[test]
fn files_match_fails_on_each_difference_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    type Change = fn(&mut Vec<Line>);
    let cases: [(Change, &str); 6] = [
        (
            |e| {
                e.remove(2);
            },
            "sub/b.txt: extra (not in the backup)",
        ),
        (
            |e| e.push(("gone.txt", Some(1), Some(HELLO_SHA256.into()), None)),
            "gone.txt: missing",
        ),
        (|e| e[2].1 = Some(6), "sub/b.txt: 5 bytes, backup had 6"),
        (
            |e| e[2].2 = Some("0".repeat(64)),
            "sub/b.txt: sha256 differs from the backup's",
        ),
        (
            |e| e[1].3 = Some("elsewhere"),
            "l: symlink to a.json, backup had elsewhere",
        ),
        (
            |e| e[1] = ("l", Some(1), None, None),
            "l: not the same kind of entry as in the backup",
        ),
    ];
    for (change, says) in cases {
        let m = manifest_with(dir.path(), change);
        let r = files_match(dir.path(), &m);
        assert!(!r.passed, "{says}");
        assert_eq!(r.detail, format!("1 problem(s): {says}"));
        assert_eq!(r.actual, Some(json!(1)));
    }
    // A file where the backup had a link.
    let m = manifest_with(dir.path(), |e| e[0].3 = Some("x"));
    assert!(
        files_match(dir.path(), &m)
            .detail
            .contains("a.json: not the same kind")
    );
}

#[test]
fn files_match_needs_a_readable_manifest() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let r = one_check(dir.path(), "builtin = \"files_match\"");
    assert!(!r.passed && r.detail.contains("`files_match` needs `manifest`"));
    let r = files_match(dir.path(), &dir.path().join("none.jsonl"));
    failed_saying(&r, "cannot open manifest");
}

#[test]
fn json_valid_fails_on_a_broken_file_and_on_nothing_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path());
    let r = one_check(dir.path(), "builtin = \"json_valid\"");
    assert!(r.passed, "{}", r.detail);
    assert_eq!(r.detail, "1 JSON files parse");
    assert_eq!(r.actual, Some(json!(1)));
    // The link leads to a file inside the tree: read through.
    let r = one_check(
        dir.path(),
        "builtin = \"json_valid\"\npaths = [\"l\", \"*.json\"]",
    );
    assert_eq!(r.detail, "2 JSON files parse");
    let r = one_check(dir.path(), "builtin = \"json_valid\"\npaths = [\"*.yaml\"]");
    assert!(!r.passed);
    assert_eq!(r.detail, "no file matches *.yaml");
    assert_eq!(r.actual, Some(json!(0)));
    let r = one_check(dir.path(), "builtin = \"json_valid\"\npaths = [\"sub/*\"]");
    assert!(!r.passed);
    assert!(
        r.detail.starts_with("1 problem(s): sub/b.txt: "),
        "{}",
        r.detail
    );
    std::fs::write(dir.path().join("outside.json"), "{}").unwrap();
    symlink(dir.path().join("outside.json"), root.join("out.json")).unwrap();
    let r = one_check(dir.path(), "builtin = \"json_valid\"");
    assert!(!r.passed);
    assert_eq!(
        r.detail,
        "1 problem(s): out.json: not a regular file inside the tree"
    );
    let r = one_check(dir.path(), "builtin = \"json_valid\"\npaths = [\"[\"]");
    assert!(r.detail.contains("bad pattern"), "{}", r.detail);
}

#[test]
fn file_count_holds_inclusive_bounds() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let count =
        |fields: &str| one_check(dir.path(), &format!("builtin = \"file_count\"\n{fields}"));
    // Links are not counted: two regular files.
    let r = count("min = 2\nmax = 2");
    assert!(r.passed, "{}", r.detail);
    assert_eq!(r.detail, "2 files");
    assert_eq!(r.actual, Some(json!(2)));
    assert_eq!(r.expected, Some(json!({"min": 2, "max": 2})));
    let r = count("min = 3");
    assert!(!r.passed);
    assert_eq!(r.detail, "2 files, expected at least 3");
    let r = count("max = 1");
    assert!(!r.passed);
    assert_eq!(r.detail, "2 files, expected at most 1");
    assert_eq!(
        count("min = 3\nmax = 1").detail,
        "2 files, expected at least 3; 2 files, expected at most 1"
    );
    let r = count("paths = [\"sub/**\"]\nmin = 1\nmax = 1");
    assert!(r.passed, "{}", r.detail);
    assert!(count("").passed);
    assert!(
        count("min = 1.5")
            .detail
            .contains("`min` must be a whole number")
    );
    assert!(
        count("max = -1")
            .detail
            .contains("`max` must be a whole number")
    );
}

#[test]
fn a_files_step_needs_a_directory_and_files_builtins() {
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path());
    let out = run_checks(dir.path(), &root.join("sub/b.txt"), "");
    assert!(out.error.unwrap().ends_with("sub/b.txt is not a directory"));
    let r = one_check(dir.path(), "builtin = \"integrity\"");
    assert!(
        r.detail
            .contains("a files step takes builtin files_match, json_valid or file_count")
    );
    let r = one_check(dir.path(), "query = \"SELECT 1\"");
    assert!(!r.passed);
}

#[test]
fn many_problems_are_cut_to_ten_and_counted() {
    let problems: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
    let text = summarize(&problems);
    assert!(text.starts_with("12 problem(s): p0; p1;"), "{text}");
    assert!(text.ends_with("p9; and 2 more"), "{text}");
    assert!(!summarize(&problems[..10]).contains("more"));
}
