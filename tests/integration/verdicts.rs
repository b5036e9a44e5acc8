//! A red drill looks red everywhere, a green one means the backup restored, and what was
//! not measured is never reported as met: gates after a failure that let the drill go on,
//! gates over steps that never ran, checks over nothing, reports against their record.

use super::*;

/// The SQLite drill with an RTO, an RPO and a custom gate on the verification.
fn gated() -> Playbook {
    super::sqlite::playbook()
        .gate("rpo", "1h")
        .gate("rpo_from", "{{ steps.backup.snapshot_at }}")
        .section(
            Table::new("[[gates.custom]]")
                .set("name", "quick verify")
                .set("check", "steps.verify.duration_s < 600"),
        )
}

/// No gate of `out` passed, and the report shows none as met.
#[track_caller]
fn no_gate_met(out: &Outcome) {
    for name in ["RTO", "RPO", "quick verify"] {
        out.gate(name).status("not_evaluated");
    }
    let record = out.record();
    assert!(record["rto"]["measured_s"].is_null(), "{}", record["rto"]);
    assert!(record["rpo"]["measured_s"].is_null(), "{}", record["rpo"]);
    let md = out.report();
    let gates = md.lines().filter(|l| l.starts_with("| Gate "));
    for line in gates.chain(md.lines().filter(|l| l.contains("**Total**"))) {
        assert!(!line.contains('✅'), "{line} in\n{md}");
    }
    assert!(!md.contains("✅ met"), "{md}");
}

/// A restore that failed with `continue_on_failure`: the steps after it ran, but nothing
/// was recovered; the RTO, the RPO and the custom gate were met (the RTO "recovery took
/// 12ms", the RPO "newest restored data is from ...").
#[test]
fn a_failed_restore_that_let_the_drill_go_on_meets_no_gate() {
    let book = gated().edit("restore", |s| {
        s.set("from", "{{ drill.workdir }}/missing.db")
            .set("continue_on_failure", true)
    });
    let out = super::sqlite::drill_of(book).run().expect_code(1);
    out.step("restore").failed();
    out.step("verify").failed();
    no_gate_met(&out);
    out.gate("RTO")
        .says("step `restore` failed: recovery did not finish");
    // Without `continue_on_failure` the drill stops there, and says so.
    let book = gated().edit("restore", |s| {
        s.set("from", "{{ drill.workdir }}/missing.db")
    });
    let out = super::sqlite::drill_of(book).run().expect_code(1);
    out.step("verify").status("not_run");
    no_gate_met(&out);
    out.gate("RTO")
        .says("the drill stopped before recovery finished");
}

/// The restore skipped (`when` false): no step of the RTO's phases but the checksum's ran,
/// and the custom gate read the skipped step's `duration_s` (0): both were met. They are
/// `not_evaluated`, and a target set and not evaluated fails the drill (exit 1): passing
/// means every gate passed, and a drill whose restore never ran is no green drill.
#[test]
fn gates_over_steps_that_did_not_run_are_not_evaluated() {
    let book = pb("t")
        .gate("rto", "15m")
        .gate("rto_phases", list(&["restore"]))
        .section(
            Table::new("[[gates.custom]]")
                .set("name", "quick restore")
                .set("check", "steps.restore.duration_s < 60"),
        )
        .section(
            Table::new("[[gates.custom]]")
                .set("name", "restore skipped")
                .set("check", "steps.restore.status == 'skipped'"),
        )
        .step(sqlite_backup("src.db", "{{ drill.workdir }}/b.db"))
        .step(
            sqlite_restore("{{ steps.backup.path }}", "{{ drill.workdir }}/r.db")
                .set("when", "false"),
        )
        .step(wait("w", "1ms"));
    let out = super::sqlite::drill_of(book).run().expect_code(1);
    out.step("restore").status("skipped");
    let rto = out.gate("RTO");
    rto.status("not_evaluated")
        .says("no step of the RTO's phases ran");
    assert!(rto["measured"].is_null(), "{rto}");
    out.gate("quick restore")
        .status("not_evaluated")
        .says("reads step `restore`, which was skipped");
    out.gate("restore skipped").passed();
    let summary = out.record()["summary"].clone();
    assert_eq!(
        summary,
        "failed: gate RTO not evaluated: no step of the RTO's phases ran (and 1 more)"
    );
    let md = out.report();
    assert!(!md.contains("✅ within"), "{md}");
    out.report_has("⚪ not measured: no step of the RTO's phases ran");
}

