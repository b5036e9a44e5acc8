//! Timing gates: per-step `max_duration`, the drill's RTO and RPO, and custom expressions.

use std::time::Duration;

use serde_json::{Value, json};

use super::context::Context;
use crate::artifact::{
    GateKind, GateRecord, GateStatus, PhaseRecord, RpoRecord, RtoRecord, StepRecord, StepStatus,
};
use crate::playbook::{Gates, Section};
use crate::template;

use crate::fmt::fmt_secs;

fn gate(
    name: &str,
    kind: GateKind,
    passed: bool,
    target_s: Option<f64>,
    measured_s: Option<f64>,
    detail: String,
) -> GateRecord {
    GateRecord {
        name: name.to_string(),
        kind,
        status: if passed {
            GateStatus::Passed
        } else {
            GateStatus::Failed
        },
        target: target_s.map(fmt_secs),
        measured: measured_s.map(fmt_secs),
        target_s,
        measured_s,
        detail,
    }
}

pub fn not_evaluated(name: &str, kind: GateKind, target_s: Option<f64>, why: &str) -> GateRecord {
    GateRecord {
        name: name.to_string(),
        kind,
        status: GateStatus::NotEvaluated,
        target: target_s.map(fmt_secs),
        measured: None,
        target_s,
        measured_s: None,
        detail: why.to_string(),
    }
}

pub fn max_duration(step: &StepRecord, max: Duration) -> GateRecord {
    let target = max.as_secs_f64();
    let passed = step.duration_s <= target;
    let detail = if passed {
        format!(
            "{} took {} (limit {})",
            step.id,
            fmt_secs(step.duration_s),
            fmt_secs(target)
        )
    } else {
        format!(
            "{} took {}, over its limit of {}",
            step.id,
            fmt_secs(step.duration_s),
            fmt_secs(target)
        )
    };
    gate(
        &format!("{} under {}", step.name, fmt_secs(target)),
        GateKind::MaxDuration,
        passed,
        Some(target),
        Some(step.duration_s),
        detail,
    )
}

/// Per-phase time of the drill's `[[steps]]`; assumed (manual) time counts where given.
pub fn rto(steps: &[StepRecord], gates: &Gates) -> RtoRecord {
    let counted = |phase: &str| match &gates.rto_phases {
        Some(list) => list.iter().any(|p| p == phase),
        None => phase != "backup" && phase != "setup",
    };
    let mut phases: Vec<PhaseRecord> = Vec::new();
    for step in steps.iter().filter(|s| s.section == Section::Steps) {
        if matches!(
            step.status,
            StepStatus::NotRun | StepStatus::Skipped | StepStatus::Running
        ) {
            continue;
        }
        let seconds = step.assumed_s.unwrap_or(step.duration_s);
        let index = match phases.iter().position(|p| p.phase == step.phase) {
            Some(i) => i,
            None => {
                phases.push(PhaseRecord {
                    phase: step.phase.clone(),
                    seconds: 0.0,
                    counted: counted(&step.phase),
                    assumed: false,
                    steps: Vec::new(),
                });
                phases.len() - 1
            }
        };
        let phase = &mut phases[index];
        phase.seconds += seconds;
        phase.assumed |= step.assumed_s.is_some();
        phase.steps.push(step.id.clone());
    }
    RtoRecord {
        target_s: gates
            .rto
            .as_deref()
            .and_then(|s| crate::limits::parse_duration(s).ok())
            .map(|d| d.as_secs_f64()),
        // No step of a counted phase ran: the recovery time was not measured (not 0s).
        measured_s: phases
            .iter()
            .any(|p| p.counted)
            .then(|| phases.iter().filter(|p| p.counted).map(|p| p.seconds).sum()),
        counted_phases: phases
            .iter()
            .filter(|p| p.counted)
            .map(|p| p.phase.clone())
            .collect(),
        assumed_phases: phases
            .iter()
            .filter(|p| p.counted && p.assumed)
            .map(|p| p.phase.clone())
            .collect(),
        phases,
    }
}

/// The RTO gate when there is a target (not evaluated when nothing was measured).
pub fn rto_gate(rto: &RtoRecord) -> Option<GateRecord> {
    let target = rto.target_s?;
    let Some(measured) = rto.measured_s else {
        return Some(not_evaluated(
            "RTO",
            GateKind::Rto,
            Some(target),
            "no step of the RTO's phases ran",
        ));
    };
    let passed = measured <= target;
    let assumed = if rto.assumed_phases.is_empty() {
        String::new()
    } else {
        format!(
            " (includes assumed time for {})",
            rto.assumed_phases.join(", ")
        )
    };
    let detail = format!(
        "recovery took {} over phases {}{assumed}; target {}",
        fmt_secs(measured),
        rto.counted_phases.join(", "),
        fmt_secs(target)
    );
    Some(gate(
        "RTO",
        GateKind::Rto,
        passed,
        Some(target),
        Some(measured),
        detail,
    ))
}

/// An `rto` / `rpo` target as the drill reads it: rendered (it may say `{{ vars.rto }}`)
/// and checked to be a duration. The rendered text, or why it cannot be read.
pub fn target(src: &str, ctx: &Context) -> Result<String, String> {
    let text =
        template::render(src, &ctx.jinja()).map_err(|e| template::describe_in(src, false, &e))?;
    crate::limits::parse_duration(&text)
        .map(|_| text.clone())
        .map_err(|e| format!("bad duration `{text}`: {e}"))
}

