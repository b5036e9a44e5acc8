//! A run killed outright (SIGKILL, the OOM killer, a power cut) leaves its record saying
//! `running`: `history`, `status` and the fleet view show it `died` (a failure) once no
//! live process holds the drill's lock for it, and a run really running stays `running`.

use super::*;

/// What every view says of the drill `t` in `dir` (its `artifacts` folder, and the
/// folder above it as a fleet of one), each with the command that said it.
fn views(dir: &Path) -> Vec<(String, String)> {
    let runs: [&[&str]; 6] = [
        &["history", "artifacts"],
        &["history", "."],
        &["status", "artifacts"],
        &["status", "artifacts", "--format", "json"],
        &["status", "artifacts", "--format", "prom"],
        &["status", "."],
    ];
    runs.iter()
        .map(|args| (args.join(" "), restore_drill(dir, args).stdout))
        .collect()
}

/// The row of drill `t`, or its prom line, in what each view printed.
fn rows(dir: &Path) -> Vec<(String, String)> {
    views(dir)
        .into_iter()
        .map(|(cmd, out)| {
            let row = match cmd.ends_with("json") {
                true => {
                    let v: Value = serde_json::from_str(&out).unwrap();
                    let d = &v["drills"][0];
                    format!("{} {} ok={}", d["last_status"], d["last_died"], d["ok"])
                }
                false => out
                    .lines()
                    .filter(|l| l.contains('t') && !l.starts_with('#'))
                    .filter(|l| !l.starts_with("drill ") && !l.starts_with("started "))
                    .collect::<Vec<_>>()
                    .join("\n"),
            };
            (cmd, row)
        })
        .collect()
}

/// What `report` makes of the newest record in `dir`'s `artifacts` folder, in markdown,
/// html and junit, each with its format.
fn reports(dir: &Path) -> Vec<(&'static str, String)> {
    let record = newest_artifact(&dir.join("artifacts"), ".json");
    let record = record.to_str().unwrap();
    ["markdown", "html", "junit"]
        .into_iter()
        .map(|f| {
            (
                f,
                restore_drill(dir, &["report", record, "--format", f]).stdout,
            )
        })
        .collect()
}

/// Drill `t`, whose step `long` sleeps a minute.
fn long_drill() -> Drill {
    pb("t").step(exec("long", "exec sleep 60")).drill()
}

#[test]
fn a_killed_run_is_shown_died_and_a_running_one_running() {
    let mut run = long_drill().start();
    run.wait_running("long");
    for (cmd, row) in rows(run.path()) {
        if cmd.ends_with("prom") {
            assert_has(&row, "restore_drill_last_run_died{drill=\"t\"} 0", &cmd);
        } else {
            assert!(!row.contains("died"), "{cmd}: still running: {row}");
            assert_has(&row, "running", &cmd);
        }
    }
    for (format, text) in reports(run.path()) {
        assert!(!text.contains("DIED"), "{format}: still running: {text}");
        assert!(!text.contains("died:"), "{format}: still running: {text}");
    }
    run.signal(libc::SIGKILL);
    let out = run.finish();
    // A single record's report says it died too, red, never "running".
    let said = "died: the run died (no process holds its lock)";
    for (format, text) in reports(out.path()) {
        assert_has(&text, said, format);
        match format {
            "markdown" => assert_has(&text, "restore drill ❌ DIED", format),
            "html" => assert_has(&text, "<span class=\"badge failed\">DIED</span>", format),
            _ => assert_has(&text, &format!("<error message=\"{said}\">"), format),
        }
    }
    out.status("running");
    let _workdir = out.kept_workdir();
    for (cmd, row) in rows(out.path()) {
        assert!(!row.contains("running"), "{cmd}: it died: {row}");
        match cmd.as_str() {
            c if c.ends_with("prom") => {
                assert_has(&row, "restore_drill_last_run_died{drill=\"t\"} 1", c)
            }
            c if c.ends_with("json") => assert_has(
                &row,
                "\"died\" \"the run died (no process holds its lock)\" ok=false",
                c,
            ),
            "history artifacts" => {
                assert_has(&row, " died ", &cmd);
                assert_has(&row, "the run died (no process holds its lock)", &cmd);
            }
            _ => assert_has(&row, " died ", &cmd),
        }
    }
}

/// The next run of the drill takes over the dead run's lock: the dead run's record still
/// reads `died`, the new one `passed`.
#[test]
fn a_killed_run_stays_died_once_the_next_run_holds_the_lock() {
    let out = long_drill().start().killed_in("long");
    let _workdir = out.kept_workdir();
    let quick = pb("t").step(wait("first", "1ms"));
    std::fs::write(out.path().join("quick.toml"), quick.toml()).unwrap();
    let args = ["run", "quick.toml", "--artifacts", "artifacts", "--quiet"];
    restore_drill(out.path(), &args).expect_code(0);
    let history = restore_drill(out.path(), &["history", "artifacts"]).stdout;
    let lines: Vec<&str> = history.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{history}");
    assert_has(lines[0], " died ", "the killed run");
    assert_has(lines[1], " passed ", "the next run");
}
