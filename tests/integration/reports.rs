//! What people read about a drill: the reports, the metrics, the terminal (issue 11).

use super::*;

/// The SQLite drill with RTO and RPO gates and an assumed 5m decision, whose restore
/// reads a file that is not there: it fails at restore, before anything is verified.
fn failing_at_restore() -> Playbook {
    super::sqlite::playbook()
        .gate("rpo", "1h")
        .gate("rpo_from", "{{ steps.backup.snapshot_at }}")
        .before(
            "restore",
            manual("decide", "decide", "Decide to restore.").set("assume", "5m"),
        )
        .edit("restore", |s| {
            s.set("from", "{{ drill.workdir }}/missing.db")
        })
}

/// A metric line of `prom` starting with `name{…labels` (None when there is none).
fn metric<'a>(prom: &'a str, start: &str) -> Option<&'a str> {
    prom.lines().find(|l| l.starts_with(start))
}

/// Issue 11 item 2: a drill that failed at restore measured no RTO and no RPO, and no
/// report says it met them; the metrics hold no time for steps that never ran.
#[test]
fn a_drill_that_failed_at_restore_shows_rto_and_rpo_as_not_measured() {
    let formats = list(&["markdown", "html"]);
    let book = failing_at_restore().table("report", "formats", formats);
    let d = super::sqlite::drill_of(book).arg("--metrics").arg("m.prom");
    let out = d.run().expect_code(1);
    out.step("restore").failed();
    out.step("verify").status("not_run");
    out.gate("RTO").status("not_evaluated");
    let record = out.record();
    assert!(record["rto"]["measured_s"].is_null(), "{}", record["rto"]);
    assert!(record["rpo"]["measured_s"].is_null(), "{}", record["rpo"]);

    let md = out.report();
    assert!(!md.contains("✅ within"), "{md}");
    assert!(!md.contains("✅ met"), "the RPO is not met: {md}");
    out.report_has("| **Total** | **—** | ⚪ not measured");
    out.report_has("⚪ Not measured: the drill stopped before recovery finished");
    let html = out.artifact_text(".html");
    assert!(html.contains("not measured"), "{html}");

    let prom = out.file("m.prom");
    let no = |start: &str| assert_eq!(metric(&prom, start), None, "{prom}");
    no("restore_drill_rto_seconds{");
    no("restore_drill_rpo_seconds{");
    no("restore_drill_step_duration_seconds{drill=\"t\",step=\"verify\"");
    assert!(
        metric(
            &prom,
            "restore_drill_step_duration_seconds{drill=\"t\",step=\"restore\""
        )
        .is_some()
    );
}

/// Issue 11 item 3: `--metrics` says when the drill last passed, from the artifacts
/// directory, also in a run that failed; `status --format prom` says it for every drill.
#[test]
fn the_metrics_and_status_say_when_each_drill_last_passed() {
    let passing = pb("t").step(wait("w", "1ms"));
    let d = passing.drill().arg("--metrics").arg("m.prom");
    d.run_again().expect_code(0);
    let passed = latest_record(d.path()).unwrap();
    let at = passed["finished_at"].as_str().unwrap();
    let at = at.parse::<jiff::Timestamp>().unwrap().as_millisecond() as f64 / 1000.0;
    let line = format!("restore_drill_last_success_timestamp_seconds{{drill=\"t\"}} {at}");
    let prom = std::fs::read_to_string(d.path().join("m.prom")).unwrap();
    assert!(prom.contains(&line), "{line} not in {prom}");

    std::thread::sleep(std::time::Duration::from_millis(1100));
    d.rewrite(&passing.clone().step(exec("boom", "exit 1")));
    d.run_again().expect_code(1);
    let prom = std::fs::read_to_string(d.path().join("m.prom")).unwrap();
    assert!(
        prom.contains("restore_drill_success{drill=\"t\"} 0"),
        "{prom}"
    );
    assert!(
        prom.contains(&line),
        "the last pass, not this failure: {prom}"
    );

    let status = restore_drill(d.path(), &["status", "artifacts", "--format", "prom"]);
    let status = status.expect_code(0).stdout;
    assert!(status.contains(&line), "{status}");
    let never = [
        "status",
        "artifacts",
        "--format",
        "prom",
        "--drill",
        "other",
    ];
    let never = restore_drill(d.path(), &never).expect_code(0).stdout;
    assert!(
        never.contains("restore_drill_last_success_timestamp_seconds{drill=\"other\"} 0"),
        "{never}"
    );
}

/// Issue 11 item 6: a restore of a damaged backup fails with many lines of
/// `quick_check`; the summary is one line naming the step, the detail stays in the step,
/// and the terminal prints that detail once.
#[test]
fn the_summary_is_one_line_naming_the_first_failure() {
    let book = pb("t")
        .var("source", "src.db")
        .step(sqlite_backup(
            "{{ vars.source }}",
            "{{ drill.workdir }}/b.db",
        ))
        .step(corrupt_backup())
        .step(sqlite_restore(
            "{{ steps.backup.path }}",
            "{{ drill.workdir }}/r.db",
        ));
    let out = super::sqlite::drill_of(book).run().expect_code(1);
    let error = out.step("restore").failed()["error"]
        .as_str()
        .unwrap()
        .to_string();
    let summary = out.record()["summary"].as_str().unwrap().to_string();
    assert!(!summary.contains('\n'), "{summary}");
    assert!(summary.chars().count() <= 200, "{summary}");
    assert!(
        summary.starts_with("failed: step `restore` failed: "),
        "{summary}"
    );
    let detail = error.lines().last().unwrap();
    assert!(error.lines().count() > 1, "a detailed error: {error}");
    assert_eq!(out.stderr.matches(detail).count(), 1, "{}", out.stderr);
    assert_eq!(out.stderr.matches(&summary).count(), 1, "{}", out.stderr);
}

/// Issue 11 item 17: a limit reads as it was written ("under 1m", not "under 60.0s"),
/// and one is one ("1 step", "1 gate").
#[test]
fn limits_and_counts_read_as_written() {
    let book = pb("t").step(wait("w", "1ms").set("max_duration", "1m"));
    let out = book.run().expect_code(0);
    out.gate("W under 1m").passed();
    let summary = out.record()["summary"].clone();
    assert_eq!(summary, "passed: 1 step, 1 gate passed");
    let valid = book.drill().validate().expect_code(0);
    valid.stderr_has("ok (1 step)");
}
