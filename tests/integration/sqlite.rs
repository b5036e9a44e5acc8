//! SQLite drills end to end: real files, the real binary.

use super::*;

pub const BASE: &str = r#"
version = 1
[drill]
name = "t"
[vars]
source = "src.db"
[gates]
rto = "15m"
[[steps]]
id = "backup"
kind = "backup"
engine = "sqlite"
source = "{{ vars.source }}"
output = "{{ drill.workdir }}/b/backup.db"
[[steps]]
id = "manifest"
kind = "checksum"
files = ["{{ steps.backup.path }}"]
manifest = "{{ drill.workdir }}/b/SHA256SUMS"
#BEFORE_VERIFY#
[[steps]]
id = "verify_backup"
kind = "checksum"
verify = "{{ steps.manifest.manifest }}"
[[steps]]
id = "restore"
kind = "restore"
engine = "sqlite"
from = "{{ steps.backup.path }}"
target = "{{ drill.workdir }}/r/restored.db"
#AFTER_RESTORE#
[[steps]]
id = "verify"
kind = "sql"
engine = "sqlite"
database = "{{ steps.restore.target }}"
[[steps.checks]]
name = "tables"
builtin = "tables_exist"
tables = ["services", "dispatches"]
[[steps.checks]]
name = "counts"
builtin = "table_counts"
compare_to = "{{ steps.backup.table_counts }}"
[[steps.checks]]
name = "integrity"
builtin = "integrity"
[[steps.checks]]
name = "fks"
builtin = "foreign_keys"
[[steps.checks]]
name = "indexes"
builtin = "indexes_exist"
indexes = ["idx_dispatches_service"]
#MORE#
[[cleanup]]
id = "mark"
kind = "exec"
run = "touch cleaned"
"#;

/// The base drill with text spliced in at the markers.
pub fn drill(before_verify: &str, after_restore: &str, more: &str) -> Drill {
    let toml = BASE
        .replace("#BEFORE_VERIFY#", before_verify)
        .replace("#AFTER_RESTORE#", after_restore)
        .replace("#MORE#", more);
    let d = Drill::new(&toml);
    make_db(&d.path().join("src.db"), 500);
    d
}

#[test]
fn a_good_backup_restores_and_passes() {
    let out = drill("", "", "").run().expect_code(0);
    let r = out.record();
    assert_eq!(r["status"], "passed");
    assert_eq!(r["schema"], "restore-drill/v1");
    assert_eq!(out.step("verify")["checks"].as_array().unwrap().len(), 5);
    assert_eq!(
        out.step("restore")["outputs"]["table_counts"]["dispatches"],
        500
    );
    assert!(out.path().join("cleaned").exists());
    assert!(out.report().contains("✅ PASSED"), "{}", out.report());
    let workdir = r["workdir"].as_str().unwrap();
    assert!(
        !Path::new(workdir).exists(),
        "workdir {workdir} left behind"
    );
}

