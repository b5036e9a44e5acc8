//! Reports are pure functions from the (redacted) run record to bytes: markdown and HTML
//! through minijinja templates, JUnit XML and Prometheus text exposition in code.

pub mod fleet;
pub mod history;
pub mod html;
pub mod progress;
pub mod rto_chart;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::Value;

use crate::artifact::{GateStatus, RunRecord, RunStatus, StepStatus};
use crate::playbook::ReportFormat;
use crate::template;

const MARKDOWN: &str = include_str!("../../templates/report.md.j2");
const HTML: &str = include_str!("../../templates/report.html.j2");

/// Where the markdown report's template comes from.
#[derive(Debug, Clone)]
pub enum TemplateSource {
    Builtin(&'static str),
    File(PathBuf),
}

impl TemplateSource {
    /// `builtin:<name>` or a path relative to `base` (the playbook's directory).
    pub fn from_setting(setting: &str, base: &Path) -> Self {
        match setting.strip_prefix("builtin:") {
            Some("html") => TemplateSource::Builtin(HTML),
            Some(_) => TemplateSource::Builtin(MARKDOWN),
            None => TemplateSource::File(base.join(setting)),
        }
    }

    fn load(&self) -> anyhow::Result<(String, String)> {
        match self {
            TemplateSource::Builtin(src) => Ok(("report.md".into(), src.to_string())),
            TemplateSource::File(path) => {
                let src = crate::limits::read_text(path, crate::limits::MAX_TEMPLATE_BYTES)
                    .with_context(|| format!("cannot read template {}", path.display()))?;
                Ok((
                    path.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    src,
                ))
            }
        }
    }
}

/// The key under which a caller adds the drill's last passing runs to the record's JSON
/// (`rto_chart::points`) for the HTML report's history chart.
pub const RTO_HISTORY: &str = "rto_history";

/// How many passing runs the HTML report's history chart shows.
pub const RTO_HISTORY_RUNS: usize = 12;

/// `data` with the last passing runs of its drill among `past` under [`RTO_HISTORY`].
pub fn with_rto_history(data: &mut Value, past: &[RunRecord], record: &RunRecord) {
    let points = rto_chart::points(past, record, RTO_HISTORY_RUNS);
    if let (Value::Object(map), Ok(points)) = (data, serde_json::to_value(points)) {
        map.insert(RTO_HISTORY.into(), points);
    }
}

/// Renders `data` (the redacted record as JSON) in `format`.
pub fn render(
    format: ReportFormat,
    data: &Value,
    markdown_template: &TemplateSource,
) -> anyhow::Result<String> {
    match format {
        ReportFormat::Markdown => {
            let (name, src) = markdown_template.load()?;
            render_template(&name, &src, &with_extras(data, &src)?)
        }
        ReportFormat::Html => render_template("report.html", HTML, &with_extras(data, HTML)?),
        ReportFormat::Junit => Ok(junit(&typed(data)?)),
        ReportFormat::Prometheus => {
            let r = typed(data)?;
            let own = (r.status == RunStatus::Passed).then(|| history::finished_s(&r));
            Ok(prometheus(&r, own.flatten()))
        }
    }
}

/// The record, plus under `html` what the built-in HTML template places (the timeline,
/// rendered markdown) when `src` is that template.
fn with_extras(data: &Value, src: &str) -> anyhow::Result<Value> {
    let mut data = data.clone();
    if src == HTML {
        let record = typed(&data)?;
        let mut extras = html::extras(&record);
        // The drill's past passes, when the caller gave them (`RTO_HISTORY`).
        let points: Vec<rto_chart::Point> = data
            .get(RTO_HISTORY)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        extras["rto_chart"] = rto_chart::chart(&points, record.rto.target_s).into();
        if let Value::Object(map) = &mut data {
            map.insert("html".into(), extras);
        }
    }
    Ok(data)
}

fn typed(data: &Value) -> anyhow::Result<RunRecord> {
    serde_json::from_value(data.clone()).context("the record does not match the artifact schema")
}

fn render_template(name: &str, src: &str, data: &Value) -> anyhow::Result<String> {
    template::render_report(name, src, data)
        .map_err(|e| anyhow::anyhow!("template {name}: {}", template::describe_at(src, &e)))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One test suite for the drill: a test case per step and per gate.
pub fn junit(r: &RunRecord) -> String {
    let mut cases = String::new();
    let mut failures = 0;
    let mut skipped = 0;
    for s in &r.steps {
        let _ = write!(
            cases,
            "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\">",
            xml_escape(&r.drill.name),
            s.section.as_str(),
            xml_escape(&s.name),
            s.duration_s
        );
        match s.status {
            StepStatus::Failed | StepStatus::TimedOut => {
                failures += 1;
                let msg = s.error.as_deref().unwrap_or("failed");
                let _ = write!(
                    cases,
                    "\n      <failure message=\"{}\">{}</failure>\n    ",
                    xml_escape(msg),
                    xml_escape(s.log_tail.as_deref().unwrap_or(msg))
                );
            }
            StepStatus::Skipped | StepStatus::NotRun | StepStatus::Running => {
                skipped += 1;
                let _ = write!(cases, "<skipped message=\"{}\"/>", s.status.as_str());
            }
            StepStatus::Passed => {}
        }
        cases.push_str("</testcase>\n");
    }
    for g in &r.gates {
        let _ = write!(
            cases,
            "    <testcase classname=\"{}.gates\" name=\"{}\" time=\"0\">",
            xml_escape(&r.drill.name),
            xml_escape(&g.name)
        );
        match g.status {
            GateStatus::Failed => {
                failures += 1;
                let _ = write!(cases, "<failure message=\"{}\"/>", xml_escape(&g.detail));
            }
            GateStatus::NotEvaluated => {
                skipped += 1;
                let _ = write!(cases, "<skipped message=\"{}\"/>", xml_escape(&g.detail));
            }
            GateStatus::Passed => {}
        }
        cases.push_str("</testcase>\n");
    }
    // The drill's verdict is a case of its own: a run interrupted between steps, or one
    // whose evidence could not all be written, has no failed step or gate, and must not
    // look green to CI.
    let mut errors = 0;
    let _ = write!(
        cases,
        "    <testcase classname=\"{}.drill\" name=\"verdict\" time=\"{:.3}\">",
        xml_escape(&r.drill.name),
        r.duration_s
    );
    let element = match r.status {
        RunStatus::Passed => None,
        RunStatus::Failed => Some((&mut failures, "failure")),
        RunStatus::Error | RunStatus::Aborted | RunStatus::Running => Some((&mut errors, "error")),
    };
    if let Some((count, element)) = element {
        *count += 1;
        let message = xml_escape(&r.summary);
        let _ = write!(
            cases,
            "<{element} message=\"{message}\">{message}</{element}>"
        );
    }
    cases.push_str("</testcase>\n");
    let tests = r.steps.len() + r.gates.len() + 1;
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\" timestamp=\"{}\">\n{cases}  </testsuite>\n</testsuites>\n",
        xml_escape(&r.drill.name),
        r.duration_s,
        xml_escape(&r.started_at)
    )
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Whether a step ran (its duration was measured).
fn ran(status: StepStatus) -> bool {
    !matches!(
        status,
        StepStatus::NotRun | StepStatus::Skipped | StepStatus::Running
    )
}

/// Prometheus text exposition, for node_exporter's textfile collector or a pushgateway.
/// `last_success`: when this drill last passed (unix seconds), from its history; the
/// metric is left out when that is not known.
pub fn prometheus(r: &RunRecord, last_success: Option<f64>) -> String {
    let drill = label(&r.drill.name);
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{drill=\"{drill}\"{labels}}} {value}");
        }
    };
    metric(
        "restore_drill_success",
        "1 when the drill passed.",
        vec![(
            String::new(),
            f64::from(u8::from(r.status == RunStatus::Passed)),
        )],
    );
    // A record that never finished (a run that died: `running`) has no end and no length.
    let finished = history::finished_s(r);
    if let Some(finished) = finished {
        metric(
            "restore_drill_last_run_timestamp_seconds",
            "When the drill finished (unix time).",
            vec![(String::new(), finished)],
        );
    }
    if let Some(t) = last_success {
        metric(
            "restore_drill_last_success_timestamp_seconds",
            history::LAST_SUCCESS_HELP,
            vec![(String::new(), t)],
        );
    }
    if finished.is_some() {
        metric(
            "restore_drill_duration_seconds",
            "Wall time of the whole drill.",
            vec![(String::new(), r.duration_s)],
        );
    }
    if let Some(m) = r.rto.measured_s {
        metric(
            "restore_drill_rto_seconds",
            "Measured recovery time over the RTO phases.",
            vec![(String::new(), m)],
        );
    }
    if let Some(t) = r.rto.target_s {
        metric(
            "restore_drill_rto_target_seconds",
            "The RTO target.",
            vec![(String::new(), t)],
        );
    }
    if let Some(m) = r.rpo.as_ref().and_then(|p| p.measured_s) {
        metric(
            "restore_drill_rpo_seconds",
            "Age of the newest restored data.",
            vec![(String::new(), m)],
        );
    }
    metric(
        "restore_drill_step_duration_seconds",
        "Duration of each step that ran.",
        r.steps
            .iter()
            .filter(|s| ran(s.status))
            .map(|s| {
                (
                    format!(",step=\"{}\",phase=\"{}\"", label(&s.id), label(&s.phase)),
                    s.duration_s,
                )
            })
            .collect(),
    );
    metric(
        "restore_drill_gate_passed",
        "1 when the gate passed, 0 when it failed or was not evaluated.",
        r.gates
            .iter()
            .map(|g| {
                (
                    format!(",gate=\"{}\"", label(&g.name)),
                    f64::from(u8::from(g.status == GateStatus::Passed)),
                )
            })
            .collect(),
    );
    // Left out when no backup was taken or found (none in the drill, or it failed, or
    // never ran): not measured is no size of 0 (nor the -0 an empty sum of floats is).
    let sizes: Vec<f64> = r
        .steps
        .iter()
        .filter(|s| s.kind == "backup" || s.kind == "locate")
        .filter_map(|s| s.outputs.get("bytes").and_then(Value::as_f64))
        .collect();
    if !sizes.is_empty() {
        metric(
            "restore_drill_backup_bytes",
            "Size of the backups the drill restored.",
            vec![(String::new(), sizes.iter().sum())],
        );
    }
    out
}
