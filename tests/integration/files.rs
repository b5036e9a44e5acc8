//! File-tree drills end to end: real trees, real tar archives (some hand-built to be
//! malicious), the real binary.

use super::*;
use sha2::Digest as _;

const BASE: &str = r#"
version = 1
[drill]
name = "t"
[[steps]]
id = "backup"
kind = "backup"
engine = "files"
paths = ["tree/config", "tree/kb"]
exclude = ["*.tmp"]
#COMPRESSION#
output = "{{ drill.workdir }}/b/tree.tar.zst"
[[steps]]
id = "restore"
kind = "restore"
engine = "files"
from = "{{ steps.backup.path }}"
target_dir = "{{ drill.workdir }}/r"
#AFTER_RESTORE#
[[steps]]
id = "verify"
kind = "files"
directory = "{{ steps.restore.target }}"
continue_on_failure = true
[[steps.checks]]
name = "match"
builtin = "files_match"
manifest = "{{ steps.backup.manifest }}"
[[steps.checks]]
name = "json"
builtin = "json_valid"
[[steps.checks]]
name = "count"
builtin = "file_count"
paths = ["kb/**/*.json"]
min = 3
max = 3
"#;

pub fn tree_drill(compression: &str, after_restore: &str) -> Drill {
    let toml = BASE
        .replace("#COMPRESSION#", compression)
        .replace("#AFTER_RESTORE#", after_restore);
    let d = Drill::new(&toml)
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

fn check(step: &Value, name: &str) -> Value {
    step["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
        .clone()
}

#[test]
fn a_tree_round_trips_with_every_compression() {
    for compression in ["", "compression = \"gzip\"", "compression = \"none\""] {
        let out = tree_drill(compression, "").run().expect_code(0);
        let backup = out.step("backup");
        assert_eq!(backup["outputs"]["file_count"], 4, "{compression}");
        assert_eq!(backup["outputs"]["symlink_count"], 1);
        assert_eq!(out.step("restore")["outputs"]["file_count"], 4);
        let verify = out.step("verify");
        assert_eq!(
            check(&verify, "match")["detail"],
            "5 entries match the backup (102 bytes)"
        );
        assert_eq!(check(&verify, "json")["detail"], "3 JSON files parse");
        assert_eq!(check(&verify, "count")["actual"], 3);
    }
}

#[test]
fn the_manifest_lists_every_file_with_its_sha256() {
    let out = tree_drill("", "")
        .arg("--keep-workdir")
        .run()
        .expect_code(0);
    let manifest =
        std::fs::read_to_string(out.step("backup")["outputs"]["manifest"].as_str().unwrap())
            .unwrap();
    let lines: Vec<Value> = manifest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["format"], "restore-drill-files/v1");
    let app = lines
        .iter()
        .find(|l| l["path"] == "config/app.toml")
        .expect("app.toml listed");
    assert_eq!(app["bytes"], 12);
    let want: String = sha2::Sha256::digest(b"port = 8080\n")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(app["sha256"], want);
    assert!(
        !manifest.contains("scratch.tmp"),
        "excluded file archived:\n{manifest}"
    );
    assert_eq!(
        lines.iter().find(|l| l["path"] == "kb/latest").unwrap()["symlink"],
        "a/1.json"
    );
}

#[test]
fn a_corrupted_archive_fails_its_restore() {
    // Overwrite bytes in the middle of the compressed archive (the zstd frame checksum
    // and tar header checksums must catch it) for each compression.
    for (compression, name) in [("", "zstd"), ("compression = \"gzip\"", "gzip")] {
        let corrupt = r#"
[[steps]]
id = "corrupt"
kind = "exec"
phase = "backup"
run = "f='{{ steps.backup.path }}'; n=$(stat -c %s \"$f\"); printf 'XXXXXXXXXXXXXXXX' | dd of=\"$f\" bs=1 seek=$((n / 2)) conv=notrunc 2>/dev/null"
"#;
        let toml = BASE
            .replace("#COMPRESSION#", compression)
            .replace("#AFTER_RESTORE#", "");
        let toml = toml.replace(
            "[[steps]]\nid = \"restore\"",
            &format!("{corrupt}[[steps]]\nid = \"restore\""),
        );
        let d = Drill::new(&toml)
            .file("tree/config/app.toml", &b"port = 8080\n".repeat(2000))
            .file("tree/kb/index.json", br#"{"articles": [1, 2, 3]}"#)
            .file(
                "tree/kb/big.json",
                format!("[{}0]", "1234567, ".repeat(20000)).as_bytes(),
            );
        let out = d.run().expect_code(1);
        let restore = out.step("restore");
        assert_eq!(restore["status"], "failed", "{name}: {restore}");
        let error = restore["error"].as_str().unwrap();
        assert!(
            error.contains("corrupt")
                || error.contains("checksum")
                || error.contains("failed to read"),
            "{name}: {error}"
        );
        assert_eq!(out.step("verify")["status"], "not_run");
    }
}

#[test]
fn a_missing_changed_or_extra_file_fails_files_match() {
    let tamper = r#"
[[steps]]
id = "tamper"
kind = "exec"
run = "cd '{{ steps.restore.target }}' && rm kb/a/2.json && printf 'port = 9090\n' > config/app.toml && echo x > config/extra.txt"
"#;
    let out = tree_drill("", tamper).run().expect_code(1);
    let m = check(&out.step("verify"), "match");
    assert_eq!(m["passed"], false);
    let detail = m["detail"].as_str().unwrap();
    assert!(detail.contains("kb/a/2.json: missing"), "{detail}");
    assert!(
        detail.contains("config/app.toml: sha256 differs"),
        "{detail}"
    );
    assert!(detail.contains("config/extra.txt: extra"), "{detail}");
    // The other checks still ran and judged for themselves.
    assert_eq!(check(&out.step("verify"), "count")["passed"], false);
    assert_eq!(check(&out.step("verify"), "json")["passed"], true);
}

#[test]
fn a_truncated_json_file_fails_json_valid() {
    // The truncated file is in the source: the backup is faithful (files_match passes),
    // and json_valid is what catches the damage.
    let out = tree_drill("", "")
        .file("tree/kb/a/2.json", br#"{"id": 2, "body": "rot"#)
        .run()
        .expect_code(1);
    let verify = out.step("verify");
    assert_eq!(check(&verify, "match")["passed"], true);
    let json = check(&verify, "json");
    assert_eq!(json["passed"], false);
    assert!(
        json["detail"]
            .as_str()
            .unwrap()
            .contains("kb/a/2.json: EOF while parsing"),
        "{json}"
    );
}

#[test]
fn file_count_fails_outside_its_bounds() {
    let out = tree_drill("", "")
        .file("tree/kb/a/3.json", b"{}")
        .run()
        .expect_code(1);
    let count = check(&out.step("verify"), "count");
    assert_eq!(count["passed"], false);
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
    let toml = r#"
version = 1
[drill]
name = "t"
[[steps]]
id = "restore"
kind = "restore"
engine = "files"
from = "evil.tar"
target_dir = "out/inner"
"#;
    let d = Drill::new(toml).file("evil.tar", &tar_bytes);
    std::fs::create_dir_all(d.path().join("outside")).unwrap();
    d.run().expect_code(1)
}

/// Everything under `dir`, as relative paths (none when teardown removed `dir`).
fn listing(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack: Vec<_> = dir
        .exists()
        .then(|| dir.to_path_buf())
        .into_iter()
        .collect();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            found.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            }
        }
    }
    found.sort();
    found
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
        let restore = out.step("restore");
        let error = restore["error"].as_str().unwrap();
        assert!(error.contains("refusing entry"), "{what}: {error}");
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
    let toml = "version = 1\n[drill]\nname = \"t\"\n[[steps]]\nid = \"restore\"\nkind = \"restore\"\nengine = \"files\"\nfrom = \"ok.tar\"\ntarget_dir = \"out\"\n[[steps]]\nid = \"read\"\nkind = \"exec\"\nrun = \"cat out/a/c/link > seen.txt\"\n";
    let out = Drill::new(toml)
        .file("ok.tar", &tar_bytes)
        .run()
        .expect_code(0);
    assert_eq!(
        std::fs::read_to_string(out.path().join("seen.txt")).unwrap(),
        "fine\n"
    );
}