fn sha256_of(path: &Path) -> String {
    use sha2::Digest as _;
    let bytes = std::fs::read(path).unwrap();
    sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const FLIP_BYTES: &str = r#"
[[steps]]
id = "corrupt"
kind = "exec"
run = "printf 'XXXXXXXX' | dd of='{{ steps.backup.path }}' bs=1 seek=3000 conv=notrunc 2>/dev/null"
"#;

#[test]
fn a_backup_corrupted_after_its_manifest_fails_checksum_verification() {
    let out = drill(FLIP_BYTES, "", "").run().expect_code(1);
    let v = out.step("verify_backup");
    assert_eq!(v["status"], "failed");
    assert!(
        v["error"].as_str().unwrap().contains("checksum mismatch"),
        "{v}"
    );
    assert_eq!(out.step("restore")["status"], "not_run");
    assert!(
        out.path().join("cleaned").exists(),
        "cleanup must run after a failure"
    );
    assert!(out.report().contains("checksum mismatch"));
}

#[test]
fn the_manifest_is_one_sha256sum_accepts() {
    let more = r#"
[[steps]]
id = "coreutils"
kind = "exec"
run = "sha256sum -c '{{ steps.manifest.manifest }}'"
"#;
    let out = drill("", "", more).run().expect_code(0);
    assert!(
        out.step("coreutils")["outputs"]["stdout"]
            .as_str()
            .unwrap()
            .contains(": OK")
    );
}

#[test]
fn a_restored_database_missing_a_table_fails_tables_exist_and_table_counts() {
    let drop_table = r#"
[[steps]]
id = "sabotage"
kind = "sql"
engine = "sqlite"
database = "{{ steps.restore.target }}"
execute = "DROP TABLE dispatches"
"#;
    let out = drill("", drop_table, "").run().expect_code(1);
    let checks = out.step("verify")["checks"].clone();
    let by_name = |n: &str| {
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("tables")["passed"], false);
    assert!(
        by_name("tables")["detail"]
            .as_str()
            .unwrap()
            .contains("dispatches")
    );
    assert_eq!(by_name("counts")["passed"], false);
    assert!(
        by_name("counts")["detail"]
            .as_str()
            .unwrap()
            .contains("dispatches: missing")
    );
    assert_eq!(by_name("integrity")["passed"], true);
    assert!(
        out.report().contains("| dispatches | 500 | missing | ❌ |"),
        "{}",
        out.report()
    );
}

#[test]
fn lost_rows_fail_table_counts_unless_within_tolerance() {
    let lose_rows = r#"
[[steps]]
id = "sabotage"
kind = "sql"
engine = "sqlite"
database = "{{ steps.restore.target }}"
execute = "DELETE FROM dispatches WHERE id <= 3"
"#;
    let out = drill("", lose_rows, "").run().expect_code(1);
    let detail = out.step("verify")["error"].as_str().unwrap().to_string();
    assert!(
        detail.contains("dispatches: 497 rows, source had 500"),
        "{detail}"
    );

    let tolerant = BASE
        .replace("#BEFORE_VERIFY#", "")
        .replace("#AFTER_RESTORE#", lose_rows)
        .replace("#MORE#", "")
        .replace(
            "compare_to = \"{{ steps.backup.table_counts }}\"",
            "compare_to = \"{{ steps.backup.table_counts }}\"\ntolerance = 3",
        );
    let d = Drill::new(&tolerant);
    make_db(&d.path().join("src.db"), 500);
    d.run().expect_code(0);
}

#[test]
fn a_broken_index_fails_integrity_an_orphan_fails_foreign_keys_a_dropped_index_fails_indexes_exist()
{
    let sabotage = r#"
[[steps]]
id = "sabotage"
kind = "sql"
engine = "sqlite"
database = "{{ steps.restore.target }}"
execute = """
PRAGMA foreign_keys = OFF;
INSERT INTO dispatches VALUES (100000, 99, '2026-01-01T00:00:00Z');
CREATE INDEX idx_extra ON dispatches(created_at);
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = 'CREATE INDEX idx_extra ON dispatches(service_id)' WHERE name = 'idx_extra';
PRAGMA writable_schema = OFF;
DROP INDEX idx_dispatches_service;
"""
"#;
    let out = drill("", sabotage, "").run().expect_code(1);
    let checks = out.step("verify")["checks"].clone();
    let passed = |n: &str| {
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap()["passed"]
            .clone()
    };
    assert_eq!(passed("integrity"), false, "{checks}");
    assert_eq!(passed("fks"), false, "{checks}");
    assert_eq!(passed("indexes"), false, "{checks}");
    assert_eq!(passed("tables"), true);
}

#[test]
fn an_empty_or_missing_backup_fails_the_restore() {
    for (name, prepare) in [("empty", "touch empty.db"), ("missing", "true")] {
        let toml = format!(
            r#"
version = 1
[drill]
name = "t"
[[setup]]
id = "prepare"
kind = "exec"
run = "{prepare}"
[[steps]]
id = "restore"
kind = "restore"
engine = "sqlite"
from = "{name}.db"
target = "{{{{ drill.workdir }}}}/restored.db"
[[steps]]
id = "after"
kind = "wait"
duration = "1ms"
"#
        );
        let out = Drill::new(&toml).run().expect_code(1);
        let restore = out.step("restore");
        assert_eq!(restore["status"], "failed", "{name}");
        let error = restore["error"].as_str().unwrap();
        assert!(
            error.contains(if name == "empty" {
                "is empty"
            } else {
                "not found"
            }),
            "{name}: {error}"
        );
        assert_eq!(out.step("after")["status"], "not_run");
    }
}

#[test]
fn a_backup_that_is_not_a_database_fails_the_restore() {
    let toml = r#"
version = 1
[drill]
name = "t"
[[steps]]
id = "restore"
kind = "restore"
engine = "sqlite"
from = "garbage.db"
target = "{{ drill.workdir }}/restored.db"
"#;
    let out = Drill::new(toml)
        .file("garbage.db", &[7u8; 8192])
        .run()
        .expect_code(1);
    assert!(
        out.step("restore")["error"]
            .as_str()
            .unwrap()
            .contains("not a SQLite database")
    );
}

#[test]
fn a_slow_step_fails_its_max_duration_gate() {
    let slow = r#"
[[steps]]
id = "slow"
kind = "wait"
duration = "400ms"
max_duration = "100ms"
"#;
    let out = drill("", "", slow).run().expect_code(1);
    assert_eq!(
        out.step("slow")["status"],
        "passed",
        "the step's own work succeeded"
    );
    let gate = out.gate("Slow under 100ms");
    assert_eq!(gate["status"], "failed");
    assert_eq!(gate["kind"], "max_duration");
    assert_eq!(out.record()["status"], "failed");

    let fast = slow.replace("400ms", "1ms");
    let out = drill("", "", &fast).run().expect_code(0);
    assert_eq!(out.gate("Slow under 100ms")["status"], "passed");
}

#[test]
fn a_timeout_kills_the_step_and_its_whole_process_group() {
    // A duration no other process on the machine sleeps for, to find leftovers by.
    let marker = format!("1000.{}", std::process::id());
    let hang = format!(
        r#"
[[steps]]
id = "hang"
kind = "exec"
run = "sh -c 'sleep {marker}' & sleep {marker}"
timeout = "500ms"
"#
    );
    let started = std::time::Instant::now();
    let out = drill("", "", &hang).run().expect_code(1);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let step = out.step("hang");
    assert_eq!(step["status"], "timed_out");
    assert!(step["error"].as_str().unwrap().contains("timed out"));
    assert!(out.path().join("cleaned").exists());
    std::thread::sleep(std::time::Duration::from_millis(200));
    let ps = Command::new("pgrep")
        .args(["-f", &format!("sleep {marker}")])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "processes left behind: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
}

#[test]
fn a_failing_step_stops_the_drill_and_cleanup_still_runs() {
    let fail = r#"
[[steps]]
id = "boom"
kind = "exec"
run = "echo about to fail; echo bad news >&2; exit 3"
"#;
    let out = drill(fail, "", "").run().expect_code(1);
    let boom = out.step("boom");
    assert_eq!(boom["status"], "failed");
    assert_eq!(boom["outputs"]["exit_code"], 3);
    assert!(boom["log_tail"].as_str().unwrap().contains("bad news"));
    assert_eq!(out.step("verify_backup")["status"], "not_run");
    assert_eq!(out.step("mark")["status"], "passed");
    assert!(out.path().join("cleaned").exists());
    assert!(out.log().contains("[boom] stderr: bad news"));
    assert!(
        out.report().contains("bad news"),
        "failures show their log tail"
    );
}

#[test]
fn continue_on_failure_runs_the_rest_but_the_drill_still_fails() {
    let fail = r#"
[[steps]]
id = "boom"
kind = "exec"
run = "exit 1"
continue_on_failure = true
"#;
    let out = drill(fail, "", "").run().expect_code(1);
    assert_eq!(out.step("verify")["status"], "passed");
}

#[test]
fn retries_run_a_failing_step_again() {
    let flaky = r#"
[[steps]]
id = "flaky"
kind = "exec"
run = "n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; [ $n -ge 1 ]"
retries = 2
retry_delay = "10ms"
"#;
    let out = drill("", "", flaky).run().expect_code(0);
    assert_eq!(out.step("flaky")["attempts"], 2);
}

#[test]
fn when_false_skips_a_step() {
    let skipped = r#"
[[steps]]
id = "never"
kind = "exec"
run = "exit 1"
when = "steps.verify.status == 'failed'"
"#;
    let out = drill("", "", skipped).run().expect_code(0);
    assert_eq!(out.step("never")["status"], "skipped");
}

#[test]
fn a_restore_into_the_source_is_refused_and_the_source_is_unchanged() {
    let d = drill("", "", "");
    let source = d.path().join("src.db");
    let before = sha256_of(&source);
    std::os::unix::fs::symlink(&source, d.path().join("alias.db")).unwrap();
    for target in ["src.db", "./src.db", "alias.db"] {
        let toml = BASE
            .replace("#BEFORE_VERIFY#", "")
            .replace("#AFTER_RESTORE#", "")
            .replace("#MORE#", "")
            .replace(
                "target = \"{{ drill.workdir }}/r/restored.db\"",
                &format!("target = \"{target}\"\noverwrite = true"),
            );
        std::fs::write(d.path().join("playbook.toml"), toml).unwrap();
        let out = d.command().output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(sha256_of(&source), before, "{target}: the source changed");
    }
    let text =
        std::fs::read_to_string(newest_artifact(&d.path().join("artifacts"), ".json")).unwrap();
    assert!(text.contains("a source of this playbook"), "{text}");
}

#[test]
fn an_existing_target_is_refused_without_overwrite_and_kept_safe_with_it() {
    let target_toml = |extra: &str| {
        format!(
            r#"
version = 1
[drill]
name = "t"
[[steps]]
id = "backup"
kind = "backup"
engine = "sqlite"
source = "src.db"
output = "{{{{ drill.workdir }}}}/backup.db"
[[steps]]
id = "restore"
kind = "restore"
engine = "sqlite"
from = "{{{{ steps.backup.path }}}}"
target = "existing.db"
{extra}
"#
        )
    };
    let d = Drill::new(&target_toml(""));
    make_db(&d.path().join("src.db"), 10);
    make_db(&d.path().join("existing.db"), 3);
    let existing = d.path().join("existing.db");
    let before = sha256_of(&existing);
    let out = d.command().output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        sha256_of(&existing),
        before,
        "refused restore changed the target"
    );

    std::fs::write(
        d.path().join("playbook.toml"),
        target_toml("overwrite = true"),
    )
    .unwrap();
    let out = d.command().output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = rusqlite::Connection::open(&existing).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM dispatches", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 10, "overwrite replaced the target");
    let leftovers: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("pre-restore") || n.contains("restoring"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_failed_overwrite_puts_the_target_back() {
    let toml = r#"
version = 1
[drill]
name = "t"
[[steps]]
id = "restore"
kind = "restore"
engine = "sqlite"
from = "broken.db"
target = "existing.db"
overwrite = true
"#;
    let mut broken = b"SQLite format 3\0".to_vec();
    broken.extend(std::iter::repeat_n(0xAB, 8192));
    let d = Drill::new(toml).file("broken.db", &broken);
    make_db(&d.path().join("existing.db"), 7);
    let before = sha256_of(&d.path().join("existing.db"));
    let out = d.run().expect_code(1);
    assert_eq!(sha256_of(&out.path().join("existing.db")), before);
    assert!(
        out.step("restore")["error"]
            .as_str()
            .unwrap()
            .contains("put back"),
        "{}",
        out.step("restore")
    );
}

#[test]
fn secrets_never_reach_the_record_the_log_or_the_report() {
    let secret = "hunter2-s3cr3t-value";
    let more = r#"
[[steps]]
id = "use_secret"
kind = "exec"
run = "echo connecting with {{ secrets.pw }}; echo 'token={{ secrets.pw }}' >&2; exit 1"
"#;
    let toml = BASE
        .replace("#BEFORE_VERIFY#", "")
        .replace("#AFTER_RESTORE#", "")
        .replace("#MORE#", more)
        .replace("[gates]", "[secrets]\npw = { env = \"DRILL_TEST_SECRET\" }\n[report]\nformats = [\"markdown\", \"html\"]\n[gates]");
    let d = Drill::new(&toml)
        .env("DRILL_TEST_SECRET", secret)
        .arg("--junit")
        .arg("junit.xml")
        .arg("--metrics")
        .arg("drill.prom");
    make_db(&d.path().join("src.db"), 10);
    let out = d.run().expect_code(1);
    let record = out.record().to_string();
    assert!(
        record.contains("connecting with ***"),
        "the secret was usable and redacted: {record}"
    );
    for (what, text) in [
        ("record", record),
        ("log", out.log()),
        ("report", out.report()),
        ("stderr", out.stderr.clone()),
        (
            "junit",
            std::fs::read_to_string(out.path().join("junit.xml")).unwrap(),
        ),
        (
            "html",
            std::fs::read_to_string(newest_artifact(&out.path().join("artifacts"), ".html"))
                .unwrap(),
        ),
    ] {
        assert!(!text.contains(secret), "the secret leaked into the {what}");
    }
}

#[test]
fn a_missing_secret_is_a_usage_error_and_nothing_runs() {
    let toml = BASE
        .replace("#BEFORE_VERIFY#", "")
        .replace("#AFTER_RESTORE#", "")
        .replace("#MORE#", "")
        .replace(
            "[gates]",
            "[secrets]\npw = { env = \"DRILL_TEST_UNSET_SECRET\" }\n[gates]",
        );
    let out = Drill::new(&toml).run().expect_code(2);
    assert!(
        out.stderr.contains("DRILL_TEST_UNSET_SECRET"),
        "{}",
        out.stderr
    );
    assert!(!out.path().join("cleaned").exists());
}

#[test]
fn the_rto_gate_fails_when_recovery_phases_exceed_it() {
    let manual = |assume: &str| {
        format!(
            r#"
[[steps]]
id = "decide"
kind = "manual"
phase = "decide"
instructions = "Decide to restore."
assume = "{assume}"
"#
        )
    };
    let out = drill(&manual("20m"), "", "").run().expect_code(1);
    let rto = out.gate("RTO");
    assert_eq!(rto["status"], "failed", "{rto}");
    assert!(
        out.record()["rto"]["assumed_phases"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("decide"))
    );
    assert!(out.report().contains("*(assumed)*"));

    let out = drill(&manual("5m"), "", "").run().expect_code(0);
    assert_eq!(out.gate("RTO")["status"], "passed");
    assert!(out.gate("RTO")["measured_s"].as_f64().unwrap() >= 300.0);
}

#[test]
fn the_rpo_gate_fails_on_an_old_backup() {
    let toml = |age: &str| {
        format!(
            r#"
version = 1
[drill]
name = "t"
[gates]
rpo = "1h"
rpo_from = "{{{{ steps.locate.modified_at }}}}"
[[setup]]
id = "age"
kind = "exec"
run = "touch -d '{age}' backups/nightly.db"
[[steps]]
id = "locate"
kind = "locate"
glob = "backups/*.db"
[[steps]]
id = "restore"
kind = "restore"
engine = "sqlite"
from = "{{{{ steps.locate.path }}}}"
target = "{{{{ drill.workdir }}}}/restored.db"
"#
        )
    };
    for (age, code, status) in [
        ("2 hours ago", 1, "failed"),
        ("10 minutes ago", 0, "passed"),
    ] {
        let d = Drill::new(&toml(age));
        make_db(&d.path().join("backups/nightly.db"), 5);
        let out = d.run().expect_code(code);
        assert_eq!(out.gate("RPO")["status"], status, "{age}");
    }
}

#[test]
fn custom_gates_can_fail() {
    let toml = BASE.replace("#BEFORE_VERIFY#", "").replace("#AFTER_RESTORE#", "").replace("#MORE#", "")
        .replace("[gates]", "[[gates.custom]]\nname = \"at least 1000 dispatches\"\ncheck = \"steps.restore.table_counts.dispatches >= 1000\"\n[gates]");
    let d = Drill::new(&toml);
    make_db(&d.path().join("src.db"), 500);
    let out = d.run().expect_code(1);
    assert_eq!(out.gate("at least 1000 dispatches")["status"], "failed");
}

#[test]
fn query_checks_fail_on_wrong_values() {
    let checks = r#"
[[steps]]
id = "queries"
kind = "sql"
engine = "sqlite"
database = "{{ steps.restore.target }}"
[[steps.checks]]
name = "exact"
query = "SELECT count(*) FROM services"
expect = 2
[[steps.checks]]
name = "wrong"
query = "SELECT count(*) FROM services"
expect = 3
[[steps.checks]]
name = "too few"
query = "SELECT count(*) FROM dispatches"
min = 501
[[steps.checks]]
name = "rows"
query = "SELECT id, name FROM services ORDER BY id"
expect_rows = [[1, "api"], [2, "worker"]]
[[steps.checks]]
name = "bad sql"
query = "SELECT * FROM nope"
expect = 1
"#;
    let out = drill("", "", checks).run().expect_code(1);
    let results: Vec<(String, bool)> = out.step("queries")["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["passed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        results,
        vec![
            ("exact".into(), true),
            ("wrong".into(), false),
            ("too few".into(), false),
            ("rows".into(), true),
            ("bad sql".into(), false)
        ]
    );
    assert_eq!(out.step("queries")["outputs"]["value"], 2);
}

#[test]
fn blake3_manifests_verify_and_detect_corruption() {
    let toml = |corrupt: &str| {
        format!(
            r#"
version = 1
[drill]
name = "t"
[[steps]]
id = "sum"
kind = "checksum"
algorithm = "blake3"
files = ["data/*.bin"]
manifest = "B3SUMS"
{corrupt}
[[steps]]
id = "check"
kind = "checksum"
algorithm = "blake3"
verify = "B3SUMS"
"#
        )
    };
    let corrupt = "[[steps]]\nid = \"corrupt\"\nkind = \"exec\"\nrun = \"printf Z | dd of=data/b.bin bs=1 seek=10 conv=notrunc 2>/dev/null\"";
    for (extra, code) in [("", 0), (corrupt, 1)] {
        let out = Drill::new(&toml(extra))
            .file("data/a.bin", &vec![1u8; 100_000])
            .file("data/b.bin", &vec![2u8; 9_000_000])
            .run()
            .expect_code(code);
        if code == 0 {
            let manifest = std::fs::read_to_string(out.path().join("B3SUMS")).unwrap();
            assert_eq!(manifest.lines().count(), 2);
        } else {
            assert!(
                out.step("check")["error"]
                    .as_str()
                    .unwrap()
                    .contains("data/b.bin")
            );
        }
    }
}

#[test]
fn every_run_leaves_a_json_record_a_report_and_a_log() {
    let out = drill("", "", "")
        .arg("--junit")
        .arg("j.xml")
        .arg("--metrics")
        .arg("m.prom")
        .run()
        .expect_code(0);
    let r = out.record();
    for key in [
        "run_id",
        "drill",
        "mode",
        "host",
        "operators",
        "tool_version",
        "started_at",
        "finished_at",
        "duration_s",
        "status",
        "steps",
        "gates",
        "rto",
        "rpo",
        "files",
    ] {
        assert!(r.get(key).is_some(), "record lacks {key}");
    }
    assert_eq!(r["drill"]["playbook_sha256"].as_str().unwrap().len(), 64);
    assert!(
        r["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["sha256"].is_string())
    );
    assert!(out.log().contains("[backup] backed up"));
    let junit = std::fs::read_to_string(out.path().join("j.xml")).unwrap();
    assert!(junit.contains("failures=\"0\""), "{junit}");
    let prom = std::fs::read_to_string(out.path().join("m.prom")).unwrap();
    assert!(
        prom.contains("restore_drill_success{drill=\"t\"} 1"),
        "{prom}"
    );

    // `report` renders the stored record again, also through a custom template.
    let json = newest_artifact(&out.path().join("artifacts"), ".json");
    std::fs::write(
        out.path().join("t.j2"),
        "{{ drill.name }}: {{ status }} in {{ steps | length }} steps",
    )
    .unwrap();
    let rendered = Command::new(env!("CARGO_BIN_EXE_restore-drill"))
        .current_dir(out.path())
        .arg("report")
        .arg(&json)
        .args(["--template", "t.j2"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&rendered.stdout),
        "t: passed in 6 steps"
    );
}

/// A writer keeps inserting while the drill backs up; the row counts recorded at backup
/// time must equal what the restored copy holds (one snapshot), in both journal modes.
#[test]
fn a_backup_is_one_consistent_snapshot_while_the_source_is_written_to() {
    for mode in ["wal", "delete"] {
        let d = drill("", "", "");
        let source = d.path().join("src.db");
        let writer = rusqlite::Connection::open(&source).unwrap();
        writer
            .busy_timeout(std::time::Duration::from_secs(30))
            .unwrap();
        writer
            .query_row(&format!("PRAGMA journal_mode = {mode}"), [], |_| Ok(()))
            .unwrap();
        // In WAL mode keep committed rows in the -wal file: the backup must include them.
        writer.execute_batch("PRAGMA wal_autocheckpoint = 0; INSERT INTO dispatches (service_id, created_at) SELECT 1, 'wal' FROM dispatches LIMIT 100;").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut n = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                writer
                    .execute(
                        "INSERT INTO dispatches (service_id, created_at) VALUES (2, 'live')",
                        [],
                    )
                    .unwrap();
                n += 1;
            }
            n
        });
        let out = d.run();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let written = handle.join().unwrap();
        let out = out.expect_code(0);
        let backed_up = out.step("backup")["outputs"]["table_counts"]["dispatches"]
            .as_u64()
            .unwrap();
        assert!(
            backed_up >= 600,
            "{mode}: the backup lost committed rows ({backed_up})"
        );
        assert_eq!(
            out.step("restore")["outputs"]["table_counts"]["dispatches"]
                .as_u64()
                .unwrap(),
            backed_up,
            "{mode}"
        );
        assert!(written > 0, "{mode}: the writer never got to write");
    }
}

