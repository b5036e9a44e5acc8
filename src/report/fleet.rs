//! Many drills at once (`status` and `history` over a tree of artifacts folders): one row
//! per drill with its last result, its last pass, the days since, and the trend of its
//! RTO over its last passing runs as a sparkline.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::json;

use crate::artifact::RunStatus;
use crate::fmt::fmt_secs;

/// How many passing runs the RTO trend shows.
pub const TREND_RUNS: usize = 12;

/// The part of a record the fleet view reads (the rest of the file is skipped unparsed).
#[derive(Debug, Clone, Deserialize)]
pub struct Brief {
    pub run_id: String,
    pub drill: BriefDrill,
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub rto: BriefRto,
    #[serde(default)]
    pub host: String,
    /// Why a run whose record says `running` is over (it died): shown as `died`.
    #[serde(skip)]
    pub died: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BriefDrill {
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct BriefRto {
    pub measured_s: Option<f64>,
}

impl Brief {
    /// When it finished (or, never finished, started), unix seconds.
    fn at(&self) -> Option<f64> {
        let t = self.finished_at.as_deref().unwrap_or(&self.started_at);
        let t = t.parse::<jiff::Timestamp>().ok()?;
        Some(t.as_millisecond() as f64 / 1000.0)
    }
}

/// One drill of the fleet.
#[derive(Debug, Clone)]
pub struct Row {
    pub drill: String,
    pub runs: usize,
    pub last_status: RunStatus,
    /// Why the last run, whose record says `running`, is over.
    pub last_died: Option<String>,
    pub last_at: Option<f64>,
    pub last_pass: Option<f64>,
    /// RTO of the last passing runs (at most [`TREND_RUNS`]), oldest first.
    pub rtos: Vec<f64>,
}

impl Row {
    /// Whether it passed within `max_age` seconds of `now`.
    pub fn fresh(&self, now: f64, max_age: f64) -> bool {
        self.last_pass.is_some_and(|t| now - t <= max_age)
    }
}

/// One row per drill, by name.
pub fn rows(mut briefs: Vec<Brief>) -> Vec<Row> {
    briefs.sort_by(|a, b| a.at().unwrap_or(0.0).total_cmp(&b.at().unwrap_or(0.0)));
    let mut by_drill: BTreeMap<String, Row> = BTreeMap::new();
    for b in briefs {
        let at = b.at();
        let row = by_drill.entry(b.drill.name.clone()).or_insert_with(|| Row {
            drill: b.drill.name.clone(),
            runs: 0,
            last_status: b.status,
            last_died: None,
            last_at: None,
            last_pass: None,
            rtos: Vec::new(),
        });
        row.runs += 1;
        row.last_status = b.status;
        row.last_died = b.died.clone();
        row.last_at = at;
        if b.status == RunStatus::Passed && b.finished_at.is_some() {
            row.last_pass = at;
            if let Some(rto) = b.rto.measured_s {
                row.rtos.push(rto);
                if row.rtos.len() > TREND_RUNS {
                    row.rtos.remove(0);
                }
            }
        }
    }
    by_drill.into_values().collect()
}

/// `values` as a line of block characters, lowest `▁` to highest `█`.
pub fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    values
        .iter()
        .map(|v| match hi > lo {
            true => BARS[(((v - lo) / (hi - lo)) * 7.0).round() as usize],
            false => BARS[3],
        })
        .collect()
}

fn date(t: Option<f64>) -> String {
    t.and_then(|t| jiff::Timestamp::from_second(t as i64).ok())
        .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "never".into())
}

fn days(now: f64, t: Option<f64>) -> Option<f64> {
    t.map(|t| ((now - t) / 86400.0).max(0.0))
}

/// The drill column is at most this wide (a longer name is shown whole, unpadded): a
/// record's name can be any length, and `format!` refuses a width past 65535.
const NAME_WIDTH_MAX: usize = 48;

/// The fleet table: one row per drill.
pub fn table(rows: &[Row], now: f64) -> String {
    let width = rows
        .iter()
        .map(|r| r.drill.chars().count())
        .max()
        .unwrap_or(5)
        .clamp(5, NAME_WIDTH_MAX);
    let mut out = format!(
        "{:<width$}  {:<7}  {:<16}  {:>4}  RTO trend (last {TREND_RUNS} passes)\n",
        "drill", "last", "last pass", "days"
    );
    for r in rows {
        let days = days(now, r.last_pass).map_or_else(|| "—".into(), |d| format!("{d:.0}"));
        let trend = match r.rtos.last() {
            Some(last) => format!("{} {}", sparkline(&r.rtos), fmt_secs(*last)),
            None => "—".into(),
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:<7}  {:<16}  {days:>4}  {trend}",
            r.drill,
            shown(r.last_status, r.last_died.as_deref()),
            date(r.last_pass),
        );
    }
    out
}

