//! File-tree drills end to end: real trees, real tar archives (some hand-built to be
//! malicious), the real binary.

use super::*;

/// A backup of `tree/config` and `tree/kb` (without `*.tmp`), its restore, and `verify`
/// (`match`, `json`, `count`: three JSON files under kb), which goes on after a failure.
pub fn tree_playbook(compression: Option<&str>) -> Playbook {
    let output = "{{ drill.workdir }}/b/tree.tar.zst";
    let mut backup = files_backup(&["tree/config", "tree/kb"], output);
    backup = backup.set("exclude", list(&["*.tmp"]));
    if let Some(compression) = compression {
        backup = backup.set("compression", compression);
    }
    let restore = files_restore("{{ steps.backup.path }}", "{{ drill.workdir }}/r");
    let count = builtin("count", "file_count").set("paths", list(&["kb/**/*.json"]));
    let verify = files_check("verify", "{{ steps.restore.target }}")
        .set("continue_on_failure", true)
        .checks([
            builtin("match", "files_match").set("manifest", "{{ steps.backup.manifest }}"),
            builtin("json", "json_valid"),
            count.set("min", 3).set("max", 3),
        ]);
    pb("t").step([backup, restore, verify])
}

/// A drill of `playbook` with the tree: five files (one left out), a symlink.
pub fn tree_drill(playbook: Playbook) -> Drill {
    let d = playbook
        .drill()
        .file("tree/config/app.toml", b"port = 8080\n")
        .file("tree/kb/index.json", br#"{"articles": 2}"#)
        .file(
            "tree/kb/a/1.json",
            br#"{"id": 1, "body": "restart the worker"}"#,
        )
        .file(
            "tree/kb/a/2.json",
            br#"{"id": 2, "body": "rotate the keys"}"#,
        )
        .file("tree/kb/scratch.tmp", b"left out");
    std::os::unix::fs::symlink("a/1.json", d.path().join("tree/kb/latest")).unwrap();
    d
}

#[test]
fn a_tree_round_trips_with_every_compression() {
    for compression in [None, Some("gzip"), Some("none")] {
        let out = tree_drill(tree_playbook(compression)).run().expect_code(0);
        let backup = out.step("backup");
        assert_eq!(backup.output("file_count"), 4, "{compression:?}");
        assert_eq!(backup.output("symlink_count"), 1);
        assert_eq!(out.output("restore", "file_count"), 4);
        let verify = out.step("verify");
        let matched = verify.check("match");
        assert_eq!(matched["detail"], "5 entries match the backup (102 bytes)");
        assert_eq!(verify.check("json")["detail"], "3 JSON files parse");
        assert_eq!(verify.check("count")["actual"], 3);
    }
}

#[test]
fn the_manifest_lists_every_file_with_its_sha256() {
    let d = tree_drill(tree_playbook(None)).arg("--keep-workdir");
    let out = d.run().expect_code(0);
    let _kept = out.kept_workdir();
    let path = out.output("backup", "manifest");
    let manifest = std::fs::read_to_string(path.as_str().unwrap()).unwrap();
    let lines: Vec<Value> = manifest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["format"], "restore-drill-files/v1");
    let entry = |path: &str| lines.iter().find(|l| l["path"] == path).cloned();
    let app = entry("config/app.toml").expect("app.toml listed");
    assert_eq!(app["bytes"], 12);
    assert_eq!(app["sha256"], sha256_hex(b"port = 8080\n"));
    assert!(
        !manifest.contains("scratch.tmp"),
        "excluded file archived:\n{manifest}"
    );
    assert_eq!(entry("kb/latest").unwrap()["symlink"], "a/1.json");
}

