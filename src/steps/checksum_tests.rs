//! The `checksum` step on real files: what a manifest holds, what passes and what fails.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::super::testing::{
    assert_between, assert_has, ctx, ctx_with_progress, log, relative_tempdir, step, toml_path,
};
use super::*;

const HELLO_SHA256: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
const HELLO_BLAKE3: &str = "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f";

fn run_step(dir: &Path, fields: &str) -> StepOutcome {
    super::super::execute(
        &step(&format!("id = \"t\"\nkind = \"checksum\"\n{fields}")),
        &ctx(dir),
    )
}

fn toml_list(paths: &[&Path]) -> String {
    let items: Vec<String> = paths
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    format!("[{}]", items.join(", "))
}

/// `a` (hello), `b` (world) in a fresh folder.
fn two_files() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, "hello").unwrap();
    std::fs::write(&b, "world").unwrap();
    (dir, a, b)
}

fn write_manifest_of(dir: &Path, files: &[&Path], algorithm: &str) -> (PathBuf, StepOutcome) {
    let manifest = dir.join("sums");
    let out = run_step(
        dir,
        &format!(
            "files = {}\nmanifest = {:?}\nalgorithm = {algorithm:?}",
            toml_list(files),
            manifest.display().to_string()
        ),
    );
    (manifest, out)
}

fn verify(dir: &Path, manifest: &Path, files: Option<&[&Path]>) -> StepOutcome {
    let files = files.map_or(String::new(), |f| format!("files = {}\n", toml_list(f)));
    run_step(
        dir,
        &format!("{files}verify = {:?}", manifest.display().to_string()),
    )
}

#[test]
fn a_written_manifest_holds_each_file_with_its_hash_and_size() {
    let (dir, a, b) = two_files();
    let (manifest, out) = write_manifest_of(dir.path(), &[&a, &b], "sha256");
    assert!(out.passed, "{:?}", out.error);
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        format!("{HELLO_SHA256}  {}", a.display())
    );
    assert_eq!(text.lines().count(), 2);
    assert_eq!(out.outputs["bytes"], json!(10));
    assert_eq!(out.outputs["algorithm"], json!("sha256"));
    assert_eq!(
        out.outputs["files"][a.display().to_string()],
        json!(HELLO_SHA256)
    );
    assert_eq!(out.files.len(), 2);
    assert_eq!(out.files[0].bytes, 5);
    assert_eq!(out.files[0].sha256.as_deref(), Some(HELLO_SHA256));
    assert_eq!(out.files[0].blake3, None);
    assert_eq!(out.files[0].step, "t");
    assert!(log(dir.path()).contains(HELLO_SHA256));
}

#[test]
fn blake3_manifests_hold_blake3_hashes() {
    let (dir, a, _) = two_files();
    let (manifest, out) = write_manifest_of(dir.path(), &[&a], "blake3");
    assert!(out.passed, "{:?}", out.error);
    assert_eq!(out.outputs["algorithm"], json!("blake3"));
    assert_eq!(out.files[0].blake3.as_deref(), Some(HELLO_BLAKE3));
    assert_eq!(out.files[0].sha256, None);
    assert!(
        std::fs::read_to_string(&manifest)
            .unwrap()
            .starts_with(HELLO_BLAKE3)
    );
    let fields = format!("verify = {}\nalgorithm = \"blake3\"", toml_path(&manifest));
    let checked = run_step(dir.path(), &fields);
    assert!(checked.passed, "{:?}", checked.error);
    assert_eq!(checked.outputs["algorithm"], json!("blake3"));
}

