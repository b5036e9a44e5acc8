//! `restore-drill plan`: the steps as they would run, templates resolved where they can be
//! without running anything (outputs of earlier steps are shown as written).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::context::Context;
use super::setup::render_vars;
use super::{RunError, RunOptions};
use crate::playbook::{LoadedPlaybook, Section, Step, default_phase, step_outputs};

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
    ctx.set("steps", placeholders(pb));
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
            for (key, value) in shown_fields(&ctx, step) {
                let gap = if value.starts_with('\n') { "" } else { " " };
                let _ = writeln!(out, "       {key}:{gap}{value}");
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
        let _ = writeln!(out, "  RTO ≤ {} over {phases}", rendered(&ctx, rto));
    }
    if let Some(rpo) = &g.rpo {
        let _ = writeln!(
            out,
            "  RPO ≤ {} from {}",
            rendered(&ctx, rpo),
            g.rpo_from
                .as_deref()
                .map_or("?".into(), |src| rendered(&ctx, src))
        );
    }
    for c in &g.custom {
        let _ = writeln!(out, "  {}: {}", c.name, c.check);
    }
    // A url's password (a `--var`, a literal) is shown as `***`, as in the record.
    Ok(crate::redact::mask_url_passwords(&out).into_owned())
}

/// What each step will output, as `<steps.<id>.<name>>`: the plan shows a value read from
/// an earlier step the way it shows `<workdir>`, in place.
fn placeholders(pb: &LoadedPlaybook) -> Value {
    let steps = pb.all_steps().map(|(_, step)| {
        let names = step_outputs(step, &pb.engines).unwrap_or_default();
        let view = names
            .iter()
            .map(|name| {
                (
                    name.to_string(),
                    json!(format!("<steps.{}.{name}>", step.id)),
                )
            })
            .collect();
        (step.id.clone(), Value::Object(view))
    });
    Value::Object(steps.collect())
}

/// A template rendered with the plan's placeholders, or as written when it cannot be.
fn rendered(ctx: &Context, src: &str) -> String {
    crate::template::render(src, &ctx.jinja()).unwrap_or_else(|_| src.to_string())
}

/// The fields of a step worth showing, each rendered on its own (a field that cannot be
/// rendered is shown as written, the others still rendered), as readable text.
fn shown_fields(ctx: &Context, step: &Step) -> Vec<(String, String)> {
    let written = serde_json::to_value(step).unwrap_or(Value::Null);
    let shown = ctx
        .render_step(step)
        .ok()
        .and_then(|s| serde_json::to_value(s).ok());
    let mut fields = Vec::new();
    for (key, value) in written.as_object().into_iter().flatten() {
        if matches!(key.as_str(), "id" | "kind" | "name" | "phase" | "runbook") || value.is_null() {
            continue;
        }
        let mut value = match &shown {
            Some(all) => all[key].clone(),
            None => ctx
                .render_field(key, value)
                .unwrap_or_else(|| value.clone()),
        };
        // A credential written in the playbook (a literal, an `env`, a `--var`) is `***`.
        crate::redact::mask_secret_fields(&mut value, "<secret>");
        let text = match (key.as_str(), &value) {
            ("checks", Value::Array(checks)) => checks.iter().map(check_line).collect(),
            ("argv", Value::Array(words)) => words.iter().map(word).collect::<Vec<_>>().join(" "),
            ("ready", table) => pairs(table),
            _ => text(&value),
        };
        fields.push((key.clone(), text));
    }
    fields
}

/// One check as a line: `- name: builtin table_counts, compare_to <steps.backup.table_counts>`.
fn check_line(check: &Value) -> String {
    let name = check["name"].as_str().unwrap_or("?");
    let mut rest = check.clone();
    if let Some(map) = rest.as_object_mut() {
        map.remove("name");
        if let Some(Value::String(query)) = map.get_mut("query") {
            *query = format!("`{query}`");
        }
    }
    format!("\n         - {name}: {}", pairs(&rest))
}

/// A table as `key value` pairs, without the empty ones.
fn pairs(table: &Value) -> String {
    let pairs = table.as_object().into_iter().flatten();
    pairs
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| format!("{k} {}", text(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A word of a command line, quoted as a shell would need it.
fn word(value: &Value) -> String {
    crate::fmt::shell_word(&text(value))
}

/// A value as text: strings as they are (the first line, `…` when there are more), lists
/// joined with `, `, tables as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => {
            let s = s.trim();
            let first = s.lines().next().unwrap_or("");
            let more = if s.lines().count() > 1 { " …" } else { "" };
            format!("{first}{more}")
        }
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}
