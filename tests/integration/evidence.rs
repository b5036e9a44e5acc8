//! Signed, chained evidence (issue 15): each record names the previous record of its
//! drill (run id + sha256), `[evidence] sign_key` signs it into a `.minisig` that the
//! stock `minisign -V` accepts, and `restore-drill verify` names every record edited,
//! removed, renamed or reordered.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::*;

const MINISIGN: &str = "minisign";

/// A minisign key pair made by the stock tool in `dir` (`key.pub`, `key.sec`), with
/// `password` or unencrypted (`-W`); `None` (and the suite skipped loudly) without it.
fn keypair(dir: &Path, password: Option<&str>) -> Option<String> {
    let mut cmd = Command::new(MINISIGN);
    cmd.current_dir(dir)
        .args(["-G", "-p", "key.pub", "-s", "key.sec"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if password.is_none() {
        cmd.arg("-W");
    }
    let Ok(mut child) = cmd.spawn() else {
        skip_or_fail(
            "evidence",
            "minisign is not installed (apt install minisign)",
        );
        return None;
    };
    if let Some(p) = password {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        write!(stdin, "{p}\n{p}\n").unwrap();
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "minisign -G failed");
    Some(std::fs::read_to_string(dir.join("key.sec")).unwrap())
}

/// A drill of one short step whose records are signed with the key in $MINISIGN_KEY.
fn signed(password: bool) -> Playbook {
    let mut book = pb("signed")
        .secret("minisign_key", "MINISIGN_KEY")
        .table("evidence", "sign_key", "{{ secrets.minisign_key }}")
        .step(wait("w", "1ms"));
    if password {
        book = book.secret("minisign_password", "MINISIGN_PASSWORD").table(
            "evidence",
            "sign_key_password",
            "{{ secrets.minisign_password }}",
        );
    }
    book
}

/// The records (`.json`) in `dir`, oldest first.
fn records(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    found.sort();
    found
}

/// `minisign -V` of `record` with its `restore_drill_<ts>.minisig` and `key.pub`.
fn stock_verify(dir: &Path, record: &Path) -> Ran {
    let out = Command::new(MINISIGN)
        .current_dir(dir)
        .arg("-V")
        .args(["-p", "key.pub", "-m"])
        .arg(record)
        .arg("-x")
        .arg(record.with_extension("minisig"))
        .output()
        .unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the signed drill `runs` times in one directory; returns the directory (the key
/// pair in it, the records in `artifacts/`) and the secret key's text.
pub(super) fn signed_history(runs: usize) -> Option<(tempfile::TempDir, String)> {
    let drill = signed(false).drill();
    let key = keypair(drill.path(), None)?;
    let drill = drill.env("MINISIGN_KEY", &key);
    for _ in 0..runs {
        drill.run_again().expect_code(0);
    }
    Some((drill.dir_for_tests(), key))
}

#[test]
fn records_are_chained_and_signed_for_the_stock_minisign() {
    let Some((dir, key)) = signed_history(3) else {
        return;
    };
    let artifacts = dir.path().join("artifacts");
    let paths = records(&artifacts);
    assert_eq!(paths.len(), 3, "{:?}", listing(&artifacts));
    let mut before: Option<&PathBuf> = None;
    for path in &paths {
        let record: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let previous = &record["previous"];
        match before {
            None => assert!(previous.is_null(), "{previous}"),
            Some(b) => {
                let b_record: Value =
                    serde_json::from_str(&std::fs::read_to_string(b).unwrap()).unwrap();
                assert_eq!(previous["run_id"], b_record["run_id"]);
                assert_eq!(previous["sha256"].as_str().unwrap(), sha256_of(b));
            }
        }
        let sig = path.with_extension("minisig");
        let listed = artifacts.join(record["artifacts"]["minisig"].as_str().unwrap());
        assert_eq!(listed.file_name(), sig.file_name());
        let ran = stock_verify(dir.path(), path).expect_code(0);
        let name = path.file_name().unwrap().to_string_lossy();
        assert_has(&ran.stdout, &format!("file:{name}"), "minisign -V");
        before = Some(path);
    }
    let ran = restore_drill(dir.path(), &["verify", "artifacts", "--pubkey", "key.pub"]);
    let ran = ran.expect_code(0);
    assert_has(&ran.stderr, "3 signed and verified", "verify");
    // The secret key is nowhere in what the runs left.
    let line = key.lines().nth(1).unwrap();
    for (path, text) in all_files(&artifacts) {
        assert!(
            !text.contains(line),
            "the secret key is in {}",
            path.display()
        );
    }
}

#[test]
fn a_key_with_a_password_signs_and_a_wrong_password_runs_nothing() {
    let keys = tempfile::tempdir().unwrap();
    let Some(key) = keypair(keys.path(), Some("correct horse")) else {
        return;
    };
    let with = |password: &str| {
        signed(true)
            .drill()
            .env("MINISIGN_KEY", &key)
            .env("MINISIGN_PASSWORD", password)
    };
    let wrong = with("wrong").run().expect_code(2);
    assert_has(
        &wrong.stderr,
        "evidence.sign_key_password is not the password",
        "run",
    );
    assert!(records(&wrong.path().join("artifacts")).is_empty());
    let right = with("correct horse").run().expect_code(0);
    assert!(!right.stderr.contains(key.lines().nth(1).unwrap()));
    let record = &records(&right.path().join("artifacts"))[0];
    std::fs::copy(keys.path().join("key.pub"), right.path().join("key.pub")).unwrap();
    stock_verify(right.path(), record).expect_code(0);
}

/// A copy of the signed history of four runs, changed by `tamper` (given the records,
/// oldest first), then `verify`'d: exit 1, and what it printed.
fn tampered(tamper: impl FnOnce(&[PathBuf]), pubkey: bool) -> Option<(Ran, Vec<String>)> {
    let (dir, _) = signed_history(4)?;
    let artifacts = dir.path().join("artifacts");
    let paths = records(&artifacts);
    let names = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    restore_drill(dir.path(), &["verify", "artifacts", "--pubkey", "key.pub"]).expect_code(0);
    tamper(&paths);
    let mut args = vec!["verify", "artifacts"];
    if pubkey {
        args.extend(["--pubkey", "key.pub"]);
    }
    Some((restore_drill(dir.path(), &args).expect_code(1), names))
}

/// The drill's duration (under a second) becomes a second longer: one byte.
pub(super) fn edit_a_byte(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let edited = text.replacen("\"duration_s\": 0.", "\"duration_s\": 1.", 1);
    assert_ne!(text, edited);
    std::fs::write(path, edited).unwrap();
}

#[test]
fn verify_names_a_record_edited_in_the_middle_of_the_chain() {
    for pubkey in [true, false] {
        let Some((ran, names)) = tampered(|p| edit_a_byte(&p[1]), pubkey) else {
            return;
        };
        let line = format!("{}: edited: its sha256 is ", names[1]);
        assert_has(&ran.stdout, &line, "verify");
        if pubkey {
            let line = format!("{}: edited: its signature", names[1]);
            assert_has(&ran.stdout, &line, "verify");
        }
        assert_eq!(
            ran.stdout.lines().count(),
            1 + pubkey as usize,
            "{}",
            ran.stdout
        );
    }
}

#[test]
fn verify_names_the_last_record_edited_by_its_signature() {
    let Some((ran, names)) = tampered(|p| edit_a_byte(&p[3]), true) else {
        return;
    };
    let line = format!("{}: edited: its signature", names[3]);
    assert_has(&ran.stdout, &line, "verify");
}

#[test]
fn verify_names_a_record_removed_from_the_middle() {
    let Some((ran, names)) = tampered(
        |p| {
            std::fs::remove_file(&p[1]).unwrap();
            std::fs::remove_file(p[1].with_extension("minisig")).unwrap();
        },
        true,
    ) else {
        return;
    };
    let line = format!("{}: the record before it (run signed-", names[2]);
    assert_has(&ran.stdout, &line, "verify");
    assert_has(&ran.stdout, ") was removed", "verify");
}

#[test]
fn verify_names_records_swapped_by_renaming() {
    let Some((ran, names)) = tampered(
        |p| {
            for ext in ["json", "minisig"] {
                let (a, b) = (p[1].with_extension(ext), p[2].with_extension(ext));
                let tmp = a.with_extension("tmp");
                std::fs::rename(&a, &tmp).unwrap();
                std::fs::rename(&b, &a).unwrap();
                std::fs::rename(&tmp, &b).unwrap();
            }
        },
        true,
    ) else {
        return;
    };
    for name in &names[1..3] {
        assert_has(&ran.stdout, &format!("{name}: renamed"), "verify");
    }
    assert_has(&ran.stdout, &format!("{}: reordered", names[1]), "verify");
}

#[test]
fn verify_walks_a_tree_of_drills_folders_naming_records_by_their_path() {
    let Some((dir, _)) = signed_history(3) else {
        return;
    };
    let paths = records(&dir.path().join("artifacts"));
    edit_a_byte(&paths[1]);
    let ran = restore_drill(dir.path(), &["verify", ".", "--pubkey", "key.pub"]);
    let ran = ran.expect_code(1);
    let name = paths[1].file_name().unwrap().to_string_lossy();
    assert_has(&ran.stdout, &format!("artifacts/{name}: edited"), "verify");
    assert_has(&ran.stderr, "3 records of 1 drill", "verify");
}
