//! The HTML report's history chart: the RTO of the drill's last passing runs (this one
//! included when it passed), as a small inline SVG, with the RTO target drawn in.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::artifact::{RunRecord, RunStatus};
use crate::fmt::fmt_secs;

/// One passing run on the chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub run_id: String,
    /// When it finished (RFC 3339).
    pub at: String,
    pub rto_s: f64,
}

/// The last `n` passing runs of `record`'s drill among `past` and `record`, oldest first,
/// each with a measured RTO.
pub fn points(past: &[RunRecord], record: &RunRecord, n: usize) -> Vec<Point> {
    let mut runs: Vec<&RunRecord> = past
        .iter()
        .filter(|r| r.drill.name == record.drill.name && r.run_id != record.run_id)
        .chain(std::iter::once(record))
        .filter(|r| r.status == RunStatus::Passed && r.finished_at.is_some())
        .collect();
    runs.sort_by(|a, b| a.finished_at.cmp(&b.finished_at));
    let points: Vec<Point> = runs
        .iter()
        .filter_map(|r| {
            Some(Point {
                run_id: r.run_id.clone(),
                at: r.finished_at.clone()?,
                rto_s: r.rto.measured_s?,
            })
        })
        .collect();
    points[points.len().saturating_sub(n)..].to_vec()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const W: f64 = 480.0;
const H: f64 = 140.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 24.0;

/// The chart; empty with fewer than two points (nothing to compare).
pub fn chart(points: &[Point], target_s: Option<f64>) -> String {
    if points.len() < 2 {
        return String::new();
    }
    let top = points
        .iter()
        .map(|p| p.rto_s)
        .chain(target_s)
        .fold(0.0_f64, f64::max)
        .max(0.001)
        * 1.15;
    let plot_w = W - LEFT - 12.0;
    let plot_h = H - BOTTOM - 10.0;
    let x = |i: usize| LEFT + plot_w * i as f64 / (points.len() - 1) as f64;
    let y = |v: f64| 10.0 + plot_h * (1.0 - v / top);
    let mut svg = format!(
        r##"<svg class="rto-history" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" role="img" aria-label="RTO of the last {n} passing runs">
<line x1="{LEFT}" y1="{b:.1}" x2="{r:.1}" y2="{b:.1}" stroke="#9e9e9e"/>
<text x="{lx:.1}" y="14" font-size="11" text-anchor="end">{max}</text>
<text x="{lx:.1}" y="{b:.1}" font-size="11" text-anchor="end">0</text>
"##,
        n = points.len(),
        b = y(0.0),
        r = W - 12.0,
        lx = LEFT - 6.0,
        max = esc(&fmt_secs(top)),
    );
    if let Some(t) = target_s {
        let _ = writeln!(
            svg,
            r##"<line class="rto-target" x1="{LEFT}" y1="{ty:.1}" x2="{r:.1}" y2="{ty:.1}" stroke="#6a1b9a" stroke-dasharray="4 3"><title>RTO target {t}</title></line>"##,
            ty = y(t),
            r = W - 12.0,
            t = esc(&fmt_secs(t)),
        );
    }
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.rto_s)))
        .collect();
    let _ = writeln!(
        svg,
        r##"<polyline fill="none" stroke="#2e7d32" stroke-width="2" points="{}"/>"##,
        line.join(" ")
    );
    for (i, p) in points.iter().enumerate() {
        let _ = writeln!(
            svg,
            r##"<circle class="run" cx="{:.1}" cy="{:.1}" r="3" fill="#2e7d32"><title>{} ({}): RTO {}</title></circle>"##,
            x(i),
            y(p.rto_s),
            esc(&p.run_id),
            esc(p.at.get(..10).unwrap_or(&p.at)),
            esc(&fmt_secs(p.rto_s)),
        );
    }
    for (i, anchor) in [(0, "start"), (points.len() - 1, "end")] {
        let day = points[i].at.get(..10).unwrap_or(&points[i].at);
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{H}" font-size="11" text-anchor="{anchor}">{}</text>"#,
            x(i),
            esc(day)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::history::tests::run;

    #[test]
    fn the_chart_has_the_last_passes_of_the_drill_only_and_the_target() {
        let past = vec![
            run("a", "passed", 1000, 10.0),
            run("a", "failed", 2000, 99.0),
            run("b", "passed", 2500, 50.0),
            run("a", "passed", 3000, 30.0),
        ];
        let this = run("a", "passed", 4000, 20.0);
        let points = points(&past, &this, 2);
        let rtos: Vec<f64> = points.iter().map(|p| p.rto_s).collect();
        assert_eq!(rtos, [30.0, 20.0], "the last two passes, oldest first");
        let svg = chart(&points, Some(25.0));
        assert_eq!(svg.matches("<circle class=\"run\"").count(), 2, "{svg}");
        assert!(svg.contains("<line class=\"rto-target\""), "{svg}");
        assert!(svg.contains("RTO 30.0s"), "{svg}");
        // One pass alone is no history.
        assert_eq!(chart(&points[..1], None), "");
    }
}
