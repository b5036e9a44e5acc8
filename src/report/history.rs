//! What the records of an artifacts directory say together: `history`'s table (RTO and
//! RPO of passing runs only, and their trend) and the last success of each drill (for
//! `status --format prom` and `--metrics`).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::artifact::{RunRecord, RunStatus};
use crate::fmt::{fmt_secs, human_bytes};

/// When the drill finished, as unix seconds.
pub fn finished_s(r: &RunRecord) -> Option<f64> {
    let t = r.finished_at.as_deref()?.parse::<jiff::Timestamp>().ok()?;
    Some(t.as_millisecond() as f64 / 1000.0)
}

/// The newest finish of a passing run per drill name; a drill that never passed maps to
/// None.
pub fn last_successes(records: &[RunRecord]) -> BTreeMap<String, Option<f64>> {
    let mut last: BTreeMap<String, Option<f64>> = BTreeMap::new();
    for r in records {
        let seen = last.entry(r.drill.name.clone()).or_default();
        if r.status == RunStatus::Passed
            && let Some(t) = finished_s(r)
        {
            *seen = Some(seen.map_or(t, |s| s.max(t)));
        }
    }
    last
}

pub const LAST_SUCCESS_HELP: &str =
    "When the drill last passed (unix time; 0: never), from the artifacts directory.";

/// `restore_drill_last_success_timestamp_seconds` per drill (0 for one that never passed,
/// so that `time() - it > 35 * 86400` fires for it too).
pub fn last_success_metric(last: &BTreeMap<String, Option<f64>>) -> String {
    let mut out = format!(
        "# HELP restore_drill_last_success_timestamp_seconds {LAST_SUCCESS_HELP}\n\
         # TYPE restore_drill_last_success_timestamp_seconds gauge\n",
    );
    for (drill, t) in last {
        let _ = writeln!(
            out,
            "restore_drill_last_success_timestamp_seconds{{drill=\"{}\"}} {}",
            super::label(drill),
            t.unwrap_or(0.0)
        );
    }
    out
}

/// The RTO trend of a passing run against the previous passing run of the same drill.
fn trend(rto: f64, previous: Option<f64>) -> String {
    match previous {
        Some(prev) if prev > 0.0 => {
            let pct = ((rto - prev) / prev * 100.0).round();
            if pct == 0.0 {
                "RTO ±0%".into()
            } else {
                format!("RTO {pct:+}%")
            }
        }
        _ => String::new(),
    }
}

/// What `history` shows of a record: read whole, then all but this is dropped, so that
/// memory stays flat however many (or large) the records are.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(from = "RunRecord")]
pub struct Line {
    pub run_id: String,
    pub host: String,
    pub started_at: String,
    pub drill: String,
    pub status: RunStatus,
    /// Why a run whose record says `running` is over (it died): shown as `died`.
    pub died: Option<String>,
    /// None when the run never finished (its record says `running`).
    duration_s: Option<f64>,
    /// RTO and RPO of a passing run (not measured, or not to be trusted, otherwise).
    rto: Option<f64>,
    rpo: Option<f64>,
    /// Bytes of its backups and located recovery points.
    backup: f64,
}

impl From<RunRecord> for Line {
    fn from(r: RunRecord) -> Self {
        let backup = r
            .steps
            .iter()
            .filter(|s| s.kind == "backup" || s.kind == "locate")
            .filter_map(|s| s.outputs.get("bytes").and_then(|b| b.as_f64()))
            .sum();
        let passed = r.status == RunStatus::Passed;
        Self {
            rto: r.rto.measured_s.filter(|_| passed),
            rpo: r.rpo.as_ref().and_then(|p| p.measured_s).filter(|_| passed),
            run_id: r.run_id,
            host: r.host,
            started_at: r.started_at,
            drill: r.drill.name,
            status: r.status,
            died: None,
            duration_s: r.finished_at.as_ref().map(|_| r.duration_s),
            backup,
        }
    }
}

