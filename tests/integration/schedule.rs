//! `restore-drill schedule` (issue 15): the systemd units pass `systemd-analyze verify`,
//! the crontab line is one, the Kubernetes manifests pass `kubernetes-validate --strict`
//! (the Kubernetes schemas, offline), and the Indexed Job's index N runs playbook N.

use std::path::Path;
use std::process::Command;

use super::*;

fn book(name: &str) -> String {
    pb(name).step(wait("w", "1ms")).toml()
}

/// A directory with playbooks for drills `a`, `b` and `c` (files named so that their
/// order is not their drills').
fn fleet() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (file, drill) in [("1-c.toml", "c"), ("2-a.toml", "a"), ("3-b.toml", "b")] {
        std::fs::write(dir.path().join(file), book(drill)).unwrap();
    }
    dir
}

/// `tool args...` run in `dir`, or `None` (and the check skipped loudly) without it.
fn tool(dir: &Path, tool: &str, args: &[&str]) -> Option<Ran> {
    match Command::new(tool).current_dir(dir).args(args).output() {
        Ok(out) => Some(Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
        Err(_) => {
            skip_or_fail("schedule", &format!("{tool} is not installed"));
            None
        }
    }
}

#[test]
fn systemd_units_pass_systemd_analyze_verify_for_every_schedule() {
    let drill = Drill::new(&book("nightly_db"));
    for every in [
        "monthly",
        "weekly",
        "daily",
        "*/30 2-4 * * 1-5",
        "15 3 1,15 * *",
    ] {
        let ran = restore_drill(
            drill.path(),
            &["schedule", "systemd", "playbook.toml", "--every", every],
        );
        let ran = ran.expect_code(0);
        let units = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for part in ran.stdout.split("# restore-drill-").skip(1) {
            let (name, text) = part.split_once('\n').unwrap();
            let name = format!("restore-drill-{name}");
            std::fs::write(units.path().join(&name), text).unwrap();
            files.push(name);
        }
        assert_eq!(
            files,
            [
                "restore-drill-nightly_db.service",
                "restore-drill-nightly_db.timer"
            ]
        );
        let service = std::fs::read_to_string(units.path().join(&files[0])).unwrap();
        let exec = format!("run {}/playbook.toml --artifacts", drill.path().display());
        assert_has(&service, &exec, "the service");
        let mut args = vec!["verify", "--man=no"];
        args.extend(files.iter().map(String::as_str));
        let Some(verified) = tool(units.path(), "systemd-analyze", &args) else {
            return;
        };
        verified.expect_code(0);
        let timer = std::fs::read_to_string(units.path().join(&files[1])).unwrap();
        let calendar = timer
            .lines()
            .find_map(|l| l.strip_prefix("OnCalendar="))
            .unwrap();
        tool(units.path(), "systemd-analyze", &["calendar", calendar])
            .unwrap()
            .expect_code(0);
    }
}

#[test]
fn the_crontab_line_runs_the_drill_from_here() {
    let drill = Drill::new(&book("db"));
    let ran = restore_drill(
        drill.path(),
        &["schedule", "cron", "playbook.toml", "--every", "weekly"],
    );
    let line = ran
        .expect_code(0)
        .stdout
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap()
        .to_string();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[..5], ["0", "3", "*", "*", "1"], "{line}");
    assert_eq!(fields[5..7], ["cd", &drill.path().display().to_string()]);
    assert_has(&line, "run ", "the line");
    // A cron expression systemd cannot hold is refused, naming why.
    let ran = restore_drill(
        drill.path(),
        &[
            "schedule",
            "systemd",
            "playbook.toml",
            "--every",
            "0 3 1 * 1",
        ],
    );
    assert_has(
        &ran.expect_code(2).stderr,
        "both day of month and day of week",
        "schedule",
    );
}

/// `kubernetes-validate --strict` of `yaml`.
fn validate_manifest(yaml: &str) -> Option<Ran> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.yaml"), yaml).unwrap();
    tool(dir.path(), "kubernetes-validate", &["--strict", "m.yaml"]).map(|r| r.expect_code(0))
}

/// `schedule kubernetes <args>` in `dir`: the manifest, which holds every line of `want`
/// and passes `kubernetes-validate --strict`.
fn manifest(dir: &Path, args: &[&str], want: &[&str]) -> String {
    let mut all = vec!["schedule", "kubernetes"];
    all.extend(args);
    let yaml = restore_drill(dir, &all).expect_code(0).stdout;
    for line in want {
        assert_has(&yaml, line, "the manifest");
    }
    validate_manifest(&yaml);
    yaml
}