/// The gate of a target that cannot be read: failed, never silently dropped.
pub fn unreadable(name: &str, kind: GateKind, why: &str) -> GateRecord {
    gate(
        name,
        kind,
        false,
        None,
        None,
        format!("cannot read the {name} target: {why}"),
    )
}

/// The age of the newest restored data, measured at the drill's start (the "incident").
pub fn rpo(
    gates: &Gates,
    ctx: &Context,
    drill_started: jiff::Timestamp,
) -> Option<(RpoRecord, GateRecord)> {
    let target_s = gates
        .rpo
        .as_deref()
        .and_then(|s| crate::limits::parse_duration(s).ok())
        .map(|d| d.as_secs_f64());
    let src = gates.rpo_from.as_deref()?;
    let rendered =
        template::render(src, &ctx.jinja()).map_err(|e| template::describe_in(src, false, &e));
    let measured = rendered
        .clone()
        .and_then(|s| parse_timestamp(&s))
        .and_then(|ts| {
            // Data newer than now cannot have been restored: a wrong value or a clock.
            let now = jiff::Timestamp::now();
            if ts > now {
                return Err(format!(
                    "`{ts}` is later than now ({now}): not the time of restored data"
                ));
            }
            let age = drill_started.duration_since(ts).as_secs_f64();
            Ok(age.max(0.0))
        });
    let record = RpoRecord {
        target_s,
        measured_s: measured.as_ref().ok().copied(),
        source: rendered.as_ref().ok().cloned(),
        error: measured.as_ref().err().cloned(),
    };
    let gate = match (&measured, target_s) {
        (Ok(age), Some(target)) => gate(
            "RPO",
            GateKind::Rpo,
            *age <= target,
            Some(target),
            Some(*age),
            format!(
                "newest restored data is from {}, {} before the drill; target {}",
                record.source.as_deref().unwrap_or("?"),
                fmt_secs(*age),
                fmt_secs(target)
            ),
        ),
        (Err(e), _) => gate(
            "RPO",
            GateKind::Rpo,
            false,
            target_s,
            None,
            format!("cannot measure the RPO: {e}"),
        ),
        (Ok(_), None) => {
            return Some((
                record,
                not_evaluated("RPO", GateKind::Rpo, None, "no `rpo` target"),
            ));
        }
    };
    Some((record, gate))
}

/// RFC 3339, SQLite's `YYYY-MM-DD HH:MM:SS` (UTC), or unix seconds.
pub fn parse_timestamp(s: &str) -> Result<jiff::Timestamp, String> {
    let s = s.trim();
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|e| e.to_string());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return jiff::Timestamp::from_millisecond((secs * 1000.0) as i64)
            .map_err(|e| e.to_string());
    }
    Err(format!(
        "`{s}` is not a timestamp (RFC 3339, `YYYY-MM-DD HH:MM:SS` UTC, or unix seconds)"
    ))
}

/// Why a custom gate's `check` cannot be evaluated: it reads a step that did not run
/// (skipped, or never reached), whose outputs were not measured (a skipped step's
/// `duration_s` is 0). Reading only its `status` is fine. `steps`: each step's id (as
/// the playbook names it: the record's may be redacted) and status.
pub fn unmeasured_step(check: &str, steps: &[(&str, StepStatus)]) -> Option<String> {
    let names = template::referenced_names(check, true).ok()?;
    names.iter().find_map(|name| {
        let mut parts = name.strip_prefix("steps.")?.splitn(2, '.');
        let id = parts.next()?;
        let field = parts.next();
        if matches!(field, Some("status" | "skipped_because")) {
            return None;
        }
        let &(_, status) = steps.iter().find(|(s, _)| *s == id)?;
        matches!(status, StepStatus::Skipped | StepStatus::NotRun).then(|| {
            format!(
                "reads step `{id}`, which was {}: not measured",
                status.as_str().replace('_', " ")
            )
        })
    })
}

/// `[[gates.custom]]`: an expression over the drill's data; true passes.
pub fn custom(
    name: &str,
    check: &str,
    ctx: &Context,
    rto: &RtoRecord,
    rpo: Option<&RpoRecord>,
) -> GateRecord {
    let mut ctx = ctx.clone();
    ctx.set("rto", json!(rto));
    ctx.set("rpo", rpo.map_or(Value::Null, |r| json!(r)));
    match template::eval(check, &ctx.jinja()) {
        // Only true passes: a number, a string ("false" too) or a map is not a verdict.
        Ok(v) if v.kind() != minijinja::value::ValueKind::Bool => gate(
            name,
            GateKind::Custom,
            false,
            None,
            None,
            format!("`{check}` is {v:?}, not true or false"),
        ),
        Ok(v) => gate(
            name,
            GateKind::Custom,
            v.is_true(),
            None,
            None,
            format!(
                "`{check}` is {}",
                if v.is_true() { "true" } else { "false" }
            ),
        ),
        Err(e) => gate(
            name,
            GateKind::Custom,
            false,
            None,
            None,
            format!(
                "`{check}` could not be evaluated: {}",
                template::describe_in(check, true, &e)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_three_forms() {
        let a = parse_timestamp("2026-01-02T03:04:05Z").unwrap();
        let b = parse_timestamp("2026-01-02 03:04:05").unwrap();
        let c = parse_timestamp(&a.as_second().to_string()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert!(parse_timestamp("yesterday").is_err());
    }
}

#[cfg(test)]
#[path = "gates_tests.rs"]
mod more_tests;