/// `history`'s table, oldest first. A run that did not pass shows no RTO or RPO (they
/// were not measured, or not to be trusted) and takes no part in the trend.
pub fn table(lines: &[Line]) -> String {
    let mut out = format!(
        "{:<21} {:<20} {:<8} {:>9} {:>9} {:>9} {:>10}  trend\n",
        "started", "drill", "status", "duration", "RTO", "RPO", "backup"
    );
    let mut last_rto: HashMap<&str, f64> = HashMap::new();
    let dash = || "—".to_string();
    for r in lines {
        let trend = match (&r.died, r.rto) {
            (Some(why), _) => why.clone(),
            (None, Some(rto)) => trend(rto, last_rto.insert(r.drill.as_str(), rto)),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<21} {:<20} {:<8} {:>9} {:>9} {:>9} {:>10}  {trend}",
            r.started_at.get(..19).unwrap_or(&r.started_at),
            r.drill,
            super::fleet::shown(r.status, r.died.as_deref()),
            r.duration_s.map_or_else(dash, fmt_secs),
            r.rto.map_or_else(dash, fmt_secs),
            r.rpo.map_or_else(dash, fmt_secs),
            if r.backup > 0.0 {
                human_bytes(r.backup)
            } else {
                dash()
            },
        );
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    /// Stored records, each of drill `name` with `status`, finished at unix second `at`,
    /// RTO `rto` and an RPO of 8s, as a runner of old wrote them (figures for failed runs
    /// too).
    fn runs(list: &[(&str, &str, i64, f64)]) -> Vec<RunRecord> {
        list.iter()
            .map(|&(name, status, at, rto)| run(name, status, at, rto))
            .collect()
    }

    pub(in crate::report) fn run(name: &str, status: &str, at: i64, rto: f64) -> RunRecord {
        let ts = |s: i64| jiff::Timestamp::from_second(s).unwrap().to_string();
        serde_json::from_value(json!({
            "schema": "restore-drill/v1", "run_id": format!("{name}-{at}"),
            "drill": {"name": name, "title": null, "description": null, "owner": null,
                      "tags": [], "playbook": "p.toml", "playbook_sha256": ""},
            "mode": "automated", "host": "h", "operators": [], "tool_version": "0",
            "started_at": ts(at - 10), "finished_at": ts(at), "duration_s": 10.0,
            "status": status, "summary": "", "workdir": "", "steps": [], "gates": [],
            "rto": {"target_s": null, "measured_s": rto, "counted_phases": [], "phases": [],
                    "assumed_phases": []},
            "rpo": {"target_s": null, "measured_s": 8.0, "source": null, "error": null},
            "files": [], "resources": [], "warnings": [], "artifacts": {}, "error": null
        }))
        .unwrap()
    }

    /// Drill `a` passed (RTO 100s), failed (300s), passed again (110s): at 1000, 2000, 3000.
    fn passed_failed_passed() -> Vec<RunRecord> {
        runs(&[
            ("a", "passed", 1000, 100.0),
            ("a", "failed", 2000, 300.0),
            ("a", "passed", 3000, 110.0),
        ])
    }

    /// Issue 11: a failed run shows no RTO or RPO, and the trend compares passing runs.
    #[test]
    fn history_shows_figures_and_trends_of_passing_runs_only() {
        let mut stored = passed_failed_passed();
        stored.push(run("a", "passed", 4000, 110.2));
        let lines: Vec<Line> = stored.into_iter().map(Line::from).collect();
        let text = table(&lines);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            !lines[2].contains("5m") && !lines[2].contains("8.0s"),
            "{text}"
        );
        assert_eq!(lines[2].matches('—').count(), 3, "RTO, RPO, backup: {text}");
        assert!(
            !lines[2].contains("RTO "),
            "a failed run has no trend: {text}"
        );
        assert!(
            lines[3].ends_with("RTO +10%"),
            "against the last pass: {text}"
        );
        assert!(lines[4].ends_with("RTO ±0%"), "never -0%: {text}");
    }

    /// Issue 11: the last success of each drill; 0 for one that never passed.
    #[test]
    fn the_last_success_of_each_drill() {
        let mut stored = passed_failed_passed();
        stored.push(run("a", "failed", 4000, 1.0));
        stored.push(run("b", "failed", 5000, 1.0));
        let last = last_successes(&stored);
        let text = last_success_metric(&last);
        assert!(
            text.contains("restore_drill_last_success_timestamp_seconds{drill=\"a\"} 3000\n"),
            "{text}"
        );
        assert!(
            text.contains("restore_drill_last_success_timestamp_seconds{drill=\"b\"} 0\n"),
            "{text}"
        );
    }
}
