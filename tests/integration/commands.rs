//! The commands around a run: walkthrough, plan, history, status, init.

use super::*;
use std::io::Write as _;
use std::process::Stdio;

/// A manual decision (assumed to take 3 minutes), then a quick restore step.
fn walk() -> Playbook {
    let decide = manual(
        "decide",
        "decide",
        "Page the database owner and agree to restore.",
    );
    pb("walk")
        .gate("rto", "15m")
        .step(decide.set("assume", "3m"))
        .step(wait("restore_step", "1ms").set("phase", "restore"))
}

/// `d` started as a walkthrough, with its stdin to answer on.
pub(super) fn walkthrough(d: &Drill, stderr: Stdio) -> std::process::Child {
    let mut cmd = d.command();
    cmd.arg("--walkthrough")
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    cmd.stderr(stderr).spawn().unwrap()
}

#[test]
fn a_walkthrough_waits_for_the_operator_and_records_the_real_time() {
    use std::io::Read as _;
    let d = walk().drill().arg("--operator").arg("alice");
    let d = d.arg("--operator").arg("bob");
    let mut child = walkthrough(&d, Stdio::piped());
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
    // Two operators: who did it is asked, and only one of them is taken.
    wait_for("Who did \"Decide\"? (alice, bob; Enter: alice)");
    stdin.write_all(b"carol\n").unwrap();
    wait_for("`carol` is not one of the operators");
    stdin.write_all(b"bob\n").unwrap();
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
    assert_eq!(decide["outputs"]["done_by"], "bob");
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
    let d = walk().drill();
    let mut child = walkthrough(&d, Stdio::null());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"fail: nobody answered\n").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(1));
}

#[test]
fn plan_shows_resolved_steps_and_runs_nothing() {
    let plan = super::sqlite::playbook().drill().subcommand("plan");
    let out = plan.arg("--var").arg("source=elsewhere.db").run();
    let out = out.expect_code(0);
    assert_has(&out.stdout, "source: elsewhere.db", "plan");
    // Every value resolved the same way: outputs of earlier steps as placeholders, like
    // the work directory; checks as lines, never JSON with null fields.
    assert_has(
        &out.stdout,
        "from: <steps.backup.path>",
        "an output, resolved",
    );
    assert_has(
        &out.stdout,
        "target: <workdir>/r/restored.db",
        "the workdir, resolved",
    );
    assert_has(
        &out.stdout,
        "\n         - counts: builtin table_counts, compare_to <steps.backup.table_counts>\n",
        "a check",
    );
    for raw in ["{{", "null", "\"name\""] {
        assert!(
            !out.stdout.contains(raw),
            "{raw} in the plan:\n{}",
            out.stdout
        );
    }
    assert!(out.stdout.contains("RTO ≤ 15m"));
    assert!(!out.path().join("artifacts").exists());
    let bad = walk().drill().subcommand("plan").arg("--var").arg("nope=1");
    bad.run().expect_code(2).stderr_has("no var `nope`");
}

fn runs(passing: bool, n: usize) -> Outcome {
    let boom = (!passing).then(|| exec("boom", "exit 1"));
    let d = walk().step(boom).drill();
    for _ in 0..n {
        assert_ne!(d.run_again().code, -1, "killed by a signal");
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
    let cmd = |args: &[&str]| restore_drill(out.path(), args);
    let text = cmd(&["history", "artifacts"]).stdout;
    assert_eq!(
        text.lines().filter(|l| l.contains("walk")).count(),
        2,
        "{text}"
    );
    assert!(text.contains("passed"));
    assert!(
        ["RTO +", "RTO -", "RTO ±0%"]
            .iter()
            .any(|t| text.contains(t)),
        "a trend against the previous run: {text}"
    );

    cmd(&["status", "artifacts", "--max-age", "1h"]).expect_code(0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    cmd(&["status", "artifacts", "--max-age", "1s"]).expect_code(1);
    cmd(&["status", "artifacts", "--drill", "other"]).expect_code(1);
}

#[test]
fn status_ignores_failed_drills() {
    let out = runs(false, 1);
    // A failed drill is no proof.
    let status = restore_drill(out.path(), &["status", "artifacts"]).expect_code(1);
    assert!(status.stdout.contains("missing"));
}

#[test]
fn init_writes_a_starter_playbook_that_validates_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| restore_drill(dir.path(), args);
    cmd(&["init"]).expect_code(0);
    cmd(&["validate", "sqlite-drill.toml"]).expect_code(0);
    // init must not overwrite.
    cmd(&["init"]).expect_code(2);
    // Starters of no engine's: restoring from a bucket, a restic or a borg repository.
    for starter in ["s3", "restic", "borg"] {
        cmd(&["init", "--engine", starter]).expect_code(0);
        cmd(&["validate", &format!("{starter}-drill.toml")]).expect_code(0);
    }
}

/// One list of report formats, each with its long and its short name, for the playbook's
/// `[report] formats` and for `report --format` alike.
#[test]
fn report_formats_have_the_same_names_in_the_playbook_and_on_the_command_line() {
    let out = pb("names")
        .table("report", "formats", list(&["md", "prom"]))
        .step(wait("w", "1ms"))
        .run()
        .expect_code(0);
    let record = out.record();
    let listed: Vec<&String> = record["artifacts"].as_object().unwrap().keys().collect();
    assert_eq!(listed, ["json", "log", "markdown", "prometheus"]);
    let md = out.artifact_text(".md");
    let prom = out.artifact_text(".prom");
    assert!(
        prom.contains("restore_drill_success{drill=\"names\"} 1"),
        "{prom}"
    );

    let json = newest_artifact(&out.path().join("artifacts"), ".json");
    let report = |format: &[&str]| {
        let args = [&["report", json.to_str().unwrap()], format].concat();
        restore_drill(out.path(), &args).expect_code(0).stdout
    };
    assert_eq!(report(&[]), md);
    for name in ["markdown", "md"] {
        assert_eq!(report(&["--format", name]), md, "--format {name}");
    }
    for name in ["prometheus", "prom"] {
        assert_eq!(report(&["--format", name]), prom, "--format {name}");
    }
    let bad = restore_drill(
        out.path(),
        &["report", json.to_str().unwrap(), "--format", "pdf"],
    );
    bad.expect_code(2);
    // `-o` never replaces a record: the one read, nor any other.
    let json_text = std::fs::read(&json).unwrap();
    for target in [
        json.to_str().unwrap(),
        "artifacts/restore_drill_20260101T000000Z.json",
    ] {
        let args = ["report", json.to_str().unwrap(), "-o", target];
        let refused = restore_drill(out.path(), &args).expect_code(2);
        assert!(
            refused.stderr.contains("a report never replaces one"),
            "{}",
            refused.stderr
        );
    }
    assert_eq!(std::fs::read(&json).unwrap(), json_text);
    // A template renders the markdown report; with another format it is refused, never
    // silently left out.
    std::fs::write(
        out.path().join("mine.md.j2"),
        "# {{ drill.name }} by my template\n",
    )
    .unwrap();
    let template = ["--template", "mine.md.j2"];
    assert_eq!(report(&template).trim_end(), "# names by my template");
    for format in ["html", "junit", "prom"] {
        let args = [
            &["report", json.to_str().unwrap(), "--format", format][..],
            &template,
        ]
        .concat();
        let refused = restore_drill(out.path(), &args).expect_code(2);
        assert!(
            refused
                .stderr
                .contains("--template renders the markdown report"),
            "{}",
            refused.stderr
        );
    }
}
