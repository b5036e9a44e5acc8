//! `restore-drill plan`: the steps as they would run, templates resolved where they can be
//! without running anything (outputs of earlier steps are shown as written).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::context::Context;
use super::setup::render_vars;
use super::{RunError, RunOptions};
use crate::playbook::{LoadedPlaybook, Section, default_phase};

pub fn plan(pb: &LoadedPlaybook, opts: &RunOptions) -> Result<String, RunError> {
    let book = &pb.playbook;
    let mut ctx = Context::default();
    ctx.set("env", super::context::env_value());
    ctx.set(
        "secrets",
        Value::Object(
            book.secrets
                .keys()
                .map(|k| (k.clone(), json!("<secret>")))
                .collect(),
        ),
    );
    ctx.set(
        "drill",
        json!({
            "name": book.drill.name, "title": book.drill.title, "run_id": "<run_id>", "ts": "<ts>",
            "workdir": "<workdir>", "artifacts_dir": opts.artifacts_dir.display().to_string(),
            "playbook_dir": pb.dir().display().to_string(), "mode": "automated",
        }),
    );
    ctx.set("vars", json!({}));
    ctx.set("steps", json!({}));
    render_vars(pb, opts, &mut ctx)?;

    let mut out = String::new();
    let title = book.drill.title.as_deref().unwrap_or(&book.drill.name);
    let _ = writeln!(out, "{title} ({})", pb.path.display());
    if let Some(Value::Object(vars)) = ctx.root.get("vars")
        && !vars.is_empty()
    {
        let _ = writeln!(out, "\nvars:");
        for (k, v) in vars {
            let _ = writeln!(
                out,
                "  {k} = {}",
                v.as_str().map_or(v.to_string(), str::to_string)
            );
        }
    }
    let mut n = 0;
    for section in [Section::Setup, Section::Steps, Section::Cleanup] {
        let steps: Vec<_> = pb.all_steps().filter(|(s, _)| *s == section).collect();
        if steps.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n[{}]", section.as_str());
        for (_, step) in steps {
            n += 1;
            let phase = match section {
                Section::Steps => step
                    .phase
                    .clone()
                    .unwrap_or_else(|| default_phase(step).into()),
                other => other.as_str().into(),
            };
            let _ = writeln!(
                out,
                "{n:>3}. {} ({} · {} · phase {phase})",
                step.title(),
                step.id,
                step.kind.as_str()
            );
            // Render what can be rendered; fields that read outputs of earlier steps stay as written.
            let shown = ctx.render_step(step).unwrap_or_else(|_| step.clone());
            let fields = serde_json::to_value(&shown).unwrap_or(Value::Null);
            for (key, value) in fields.as_object().into_iter().flatten() {
                if matches!(key.as_str(), "id" | "kind" | "name" | "phase" | "runbook")
                    || value.is_null()
                {
                    continue;
                }
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let text = text.trim();
                let first = text.lines().next().unwrap_or("");
                let more = if text.lines().count() > 1 { " …" } else { "" };
                let _ = writeln!(out, "       {key}: {first}{more}");
            }
        }
    }
    let g = &book.gates;
    let _ = writeln!(out, "\ngates:");
    if let Some(rto) = &g.rto {
        let phases = g
            .rto_phases
            .as_ref()
            .map_or("all but backup".to_string(), |p| p.join(", "));
        let _ = writeln!(out, "  RTO ≤ {rto} over {phases}");
    }
    if let Some(rpo) = &g.rpo {
        let _ = writeln!(
            out,
            "  RPO ≤ {rpo} from {}",
            g.rpo_from.as_deref().unwrap_or("?")
        );
    }
    for c in &g.custom {
        let _ = writeln!(out, "  {}: {}", c.name, c.check);
    }
    Ok(out)
}