#[test]
fn a_corrupted_archive_fails_its_restore() {
    // Overwrite bytes in the middle of the compressed archive (the zstd frame checksum
    // and tar header checksums must catch it) for each compression.
    for (compression, name) in [(None, "zstd"), (Some("gzip"), "gzip")] {
        let corrupted = tree_playbook(compression).before("restore", corrupt_backup());
        let out = corrupted
            .drill()
            .file("tree/config/app.toml", &b"port = 8080\n".repeat(2000))
            .file("tree/kb/index.json", br#"{"articles": [1, 2, 3]}"#)
            .file(
                "tree/kb/big.json",
                format!("[{}0]", "1234567, ".repeat(20000)).as_bytes(),
            )
            .run()
            .expect_code(1);
        let restore = out.step("restore");
        restore.failed();
        let error = restore.message();
        assert!(
            error.contains("corrupt")
                || error.contains("checksum")
                || error.contains("failed to read"),
            "{name}: {error}"
        );
        out.step("verify").status("not_run");
    }
}

#[test]
fn a_missing_changed_or_extra_file_fails_files_match() {
    let tamper = exec(
        "tamper",
        "cd '{{ steps.restore.target }}' && rm kb/a/2.json && printf 'port = 9090\n' > config/app.toml && echo x > config/extra.txt",
    );
    let out = tree_drill(tree_playbook(None).after("restore", tamper)).run();
    let verify = out.expect_code(1).step("verify");
    let matched = verify.check("match");
    matched.failed_with("kb/a/2.json: missing");
    matched
        .says("config/app.toml: sha256 differs")
        .says("config/extra.txt: extra");
    // The other checks still ran and judged for themselves.
    verify.check("count").failed();
    verify.check("json").passed();
}

#[test]
fn a_truncated_json_file_fails_json_valid() {
    // The truncated file is in the source: the backup is faithful (files_match passes),
    // and json_valid is what catches the damage.
    let d = tree_drill(tree_playbook(None)).file("tree/kb/a/2.json", br#"{"id": 2, "body": "rot"#);
    let verify = d.run().expect_code(1).step("verify");
    verify.check("match").passed();
    verify
        .check("json")
        .failed_with("kb/a/2.json: EOF while parsing");
}

#[test]
fn file_count_fails_outside_its_bounds() {
    let d = tree_drill(tree_playbook(None)).file("tree/kb/a/3.json", b"{}");
    let count = d.run().expect_code(1).check("count");
    count.failed();
    assert_eq!(count["detail"], "4 files, expected at most 3");
}

/// A raw tar entry: the name is written straight into the header, bypassing the tar
/// crate's own refusal of `..` and absolute names, as an attacker's tool would.
fn raw_entry(out: &mut Vec<u8>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
}

/// Name, type, link target, data.
type RawEntry<'a> = (&'a str, tar::EntryType, &'a str, &'a [u8]);

fn malicious_restore(entries: &[RawEntry<'_>]) -> Outcome {
    let mut tar_bytes = Vec::new();
    raw_entry(
        &mut tar_bytes,
        "ok.txt",
        tar::EntryType::Regular,
        "",
        b"fine\n",
    );
    for (name, kind, link, data) in entries {
        raw_entry(&mut tar_bytes, name, *kind, link, data);
    }
    tar_bytes.extend_from_slice(&[0u8; 1024]);
    let restore = files_restore("evil.tar", "out/inner");
    let d = pb("t").step(restore).drill().file("evil.tar", &tar_bytes);
    std::fs::create_dir_all(d.path().join("outside")).unwrap();
    d.run().expect_code(1)
}

#[test]
fn entries_escaping_the_target_are_refused_and_nothing_lands_outside() {
    use tar::EntryType::{Link, Regular, Symlink};
    let cases: &[(&str, &[RawEntry<'_>])] = &[
        ("`..`", &[("../escape", Regular, "", b"pwned")]),
        ("`..` deeper", &[("a/../../escape", Regular, "", b"pwned")]),
        (
            "absolute path",
            &[("/tmp/restore-drill-escape-test", Regular, "", b"pwned")],
        ),
        (
            "symlink out, then a file through it",
            &[
                ("evil", Symlink, "../../outside", b""),
                ("evil/pwned", Regular, "", b"pwned"),
            ],
        ),
        ("absolute symlink", &[("evil", Symlink, "/tmp", b"")]),
        (
            "symlink climbing through a name",
            &[
                ("sub/s", Symlink, "..", b""),
                ("sub/evil", Symlink, "s/../..", b""),
            ],
        ),
        (
            "hard link out",
            &[("hl", Link, "../../outside/secret", b"")],
        ),
    ];
    for (what, entries) in cases {
        let out = malicious_restore(entries);
        out.step("restore").says("refusing entry");
        let root = out.path();
        assert_eq!(
            listing(&root.join("outside")),
            Vec::<String>::new(),
            "{what}: wrote outside"
        );
        let out_dir = listing(&root.join("out"));
        assert!(
            out_dir.iter().all(|p| p.starts_with("inner")),
            "{what}: wrote beside the target: {out_dir:?}"
        );
        assert!(
            !Path::new("/tmp/restore-drill-escape-test").exists(),
            "{what}"
        );
        // The target was created by the drill outside its work directory: torn down.
        assert!(
            !root.join("out/inner").exists(),
            "{what}: target left behind"
        );
        let resources = out.record()["resources"].to_string();
        assert!(resources.contains("out/inner"), "{what}: {resources}");
    }
}

#[test]
fn a_symlink_inside_the_target_is_restored() {
    use tar::EntryType::{Regular, Symlink};
    let mut tar_bytes = Vec::new();
    raw_entry(&mut tar_bytes, "a/b.txt", Regular, "", b"fine\n");
    raw_entry(&mut tar_bytes, "a/c/link", Symlink, "../b.txt", b"");
    tar_bytes.extend_from_slice(&[0u8; 1024]);
    let read = exec("read", "cat out/a/c/link > seen.txt");
    let playbook = pb("t").step(files_restore("ok.tar", "out")).step(read);
    let out = playbook.drill().file("ok.tar", &tar_bytes).run();
    assert_eq!(out.expect_code(0).file("seen.txt"), "fine\n");
}

#[test]
fn a_restore_into_the_backed_up_tree_or_a_non_empty_dir_is_refused() {
    for (target, why) in [
        ("tree/kb/restored", "a source of this playbook"),
        ("tree", "not empty"),
    ] {
        let into = tree_playbook(None).edit("restore", |s| s.set("target_dir", target));
        let d = into.drill().file("tree/config/app.toml", b"port = 8080\n");
        let d = d.file("tree/kb/index.json", b"{}");
        d.known_only_to_the_run(target);
        let out = d.run().expect_code(1);
        out.step("restore").failed_with(why);
    }
}

#[test]
fn files_checks_belong_to_files_steps() {
    let files = files_check("v", ".").checks([
        builtin("wrong", "integrity"),
        builtin("count", "file_count"),
    ]);
    let sql = sql("s", "sqlite", "x.db").checks(builtin("misplaced", "json_valid"));
    let out = pb("t").step([files, sql]).drill().validate().expect_code(2);
    out.stderr_has("check `wrong` of step `v` is not a files check");
    out.stderr_has("`file_count` needs `min` or `max`");
    out.stderr_has("check `misplaced` of step `s` is a files check");
}

#[test]
fn the_shipped_files_playbook_runs_without_a_server() {
    let playbook = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/files.toml");
    let text = std::fs::read_to_string(&playbook).unwrap();
    Drill::new(&text).validate().expect_code(0);
    let out = Drill::new(&text).run().expect_code(0);
    assert_eq!(out.output("backup", "file_count"), 203);
    out.status("passed");
}

#[test]
fn init_scaffolds_files_and_mysql_playbooks_that_validate() {
    let dir = tempfile::tempdir().unwrap();
    for engine in ["files", "mysql"] {
        restore_drill(dir.path(), &["init", "--engine", engine]).expect_code(0);
        let file = format!("{engine}-drill.toml");
        restore_drill(dir.path(), &["validate", &file]).expect_code(0);
    }
}

#[test]
fn an_archive_made_by_gnu_tar_restores() {
    // Interoperability: a pax-format, gzip-compressed archive from GNU tar.
    let verify = files_check("verify", "{{ steps.restore.target }}").checks([
        builtin("json", "json_valid"),
        builtin("count", "file_count").set("min", 2).set("max", 2),
    ]);
    let restore = files_restore("gnu.tgz", "{{ drill.workdir }}/r");
    let d = pb("t").step([restore, verify]).drill();
    let d = d
        .file("src/a.txt", b"hi\n")
        .file("src/deep/b.json", br#"{"a": 1}"#);
    std::os::unix::fs::symlink("a.txt", d.path().join("src/link")).unwrap();
    let status = std::process::Command::new("tar")
        .current_dir(d.path())
        .args(["--format=pax", "-czf", "gnu.tgz", "src"])
        .status()
        .expect("GNU tar");
    assert!(status.success());
    let restore = d.run().expect_code(0).step("restore");
    assert_eq!(restore.output("file_count"), 2);
    assert_eq!(restore.output("symlink_count"), 1);
}

/// A files backup of `paths` (relative to the drill's directory) into `out/kb.tar.zst`,
/// over `a/kb/x.json` and a different `b/kb/x.json`, and the files left in `out`.
fn kb_backup(paths: &[&str], code: i32) -> (Outcome, Vec<String>) {
    let d = pb("t")
        .step(files_backup(paths, "out/kb.tar.zst"))
        .drill()
        .file("a/kb/x.json", b"A-x")
        .file("b/kb/x.json", b"B-x")
        .file("b/kb/y.json", b"B-y");
    let out = d.run().expect_code(code);
    let left = std::fs::read_dir(out.path().join("out"))
        .map(|dir| {
            let names = dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
            names.collect()
        })
        .unwrap_or_default();
    (out, left)
}

/// Two different files that would get one name in the archive fail the backup, naming
/// both and the name, and leave nothing behind (one of them used to be left out silently).
#[test]
fn two_files_on_one_archive_name_fail_the_backup() {
    let (out, left) = kb_backup(&["a/kb", "b/kb/*"], 1);
    out.step("backup")
        .failed()
        .says("a/kb/x.json")
        .says("b/kb/x.json")
        .says("archived as `kb/x.json`");
    assert!(left.is_empty(), "left in out/: {left:?}");
}

/// The same file matched by two patterns is archived once, as before.
#[test]
fn one_file_matched_twice_is_archived_once() {
    let (out, left) = kb_backup(&["b/kb/x*", "b/kb/*.json"], 0);
    assert_eq!(out.output("backup", "file_count"), 2);
    assert!(left.contains(&"kb.tar.zst".to_string()), "{left:?}");
}

/// `kb/**` is kb and everything below it, as in a shell with globstar: a files backup
/// archives kb's own files too (the glob crate's `kb/**` yields only the folders below
/// kb, so `kb/top.json` was silently left out of the backup), a checksum hashes every
/// file (it found none), and kb itself is a source that no restore may write into.
#[test]
fn a_trailing_double_star_is_the_folder_and_everything_below() {
    let sums = step("sums", "checksum")
        .set("files", list(&["kb/**"]))
        .set("manifest", "out/SUMS");
    let d = pb("t")
        .step([files_backup(&["kb/**"], "out/kb.tar.zst"), sums])
        .drill()
        .file("kb/top.json", b"{}")
        .file("kb/a/deep.json", b"[]");
    let out = d.run().expect_code(0);
    assert_eq!(out.output("backup", "file_count"), 2);
    let hashed = out.output("sums", "files");
    assert_eq!(hashed.as_object().map(|f| f.len()), Some(2), "{hashed}");
    let into_kb = sqlite_restore("{{ steps.backup.path }}", "kb/restored.db");
    let d = pb("t")
        .step([files_backup(&["kb/**"], "out/kb.tar.zst"), into_kb])
        .drill()
        .file("kb/a/deep.json", b"[]");
    let out = d.run().expect_code(1);
    out.step("restore")
        .failed()
        .says("lies inside kb, a source");
}