/// A passing drill's summary counts a skipped step apart: it did not pass (it said
/// "3 steps"). Neither the skipped step's `max_duration` nor an RPO without a target
/// (only `rpo_from`), both not evaluated, fails the drill: neither is a target it missed.
#[test]
fn a_passing_summary_counts_skipped_steps_apart() {
    let skipped = wait("skipped", "1ms").set("when", "false");
    let book = pb("t")
        .gate("rpo_from", "2026-01-01T00:00:00Z")
        .step(wait("a", "1ms"))
        .step(skipped.set("max_duration", "1s"))
        .step(wait("b", "1ms"));
    let out = book.run().expect_code(0);
    let summary = out.record()["summary"].clone();
    assert_eq!(summary, "passed: 2 steps (1 skipped), 0 gates passed");
    out.gate("RPO").status("not_evaluated");
}

/// An RPO timestamp later than the drill (a wrong column, a clock) was an age of 0: met.
#[test]
fn an_rpo_timestamp_from_the_future_is_not_met() {
    let book = super::sqlite::playbook()
        .gate("rpo", "1h")
        .gate("rpo_from", "2099-01-01T00:00:00Z");
    let out = super::sqlite::drill_of(book).run().expect_code(1);
    out.gate("RPO")
        .failed_with("cannot measure the RPO: `2099-01-01T00:00:00Z` is later than now");
    assert!(out.record()["rpo"]["measured_s"].is_null());
    assert!(!out.report().contains("✅ met"));
}

/// An RTO target of 0s is a target: the report's total says it is over it.
#[test]
fn a_zero_rto_target_shows_over_in_the_report() {
    let book = super::sqlite::playbook().gate("rto", "0s");
    let out = super::sqlite::drill_of(book).run().expect_code(1);
    out.gate("RTO").failed();
    out.report_has("❌ over 0ms");
}

/// Checks with nothing to compare passed ("all 0 tables present", "0 tables match the
/// source"): each now fails, saying there was nothing to check.
#[test]
fn checks_over_nothing_fail() {
    let counts = "{{ steps.backup.table_counts }}";
    let checks = [
        builtin("no tables", "tables_exist").set("tables", raw("[]")),
        builtin("no indexes", "indexes_exist").set("indexes", raw("[]")),
        builtin("no listed tables", "tables_exist").set("compare_to", raw("[]")),
        builtin("empty counts", "table_counts").set("compare_to", raw("{}")),
        builtin("no counted tables", "table_counts")
            .set("compare_to", counts)
            .set("tables", raw("[]")),
        builtin("empty digests", "table_digests").set("compare_to", raw("{}")),
        builtin("no objects", "objects_exist").set("compare_to", raw("[]")),
    ];
    let book = pb("t")
        .step(sqlite_backup("src.db", "{{ drill.workdir }}/b.db"))
        .step(sqlite_restore(
            "{{ steps.backup.path }}",
            "{{ drill.workdir }}/r.db",
        ))
        .step(sql("verify", "sqlite", "{{ steps.restore.target }}").checks(checks));
    let out = super::sqlite::drill_of(book).run().expect_code(1);
    let verify = out.step("verify");
    for (name, passed) in verify.results() {
        assert!(!passed, "check `{name}` passed over nothing");
        verify.check(&name).failed_with("nothing to check");
    }
    assert_eq!(verify.results().len(), 7);
}