#[test]
fn the_cron_job_is_a_valid_kubernetes_manifest() {
    let drill = Drill::new(&book("orders_db"));
    let args = r#"args: ["run", "/drills/playbook.toml", "--artifacts", "/artifacts/orders_db", "--quiet"]"#;
    let want = [
        "kind: CronJob",
        "name: restore-drill-orders-db",
        "schedule: \"0 3 1 * *\"",
        "concurrencyPolicy: Forbid",
        "secretRef:",
        "claimName: restore-drill-artifacts",
        args,
    ];
    manifest(drill.path(), &["playbook.toml"], &want);
}

#[test]
fn the_indexed_job_runs_playbook_n_on_index_n() {
    let dir = fleet();
    let args = [".", "--indexed", "--parallelism", "2"];
    let want = [
        "kind: Job",
        "completionMode: Indexed",
        "completions: 3",
        "parallelism: 2",
    ];
    let yaml = manifest(dir.path(), &args, &want);
    // The container's script, run as the pod would with a stand-in restore-drill.
    let script: String = yaml
        .lines()
        .skip_while(|l| l.trim() != "- |")
        .skip(1)
        .take_while(|l| l.starts_with("              "))
        .map(|l| format!("{}\n", l.trim_start()))
        .collect();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(bin.join("restore-drill"), "#!/bin/sh\necho \"$@\"\n").unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(bin.join("restore-drill"))
        .status()
        .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let run = |index: &str| {
        let out = Command::new("sh")
            .args(["-c", &script])
            .env("JOB_COMPLETION_INDEX", index)
            .env("PATH", &path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    };
    assert_eq!(
        run("0").1,
        "run /drills/1-c.toml --artifacts /artifacts/c --quiet"
    );
    assert_eq!(
        run("2").1,
        "run /drills/3-b.toml --artifacts /artifacts/b --quiet"
    );
    assert_eq!(run("3").0, Some(2), "no drill for index 3");
}

/// `--var` reaches every run of a systemd or cron schedule, shell-quoted (a postgres
/// drill that root runs needs `--var os_user=postgres`); a var the playbook lacks, or
/// `--var` for a cluster, is refused naming why.
#[test]
fn a_scheduled_run_takes_the_vars_it_was_given() {
    let book = pb("db")
        .var("os_user", "")
        .var("note", "")
        .step(wait("w", "1ms"))
        .toml();
    let drill = Drill::new(&book);
    let vars = ["--var", "os_user=postgres", "--var", "note=a b"];
    for target in ["systemd", "cron"] {
        let args = [&["schedule", target, "playbook.toml"][..], &vars[..]].concat();
        let ran = restore_drill(drill.path(), &args).expect_code(0);
        assert_has(&ran.stdout, " run ", target);
        assert_has(
            &ran.stdout,
            "--var os_user=postgres --var 'note=a b' --artifacts",
            target,
        );
    }
    let unknown = [
        "schedule",
        "cron",
        "playbook.toml",
        "--var",
        "os_usr=postgres",
    ];
    let ran = restore_drill(drill.path(), &unknown).expect_code(2);
    assert_has(
        &ran.stderr,
        "--var os_usr: the playbook has no var `os_usr`",
        "cron",
    );
    let cluster = [
        "schedule",
        "kubernetes",
        "playbook.toml",
        "--var",
        "os_user=postgres",
    ];
    let ran = restore_drill(drill.path(), &cluster).expect_code(2);
    assert_has(
        &ran.stderr,
        "--var is for `schedule systemd` and `schedule cron`",
        "kubernetes",
    );
}

/// A `--var` holding a credential (a url's password, a var named `api_token`) is not
/// written into the unit's command line, which every run's argv would show to every user
/// (`ps`) and the unit file would keep: `schedule` refuses it without showing it.
#[test]
fn a_scheduled_run_takes_no_credential_in_its_command_line() {
    let book = pb("db")
        .var("url", "")
        .var("api_token", "")
        .step(wait("w", "1ms"))
        .toml();
    let drill = Drill::new(&book);
    for target in ["systemd", "cron"] {
        for (var, value) in [
            ("url", "postgres://u:Sched-Pw-9@db/prod"),
            ("api_token", "Sched-Tok-9"),
        ] {
            let given = format!("{var}={value}");
            let args = ["schedule", target, "playbook.toml", "--var", &given];
            let ran = restore_drill(drill.path(), &args).expect_code(2);
            let says = format!("--var {var}: its value holds a credential");
            assert_has(&ran.stderr, &says, target);
            for shown in [&ran.stdout, &ran.stderr] {
                assert!(!shown.contains("Sched-"), "{target}: {shown}");
            }
        }
    }
}