/// A blake3 manifest is verified with blake3 whenever the manifest says so, by its name
/// or by its tags, without `algorithm` on the verifying step (intact: green; changed:
/// red); what contradicts itself is an error, never a guess.
#[test]
fn a_blake3_manifest_is_verified_with_blake3_without_being_told() {
    let (dir, a, b) = two_files();
    let verify_text = |name: &str, text: &str, extra: &str| {
        let manifest = dir.path().join(name);
        std::fs::write(&manifest, text).unwrap();
        let m = manifest.display().to_string();
        run_step(dir.path(), &format!("verify = {m:?}\n{extra}"))
    };
    let (a_, b_) = (a.display(), b.display());
    let plain = format!("{HELLO_BLAKE3}  {a_}\n");
    let tagged = format!("BLAKE3 ({a_}) = {HELLO_BLAKE3}\n");
    for (name, text) in [("B3SUMS", &plain), ("backup.b3", &plain), ("sums", &tagged)] {
        let out = verify_text(name, text, "");
        assert!(out.passed, "{name}: {:?}", out.error);
        assert_eq!(out.outputs["algorithm"], json!("blake3"), "{name}");
        assert_eq!(out.outputs["verified"], json!(1), "{name}");
    }
    // `sha256sum --tag` lines are read as sha256 (the tag says so, whatever the name).
    let sha_tagged = format!("SHA256 ({a_}) = {HELLO_SHA256}\n");
    let out = verify_text("sums.txt", &sha_tagged, "");
    assert!(out.passed, "{:?}", out.error);
    assert_eq!(out.outputs["algorithm"], json!("sha256"));
    assert_eq!(out.outputs["verified"], json!(1));
    // The same hash for another file: a real mismatch is still red.
    let wrong = format!("{HELLO_BLAKE3}  {b_}\n");
    let out = verify_text("B3SUMS", &wrong, "");
    assert!(!out.passed);
    assert_has(out.error.as_deref().unwrap(), "checksum mismatch");
    // Contradictions name both sides.
    for (name, text, extra) in [
        ("B3SUMS", &plain, "algorithm = \"sha256\""),
        ("SHA256SUMS", &tagged, ""),
    ] {
        let out = verify_text(name, text, extra);
        let error = out.error.unwrap_or_default();
        assert!(
            error.contains("says blake3") || error.contains("says sha256"),
            "{name}: {error}"
        );
    }
    let mixed = format!("{tagged}SHA256 ({b_}) = {HELLO_SHA256}\n");
    assert!(!verify_text("sums", &mixed, "").passed);
    // Written under a blake3 name without `algorithm`: blake3, as the name says.
    let written = dir.path().join("out.b3sum");
    let m = written.display().to_string();
    let out = run_step(
        dir.path(),
        &format!("files = [{:?}]\nmanifest = {m:?}", a_.to_string()),
    );
    assert_eq!(out.outputs["algorithm"], json!("blake3"), "{:?}", out.error);
}

#[test]
fn a_good_manifest_verifies_every_file() {
    let (dir, a, b) = two_files();
    let (manifest, _) = write_manifest_of(dir.path(), &[&a, &b], "sha256");
    let out = verify(dir.path(), &manifest, None);
    assert!(out.passed, "{:?}", out.error);
    assert_eq!(out.outputs["verified"], json!(2));
    assert_eq!(out.outputs["failed"], json!(0));
    assert_eq!(out.outputs["bytes"], json!(10));
    assert_eq!(out.files.len(), 2);
    assert!(log(dir.path()).contains(&format!("{}: OK", b.display())));
}

#[test]
fn a_changed_file_fails_naming_it() {
    let (dir, a, b) = two_files();
    let (manifest, _) = write_manifest_of(dir.path(), &[&a, &b], "sha256");
    std::fs::write(&b, "w0rld").unwrap();
    let out = verify(dir.path(), &manifest, None);
    assert!(!out.passed);
    let error = out.error.unwrap();
    assert_between(&error, "checksum verification failed: ", "");
    assert_has(&error, &format!("{}: checksum mismatch", b.display()));
    assert!(!error.contains(&format!("{}:", a.display())), "{error}");
    assert_eq!(out.outputs["verified"], json!(1));
    assert_eq!(out.outputs["failed"], json!(1));
    assert!(out.log_tail.unwrap().contains("checksum mismatch"));
}

#[test]
fn a_missing_file_fails_naming_it() {
    let (dir, a, b) = two_files();
    let (manifest, _) = write_manifest_of(dir.path(), &[&a, &b], "sha256");
    std::fs::remove_file(&a).unwrap();
    let out = verify(dir.path(), &manifest, None);
    assert!(!out.passed);
    assert!(
        out.error
            .unwrap()
            .contains(&format!("cannot open {}", a.display()))
    );
    assert_eq!(out.outputs["failed"], json!(1));
}

#[test]
fn files_narrow_the_verification_to_the_files_listed() {
    let (dir, a, b) = two_files();
    let (manifest, _) = write_manifest_of(dir.path(), &[&a, &b], "sha256");
    // b is broken, but only a is asked for.
    std::fs::write(&b, "w0rld").unwrap();
    let out = verify(dir.path(), &manifest, Some(&[&a]));
    assert!(out.passed, "{:?}", out.error);
    assert_eq!(out.outputs["verified"], json!(1));
    assert_eq!(out.outputs["bytes"], json!(5));
    let out = verify(dir.path(), &manifest, Some(&[&b]));
    assert!(!out.passed);
    assert_eq!(out.outputs["verified"], json!(0));
}