/// A files backup of an empty folder: its manifest lists nothing, the restored tree is
/// empty, and `files_match` said "0 entries match the backup".
#[test]
fn files_match_on_an_empty_manifest_fails() {
    let book = pb("t")
        .step(files_backup(
            &["tree"],
            "{{ drill.workdir }}/b/tree.tar.zst",
        ))
        .step(files_restore(
            "{{ steps.backup.path }}",
            "{{ drill.workdir }}/r",
        ))
        .step(files_check("verify", "{{ steps.restore.target }}").checks(
            builtin("match", "files_match").set("manifest", "{{ steps.backup.manifest }}"),
        ));
    let d = book.drill();
    std::fs::create_dir_all(d.path().join("tree")).unwrap();
    let out = d.run().expect_code(1);
    out.check("match").failed_with("nothing to check:");
}

/// `file_count` with `min = 0` and no `max` can never fail: refused like one without
/// either.
#[test]
fn a_file_count_of_at_least_zero_is_refused() {
    let count = builtin("count", "file_count").set("min", 0);
    let out = pb("t").step(files_check("v", ".").checks(count));
    let out = out.drill().validate().expect_code(2);
    out.stderr_has("`file_count` needs `min` or `max`: it could never fail");
}

/// `roles_exist` with `roles = []` and no grant passed ("0 roles exist and can log in").
#[test]
fn roles_exist_with_empty_lists_is_refused() {
    let check = builtin("roles", "roles_exist")
        .set("roles", raw("[]"))
        .set("grants", raw("{ app = [] }"));
    let book = pb("t").step(sql("verify", "postgres", "postgres://h/db").checks(check));
    book.drill()
        .validate()
        .expect_code(2)
        .stderr_has("`roles_exist` needs `roles` or `grants`: it could never fail");
}

/// The `<testsuite>` line of a JUnit report.
fn suite_line(junit: &str) -> &str {
    junit
        .lines()
        .find(|l| l.contains("<testsuite "))
        .unwrap_or(junit)
}

/// A drill that passed but whose `--metrics` file cannot be written ends as `error`
/// (exit 3): the reports written before that failure said "✅ PASSED", JUnit had no
/// failure, and the run's own metrics said `restore_drill_success 1`. Every file written
/// now says what the record says.
#[test]
fn a_report_that_cannot_be_written_leaves_no_file_saying_passed() {
    let formats = list(&["markdown", "html", "junit", "prometheus"]);
    let book = super::sqlite::playbook().table("report", "formats", formats);
    let d = super::sqlite::drill_of(book)
        .file("blocker", b"a file, not a folder")
        .arg("--metrics")
        .arg("blocker/m.prom");
    let out = d.run().expect_code(3);
    out.status("error");
    let md = out.report();
    assert!(!md.contains("PASSED"), "{md}");
    out.report_has("❌ ERROR").report_has("blocker/m.prom");
    let html = out.artifact_text(".html");
    assert!(
        html.contains("<span class=\"badge error\">ERROR</span>"),
        "{html}"
    );
    let junit = out.artifact_text(".junit.xml");
    assert!(suite_line(&junit).contains("errors=\"1\""), "{junit}");
    let prom = out.artifact_text(".prom");
    assert!(
        prom.contains("restore_drill_success{drill=\"t\"} 0"),
        "{prom}"
    );
}