#[test]
fn a_restore_into_the_backed_up_tree_or_a_non_empty_dir_is_refused() {
    for (target, why) in [
        ("tree/kb/restored", "a source of this playbook"),
        ("tree", "not empty"),
    ] {
        let toml = BASE
            .replace("#COMPRESSION#", "")
            .replace("#AFTER_RESTORE#", "")
            .replace("{{ drill.workdir }}/r", target);
        let out = tree_drill_from(&toml).run().expect_code(1);
        let error = out.step("restore")["error"].as_str().unwrap().to_string();
        assert!(error.contains(why), "{target}: {error}");
    }
}

fn tree_drill_from(toml: &str) -> Drill {
    Drill::new(toml)
        .file("tree/config/app.toml", b"port = 8080\n")
        .file("tree/kb/index.json", b"{}")
}

#[test]
fn files_checks_belong_to_files_steps() {
    let toml = r#"
version = 1
[drill]
name = "t"
[[steps]]
id = "v"
kind = "files"
directory = "."
[[steps.checks]]
name = "wrong"
builtin = "integrity"
[[steps.checks]]
name = "count"
builtin = "file_count"
[[steps]]
id = "s"
kind = "sql"
engine = "sqlite"
database = "x.db"
[[steps.checks]]
name = "misplaced"
builtin = "json_valid"
"#;
    let out = Drill::new(toml).subcommand("validate").run().expect_code(2);
    assert!(
        out.stderr
            .contains("check `wrong` of step `v` is not a files check"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("`file_count` needs `min` or `max`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("check `misplaced` of step `s` is a files check"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_shipped_files_playbook_runs_without_a_server() {
    let playbook = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/files.toml");
    let d = Drill::new(&std::fs::read_to_string(&playbook).unwrap());
    d.subcommand("validate").run().expect_code(0);
    let d = Drill::new(&std::fs::read_to_string(&playbook).unwrap());
    let out = d.run().expect_code(0);
    assert_eq!(out.step("backup")["outputs"]["file_count"], 203);
    assert_eq!(out.record()["status"], "passed");
}

#[test]
fn init_scaffolds_files_and_mysql_playbooks_that_validate() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_restore-drill"))
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    for engine in ["files", "mysql"] {
        assert_eq!(
            cmd(&["init", "--engine", engine]).status.code(),
            Some(0),
            "{engine}"
        );
        let file = format!("{engine}-drill.toml");
        let out = cmd(&["validate", &file]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn an_archive_made_by_gnu_tar_restores() {
    // Interoperability: a pax-format, gzip-compressed archive from GNU tar.
    let toml = "version = 1\n[drill]\nname = \"t\"\n[[steps]]\nid = \"restore\"\nkind = \"restore\"\nengine = \"files\"\nfrom = \"gnu.tgz\"\ntarget_dir = \"{{ drill.workdir }}/r\"\n[[steps]]\nid = \"verify\"\nkind = \"files\"\ndirectory = \"{{ steps.restore.target }}\"\n[[steps.checks]]\nname = \"json\"\nbuiltin = \"json_valid\"\n[[steps.checks]]\nname = \"count\"\nbuiltin = \"file_count\"\nmin = 2\nmax = 2\n";
    let d = Drill::new(toml)
        .file("src/a.txt", b"hi\n")
        .file("src/deep/b.json", br#"{"a": 1}"#);
    std::os::unix::fs::symlink("a.txt", d.path().join("src/link")).unwrap();
    let status = std::process::Command::new("tar")
        .current_dir(d.path())
        .args(["--format=pax", "-czf", "gnu.tgz", "src"])
        .status()
        .expect("GNU tar");
    assert!(status.success());
    let out = d.run().expect_code(0);
    assert_eq!(out.step("restore")["outputs"]["file_count"], 2);
    assert_eq!(out.step("restore")["outputs"]["symlink_count"], 1);
}
