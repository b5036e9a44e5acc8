//! What the HTML report draws and renders, as pure functions from the record to strings
//! (the template only places them): the timeline picture (inline SVG) and the markdown
//! of runbooks and the description (pulldown-cmark; raw HTML in them is shown as text).

use std::fmt::Write as _;

use pulldown_cmark::{Event, Options, Parser};
use serde_json::{Map, Value, json};

use crate::artifact::{RunRecord, Section, StepRecord, StepStatus};
use crate::fmt::fmt_secs;

/// What the built-in HTML template gets beside the record, under `html`.
pub fn extras(r: &RunRecord) -> Value {
    let runbooks: Map<String, Value> = r
        .steps
        .iter()
        .filter_map(|s| Some((s.id.clone(), markdown(s.runbook.as_deref()?).into())))
        .collect();
    json!({
        "timeline": timeline(r),
        "description": r.drill.description.as_deref().map(markdown),
        "runbooks": runbooks,
    })
}

/// Markdown as HTML. HTML written in the markdown is escaped, never passed through: a
/// runbook cannot put a script or a remote image into the report.
pub fn markdown(text: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let events = Parser::new_ext(text, options).map(|e| match e {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        other => other,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The picture's geometry (px).
const WIDTH: f64 = 960.0;
const LABELS: f64 = 250.0;
const CHART: f64 = WIDTH - LABELS - 70.0;
const ROW: f64 = 22.0;
const TOP: f64 = 34.0;

/// The time a step takes on the timeline: its assumed duration when it has one, none
/// when it never ran.
fn shown_s(s: &StepRecord) -> f64 {
    match s.status {
        StepStatus::NotRun | StepStatus::Skipped | StepStatus::Running => 0.0,
        _ => s.assumed_s.unwrap_or(s.duration_s),
    }
}

/// A round tick interval giving at most eight ticks up to `end` seconds.
fn tick(end: f64) -> f64 {
    const NICE: &[f64] = &[
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
        60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
    ];
    let want = end / 8.0;
    NICE.iter()
        .copied()
        .find(|t| *t >= want)
        .unwrap_or(want.ceil())
}

/// The timeline: one row and one bar per step, in the order they ran, grouped by phase,
/// on an axis of the time spent (a manual step's assumed duration counted, striped),
/// coloured by status, with the RTO target drawn from the first step of recovery.
pub fn timeline(r: &RunRecord) -> String {
    let starts: Vec<f64> = r
        .steps
        .iter()
        .scan(0.0, |at, s| {
            let start = *at;
            *at += shown_s(s);
            Some(start)
        })
        .collect();
    let total: f64 = r.steps.iter().map(shown_s).sum();
    // The RTO target, measured from the first step of a counted phase.
    let rto_line = r.rto.target_s.and_then(|target| {
        let first = r
            .steps
            .iter()
            .position(|s| s.section == Section::Steps && r.rto.counted_phases.contains(&s.phase))?;
        Some(starts[first] + target)
    });
    let on_scale = rto_line.filter(|t| *t <= (4.0 * total).max(1.0));
    let end = on_scale.unwrap_or(0.0).max(total).max(0.001) * 1.04;
    let x = |t: f64| LABELS + t / end * CHART;

    let mut phases: Vec<&str> = Vec::new();
    for s in &r.steps {
        if !phases.contains(&s.phase.as_str()) {
            phases.push(&s.phase);
        }
    }
    let mut body = String::new();
    let mut y = TOP;
    for phase in &phases {
        let counted = r.rto.counted_phases.iter().any(|p| p == phase);
        let _ = writeln!(
            body,
            r#"<text class="phase" x="4" y="{:.1}">{}{}</text>"#,
            y + 15.0,
            esc(phase),
            if counted { " · in RTO" } else { "" }
        );
        y += ROW;
        for (i, s) in r
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.phase == *phase)
        {
            body.push_str(&bar(s, x(starts[i]), x(starts[i] + shown_s(s)), y));
            y += ROW;
        }
    }
    let height = y + 30.0;
    let mut axis = String::new();
    let step = tick(end);
    let mut t = 0.0;
    while t <= end {
        let _ = writeln!(
            axis,
            r#"<line class="grid" x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2:.1}"/><text class="tick" x="{0:.1}" y="{3}">{4}</text>"#,
            x(t),
            TOP - 6.0,
            y,
            TOP - 12.0,
            if t == 0.0 { "0".into() } else { fmt_secs(t) }
        );
        t += step;
    }
    let target = r.rto.target_s.map(fmt_secs).unwrap_or_default();
    let rto = match (on_scale, rto_line) {
        (Some(t), _) => format!(
            r#"<line class="rto" x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2:.1}"/><text class="rto-label" x="{3:.1}" y="{4:.1}">RTO target {5}</text>"#,
            x(t),
            TOP - 6.0,
            y,
            x(t) - 4.0,
            y + 14.0,
            target
        ),
        (None, Some(_)) => format!(
            r#"<text class="rto-label" x="{:.1}" y="{:.1}">RTO target {target} is off this scale →</text>"#,
            LABELS + CHART + 60.0,
            y + 14.0
        ),
        (None, None) => String::new(),
    };
    format!(
        r##"<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0}" width="100%" role="img" aria-label="Timeline of the drill's steps">
<defs><pattern id="assumed" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#a5d6a7"/><line x1="0" y1="0" x2="0" y2="6" stroke="#2e7d32" stroke-width="3"/></pattern></defs>
<style>
.timeline text {{ font: 12px system-ui, sans-serif; fill: #333; }}
.timeline .phase {{ font-weight: bold; fill: #555; }}
.timeline .tick {{ text-anchor: middle; fill: #777; font-size: 11px; }}
.timeline .grid {{ stroke: #e4e4e4; }}
.timeline .bar.passed {{ fill: #2e7d32; }}
.timeline .bar.failed, .timeline .bar.timed_out {{ fill: #c62828; }}
.timeline .bar.running {{ fill: #f9a825; }}
.timeline .bar.skipped, .timeline .bar.not_run {{ fill: #fff; stroke: #9e9e9e; stroke-dasharray: 3 2; }}
.timeline .bar.assumed {{ fill: url(#assumed); }}
.timeline .rto {{ stroke: #6a1b9a; stroke-width: 2; stroke-dasharray: 6 3; }}
.timeline .rto-label {{ fill: #6a1b9a; text-anchor: end; font-weight: bold; }}
.timeline .dur {{ fill: #555; font-size: 11px; }}
.timeline .not-run-label {{ fill: #999; }}
.timeline .failed-label {{ fill: #b3261e; font-weight: bold; }}
</style>
{axis}{body}{rto}
</svg>"##
    )
}

/// One step's row: its name on the left, its bar (at least 2 px wide) and its time.
fn bar(s: &StepRecord, x0: f64, x1: f64, y: f64) -> String {
    // A step still `running` in the record of a run that died: its time was never taken.
    let ran = !matches!(
        s.status,
        StepStatus::NotRun | StepStatus::Skipped | StepStatus::Running
    );
    let assumed = s.assumed_s.is_some() && ran;
    let width = (x1 - x0).max(2.0);
    let time = match (ran, s.assumed_s) {
        (false, _) => s.status.as_str().replace('_', " "),
        (true, Some(a)) => format!("{} (assumed)", fmt_secs(a)),
        (true, None) => fmt_secs(s.duration_s),
    };
    let name: String = if s.name.chars().count() > 32 {
        s.name.chars().take(31).collect::<String>() + "…"
    } else {
        s.name.clone()
    };
    format!(
        r#"<g class="step"><text x="14" y="{ty:.1}"{label}>{name}</text><rect class="bar {status}{assumed}" data-step="{id}" x="{x0:.1}" y="{by:.1}" width="{width:.1}" height="14" rx="2"><title>{full}: {status_text}, {time}</title></rect><text class="dur" x="{tx:.1}" y="{ty:.1}">{time}</text></g>
"#,
        ty = y + 15.0,
        by = y + 4.0,
        tx = x0 + width + 4.0,
        label = match s.status {
            StepStatus::Failed | StepStatus::TimedOut => r#" class="failed-label""#,
            _ if !ran => r#" class="not-run-label""#,
            _ => "",
        },
        name = esc(&name),
        id = esc(&s.id),
        status = s.status.as_str(),
        assumed = if assumed { " assumed" } else { "" },
        full = esc(&s.name),
        status_text = s.status.as_str().replace('_', " "),
        time = esc(&time),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_and_never_passes_html_through() {
        let html = markdown("Run `sha256sum -c` **first**.\n\n<script>alert(1)</script>");
        assert!(html.contains("<code>sha256sum -c</code>"), "{html}");
        assert!(html.contains("<strong>first</strong>"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    /// A drill of two steps in phase `restore`, 3s then 1s, with an RTO target of 10s.
    fn drill(second: &str) -> RunRecord {
        let mut r = super::super::history::tests::run("a", "failed", 1000, 4.0);
        let step = |id: &str, status: &str, s: f64| {
            serde_json::from_value(json!({
                "id": id, "kind": "exec", "name": format!("Step <{id}>"), "phase": "restore",
                "section": "steps", "status": status, "started_at": null, "duration_s": s,
                "assumed_s": null, "attempts": 1, "runbook": null, "outputs": {},
                "metrics": {}, "checks": [], "error": null, "log_tail": null
            }))
            .unwrap()
        };
        r.steps = vec![step("one", "passed", 3.0), step("two", second, 1.0)];
        r.rto.target_s = Some(10.0);
        r.rto.counted_phases = vec!["restore".into()];
        r
    }

    #[test]
    fn the_timeline_has_a_bar_per_step_and_the_rto_line() {
        let svg = timeline(&drill("failed"));
        assert_eq!(svg.matches("<rect class=\"bar ").count(), 2, "{svg}");
        assert!(
            svg.contains(r#"<rect class="bar failed" data-step="two""#),
            "{svg}"
        );
        assert!(svg.contains("Step &lt;one&gt;"), "names are escaped: {svg}");
        // 10s from the first step, on an axis to 10.4s.
        let x = LABELS + 10.0 / 10.4 * CHART;
        assert!(
            svg.contains(&format!(r#"<line class="rto" x1="{x:.1}""#)),
            "{svg}"
        );
        // A step that never ran has a bar of no time, where the drill stopped.
        let svg = timeline(&drill("not_run"));
        assert!(
            svg.contains(r#"<rect class="bar not_run" data-step="two""#),
            "{svg}"
        );
        assert!(svg.contains(">not run</text>"), "{svg}");
    }

    #[test]
    fn ticks_are_round_and_few() {
        assert_eq!(tick(3.0), 0.5);
        assert_eq!(tick(300.0), 60.0);
        assert_eq!(tick(0.004), 0.001);
    }
}