/// The record of a run killed mid-step says `running`; its JUnit report (`report
/// --format junit`) had every case passed or skipped: green in CI.
#[test]
fn the_junit_report_of_a_killed_run_is_not_green() {
    let book = pb("t").step(wait("long", "1m"));
    let mut running = book.drill().start();
    running.wait_running("long");
    running.signal(libc::SIGKILL);
    let out = running.finish();
    let json = newest_artifact(&out.path().join("artifacts"), ".json");
    let workdir = newest_record(&out.path().join("artifacts"))["workdir"].clone();
    let _ = std::fs::remove_dir_all(workdir.as_str().unwrap());
    let junit = restore_drill(
        out.path(),
        &["report", json.to_str().unwrap(), "--format", "junit"],
    );
    let junit = junit.expect_code(0).stdout;
    assert!(suite_line(&junit).contains("errors=\"1\""), "{junit}");
    assert!(junit.contains("name=\"verdict\""), "{junit}");
    // Its HTML report's summary was in the green box of a pass.
    let html = restore_drill(
        out.path(),
        &["report", json.to_str().unwrap(), "--format", "html"],
    );
    let html = html.expect_code(0).stdout;
    // A killed run's record is reported died: red, as a failure.
    assert!(html.contains("<p class=\"summary failed\">"), "{html}");
    let rule = html.lines().find(|l| l.starts_with(".summary {")).unwrap();
    assert!(!rule.contains("#2e7d32"), "green for any status: {rule}");
}

/// A failed drill's verdict is a failure of its own in JUnit, and a passed one's passes.
#[test]
fn the_junit_verdict_follows_the_record() {
    let junit = |book: Playbook, code| {
        let d = super::sqlite::drill_of(book).arg("--junit").arg("j.xml");
        d.run().expect_code(code).file("j.xml")
    };
    let passed = junit(super::sqlite::playbook(), 0);
    assert!(
        suite_line(&passed).contains("failures=\"0\" errors=\"0\""),
        "{passed}"
    );
    assert!(passed.contains("name=\"verdict\" time="), "{passed}");
    let failing = super::sqlite::playbook().gate("rto", "0s");
    let failed = junit(failing, 1);
    assert!(
        suite_line(&failed).contains("failures=\"2\""),
        "gate and verdict: {failed}"
    );
}

/// A passing drill whose report showed ❌ three times: a count within its `tolerance`,
/// and a query's `min` and `max` listed as tables under "Row counts".
#[test]
fn the_row_counts_agree_with_their_checks() {
    let checks = [
        builtin("counts", "table_counts")
            .set("compare_to", "{{ steps.backup.table_counts }}")
            .set("tolerance", 5),
        check("bounded")
            .set("query", "SELECT count(*) FROM dispatches")
            .set("min", 1)
            .set("max", 1000),
    ];
    let grow = tamper(
        "sqlite",
        "{{ steps.restore.target }}",
        "INSERT INTO dispatches SELECT id + 1000, service_id, created_at FROM dispatches LIMIT 2",
    );
    let book = pb("t")
        .table("report", "formats", list(&["markdown", "html"]))
        .step(sqlite_backup("src.db", "{{ drill.workdir }}/b.db"))
        .step(sqlite_restore(
            "{{ steps.backup.path }}",
            "{{ drill.workdir }}/r.db",
        ))
        .step(grow)
        .step(sql("verify", "sqlite", "{{ steps.restore.target }}").checks(checks));
    let out = super::sqlite::drill_of(book).run().expect_code(0);
    let md = out.report();
    assert!(!md.contains('❌'), "{md}");
    assert!(!md.contains("| min |") && !md.contains("| max |"), "{md}");
    out.report_has("| dispatches | 500 | 502 | ✅ within tolerance |");
    let html = out.artifact_text(".html");
    assert!(!html.contains('✘'), "{html}");
}

