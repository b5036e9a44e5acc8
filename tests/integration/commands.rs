//! The commands around a run: walkthrough, plan, history, status, init.

use super::*;
use std::io::Write as _;
use std::process::Stdio;

const MANUAL: &str = r#"
version = 1
[drill]
name = "walk"
[gates]
rto = "15m"
[[steps]]
id = "decide"
kind = "manual"
phase = "decide"
instructions = "Page the database owner and agree to restore."
assume = "3m"
[[steps]]
id = "restore_step"
kind = "wait"
phase = "restore"
duration = "1ms"
"#;

#[test]
fn a_walkthrough_waits_for_the_operator_and_records_the_real_time() {
    use std::io::Read as _;
    let d = Drill::new(MANUAL)
        .arg("--walkthrough")
        .arg("--operator")
        .arg("alice")
        .arg("--operator")
        .arg("bob");
    let mut child = d
        .command()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr_pipe.read(&mut buf) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    let mut stderr = String::new();
    let mut wait_for = |text: &str| {
        while !stderr.contains(text) {
            let more = rx.recv_timeout(std::time::Duration::from_secs(20));
            stderr.push_str(&more.unwrap_or_else(|_| panic!("no {text:?} in {stderr}")));
        }
        stderr.clone()
    };
    wait_for("Page the database owner");
    // The operator takes a moment: the step's duration is that moment, not its `assume`.
    std::thread::sleep(std::time::Duration::from_millis(300));
    stdin.write_all(b"paged dba, go\n").unwrap();
    let stderr = wait_for("── next: Restore step (wait)");
    stdin.write_all(b"skip\n").unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let r = newest_record(&d.path().join("artifacts"));
    assert_eq!(r["mode"], "walkthrough");
    assert_eq!(r["operators"], serde_json::json!(["alice", "bob"]));
    let decide = &r["steps"][0];
    assert_eq!(decide["outputs"]["note"], "paged dba, go");
    assert!(
        decide["assumed_s"].is_null(),
        "a walkthrough measures, it does not assume"
    );
    assert!(decide["duration_s"].as_f64().unwrap() >= 0.2);
    assert!(r["rto"]["assumed_phases"].as_array().unwrap().is_empty());
    assert_eq!(
        r["steps"][1]["status"], "skipped",
        "the operator skipped it"
    );
}

#[test]
fn an_operator_can_fail_a_manual_step() {
    let d = Drill::new(MANUAL).arg("--walkthrough");
    let mut child = d
        .command()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"fail: nobody answered\n")
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(1));
}

#[test]
fn plan_shows_resolved_steps_and_runs_nothing() {
    let out = Drill::new(
        &super::sqlite::BASE
            .replace("#BEFORE_VERIFY#", "")
            .replace("#AFTER_RESTORE#", "")
            .replace("#MORE#", ""),
    )
    .subcommand("plan")
    .arg("--var")
    .arg("source=elsewhere.db")
    .run()
    .expect_code(0);
    assert!(
        out.stdout.contains("source: elsewhere.db"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("from: {{ steps.backup.path }}"),
        "outputs of earlier steps stay as written:\n{}",
        out.stdout
    );
    assert!(out.stdout.contains("RTO ≤ 15m"));
    assert!(!out.path().join("artifacts").exists());
    let bad = Drill::new(MANUAL)
        .subcommand("plan")
        .arg("--var")
        .arg("nope=1")
        .run()
        .expect_code(2);
    assert!(bad.stderr.contains("no var `nope`"), "{}", bad.stderr);
}

fn runs(passing: bool, n: usize) -> Outcome {
    let step = if passing {
        ""
    } else {
        "[[steps]]\nid = \"boom\"\nkind = \"exec\"\nrun = \"exit 1\"\n"
    };
    let d = Drill::new(&format!("{MANUAL}{step}"));
    for _ in 0..n {
        let out = d.command().output().unwrap();
        assert!(out.status.code().is_some());
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    Outcome {
        code: 0,
        stdout: String::new(),
        stderr: String::new(),
        dir: d.dir_for_tests(),
    }
}

#[test]
fn history_lists_past_drills_and_status_watches_for_a_recent_pass() {
    let out = runs(true, 2);
    let cmd = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_restore-drill"))
            .current_dir(out.path())
            .args(args)
            .output()
            .unwrap()
    };
    let history = cmd(&["history", "artifacts"]);
    let text = String::from_utf8_lossy(&history.stdout);
    assert_eq!(
        text.lines().filter(|l| l.contains("walk")).count(),
        2,
        "{text}"
    );
    assert!(text.contains("passed"));
    assert!(
        text.contains("RTO +") || text.contains("RTO -"),
        "a trend against the previous run: {text}"
    );

    assert_eq!(
        cmd(&["status", "artifacts", "--max-age", "1h"])
            .status
            .code(),
        Some(0)
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let stale = cmd(&["status", "artifacts", "--max-age", "1s"]);
    assert_eq!(
        stale.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&stale.stdout)
    );
    assert_eq!(
        cmd(&["status", "artifacts", "--drill", "other"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn status_ignores_failed_drills() {
    let out = runs(false, 1);
    let status = Command::new(env!("CARGO_BIN_EXE_restore-drill"))
        .current_dir(out.path())
        .args(["status", "artifacts"])
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(1), "a failed drill is no proof");
    assert!(String::from_utf8_lossy(&status.stdout).contains("missing"));
}

#[test]
fn init_writes_a_starter_playbook_that_validates_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_restore-drill"))
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    assert_eq!(cmd(&["init"]).status.code(), Some(0));
    assert_eq!(
        cmd(&["validate", "sqlite-drill.toml"]).status.code(),
        Some(0)
    );
    assert_eq!(
        cmd(&["init"]).status.code(),
        Some(2),
        "init must not overwrite"
    );
}
