//! SQLite drills end to end: real files, the real binary.

use super::*;

/// The SQLite drill: backup of `vars.source`, its manifest, `verify_backup`, `restore`,
/// `verify` (five checks), and a cleanup step that leaves `cleaned`.
pub fn playbook() -> Playbook {
    let restored = "{{ drill.workdir }}/r/restored.db";
    pb("t")
        .var("source", "src.db")
        .gate("rto", "15m")
        .step(sqlite_backup(
            "{{ vars.source }}",
            "{{ drill.workdir }}/b/backup.db",
        ))
        .step(manifest_steps())
        .step(sqlite_restore("{{ steps.backup.path }}", restored))
        .step(
            sql("verify", "sqlite", "{{ steps.restore.target }}").checks([
                builtin("tables", "tables_exist")
                    .set("tables", raw(r#"["services", "dispatches"]"#)),
                builtin("counts", "table_counts")
                    .set("compare_to", "{{ steps.backup.table_counts }}"),
                builtin("integrity", "integrity"),
                builtin("fks", "foreign_keys"),
                builtin("indexes", "indexes_exist")
                    .set("indexes", raw(r#"["idx_dispatches_service"]"#)),
            ]),
        )
        .step(mark_cleaned())
}

/// A drill of `playbook` with a 500-row `src.db` beside it.
pub fn drill_of(playbook: Playbook) -> Drill {
    playbook.drill().db("src.db", 500)
}

/// Statements run on the restored copy.
fn tamper_restored(statements: &str) -> Step {
    tamper("sqlite", "{{ steps.restore.target }}", statements)
}

#[test]
fn a_good_backup_restores_and_passes() {
    let out = drill_of(playbook()).run().expect_code(0);
    out.status("passed");
    let r = out.record();
    assert_eq!(r["schema"], "restore-drill/v1");
    assert_eq!(out.step("verify")["checks"].as_array().unwrap().len(), 5);
    assert_eq!(out.output("restore", "table_counts")["dispatches"], 500);
    assert!(out.cleaned());
    out.report_has("✅ PASSED");
    let workdir = r["workdir"].as_str().unwrap();
    assert!(
        !Path::new(workdir).exists(),
        "workdir {workdir} left behind"
    );
}

#[test]
fn a_backup_corrupted_after_its_manifest_fails_checksum_verification() {
    let corrupted = playbook().before("verify_backup", corrupt_backup());
    let out = drill_of(corrupted).run().expect_code(1);
    out.step("verify_backup").failed_with("checksum mismatch");
    out.step("restore").status("not_run");
    assert!(out.cleaned(), "cleanup must run after a failure");
    out.report_has("checksum mismatch");
}

#[test]
fn the_manifest_is_one_sha256sum_accepts() {
    let coreutils = exec("coreutils", "sha256sum -c '{{ steps.manifest.manifest }}'");
    let out = drill_of(playbook().step(coreutils)).run().expect_code(0);
    out.step("coreutils").output_has("stdout", ": OK");
}

#[test]
fn a_restored_database_missing_a_table_fails_tables_exist_and_table_counts() {
    let dropped = playbook().after("restore", tamper_restored("DROP TABLE dispatches"));
    let out = drill_of(dropped).run().expect_code(1);
    let verify = out.step("verify");
    verify.check("tables").failed_with("dispatches");
    verify.check("counts").failed_with("dispatches: missing");
    verify.check("integrity").passed();
    out.report_has("| dispatches | 500 | missing | ❌ |");
}

#[test]
fn lost_rows_fail_table_counts_unless_within_tolerance() {
    let lost = playbook().after(
        "restore",
        tamper_restored("DELETE FROM dispatches WHERE id <= 3"),
    );
    let out = drill_of(lost.clone()).run().expect_code(1);
    out.step("verify")
        .says("dispatches: 497 rows, source had 500");
    let tolerant = lost.edit("verify", |s| {
        s.edit_check("counts", |c| c.set("tolerance", 3))
    });
    drill_of(tolerant).run().expect_code(0);
}

#[test]
fn a_broken_index_fails_integrity_an_orphan_fails_foreign_keys_a_dropped_index_fails_indexes_exist()
{
    let sabotage = tamper_restored(
        "PRAGMA foreign_keys = OFF;
INSERT INTO dispatches VALUES (100000, 99, '2026-01-01T00:00:00Z');
CREATE INDEX idx_extra ON dispatches(created_at);
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = 'CREATE INDEX idx_extra ON dispatches(service_id)' WHERE name = 'idx_extra';
PRAGMA writable_schema = OFF;
DROP INDEX idx_dispatches_service;
",
    );
    let out = drill_of(playbook().after("restore", sabotage))
        .run()
        .expect_code(1);
    let verify = out.step("verify");
    for name in ["integrity", "fks", "indexes"] {
        verify.check(name).failed();
    }
    verify.check("tables").passed();
}

#[test]
fn an_empty_or_missing_backup_fails_the_restore() {
    for (name, prepare, says) in [
        ("empty", "touch empty.db", "is empty"),
        ("missing", "true", "not found"),
    ] {
        let from = format!("{name}.db");
        let out = pb("t")
            .step(exec("prepare", prepare).in_setup())
            .step(sqlite_restore(&from, "{{ drill.workdir }}/restored.db"))
            .step(wait("after", "1ms"))
            .run()
            .expect_code(1);
        out.step("restore").failed_with(says);
        out.step("after").status("not_run");
    }
}

#[test]
fn a_backup_that_is_not_a_database_fails_the_restore() {
    let restore = sqlite_restore("garbage.db", "{{ drill.workdir }}/restored.db");
    let d = pb("t")
        .step(restore)
        .drill()
        .file("garbage.db", &[7u8; 8192]);
    let out = d.run().expect_code(1);
    out.step("restore").failed_with("not a SQLite database");
}

#[test]
fn a_slow_step_fails_its_max_duration_gate() {
    let slow = |took: &str| playbook().step(wait("slow", took).set("max_duration", "100ms"));
    let out = drill_of(slow("400ms")).run().expect_code(1);
    // The step's own work succeeded.
    out.step("slow").passed();
    let gate = out.gate("Slow under 100ms");
    gate.failed();
    assert_eq!(gate["kind"], "max_duration");
    out.status("failed");

    let out = drill_of(slow("1ms")).run().expect_code(0);
    out.gate("Slow under 100ms").passed();
}

#[test]
fn a_timeout_kills_the_step_and_its_whole_process_group() {
    // A duration no other process on the machine sleeps for, to find leftovers by.
    let marker = format!("1000.{}", std::process::id());
    let run = format!("sh -c 'sleep {marker}' & sleep {marker}");
    let hang = exec("hang", &run).set("timeout", "500ms");
    let started = std::time::Instant::now();
    let out = drill_of(playbook().step(hang)).run().expect_code(1);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    out.step("hang").status("timed_out").says("timed out");
    assert!(out.cleaned());
    std::thread::sleep(std::time::Duration::from_millis(200));
    let left = processes_mentioning(&format!("sleep {marker}"));
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

#[test]
fn a_failing_step_stops_the_drill_and_cleanup_still_runs() {
    let boom = exec("boom", "echo about to fail; echo bad news >&2; exit 3");
    let out = drill_of(playbook().before("verify_backup", boom))
        .run()
        .expect_code(1);
    let boom = out.step("boom");
    boom.failed();
    assert_eq!(boom.output("exit_code"), 3);
    assert!(boom["log_tail"].as_str().unwrap().contains("bad news"));
    out.step("verify_backup").status("not_run");
    out.step("mark").passed();
    assert!(out.cleaned());
    out.log_has("[boom] stderr: bad news");
    // Failures show their log tail.
    out.report_has("bad news");
}

#[test]
fn continue_on_failure_runs_the_rest_but_the_drill_still_fails() {
    let boom = exec("boom", "exit 1").set("continue_on_failure", true);
    let out = drill_of(playbook().before("verify_backup", boom))
        .run()
        .expect_code(1);
    out.step("verify").passed();
}

#[test]
fn retries_run_a_failing_step_again() {
    let flaky = exec(
        "flaky",
        "n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; [ $n -ge 1 ]",
    );
    let flaky = flaky.set("retries", 2).set("retry_delay", "10ms");
    let out = drill_of(playbook().step(flaky)).run().expect_code(0);
    assert_eq!(out.step("flaky")["attempts"], 2);
}

#[test]
fn when_false_skips_a_step() {
    let never = exec("never", "exit 1").set("when", "steps.verify.status == 'failed'");
    let out = drill_of(playbook().step(never)).run().expect_code(0);
    out.step("never").status("skipped");
}

#[test]
fn a_restore_into_the_source_is_refused_and_the_source_is_unchanged() {
    let d = drill_of(playbook());
    let source = d.path().join("src.db");
    let before = sha256_of(&source);
    std::os::unix::fs::symlink(&source, d.path().join("alias.db")).unwrap();
    for target in ["src.db", "./src.db", "alias.db"] {
        let into = playbook().edit("restore", |s| {
            s.set("target", target).set("overwrite", true)
        });
        d.rewrite(&into).known_only_to_the_run(target);
        d.run_again().expect_code(1);
        assert_eq!(sha256_of(&source), before, "{target}: the source changed");
    }
    let text =
        std::fs::read_to_string(newest_artifact(&d.path().join("artifacts"), ".json")).unwrap();
    assert!(text.contains("a source of this playbook"), "{text}");
}

#[test]
fn an_existing_target_is_refused_without_overwrite_and_kept_safe_with_it() {
    let restore_over = |overwrite: bool| {
        pb("t")
            .step(sqlite_backup("src.db", "{{ drill.workdir }}/backup.db"))
            .step(sqlite_restore("{{ steps.backup.path }}", "existing.db"))
            .edit("restore", |s| {
                if overwrite {
                    s.set("overwrite", true)
                } else {
                    s
                }
            })
    };
    let d = restore_over(false)
        .drill()
        .db("src.db", 10)
        .db("existing.db", 3);
    let existing = d.path().join("existing.db");
    let before = sha256_of(&existing);
    d.run_again().expect_code(1);
    assert_eq!(
        sha256_of(&existing),
        before,
        "refused restore changed the target"
    );

    d.rewrite(&restore_over(true)).run_again().expect_code(0);
    let conn = rusqlite::Connection::open(&existing).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM dispatches", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 10, "overwrite replaced the target");
    let leftovers: Vec<_> = listing(d.path())
        .into_iter()
        .filter(|n| n.contains("pre-restore") || n.contains("restoring"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_failed_overwrite_puts_the_target_back() {
    let mut broken = b"SQLite format 3\0".to_vec();
    broken.extend(std::iter::repeat_n(0xAB, 8192));
    let restore = sqlite_restore("broken.db", "existing.db").set("overwrite", true);
    let d = pb("t")
        .step(restore)
        .drill()
        .file("broken.db", &broken)
        .db("existing.db", 7);
    let before = sha256_of(&d.path().join("existing.db"));
    let out = d.run().expect_code(1);
    assert_eq!(sha256_of(&out.path().join("existing.db")), before);
    out.step("restore").says("put back");
}

#[test]
fn secrets_never_reach_the_record_the_log_or_the_report() {
    let secret = "hunter2-s3cr3t-value";
    let use_secret = exec(
        "use_secret",
        "echo connecting with {{ secrets.pw }}; echo 'token={{ secrets.pw }}' >&2; exit 1",
    );
    let leaky = playbook()
        .secret("pw", "DRILL_TEST_SECRET")
        .table("report", "formats", raw(r#"["markdown", "html"]"#))
        .step(use_secret);
    let d = leaky
        .drill()
        .db("src.db", 10)
        .env("DRILL_TEST_SECRET", secret);
    let d = d
        .arg("--junit")
        .arg("junit.xml")
        .arg("--metrics")
        .arg("drill.prom");
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
        ("junit", out.file("junit.xml")),
        ("html", out.artifact_text(".html")),
    ] {
        assert!(!text.contains(secret), "the secret leaked into the {what}");
    }
}

#[test]
fn a_missing_secret_is_a_usage_error_and_nothing_runs() {
    let unset = playbook().secret("pw", "DRILL_TEST_UNSET_SECRET");
    let out = unset.run().expect_code(2);
    out.stderr_has("DRILL_TEST_UNSET_SECRET");
    assert!(!out.cleaned());
}

#[test]
fn the_rto_gate_fails_when_recovery_phases_exceed_it() {
    let decide = |assume: &str| {
        let step = manual("decide", "decide", "Decide to restore.").set("assume", assume);
        drill_of(playbook().before("verify_backup", step))
    };
    let out = decide("20m").run().expect_code(1);
    out.gate("RTO").failed();
    let summary = out.record()["summary"].as_str().unwrap().to_string();
    assert!(
        summary.starts_with("failed: gate RTO missed: "),
        "{summary}"
    );
    let assumed = &out.record()["rto"]["assumed_phases"];
    assert!(assumed.as_array().unwrap().contains(&"decide".into()));
    out.report_has("*(assumed)*");

    let out = decide("5m").run().expect_code(0);
    let rto = out.gate("RTO");
    rto.passed();
    assert!(rto["measured_s"].as_f64().unwrap() >= 300.0);
    let warnings = out.record()["warnings"].to_string();
    assert!(!warnings.contains("without `assume`"), "{warnings}");

    // Without `assume`, the manual step's 0s counts: the record warns of it.
    let bare = manual("decide", "decide", "Decide to restore.");
    let out = drill_of(playbook().before("verify_backup", bare))
        .run()
        .expect_code(0);
    let warnings = out.record()["warnings"].to_string();
    assert!(
        warnings.contains("step `decide`: a manual step without `assume`: its phase counts 0s"),
        "{warnings}"
    );
}

#[test]
fn the_rpo_gate_fails_on_an_old_backup() {
    for (age, code, status) in [
        ("2 hours ago", 1, "failed"),
        ("10 minutes ago", 0, "passed"),
    ] {
        let aged = pb("t")
            .gate("rpo", "1h")
            .gate("rpo_from", "{{ steps.locate.modified_at }}")
            .step(exec("age", &format!("touch -d '{age}' backups/nightly.db")).in_setup())
            .step(step("locate", "locate").set("glob", "backups/*.db"))
            .step(sqlite_restore(
                "{{ steps.locate.path }}",
                "{{ drill.workdir }}/restored.db",
            ));
        let out = aged.drill().db("backups/nightly.db", 5).run();
        out.expect_code(code).gate("RPO").status(status);
    }
}

#[test]
fn custom_gates_can_fail() {
    let gate = Table::new("[[gates.custom]]")
        .set("name", "at least 1000 dispatches")
        .set("check", "steps.restore.table_counts.dispatches >= 1000");
    let out = drill_of(playbook().section(gate)).run().expect_code(1);
    out.gate("at least 1000 dispatches").failed();
}

/// Runs the drill with `checks` on the restored copy (it fails) and compares each check's
/// verdict with `want`.
fn query_verdicts(checks: impl IntoIterator<Item = Table>, want: &[(&str, bool)]) -> Outcome {
    let queries = sql("queries", "sqlite", "{{ steps.restore.target }}").checks(checks);
    let out = drill_of(playbook().step(queries)).run().expect_code(1);
    let want: Vec<(String, bool)> = want.iter().map(|(n, ok)| (n.to_string(), *ok)).collect();
    assert_eq!(out.step("queries").results(), want);
    out
}

#[test]
fn query_checks_fail_on_wrong_values() {
    let count = "SELECT count(*) FROM services";
    let checks = [
        query("exact", count, 2),
        query("wrong", count, 3),
        check("too few")
            .set("query", "SELECT count(*) FROM dispatches")
            .set("min", 501),
        check("rows")
            .set("query", "SELECT id, name FROM services ORDER BY id")
            .set("expect_rows", raw(r#"[[1, "api"], [2, "worker"]]"#)),
        query("bad sql", "SELECT * FROM nope", 1),
    ];
    let want = [
        ("exact", true),
        ("wrong", false),
        ("too few", false),
        ("rows", true),
        ("bad sql", false),
    ];
    let out = query_verdicts(checks, &want);
    assert_eq!(out.output("queries", "value"), 2);
}

/// `expect`, `min` and `max` read the query's single value: a longer result fails,
/// saying its shape (only its first cell was compared: `api` passed for two services).
#[test]
fn a_single_value_expectation_fails_on_a_longer_result() {
    let names = "SELECT name FROM services ORDER BY id";
    let checks = [
        query("rows", names, "api"),
        query("columns", "SELECT 1, 2", 1),
        check("min")
            .set("query", "SELECT id FROM services")
            .set("min", 1),
        query("one", "SELECT name FROM services WHERE id = 1", "api"),
    ];
    let want = [
        ("rows", false),
        ("columns", false),
        ("min", false),
        ("one", true),
    ];
    let out = query_verdicts(checks, &want);
    let detail = |name: &str| out.step("queries").check(name)["detail"].to_string();
    assert_has(&detail("rows"), "returned 2 rows of 1 column", "rows");
    assert_has(&detail("columns"), "returned 1 row of 2 columns", "columns");
}

#[test]
fn blake3_manifests_verify_and_detect_corruption() {
    let blake3 = |id: &str| step(id, "checksum").set("algorithm", "blake3");
    for (damage, code) in [(None, 0), (Some(corrupt("data/b.bin")), 1)] {
        let sums = blake3("sum").set("files", raw(r#"["data/*.bin"]"#));
        let out = pb("t")
            .step(sums.set("manifest", "B3SUMS"))
            .step(damage)
            // No `algorithm`: the manifest's name says blake3.
            .step(step("check", "checksum").set("verify", "B3SUMS"))
            .drill()
            .file("data/a.bin", &vec![1u8; 100_000])
            .file("data/b.bin", &vec![2u8; 9_000_000])
            .run()
            .expect_code(code);
        if code == 0 {
            assert_eq!(out.file("B3SUMS").lines().count(), 2);
        } else {
            out.step("check").says("data/b.bin");
        }
    }
}

/// A verify that would read a blake3 manifest as sha256 is refused before anything runs,
/// with the fix; told the algorithm, the same drill passes.
#[test]
fn a_blake3_manifest_read_as_sha256_is_refused_at_validate() {
    let sums = step("sum", "checksum")
        .set("algorithm", "blake3")
        .set("files", raw(r#"["a.bin"]"#))
        .set("manifest", "{{ drill.workdir }}/sums.txt");
    let check = step("check", "checksum").set("verify", "{{ steps.sum.manifest }}");
    let bad = pb("t").step([sums.clone(), check.clone()]);
    let out = bad.drill().file("a.bin", b"x").validate().expect_code(2);
    out.stderr_has("step `check` would verify the blake3 manifest of step `sum` with sha256")
        .stderr_has("add `algorithm = \"blake3\"`");
    assert_has(&out.stderr, "--> playbook.toml:", "a location");
    let good = pb("t").step([sums, check.set("algorithm", "blake3")]);
    good.drill().file("a.bin", b"x").run().expect_code(0);
}

#[test]
fn every_run_leaves_a_json_record_a_report_and_a_log() {
    let d = drill_of(playbook()).arg("--junit").arg("j.xml");
    let out = d.arg("--metrics").arg("m.prom").run().expect_code(0);
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
    let files = r["files"].as_array().unwrap();
    assert!(files.iter().any(|f| f["sha256"].is_string()));
    out.log_has("[backup] backed up");
    let junit = out.file("j.xml");
    assert!(junit.contains("failures=\"0\""), "{junit}");
    let prom = out.file("m.prom");
    assert!(
        prom.contains("restore_drill_success{drill=\"t\"} 1"),
        "{prom}"
    );

    // `report` renders the stored record again, also through a custom template.
    let json = newest_artifact(&out.path().join("artifacts"), ".json");
    let template = "{{ drill.name }}: {{ status }} in {{ steps | length }} steps";
    std::fs::write(out.path().join("t.j2"), template).unwrap();
    let json = json.to_str().unwrap();
    let rendered = restore_drill(out.path(), &["report", json, "--template", "t.j2"]);
    assert_eq!(rendered.stdout, "t: passed in 6 steps");
}

/// A writer keeps inserting while the drill backs up; the row counts recorded at backup
/// time must equal what the restored copy holds (one snapshot), in both journal modes.
#[test]
fn a_backup_is_one_consistent_snapshot_while_the_source_is_written_to() {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    for mode in ["wal", "delete"] {
        let d = drill_of(playbook());
        let writer = rusqlite::Connection::open(d.path().join("src.db")).unwrap();
        writer
            .busy_timeout(std::time::Duration::from_secs(30))
            .unwrap();
        writer
            .query_row(&format!("PRAGMA journal_mode = {mode}"), [], |_| Ok(()))
            .unwrap();
        // In WAL mode keep committed rows in the -wal file: the backup must include them.
        writer.execute_batch("PRAGMA wal_autocheckpoint = 0; INSERT INTO dispatches (service_id, created_at) SELECT 1, 'wal' FROM dispatches LIMIT 100;").unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let insert = "INSERT INTO dispatches (service_id, created_at) VALUES (2, 'live')";
            let mut n = 0;
            while !flag.load(Relaxed) {
                writer.execute(insert, []).unwrap();
                n += 1;
                // A breath between commits: in rollback-journal mode a writer that
                // re-locks at once can starve every reader on a loaded machine (the
                // backup then gives up after its busy timeout), which no real
                // application does; thousands of commits still land during the backup.
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            n
        });
        let out = d.run();
        stop.store(true, Relaxed);
        let written = handle.join().unwrap();
        let out = out.expect_code(0);
        let backed_up = out.output("backup", "table_counts")["dispatches"]
            .as_u64()
            .unwrap();
        assert!(
            backed_up >= 600,
            "{mode}: the backup lost committed rows ({backed_up})"
        );
        let restored = out.output("restore", "table_counts")["dispatches"].as_u64();
        assert_eq!(restored.unwrap(), backed_up, "{mode}");
        assert!(written > 0, "{mode}: the writer never got to write");
    }
}

/// Closing any descriptor of a file drops every POSIX lock the process holds on it,
/// SQLite's own among them. A backup that closed its copy's descriptor before the end of
/// its read transaction let a writer commit while the rows were still being counted: the
/// counts were of another state than the copy ("603 rows, source had 604"). Thousands of
/// tables make the counting outlast the copy by far; a writer (this test's process, not
/// the drill's) tries all the while to add a row to the table counted last.
#[test]
fn the_counts_are_those_of_the_copy_when_counting_outlasts_copying() {
    let counts =
        builtin("counts", "table_counts").set("compare_to", "{{ steps.backup.table_counts }}");
    let book = pb("t")
        .step(sqlite_backup("many.db", "{{ drill.workdir }}/b.db"))
        .step(sql("verify", "sqlite", "{{ steps.backup.path }}").checks([counts]));
    let out = while_written(book.drill()).expect_code(0);
    out.step("verify").passed();
}

/// Runs `d` on its `many.db` of a thousand tables (rollback journal) while this process
/// adds rows to its last table, as fast as the drill's locks let it.
fn while_written(d: Drill) -> Outcome {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    let tables: String = (0..1000)
        .map(|i| format!("CREATE TABLE t{i:04} (id INTEGER PRIMARY KEY);"))
        .collect();
    let writer = rusqlite::Connection::open(d.path().join("many.db")).unwrap();
    writer
        .execute_batch(&format!(
            "PRAGMA journal_mode = DELETE; BEGIN; {tables} CREATE TABLE zz_last (id INTEGER PRIMARY KEY); COMMIT;"
        ))
        .unwrap();
    let (stop, written) = (&AtomicBool::new(false), &AtomicU64::new(0));
    let out = std::thread::scope(|s| {
        s.spawn(move || {
            // No busy timeout: a write is tried again at once, so any moment the drill's
            // lock is gone is taken.
            while !stop.load(Relaxed) {
                if writer
                    .execute("INSERT INTO zz_last DEFAULT VALUES", [])
                    .is_ok()
                {
                    written.fetch_add(1, Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_micros(500));
            }
        });
        let out = d.run();
        stop.store(true, Relaxed);
        out
    });
    assert!(written.load(Relaxed) > 0, "the writer never got to write");
    out
}

#[test]
fn an_unwritable_artifacts_directory_is_exit_3() {
    let d = drill_of(playbook()).file("blocked", b"a file, not a directory");
    let args = ["run", "playbook.toml", "--artifacts", "blocked/restore"];
    let out = restore_drill(d.path(), &args).expect_code(3);
    assert!(out.stderr.contains("cannot create artifacts directory"));
}

#[test]
fn an_undefined_output_at_run_time_fails_the_step_naming_step_and_field() {
    // Read by subscript: `validate` refuses `steps.backup.no_such_output` as written.
    let uses_missing = exec("uses_missing", "echo {{ steps['backup'].no_such_output }}");
    let out = drill_of(playbook().step(uses_missing)).run().expect_code(1);
    let step = out.step("uses_missing");
    step.says("step `uses_missing`").says("field `run`");
    step.says("undefined");
}

#[test]
fn a_var_that_cannot_render_is_a_usage_error_that_leaves_nothing_behind() {
    let unrenderable = playbook()
        .name("varfail")
        .var("source", "{{ env.DRILL_TEST_UNSET_VAR }}");
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
    let out = unrenderable.run().expect_code(2);
    out.stderr_has("vars.source");
    // The drill's lock file stays (empty) by design; no record or log may.
    let artifacts = out.path().join("artifacts");
    let mut left = if artifacts.exists() {
        listing(&artifacts)
    } else {
        Vec::new()
    };
    left.retain(|n| !n.starts_with('.'));
    assert!(left.is_empty(), "files were left in artifacts/: {left:?}");
    assert!(workdirs().is_empty(), "a work directory was left behind");
}