/// Waits (at most 30 s) for the file `rel` of a running drill's folder.
fn wait_for_file(running: &Running, rel: &str) {
    let file = running.path().join(rel);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// SIGTERM while cleanup ran, after every step passed: cleanup went on (as it should)
/// and the run ended `passed`, exit 0, the signal unsaid.
#[test]
fn a_signal_during_cleanup_ends_the_run_as_aborted() {
    let book = pb("t")
        .step(exec("ok", "true"))
        .step(exec("clean", "touch ready; sleep 1").in_cleanup());
    let running = book.drill().start();
    wait_for_file(&running, "ready");
    running.signal(libc::SIGTERM);
    let out = running.finish().expect_code(130);
    out.status("aborted");
    out.step("clean").passed();
}

/// A step interrupted by Ctrl-C whose command exits 0 when told to stop (a shell's
/// trap) was recorded `passed` (with the error "interrupted"), ✅ in the report.
#[test]
fn a_step_stopped_by_ctrl_c_never_passes() {
    let work = exec("work", "trap 'exit 0' TERM; touch ready; sleep 20 & wait");
    let book = pb("t")
        .gate("rto", "1h")
        .gate("rto_phases", list(&["verify"]))
        .step(work);
    let running = book.drill().start();
    wait_for_file(&running, "ready");
    let out = running.interrupt();
    out.step("work").failed_with("interrupted");
    out.gate("RTO")
        .status("not_evaluated")
        .says("the drill was interrupted");
    assert!(!out.report().contains("✅ passed"), "{}", out.report());
}

/// A step that failed, then passed on a retry: the record said only `attempts: 2`; why
/// the first attempt failed was in the log alone.
#[test]
fn a_step_that_passed_on_a_retry_says_why_it_failed_before() {
    let flaky = exec(
        "flaky",
        "if [ -e once ]; then exit 0; fi; touch once; exit 3",
    )
    .set("retries", 2)
    .set("retry_delay", "1ms");
    let out = pb("t").step(flaky).run().expect_code(0);
    let step = out.step("flaky");
    step.passed();
    assert_eq!(step["attempts"], 2);
    let warnings = out.record()["warnings"].to_string();
    assert!(
        warnings.contains("step `flaky` passed on attempt 2; attempt 1 failed: exited with 3"),
        "{warnings}"
    );
    out.report_has("passed on attempt 2");
}

/// Two teams' drills of one name (`db`): team b's never passed, but `status` merged them
/// into one row, passed by team a's run: "ok: 1 drill passed".
#[test]
fn a_drill_of_the_same_name_in_another_folder_never_passes_for_it() {
    let t = super::fleet::template();
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    super::fleet::put(&root.join("team-a"), &t, "db", "passed", 3600, 60.0);
    super::fleet::put(&root.join("team-b"), &t, "db", "failed", 60, 60.0);
    let status = restore_drill(root, &["status", ".", "--max-age", "35d"]).expect_code(1);
    assert_has(
        &status.stdout,
        "missing: no passing run of drill `db (team-b/db)`",
        "status",
    );
    let one = restore_drill(root, &["status", ".", "--max-age", "35d", "--drill", "db"]);
    one.expect_code(1);
    let prom = restore_drill(root, &["status", ".", "--format", "prom", "--drill", "db"]);
    let prom = prom.expect_code(0).stdout;
    assert_has(&prom, "{drill=\"db (team-b/db)\"} 0", "prom");
    assert!(!prom.contains("{drill=\"db\"}"), "{prom}");
    let history = restore_drill(root, &["history", "."]).expect_code(0).stdout;
    assert_has(&history, "db (team-a/db)", "history");
}

/// A step with `max_duration` that failed (and let the drill go on), or was skipped, or
/// never ran: its gate was left out of the gates, as if there were none.
#[test]
fn the_time_limit_of_a_step_that_did_not_pass_is_not_evaluated() {
    let book = pb("t")
        .step(
            exec("broken", "exit 1")
                .set("max_duration", "1m")
                .set("continue_on_failure", true),
        )
        .step(
            wait("skipped", "1ms")
                .set("max_duration", "1m")
                .set("when", "false"),
        )
        .step(exec("last", "exit 1").set("max_duration", "1m"))
        .step(wait("never", "1ms").set("max_duration", "{{ vars.limit }}"))
        .var("limit", "1m");
    let out = book.run().expect_code(1);
    out.step("never").status("not_run");
    for (name, why) in [
        ("Broken under 1m", "step `broken` did not pass (failed)"),
        ("Skipped under 1m", "step `skipped` did not pass (skipped)"),
        ("Last under 1m", "step `last` did not pass (failed)"),
        (
            "Never under {{ vars.limit }}",
            "step `never` did not pass (not run)",
        ),
    ] {
        out.gate(name).status("not_evaluated").says(why);
    }
}

/// A custom gate whose `check` is not true or false (a number, the string "false")
/// passed: anything truthy was met.
#[test]
fn a_custom_gate_that_is_not_true_or_false_fails() {
    let gate = |name: &str, check: &str| {
        Table::new("[[gates.custom]]")
            .set("name", name)
            .set("check", check)
    };
    let book = super::sqlite::playbook()
        .section(gate("a size", "steps.backup.bytes"))
        .section(gate("a word", "'false'"))
        .section(gate("a comparison", "steps.backup.bytes > 0"));
    let out = super::sqlite::drill_of(book).run().expect_code(1);
    out.gate("a size").failed_with("not true or false");
    out.gate("a word")
        .failed_with("is \"false\", not true or false");
    out.gate("a comparison").passed();
}

/// In a walkthrough, `skip` at a manual step's prompt (as at every other step's) was
/// taken as a note: the manual step passed, done.
#[test]
fn a_manual_step_skipped_in_a_walkthrough_is_not_done() {
    use std::io::Write as _;
    let decide = manual("decide", "decide", "Page the database owner.");
    let d = pb("t").step(decide).drill();
    let mut child = super::commands::walkthrough(&d, std::process::Stdio::null());
    child.stdin.take().unwrap().write_all(b"skip\n").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(1));
    let record = newest_record(&d.path().join("artifacts"));
    assert_eq!(record["steps"][0]["status"], "failed", "{record}");
    let error = record["steps"][0]["error"].as_str().unwrap();
    assert!(error.contains("answered `skip`"), "{error}");
}