/// The fleet as JSON: one object per drill, `ok` when it passed within `max_age`.
pub fn to_json(rows: &[Row], now: f64, max_age: f64) -> String {
    let drills: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "drill": r.drill,
                "runs": r.runs,
                "last_status": shown(r.last_status, r.last_died.as_deref()),
                "last_died": r.last_died,
                "last_run_at": r.last_at,
                "last_success_at": r.last_pass,
                "days_since_success": days(now, r.last_pass),
                "rto_s": r.rtos,
                "ok": r.fresh(now, max_age),
            })
        })
        .collect();
    let text = serde_json::to_string_pretty(&json!({ "drills": drills })).unwrap_or_default();
    format!("{text}\n")
}

/// A run's status as shown: `died` for a record left `running` by a run that is over.
pub fn shown(status: RunStatus, died: Option<&str>) -> &'static str {
    match (status, died) {
        (RunStatus::Running, Some(_)) => "died",
        _ => status.as_str(),
    }
}

/// `restore_drill_last_run_died` per drill: 1 when its last run died (its record says
/// `running`, but no process runs it any more).
pub fn died_metric(rows: &[Row]) -> String {
    let mut out = String::from(
        "# HELP restore_drill_last_run_died Whether the drill's last run died (killed, its record left `running`).\n\
         # TYPE restore_drill_last_run_died gauge\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "restore_drill_last_run_died{{drill=\"{}\"}} {}",
            super::label(&r.drill),
            u8::from(r.last_died.is_some())
        );
    }
    out
}

/// When each drill last passed, for `history::last_success_metric`.
pub fn last_successes(rows: &[Row]) -> BTreeMap<String, Option<f64>> {
    rows.iter()
        .map(|r| (r.drill.clone(), r.last_pass))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brief(name: &str, status: &str, at: i64, rto: f64) -> Brief {
        let ts = jiff::Timestamp::from_second(at).unwrap().to_string();
        serde_json::from_value(json!({
            "run_id": format!("{name}-{at}"), "drill": {"name": name}, "status": status,
            "started_at": ts, "finished_at": ts, "rto": {"measured_s": rto},
        }))
        .unwrap()
    }

    #[test]
    fn one_row_per_drill_with_its_last_pass_and_rto_trend_of_passes_only() {
        let rows = rows(vec![
            brief("b", "failed", 500, 9.0),
            brief("a", "passed", 3000, 30.0),
            brief("a", "passed", 1000, 10.0),
            brief("a", "failed", 4000, 99.0),
            brief("a", "passed", 2000, 20.0),
        ]);
        assert_eq!(rows.len(), 2);
        let a = &rows[0];
        assert_eq!(
            (a.runs, a.last_status, a.last_pass),
            (4, RunStatus::Failed, Some(3000.0))
        );
        assert_eq!(a.rtos, [10.0, 20.0, 30.0]);
        assert_eq!(rows[1].last_pass, None);
        let text = table(&rows, 3000.0 + 2.0 * 86400.0);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].contains("failed") && lines[1].contains("▁▅█ 30.0s"),
            "{text}"
        );
        assert!(lines[1].contains("     2  "), "days since: {text}");
        assert!(lines[2].contains("never"), "{text}");
    }

    #[test]
    fn a_drill_name_of_any_length_is_shown_whole() {
        let long = "d".repeat(70_000);
        let rows = rows(vec![
            brief(&long, "passed", 10, 1.0),
            brief("b", "passed", 10, 1.0),
        ]);
        let text = table(&rows, 20.0);
        assert!(text.contains(&format!("{long}  passed")), "the long name");
        assert!(
            text.contains(&format!("b{}  passed", " ".repeat(47))),
            "{}",
            &text[..200]
        );
    }

    #[test]
    fn a_sparkline_spans_its_values_and_a_flat_one_is_level() {
        assert_eq!(sparkline(&[1.0, 8.0, 4.5]), "▁█▅");
        assert_eq!(sparkline(&[5.0, 5.0]), "▄▄");
        assert_eq!(sparkline(&[]), "");
    }
}
