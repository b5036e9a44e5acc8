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

/// The HTML report of `out`, parsed.
fn html_of(out: &Outcome) -> scraper::Html {
    scraper::Html::parse_document(&out.artifact_text(".html"))
}

/// The elements of `html` that `css` selects.
fn all<'a>(html: &'a scraper::Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    let selector = scraper::Selector::parse(css).unwrap();
    html.select(&selector).collect()
}

fn text(e: &scraper::ElementRef) -> String {
    e.text().collect::<String>()
}

/// The steps of a record, as `(id, status)`.
fn steps_of(record: &serde_json::Value) -> Vec<(String, String)> {
    let steps = record["steps"].as_array().unwrap().iter();
    steps
        .map(|s| {
            (
                s["id"].as_str().unwrap().into(),
                s["status"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// Asserts the timeline draws one bar per step, each in its status's colour class.
#[track_caller]
fn assert_one_bar_per_step(out: &Outcome, html: &scraper::Html) {
    let steps = steps_of(&out.record());
    let bars = all(html, "svg.timeline rect.bar");
    assert_eq!(bars.len(), steps.len(), "one bar per step");
    for (id, status) in &steps {
        let bar = all(html, &format!("svg.timeline rect.bar[data-step=\"{id}\"]"));
        assert_eq!(bar.len(), 1, "{id}");
        let class = bar[0].value().attr("class").unwrap();
        assert!(class.split(' ').any(|c| c == status), "{id}: {class}");
    }
}

/// Issue 11 item 7: the HTML report of a passing drill has the timeline (one bar per
/// step), the row counts source vs restored, and the runbook rendered from markdown.
#[test]
fn the_html_report_draws_the_timeline_row_counts_and_runbook() {
    let book = super::sqlite::playbook()
        .table("report", "formats", list(&["html"]))
        .edit("restore", |s| {
            s.set(
                "runbook",
                "Restore with `sqlite3 .restore`, **never** over the source.",
            )
        });
    let out = super::sqlite::drill_of(book).run().expect_code(0);
    let html = html_of(&out);
    assert_eq!(text(&all(&html, ".badge")[0]), "PASSED");
    assert_one_bar_per_step(&out, &html);
    let target = text(&all(&html, "svg.timeline .rto-label")[0]);
    assert!(target.starts_with("RTO target 15m"), "{target}");

    let rows = all(&html, "table.row-counts tr");
    let cells: Vec<Vec<String>> = rows[1..]
        .iter()
        .map(|r| all_in(r, "td").iter().map(text).collect())
        .collect();
    assert_eq!(cells.len(), 2, "{cells:?}");
    assert_eq!(cells[0][..3], ["dispatches", "500", "500"]);
    assert_eq!(cells[1][..3], ["services", "2", "2"]);

    let runbook = &all(&html, ".runbook")[0];
    assert_eq!(text(&all_in(runbook, "code")[0]), "sqlite3 .restore");
    assert_eq!(text(&all_in(runbook, "strong")[0]), "never");
    assert!(!text(runbook).contains('`'), "{}", text(runbook));
    let page = out.artifact_text(".html");
    for remote in ["<script", "http://", "https://", "src="] {
        let outside_svg_ns = page.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !outside_svg_ns.contains(remote),
            "{remote} in a self-contained report"
        );
    }
}

fn all_in<'a>(e: &scraper::ElementRef<'a>, css: &str) -> Vec<scraper::ElementRef<'a>> {
    e.select(&scraper::Selector::parse(css).unwrap()).collect()
}

/// Issue 11 item 7: the HTML report of a drill that failed at restore: its badge, the
/// failed bar and the bars of the steps that never ran, and RTO not measured.
#[test]
fn the_html_report_of_a_failed_drill_shows_where_it_stopped() {
    let book = failing_at_restore().table("report", "formats", list(&["html"]));
    let out = super::sqlite::drill_of(book).run().expect_code(1);
    let html = html_of(&out);
    assert_eq!(text(&all(&html, ".badge")[0]), "FAILED");
    assert_one_bar_per_step(&out, &html);
    assert_eq!(all(&html, "svg.timeline rect.bar.failed").len(), 1);
    assert_eq!(all(&html, "svg.timeline rect.bar.not_run").len(), 1);
    let failure = text(&all(&html, "pre.step-error")[0]);
    assert!(failure.contains("missing.db"), "{failure}");
    let page = out.artifact_text(".html");
    assert!(!page.contains("✔ within"), "not measured is never within");
}

/// Issue 11 item 8: a walkthrough shows every step's runbook before it runs (setup,
/// manual and cleanup steps too), and the operator's notes reach the reports.
#[test]
fn a_walkthrough_shows_every_runbook_and_reports_the_notes() {
    use std::io::Write as _;
    let book = pb("walk")
        .table("report", "formats", list(&["markdown", "html"]))
        .step(
            wait("prepare", "1ms")
                .set("runbook", "RB-setup: make room.")
                .in_setup(),
        )
        .step(
            manual("decide", "decide", "Page the database owner.")
                .set("runbook", "RB-manual: the owner decides."),
        )
        .step(wait("restore_step", "1ms").set("runbook", "RB-step: restore it."))
        .step(
            wait("tidy", "1ms")
                .set("runbook", "RB-cleanup: tidy up.")
                .in_cleanup(),
        );
    let d = book
        .drill()
        .arg("--walkthrough")
        .arg("--operator")
        .arg("alice");
    let mut child = d
        .command()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"paged Bob at 10:02\nrestore looks slow\n")
        .unwrap();
    drop(stdin);
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(0), "{stderr}");
    let runbooks = ["RB-setup", "RB-manual", "RB-step", "RB-cleanup"];
    let at: Vec<usize> = runbooks
        .iter()
        .map(|rb| {
            stderr
                .find(rb)
                .unwrap_or_else(|| panic!("no {rb} in {stderr}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "in order: {stderr}");

    let artifacts = d.path().join("artifacts");
    let md = std::fs::read_to_string(newest_artifact(&artifacts, ".md")).unwrap();
    let html = std::fs::read_to_string(newest_artifact(&artifacts, ".html")).unwrap();
    for report in [&md, &html] {
        for note in ["paged Bob at 10:02", "restore looks slow"] {
            assert!(report.contains(note), "{note} not in {report}");
        }
    }
    assert!(md.contains("## Operator notes"), "{md}");
    // The one operator did the manual step.
    for report in [&md, &html] {
        assert!(
            report.contains("(done by alice): paged Bob at 10:02"),
            "{report}"
        );
    }
}

/// Issue 11 item 9: a failing command shows the tail of its stderr on the terminal, and
/// its log tail and the log keep the order in which its lines were written.
#[test]
fn a_failing_command_shows_its_stderr_and_keeps_the_order_of_its_lines() {
    let script = "echo out1; sleep 0.1; echo err1 >&2; sleep 0.1; echo out2; sleep 0.1; \
                  echo err2 >&2; exit 3";
    let out = pb("t").step(exec("cmd", script)).run().expect_code(1);
    out.stderr_has("      | err1\n      | err2\n");
    let tail = out.step("cmd").failed()["log_tail"].clone();
    assert_eq!(
        tail,
        "stdout: out1\nstderr: err1\nstdout: out2\nstderr: err2"
    );
    out.log_has("[cmd] stdout: out1\n[cmd] stderr: err1\n[cmd] stdout: out2\n[cmd] stderr: err2\n");
    assert_eq!(out.output("cmd", "stderr"), "err1\nerr2");
    assert_eq!(out.output("cmd", "stdout"), "out1\nout2");
}

/// The kinds of artifact the end summary on stderr lists (`  json       path`).
fn listed(stderr: &str) -> Vec<String> {
    let after = stderr
        .rsplit_once("\nfailed: ")
        .or(stderr.rsplit_once("\npassed: "));
    let lines = after.map_or("", |(_, rest)| rest).lines().skip(1);
    let kinds = lines.filter(|l| l.starts_with("  ") && !l.starts_with("  !"));
    kinds
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// Issue 11 item 11: `--junit` and `--metrics` make their folders; a failed drill that
/// cannot write one stays failed (exit 1), says why, and lists only what it wrote.
#[test]
fn extra_outputs_make_their_folders_and_never_hide_a_failure() {
    let passing = pb("t").step(wait("w", "1ms"));
    let args = |d: Drill, junit: &str, metrics: &str| {
        d.arg("--junit").arg(junit).arg("--metrics").arg(metrics)
    };
    let d = args(passing.drill(), "ci/deep/j.xml", "m/d.prom");
    let out = d.run().expect_code(0);
    out.file("ci/deep/j.xml");
    out.file("m/d.prom");
    assert_eq!(
        listed(&out.stderr),
        ["json", "log", "markdown", "junit", "prometheus"]
    );

    let failing = passing.step(exec("boom", "exit 1"));
    let d = failing.drill().file("taken", b"a file, not a folder");
    let d = args(d, "taken/j.xml", "m.prom");
    let out = d.run().expect_code(1);
    out.status("failed");
    out.stderr_has("  ! cannot write taken/j.xml: ");
    assert_eq!(
        listed(&out.stderr),
        ["json", "log", "markdown", "prometheus"]
    );
    let error = out.record()["error"].clone();
    assert!(
        error
            .as_str()
            .unwrap()
            .starts_with("cannot write taken/j.xml"),
        "{error}"
    );
}

/// Issue 11 item 17: the README is a newcomer's page: how to install, the Rust it needs
/// (Cargo.toml's `rust-version`), that the first build is slow; the speed tables live in
/// docs/speed.md.
#[test]
fn the_readme_says_how_to_install_and_keeps_the_speed_tables_elsewhere() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).unwrap();
    let (readme, cargo, make) = (read("README.md"), read("Cargo.toml"), read("Makefile"));
    let msrv = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    for needle in [
        "cargo install --locked --path .",
        "make install",
        &format!("Rust {msrv} or newer"),
        "first build",
        "docs/speed.md",
    ] {
        assert_has(&readme, needle, "README.md");
    }
    assert!(make.contains("\ninstall:"), "a `make install` target");
    let table = "| step | ours | standard tool |";
    assert!(
        !readme.contains(table),
        "the speed tables are in docs/speed.md"
    );
    assert_has(&read("docs/speed.md"), table, "docs/speed.md");
}

/// `rto = "{{ vars.rto }}"` is rendered, so `--var rto=...` moves the target; a target
/// that does not read as a duration fails its gate naming it, and is never dropped (a
/// drill with an RTO it cannot read is not green).
#[test]
fn a_templated_rto_target_is_evaluated_and_an_unreadable_one_fails() {
    let book = pb("t")
        .var("rto", "1s")
        .gate("rto", "{{ vars.rto }}")
        .step(wait("w", "2s").set("phase", "restore"));
    book.run()
        .expect_code(1)
        .gate("RTO")
        .failed()
        .says("target 1.0s");
    let moved = book.drill().arg("--var").arg("rto=1m").run().expect_code(0);
    moved.gate("RTO").passed().says("target 1m");
    let unreadable = book
        .drill()
        .arg("--var")
        .arg("rto=soon")
        .run()
        .expect_code(1);
    unreadable
        .gate("RTO")
        .failed()
        .says("cannot read the RTO target: bad duration `soon`");
    let plan = book.drill().subcommand("plan").run().expect_code(0);
    assert!(plan.stdout.contains("RTO ≤ 1s over"), "{}", plan.stdout);
}

/// A drill whose last step fills the disk holding its artifacts: the record on disk is
/// the finished one, `error`, naming the write that failed and that it was written over
/// in place, never one that goes on saying `running`. The disk is a 1 MiB tmpfs mounted
/// in a mount namespace of the drill's own (`unshare -m`); where that is not allowed the
/// test says so and is skipped.
#[test]
fn a_drill_that_fills_the_artifacts_disk_leaves_a_finished_record_saying_so() {
    let fill = "dd if=/dev/zero of=artifacts/fill bs=4k 2>/dev/null; true";
    let d = pb("full")
        .step(exec("a", "true"))
        .step(exec("fill", fill))
        .drill();
    std::fs::create_dir_all(d.path().join("artifacts")).unwrap();
    std::fs::create_dir_all(d.path().join("kept")).unwrap();
    let inner = d.command();
    // The mount vanishes with the namespace: the record is copied out first.
    let script = r#"mount -t tmpfs -o size=1m tmpfs artifacts || exit 97
"$@"; code=$?; cp artifacts/restore_drill_*.json kept/; exit $code"#;
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", script, "sh"])
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(d.path())
        .output();
    let Ok(out) = out.map_err(|e| eprintln!("SKIPPED: no unshare: {e}")) else {
        return;
    };
    if matches!(out.status.code(), Some(97) | Some(1))
        && !d.path().join("kept").read_dir().unwrap().any(|_| true)
    {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs in a mount namespace here: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let kept = std::fs::read_dir(d.path().join("kept"))
        .unwrap()
        .next()
        .unwrap();
    let text = std::fs::read_to_string(kept.unwrap().path()).unwrap();
    let record: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(record["status"], "error", "{text}");
    assert!(record["finished_at"].is_string(), "{text}");
    let error = record["error"].as_str().unwrap();
    assert!(error.contains("No space left on device"), "{error}");
    let warnings = record["warnings"].to_string();
    assert!(warnings.contains("was written over in place"), "{warnings}");
    assert_eq!(record["steps"][1]["status"], "passed", "{text}");
}

/// The lines the terminal shows keep their columns: a gate named after a long step name
/// is cut like the step's name, and its detail starts where every other gate's does.
#[test]
fn a_long_gate_name_is_cut_so_its_detail_keeps_its_column() {
    let long = "Restore into the isolated work directory of the drill and check it";
    let out = pb("t")
        .gate("rto", "1h")
        .step(
            exec("w", "true")
                .set("name", long)
                .set("max_duration", "7m"),
        )
        .run()
        .expect_code(0);
    let printed = format!("{}{}", out.stdout, out.stderr);
    let gates: Vec<&str> = printed.lines().filter(|l| l.contains(" gate ")).collect();
    assert_eq!(gates.len(), 2, "{gates:?}");
    // "  ✔ gate " and a name of 39 characters, a space, then the detail.
    for line in &gates {
        let chars: Vec<char> = line.chars().collect();
        assert!(
            chars.len() > 49 && chars[48] == ' ' && chars[49] != ' ',
            "detail out of its column: {line:?}"
        );
    }
    assert!(
        printed.contains("Restore into the isolated work directo…"),
        "{gates:?}"
    );
}

/// A drill whose backup failed (or that has none) took no backup, but `--metrics` and
/// `report --format prom` wrote `restore_drill_backup_bytes -0`: a size read as nothing
/// measured rather than "not measured".
#[test]
fn no_backup_size_is_written_when_no_backup_was_taken() {
    let failed = sqlite_backup("missing.db", "{{ drill.workdir }}/b.db");
    let books = [
        pb("t").step(failed.clone()),
        pb("t").step(exec("boom", "exit 1")),
    ];
    for book in books {
        let out = book.drill().arg("--metrics").arg("m.prom").run();
        let out = out.expect_code(1);
        let json = newest_artifact(&out.path().join("artifacts"), ".json");
        let json = json.to_str().unwrap();
        let rendered = restore_drill(out.path(), &["report", json, "--format", "prom"]);
        for prom in [out.file("m.prom"), rendered.expect_code(0).stdout] {
            assert_eq!(metric(&prom, "restore_drill_backup_bytes"), None, "{prom}");
            assert!(!prom.contains(" -0\n"), "{prom}");
            assert!(metric(&prom, "restore_drill_success{").is_some(), "{prom}");
        }
    }
    // A backup that was taken is counted.
    let taken = sqlite_backup("src.db", "{{ drill.workdir }}/b.db");
    let d = pb("t").step(taken).drill().arg("--metrics").arg("m.prom");
    let db = d.path().join("src.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t(a); INSERT INTO t VALUES (1);")
        .unwrap();
    let out = d.run().expect_code(0);
    let prom = out.file("m.prom");
    let size = out.output("backup", "bytes");
    let line = format!("restore_drill_backup_bytes{{drill=\"t\"}} {size}");
    assert!(prom.contains(&line), "{line} not in {prom}");
}

/// A run killed outright (SIGKILL, the OOM killer, a power cut) leaves its record
/// `running`, with no end: its reports said it took "(0ms)", its running step "0ms", the
/// metrics a duration of 0 and a last run at 0 (1970), `history` "0ms".
#[test]
fn a_run_that_died_shows_no_length_it_never_measured() {
    let book = pb("t")
        .step(wait("first", "1ms"))
        .step(exec("long", "sleep 3"));
    let mut run = book.drill().start();
    run.wait_running("long");
    run.signal(libc::SIGKILL);
    let out = run.finish();
    out.status("running");
    // Its work directory stays, as a run that died leaves it: removed when done.
    let _workdir = out.kept_workdir();
    let json = newest_artifact(&out.path().join("artifacts"), ".json");
    let json = json.to_str().unwrap();
    let report = |format: &str| {
        let args = ["report", json, "--format", format];
        restore_drill(out.path(), &args).expect_code(0).stdout
    };
    let md = report("md");
    assert!(md.contains("→ — (—) |"), "{md}");
    assert!(md.contains("| … running | — |"), "{md}");
    let html = report("html");
    assert!(html.contains("→ — (—)</td>"), "{html}");
    assert!(!html.contains("running, 0ms"), "{html}");
    let prom = report("prom");
    assert_eq!(
        metric(&prom, "restore_drill_duration_seconds"),
        None,
        "{prom}"
    );
    let last_run = metric(&prom, "restore_drill_last_run_timestamp_seconds");
    assert_eq!(last_run, None, "{prom}");
    let history = restore_drill(out.path(), &["history", "artifacts"]);
    let row = history.expect_code(0).stdout;
    let row = row.lines().find(|l| l.contains(" died ")).unwrap();
    assert!(!row.contains("0ms"), "{row}");
}

/// The run's log tells how every step ended: a failure that printed nothing is there
/// with its error, a skipped step with its reason, a passed one with its length.
#[test]
fn the_log_tells_how_every_step_ended_one_that_printed_nothing_too() {
    pb("log")
        .step(exec("quiet", "true"))
        .step(exec("skipped", "echo never").set("when", "false"))
        .step(exec("boom", "exit 3"))
        .drill()
        .run()
        .expect_code(1)
        .log_has("[quiet] passed in ")
        .log_has("[skipped] skipped: ")
        .log_has("[boom] failed: exited with 3, expected 0");
}