/// In a walkthrough, `skip` at a step that proves something (here an exec standing for a
/// check) let the drill pass, its RTO measured without the skipped step.
#[test]
fn a_step_the_operator_skipped_leaves_the_drill_unproved() {
    use std::io::Write as _;
    let book = pb("t")
        .gate("rto", "15m")
        .step(exec("check", "true").set("phase", "verify"))
        .step(exec("after", "true"));
    let d = book.drill();
    let mut child = super::commands::walkthrough(&d, std::process::Stdio::piped());
    // Skip the first step, run the second: the drill goes on after a skip.
    child.stdin.take().unwrap().write_all(b"skip\n\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`skip`: the drill then cannot pass"),
        "{stderr}"
    );
    let record = newest_record(&d.path().join("artifacts"));
    assert_eq!(record["steps"][0]["status"], "skipped", "{record}");
    assert_eq!(record["steps"][1]["status"], "passed", "{record}");
    assert_eq!(
        record["summary"], "failed: step `check` skipped by the operator: not proved (and 1 more)",
        "the one more: the RTO, not measured without the step"
    );
    let rto = &record["gates"][0];
    assert_eq!(rto["status"], "not_evaluated", "{rto}");
    assert!(
        rto["detail"]
            .as_str()
            .unwrap()
            .contains("skipped by the operator"),
        "{rto}"
    );
    assert!(record["rto"]["measured_s"].is_null(), "{record}");
}