#[test]
fn an_unwritable_artifacts_directory_is_exit_3() {
    let d = drill("", "", "").file("blocked", b"a file, not a directory");
    let out = Command::new(env!("CARGO_BIN_EXE_restore-drill"))
        .current_dir(d.path())
        .args(["run", "playbook.toml", "--artifacts", "blocked/restore"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot create artifacts directory"));
}

#[test]
fn an_undefined_output_at_run_time_fails_the_step_naming_step_and_field() {
    let more = r#"
[[steps]]
id = "uses_missing"
kind = "exec"
run = "echo {{ steps.backup.no_such_output }}"
"#;
    let out = drill("", "", more).run().expect_code(1);
    let error = out.step("uses_missing")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("step `uses_missing`") && error.contains("field `run`"),
        "{error}"
    );
    assert!(error.contains("undefined"), "{error}");
}

#[test]
fn a_var_that_cannot_render_is_a_usage_error_that_leaves_nothing_behind() {
    let toml = BASE
        .replace("#BEFORE_VERIFY#", "")
        .replace("#AFTER_RESTORE#", "")
        .replace("#MORE#", "")
        .replace("name = \"t\"", "name = \"varfail\"")
        .replace(
            "source = \"src.db\"",
            "source = \"{{ env.DRILL_TEST_UNSET_VAR }}\"",
        );
    let workdirs = || -> Vec<_> {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("restore-drill-varfail-")
            })
            .collect()
    };
    let out = Drill::new(&toml).run().expect_code(2);
    assert!(out.stderr.contains("vars.source"), "{}", out.stderr);
    // The drill's lock file stays (empty) by design; no record or log may.
    let left: Vec<_> = std::fs::read_dir(out.path().join("artifacts"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "files were left in artifacts/: {left:?}");
    assert!(workdirs().is_empty(), "a work directory was left behind");
}
