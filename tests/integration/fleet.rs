//! Fleet status (issue 15): `status` and `history` over a tree of many drills' artifacts
//! folders, one row per drill; `--format json|prom`; and 1,000 drills' records answered
//! in under a second (release build).

use std::path::Path;

use super::*;

pub(super) const DAY: i64 = 86_400;

/// A real record (of a passing drill of a few steps), as a template.
pub(super) fn template() -> Value {
    let exec_steps = (0..4).map(|i| exec(&format!("step{i}"), "echo restored"));
    let out = pb("t").step(exec_steps).run().expect_code(0);
    out.record()
}

/// Writes `<tree>/<drill>/restore_drill_<ts>.json`: `template` as drill `drill`, with
/// `status`, finished `ago` seconds before now, with an RTO of `rto` seconds.
pub(super) fn put(tree: &Path, template: &Value, drill: &str, status: &str, ago: i64, rto: f64) {
    let at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(ago);
    let ts = at.strftime("%Y%m%dT%H%M%SZ").to_string();
    let mut r = template.clone();
    r["drill"]["name"] = drill.into();
    r["run_id"] = format!("{drill}-{ts}-0001").into();
    r["status"] = status.into();
    r["started_at"] = (at - jiff::SignedDuration::from_secs(60))
        .to_string()
        .into();
    r["finished_at"] = at.to_string().into();
    r["rto"]["measured_s"] = rto.into();
    let dir = tree.join(drill);
    std::fs::create_dir_all(&dir).unwrap();
    let text = serde_json::to_string_pretty(&r).unwrap();
    std::fs::write(dir.join(format!("restore_drill_{ts}.json")), text).unwrap();
}

#[test]
fn status_over_a_tree_has_a_row_per_drill_and_fails_on_a_stale_one() {
    let t = template();
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    for (i, rto) in [(40, 100.0), (30, 120.0), (2, 90.0)] {
        put(root, &t, "orders", "passed", i * DAY, rto);
    }
    put(root, &t, "orders", "failed", DAY, 300.0);
    put(&root.join("eu"), &t, "billing", "passed", 50 * DAY, 60.0);
    put(&root.join("eu"), &t, "ledger", "failed", 3 * DAY, 60.0);
    let status = restore_drill(root, &["status", ".", "--max-age", "35d"]).expect_code(1);
    let lines: Vec<&str> = status.stdout.lines().collect();
    assert!(lines[0].starts_with("drill "), "{}", status.stdout);
    let row = |name: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(name))
            .copied()
            .unwrap_or_default()
    };
    assert_has(row("orders"), "failed", "the orders row");
    assert_has(row("orders"), "▃█▁ 1m 30s", "the RTO of its passes");
    assert_has(row("billing"), "  50  ", "days since its pass");
    assert_has(row("ledger"), "never", "the ledger row");
    assert_has(
        &status.stdout,
        "stale: the last passing run of drill `billing`",
        "status",
    );
    assert_has(
        &status.stdout,
        "missing: no passing run of drill `ledger`",
        "status",
    );
    restore_drill(root, &["status", ".", "--drill", "orders"]).expect_code(0);

    let json = restore_drill(root, &["status", ".", "--format", "json"]).expect_code(1);
    let json: Value = serde_json::from_str(&json.stdout).unwrap();
    let drills = json["drills"].as_array().unwrap();
    let names: Vec<&str> = drills
        .iter()
        .map(|d| d["drill"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["billing", "ledger", "orders"]);
    assert_eq!(drills[2]["rto_s"], serde_json::json!([100.0, 120.0, 90.0]));
    assert_eq!(
        (drills[0]["ok"].clone(), drills[2]["ok"].clone()),
        (false.into(), true.into())
    );

    let prom = restore_drill(root, &["status", ".", "--format", "prom"])
        .expect_code(0)
        .stdout;
    for drill in ["billing", "ledger", "orders"] {
        let metric = format!("restore_drill_last_success_timestamp_seconds{{drill=\"{drill}\"}} ");
        assert_has(&prom, &metric, "prom");
    }
    assert_has(&prom, "{drill=\"ledger\"} 0\n", "a drill that never passed");

    let history = restore_drill(root, &["history", "."]).expect_code(0).stdout;
    assert_eq!(history.lines().count(), 4, "a row per drill: {history}");
}

#[test]
fn status_over_a_thousand_drills_has_a_row_for_each() {
    let t = template();
    let tree = tempfile::tempdir().unwrap();
    for i in 0..1000 {
        let drill = format!("drill-{i:04}");
        let shard = tree.path().join(format!("team-{}", i % 20));
        for run in 0..3 {
            put(
                &shard,
                &t,
                &drill,
                "passed",
                (run * 30 + 1) * DAY,
                60.0 + run as f64,
            );
        }
    }
    // How fast: scripts/bench_fleet.sh (docs/fleet.md), not a timed test.
    let status = restore_drill(tree.path(), &["status", ".", "--max-age", "100d"]);
    let status = status.expect_code(0);
    assert_eq!(status.stdout.lines().count(), 1002, "header, rows, verdict");
}

#[test]
fn the_html_report_charts_the_rto_of_the_last_passing_runs() {
    let drill = pb("charted")
        .table("report", "formats", list(&["html"]))
        .gate("rto", "1h")
        .step(wait("w", "1ms"))
        .drill();
    for _ in 0..3 {
        drill.run_again().expect_code(0);
    }
    let artifacts = drill.path().join("artifacts");
    let html = std::fs::read_to_string(newest_artifact(&artifacts, ".html")).unwrap();
    assert_has(&html, "<svg class=\"rto-history\"", "the report");
    assert_eq!(
        html.matches("<circle class=\"run\"").count(),
        3,
        "a point per pass"
    );
    assert_has(&html, "<line class=\"rto-target\"", "the report");
    // `report --format html` of a stored record draws it from the records beside it.
    let record = newest_artifact(&artifacts, ".json");
    let args = ["report", record.to_str().unwrap(), "--format", "html"];
    let again = restore_drill(drill.path(), &args).expect_code(0).stdout;
    assert_eq!(again.matches("<circle class=\"run\"").count(), 3);
}