/// A second Ctrl-C cut cleanup short (its running step interrupted, the next never run),
/// yet the summary on the terminal, in the record, the reports and JUnit said
/// "aborted: interrupted; cleanup ran".
#[test]
fn an_abort_that_cut_cleanup_short_never_says_cleanup_ran() {
    let book = |cleanup: &str| {
        pb("t")
            .table("report", "formats", list(&["markdown", "html", "junit"]))
            .step(exec("long", "sleep 1000"))
            .step(exec("slow", cleanup).in_cleanup())
            .step(exec("tidy", "true").in_cleanup())
    };
    let out = book("sleep 1000")
        .drill()
        .start()
        .interrupt_twice("long", "slow");
    let said =
        "aborted: interrupted; cleanup incomplete: step `slow` failed, 1 cleanup step not run";
    assert_eq!(out.record()["summary"], said);
    out.stderr_has(said).report_has(said);
    for ext in [".html", ".junit.xml"] {
        let text = out.artifact_text(ext);
        assert!(!text.contains("cleanup ran"), "{text}");
        assert!(text.contains("cleanup incomplete"), "{text}");
    }

    // One Ctrl-C: cleanup went on to its end, and the summary says so.
    let mut run = book("true").drill().start();
    run.wait_running("long");
    let out = run.interrupt();
    assert_eq!(out.record()["summary"], "aborted: interrupted; cleanup ran");
}

/// Cleanup could not remove the work directory (a file in it is immutable): the drill
/// passes, as designed, but its one-line summary (terminal, record, reports, chat and
/// healthchecks messages) said a plain "passed: 1 step, 0 gates passed", the leftover
/// only among the warnings.
#[test]
fn a_pass_that_left_something_behind_says_so_in_its_summary() {
    let probe = tempfile::tempdir().unwrap();
    let pinned = probe.path().join("pinned");
    std::fs::write(&pinned, b"").unwrap();
    let chattr = |flag: &str, path: &std::path::Path| {
        let status = std::process::Command::new("chattr")
            .arg(flag)
            .arg(path)
            .status();
        status.is_ok_and(|s| s.success())
    };
    if !chattr("+i", &pinned) {
        super::skips::record(
            "a pass that left something behind",
            "chattr +i not possible here",
        );
        return;
    }
    assert!(chattr("-i", &pinned));
    let pin = "touch '{{ drill.workdir }}/pinned' && chattr +i '{{ drill.workdir }}/pinned'";
    let out = pb("t").step(exec("pin", pin)).run();
    let workdir = out.resource("workdir");
    let workdir = std::path::PathBuf::from(workdir["id"].as_str().unwrap());
    assert!(chattr("-i", &workdir.join("pinned")));
    std::fs::remove_dir_all(&workdir).unwrap();
    let out = out.expect_code(0);
    let said = "passed: 1 step, 0 gates passed; 1 resource left behind";
    assert_eq!(out.record()["summary"], said);
    out.stderr_has(said).report_has(said);

    // A work directory kept on purpose is nothing left behind.
    let kept = pb("t")
        .step(exec("w", "true"))
        .drill()
        .arg("--keep-workdir")
        .run();
    let _guard = kept.kept_workdir();
    assert_eq!(kept.record()["summary"], "passed: 1 step, 0 gates passed");
}

/// Every step of the drill skipped by its `when` (an unset variable, say): nothing was
/// backed up, restored or verified, yet the run passed ("passed: 0 steps (2 skipped)",
/// exit 0) and `status` counted it as the drill's last pass. `validate` already refuses
/// a playbook without steps for the same reason.
#[test]
fn a_drill_whose_every_step_was_skipped_did_not_pass() {
    let skipped = |id| wait(id, "1ms").set("when", "false");
    let book = pb("t")
        .step(wait("prepare", "1ms").in_setup())
        .step(skipped("a"))
        .step(skipped("b"));
    let out = book.run().expect_code(1);
    out.status("failed");
    let said = "failed: every step of the drill was skipped: it proved nothing";
    assert_eq!(out.record()["summary"], said);
    out.stderr_has(said);
    let status = restore_drill(out.path(), &["status", "artifacts"]);
    status.expect_code(1);
    // One step that ran is a drill (the other's skip is counted apart).
    let one = pb("t").step(skipped("a")).step(wait("b", "1ms")).run();
    one.expect_code(0);
}