/// Issue 16, item 1: a listed file the manifest does not list fails, naming it.
#[test]
fn a_listed_file_missing_from_the_manifest_fails_naming_it() {
    let (dir, a, b) = two_files();
    let (manifest, _) = write_manifest_of(dir.path(), &[&a], "sha256");
    let out = verify(dir.path(), &manifest, Some(&[&a, &b]));
    assert!(!out.passed);
    let error = out.error.unwrap();
    assert!(
        error.contains(&format!(
            "{}: not in manifest {}",
            b.display(),
            manifest.display()
        )),
        "{error}"
    );
    assert_eq!(out.outputs["verified"], json!(1));
    assert_eq!(out.outputs["failed"], json!(1));
}

/// Issue 16, item 1: a relative path in the manifest and an absolute one in `files` are
/// the same file, so a corrupted file fails (it passed, having verified nothing).
#[test]
fn a_relative_manifest_path_matches_an_absolute_listed_path() {
    let (dir, rel) = relative_tempdir();
    let file = dir.path().join("data.bin");
    std::fs::write(&file, "hello").unwrap();
    let manifest = dir.path().join("sums");
    let relative = rel.join("data.bin");
    std::fs::write(
        &manifest,
        format!("{HELLO_SHA256}  {}\n", relative.display()),
    )
    .unwrap();
    let good = verify(dir.path(), &manifest, Some(&[&file]));
    assert!(good.passed, "{:?}", good.error);
    assert_eq!(good.outputs["verified"], json!(1));
    std::fs::write(&file, "hellO").unwrap();
    let bad = verify(dir.path(), &manifest, Some(&[&file]));
    assert!(!bad.passed);
    assert!(bad.error.unwrap().contains("checksum mismatch"));
    // And the other way round, through `..` too.
    let dotdot = rel.join("x/../data.bin");
    std::fs::create_dir(dir.path().join("x")).unwrap();
    std::fs::write(&manifest, format!("{HELLO_SHA256}  {}\n", file.display())).unwrap();
    let bad = verify(dir.path(), &manifest, Some(&[&dotdot]));
    assert!(!bad.passed);
    assert_eq!(bad.outputs["verified"], json!(0));
    assert_eq!(bad.outputs["failed"], json!(1));
}

#[test]
fn a_manifest_that_is_missing_empty_or_malformed_fails() {
    let (dir, a, _) = two_files();
    let missing = dir.path().join("nope");
    let out = verify(dir.path(), &missing, None);
    assert!(
        out.error
            .unwrap()
            .contains(&format!("cannot read manifest {}", missing.display()))
    );
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n\n").unwrap();
    let out = verify(dir.path(), &empty, Some(&[&a]));
    assert!(out.error.unwrap().contains("lists no files"));
    let short = dir.path().join("short");
    std::fs::write(
        &short,
        format!("{}  {}\n", &HELLO_SHA256[..63], a.display()),
    )
    .unwrap();
    assert!(
        verify(dir.path(), &short, None)
            .error
            .unwrap()
            .contains("line 1 has no 64-digit hash")
    );
}

#[test]
fn a_checksum_step_needs_manifest_or_verify_and_files_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_step(dir.path(), "");
    assert!(out.error.unwrap().contains("needs `manifest`"));
    let out = run_step(dir.path(), "manifest = \"m\"");
    assert!(out.error.unwrap().contains("needs `files`"));
    let out = run_step(
        dir.path(),
        &format!(
            "files = [\"{}/none*\"]\nmanifest = \"m\"",
            dir.path().display()
        ),
    );
    assert!(out.error.unwrap().contains("no file matches"));
}

#[test]
fn exclude_leaves_files_out() {
    let (dir, a, b) = two_files();
    let glob = format!("{}/*", dir.path().display());
    let manifest = dir.path().join("out/sums");
    let out = run_step(
        dir.path(),
        &format!(
            "files = [{glob:?}]\nexclude = [{:?}]\nmanifest = {:?}",
            b.display().to_string(),
            manifest.display().to_string()
        ),
    );
    assert!(out.passed, "{:?}", out.error);
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains(&a.display().to_string()) && !text.contains(&b.display().to_string()));
}

#[test]
fn parsing_accepts_binary_mode_and_uppercase() {
    let upper = HELLO_SHA256.to_uppercase();
    let (m, tag) = parse_manifest(&format!("{upper} *x\n\n{HELLO_SHA256}  y\n")).unwrap();
    assert_eq!(tag, None);
    assert_eq!(
        m,
        vec![
            (HELLO_SHA256.to_string(), PathBuf::from("x")),
            (HELLO_SHA256.to_string(), PathBuf::from("y"))
        ]
    );
    assert!(
        parse_manifest("nospace")
            .unwrap_err()
            .to_string()
            .contains("line 1")
    );
    assert!(parse_manifest(&format!("{}  x", "g".repeat(64))).is_err());
}

#[test]
fn hashing_reads_every_byte_across_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    // More than one read chunk, not a multiple of it.
    let data: Vec<u8> = (0..CHUNK + 12345).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let cancel = Cancel::default();
    let mut seen = 0;
    let (sha, n) = hash_file(&path, Algorithm::Sha256, &cancel, &mut |b| seen += b).unwrap();
    assert_eq!(n, data.len() as u64);
    assert_eq!(seen, n);
    let want = <sha2::Sha256 as sha2::Digest>::digest(&data);
    assert_eq!(sha, format!("{want:x}"));
    let mut seen = 0;
    let (b3, n) = hash_file(&path, Algorithm::Blake3, &cancel, &mut |b| seen += b).unwrap();
    assert_eq!((n, seen), (data.len() as u64, data.len() as u64));
    assert_eq!(b3, blake3::hash(&data).to_hex().to_string());
}

/// The progress bar ends at the total, writing and verifying.
#[test]
fn progress_counts_up_to_the_total() {
    let (dir, a, b) = two_files();
    let fields = format!(
        "files = {}\nmanifest = {:?}",
        toml_list(&[&a, &b]),
        dir.path().join("sums").display().to_string()
    );
    let write = step(&format!("id = \"t\"\nkind = \"checksum\"\n{fields}"));
    let (c, seen) = ctx_with_progress(dir.path());
    assert!(super::super::execute(&write, &c).passed);
    let steps: Vec<(u64, u64)> = seen.try_iter().map(|p| (p.done, p.total)).collect();
    assert_eq!(steps, [(5, 10), (10, 10)]);
    let check = step(&format!(
        "id = \"t\"\nkind = \"checksum\"\nverify = {:?}",
        dir.path().join("sums").display().to_string()
    ));
    let (c, seen) = ctx_with_progress(dir.path());
    assert!(super::super::execute(&check, &c).passed);
    let steps: Vec<(u64, u64)> = seen.try_iter().map(|p| (p.done, p.total)).collect();
    assert_eq!(steps, [(5, 10), (10, 10)]);
}

/// BLAKE3 maps the file a window at a time: a (sparse) file one byte over a window is
/// hashed whole, the progress counting every byte.
#[test]
fn blake3_hashes_across_windows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse");
    let len = WINDOW + 1;
    std::fs::File::create(&path).unwrap().set_len(len).unwrap();
    let mut seen = Vec::new();
    let (hash, n) = hash_file(&path, Algorithm::Blake3, &Cancel::default(), &mut |b| {
        seen.push(b)
    })
    .unwrap();
    assert_eq!(n, len);
    assert_eq!(seen, [WINDOW, 1]);
    let mut expected = blake3::Hasher::new();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(WINDOW >> 20) {
        expected.update(&zeros);
    }
    expected.update(&[0]);
    assert_eq!(hash, expected.finalize().to_hex().to_string());
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let (hash, n) = hash_file(&empty, Algorithm::Blake3, &Cancel::default(), &mut |_| {}).unwrap();
    assert_eq!((hash, n), (blake3::hash(b"").to_hex().to_string(), 0));
}

#[test]
fn a_cancelled_step_stops_hashing() {
    let (_dir, a, _) = two_files();
    let cancel = Cancel::default();
    cancel.stop(std::time::Duration::ZERO);
    for algorithm in [Algorithm::Sha256, Algorithm::Blake3] {
        let err = hash_file(&a, algorithm, &cancel, &mut |_| {}).unwrap_err();
        assert_eq!(err.to_string(), "cancelled");
    }
}
