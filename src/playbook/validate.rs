//! Checks that need the whole playbook: ids, fields per kind, durations, template names.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use serde_json::Value;
use toml::de::DeValue;

use super::diagnostic::{Diagnostic, Lines};
use super::engine::{EngineSpec, find_spec, kind_spec};
use super::fields::{
    COMMON, NOT_TEMPLATED, allowed_fields, exclusive_fields, is_step_field, kind_fields,
    required_fields,
};
use super::model::{Builtin, Check, Playbook, Step, StepKind};
use super::spans::{Seg, SpanIndex};
use super::{Layout, Section, closest};
use crate::template::STEP_ROOTS;

mod durations;
mod manifests;
mod names;
mod numbers;
mod phases;
mod sources;
mod unattended;
mod values;
mod writes;

/// `engines`: the engines a step may name (the registry's specs).
pub fn validate<'a>(
    pb: &'a Playbook,
    layout: &'a Layout,
    text: &'a str,
    spans: SpanIndex<'a>,
    dir: &Path,
    engines: &'a [&'a EngineSpec],
) -> Vec<Diagnostic> {
    let mut v = Validator {
        pb,
        layout,
        text,
        engines,
        known: names::known_steps(pb, layout, engines),
        lines: std::cell::OnceCell::new(),
        spans,
        diags: Vec::new(),
    };
    v.header();
    v.has_steps();
    v.vars();
    v.steps();
    v.writes_into_sources();
    v.manifests();
    v.gates();
    v.unattended();
    v.report(dir);
    v.diags
}

struct Validator<'a> {
    pb: &'a Playbook,
    layout: &'a Layout,
    text: &'a str,
    engines: &'a [&'a EngineSpec],
    /// What each parsed step offers later templates: its outputs and check names.
    known: HashMap<&'a str, names::StepNames<'a>>,
    /// Built at the first duplicate id (a line index costs memory on a huge file).
    lines: std::cell::OnceCell<Lines<'a>>,
    spans: SpanIndex<'a>,
    diags: Vec<Diagnostic>,
}

/// What a template may name at a given place.
struct Scope<'s> {
    roots: &'s [&'s str],
    /// Steps that have run before this place.
    earlier: &'s HashSet<&'s str>,
    /// Every step id in the playbook (to tell "runs later" from "unknown").
    all: &'s HashSet<&'s str>,
    /// Vars defined before this place.
    vars: &'s [&'s str],
    /// The names `[secrets]` declares.
    secrets: &'s [&'s str],
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

impl<'a> Validator<'a> {
    fn error(&mut self, message: impl Into<String>, span: Option<Range<usize>>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::new(message, span));
        self.diags.last_mut().expect("just pushed")
    }

    /// Ids as written, parsed or not, so a reference to a broken step is not "unknown".
    fn step_ids(&self) -> HashSet<&'a str> {
        self.layout
            .steps
            .iter()
            .filter_map(|(_, _, id, _)| id.as_deref())
            .collect()
    }

    fn var_names(&self) -> Vec<&'a str> {
        self.pb.vars.keys().map(String::as_str).collect()
    }

    fn secret_names(&self) -> Vec<&'a str> {
        self.pb.secrets.keys().map(String::as_str).collect()
    }

    fn header(&mut self) {
        if self.pb.version != 1 {
            let span = self.spans.value(&[Seg::Key("version")]);
            self.error(
                format!("unsupported playbook version {}", self.pb.version),
                span,
            )
            .help = Some("this restore-drill reads version 1".into());
        }
        let name = &self.pb.drill.name;
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'));
        // A name not written (or not a string) is reported by the parse.
        let path = [Seg::Key("drill"), Seg::Key("name")];
        let written = self
            .spans
            .find(&path)
            .is_some_and(|v| v.get_ref().as_str().is_some());
        if !valid && written {
            let span = self.spans.value(&path);
            self.error(format!("drill name `{name}` is not [a-z0-9_-]+"), span)
                .help = Some(
                "the name is used in file names; use lowercase letters, digits, `_` and `-`".into(),
            );
        }
    }

    /// A drill of no `[[steps]]` would pass having restored and checked nothing.
    fn has_steps(&mut self) {
        let written = self.layout.steps.iter().any(|(s, ..)| *s == Section::Steps);
        if !written {
            let span = self.spans.key(&[Seg::Key("drill")]);
            self.error("the playbook has no `[[steps]]`: a drill of nothing would pass having proved nothing", span)
                .help = Some("`[[steps]]` are the drill itself (`[[setup]]` and `[[cleanup]]` run around them)".into());
        }
    }

    fn vars(&mut self) {
        let all_steps = HashSet::new();
        let names: Vec<&str> = self.pb.vars.keys().map(String::as_str).collect();
        let secrets = self.secret_names();
        for (i, (name, value)) in self.pb.vars.iter().enumerate() {
            let Value::String(src) = value else { continue };
            let scope = Scope {
                roots: &["vars", "env", "drill", "secrets"],
                earlier: &all_steps,
                all: &all_steps,
                vars: &names[..i],
                secrets: &secrets,
            };
            let path = [Seg::Key("vars"), Seg::Key(name)];
            self.template(src, false, &scope, &path);
        }
    }

    fn steps(&mut self) {
        let (all, vars) = (self.step_ids(), self.var_names());
        let secrets = self.secret_names();
        let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
        let mut earlier: HashSet<&str> = HashSet::new();
        for (section, raw, id, parsed) in &self.layout.steps {
            let steps = self.pb.section(*section);
            let path = [Seg::Key(section.as_str()), Seg::Index(*raw)];
            if let Some(id) = id {
                self.step_id(id, &path, &mut seen);
            }
            if let Some(step) = parsed.and_then(|i| steps.get(i)) {
                self.step_fields(step, &path);
                self.step_durations(step, &path);
                self.locate_s3(step, &path);
                self.locate_pick_copy_to(step, &path);
                let scope = Scope {
                    roots: STEP_ROOTS,
                    earlier: &earlier,
                    all: &all,
                    vars: &vars,
                    secrets: &secrets,
                };
                self.step_templates(step, &path, &scope);
                if let Some(checks) = &step.checks {
                    self.checks(step, checks, &path);
                }
            }
            if let Some(id) = id {
                earlier.insert(id.as_str());
            }
        }
    }

    fn step_id(
        &mut self,
        id: &'a str,
        path: &[Seg<'_>],
        seen: &mut HashMap<&'a str, Range<usize>>,
    ) {
        let span = self.spans.value(&[path, &[Seg::Key("id")]].concat());
        if !is_identifier(id) {
            self.error(format!("step id `{id}` is not an identifier"), span.clone())
                .help =
                Some("ids are read in templates as `steps.<id>`: use [a-z_][a-z0-9_]*".into());
        }
        if let Some(first) = seen.get(id) {
            let line = self
                .lines
                .get_or_init(|| Lines::new(self.text))
                .line(first.start);
            self.error(format!("duplicate step id `{id}`"), span).help =
                Some(format!("the first step with this id is on line {line}"));
        } else if let Some(span) = span {
            seen.insert(id, span);
        }
    }

    fn step_fields(&mut self, step: &Step, path: &[Seg<'_>]) {
        let kind = step.kind.as_str();
        let allowed = allowed_fields(step.kind, self.engines);
        let present = self.spans.keys(path);
        for (key, span) in &present {
            let key_ = key.as_str();
            if !COMMON.contains(&key_)
                && !allowed.contains(&key_)
                && is_step_field(key_, self.engines)
            {
                let help = match closest(key, &allowed) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("fields of a {kind} step: {}", allowed.join(", ")),
                };
                self.error(
                    format!("field `{key}` does not apply to a `{kind}` step"),
                    Some(span.clone()),
                )
                .help = Some(help);
            }
        }
        let engine = self.step_engine(step, path);
        let id_span = self.spans.value(&[path, &[Seg::Key("id")]].concat());
        let what = match &step.engine {
            Some(e) => format!("{kind} step `{}` (engine {e})", step.id),
            None => format!("{kind} step `{}`", step.id),
        };
        // `checks = []` checks nothing: a step of no other work would pass verifying nothing.
        let no_checks = step.checks.as_ref().is_some_and(Vec::is_empty);
        let given = |k: &str| !(k == "checks" && no_checks);
        for alternatives in required_fields(step, engine.and_then(|e| e.kind(step.kind))) {
            if !present
                .iter()
                .any(|(k, _)| alternatives.contains(&k.as_str()) && given(k))
            {
                let needs = match alternatives {
                    [one] => format!("`{one}`"),
                    many => format!("one of `{}`", many.join("`, `")),
                };
                let empty = alternatives.contains(&"checks") && no_checks;
                let needs = if empty {
                    format!("{needs} (its `checks` is empty: it would check nothing)")
                } else {
                    needs
                };
                self.error(format!("{what} needs {needs}"), id_span.clone());
            }
        }
        if let Some(spec) = engine.and_then(|e| e.kind(step.kind)) {
            self.closed_values(step, spec, path, &present);
        }
        if let Some((one, what_each, help)) = exclusive_fields(step.kind) {
            let given: Vec<&str> = one
                .iter()
                .copied()
                .filter(|f| present.iter().any(|(k, _)| k == f))
                .collect();
            if given.len() > 1 {
                let given = given.join("` and `");
                let message = format!("{what} takes one {what_each}, not `{given}`");
                self.error(message, id_span.clone()).help = Some(help.into());
            }
        }
        self.step_numbers(step, path);
        if let Some(problem) = step
            .expect_status
            .as_ref()
            .and_then(super::ExpectStatus::problem)
        {
            let span = self
                .spans
                .value(&[path, &[Seg::Key("expect_status")]].concat());
            self.error(problem, span);
        }
    }

    /// The step's engine among those known; an unknown name, or an engine that does not
    /// serve the step's kind, is reported at the `engine` field.
    fn step_engine(&mut self, step: &Step, path: &[Seg<'_>]) -> Option<&'a EngineSpec> {
        let name = step.engine.as_deref()?;
        let span = self.spans.value(&[path, &[Seg::Key("engine")]].concat());
        let names: Vec<&str> = self.engines.iter().map(|e| e.name).collect();
        let Some(engine) = find_spec(self.engines, name) else {
            let help = match closest(name, &names) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("expected one of: {}", names.join(", ")),
            };
            self.error(format!("unknown value `{name}`"), span).help = Some(help);
            return None;
        };
        if engine.kind(step.kind).is_none() && kind_fields(step.kind).contains(&"engine") {
            let serving: Vec<&str> = self
                .engines
                .iter()
                .filter(|e| e.kind(step.kind).is_some())
                .map(|e| e.name)
                .collect();
            let list = match serving.split_last() {
                Some((last, [])) => last.to_string(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => "none".into(),
            };
            let kind = step.kind.as_str();
            self.error(format!("`{kind}` steps take engine {list}"), span);
        }
        Some(engine)
    }

    fn step_templates(&mut self, step: &Step, path: &[Seg<'_>], scope: &Scope<'_>) {
        if let Some(when) = &step.when {
            self.template(when, true, scope, &[path, &[Seg::Key("when")]].concat());
        }
        // The step's strings as written (what serde read them from), with their paths.
        let mut strings = Vec::new();
        if let Some(table) = self.spans.find(path) {
            collect_strings(table.get_ref(), &mut Vec::new(), &mut strings);
        }
        for (field_path, src) in strings {
            let segs: Vec<Seg<'_>> = path
                .iter()
                .copied()
                .chain(field_path.iter().map(|p| match p {
                    PathPart::Key(k) => Seg::Key(k),
                    PathPart::Index(i) => Seg::Index(*i),
                }))
                .collect();
            self.template(&src, false, scope, &segs);
        }
    }

    /// A builtin the step's engine refuses, and why.
    fn lacking(&self, step: &Step, check: &Check) -> Option<String> {
        let builtin = check.builtin?;
        let spec = kind_spec(self.engines, step)?;
        let (_, why) = spec.lacks.iter().find(|(b, _)| *b == builtin)?;
        let engine = step.engine.as_deref().unwrap_or_default();
        Some(format!("cannot run on engine `{engine}`: {why}"))
    }

    fn checks(&mut self, step: &Step, checks: &[Check], path: &[Seg<'_>]) {
        for (i, check) in checks.iter().enumerate() {
            let cpath = [path, &[Seg::Key("checks"), Seg::Index(i)]].concat();
            let span = self
                .spans
                .value(&[&cpath[..], &[Seg::Key("name")]].concat());
            let shape = match (&check.query, check.builtin) {
                (Some(_), Some(_)) => Some("has both `query` and `builtin`: choose one".to_string()),
                (None, None) => Some("needs a `query` or a `builtin`".to_string()),
                (Some(_), None)
                    if check.expect.is_none()
                        && check.expect_rows.is_none()
                        && check.min.is_none()
                        && check.max.is_none() =>
                {
                    Some("has a query but no expectation (`expect`, `expect_rows`, `min` or `max`): it could never fail".to_string())
                }
                (None, Some(Builtin::TablesExist)) if check.tables.is_none() && check.compare_to.is_none() => {
                    Some("`tables_exist` needs `tables` (or `compare_to`)".to_string())
                }
                (None, Some(Builtin::IndexesExist)) if check.indexes.is_none() && check.compare_to.is_none() => {
                    Some("`indexes_exist` needs `indexes` (or `compare_to`)".to_string())
                }
                (None, Some(Builtin::TableCounts)) if check.compare_to.is_none() => {
                    Some("`table_counts` needs `compare_to`, e.g. \"{{ steps.backup.table_counts }}\"".to_string())
                }
                _ => None,
            };
            // Each is its own problem: all are shown.
            let problems = [
                shape,
                content_check_problem(check),
                self.lacking(step, check),
                files_check_problem(step.kind, check),
            ];
            // Results are kept by name (`steps.<id>.checks['<name>']`): one per name.
            let twin = checks[..i].iter().position(|c| c.name == check.name);
            let twin = twin.map(|n| format!("has the name of check {} of the step: results are kept by name, so one would hide the other", n + 1));
            for problem in problems.into_iter().chain([twin]).flatten() {
                self.error(
                    format!("check `{}` of step `{}` {problem}", check.name, step.id),
                    span.clone(),
                );
            }
        }
    }

    fn gates(&mut self) {
        let gates = &self.pb.gates;
        let (all, vars) = (self.step_ids(), self.var_names());
        // A target may come from a var (`rto = "{{ vars.rto }}"`): rendered before the run.
        let targets = Scope {
            roots: &["vars", "env", "drill"],
            earlier: &HashSet::new(),
            all: &all,
            vars: &vars,
            secrets: &[],
        };
        for key in ["rto", "rpo"] {
            let value = if key == "rto" { &gates.rto } else { &gates.rpo };
            if let Some(s) = value {
                self.duration(s, &[Seg::Key("gates"), Seg::Key(key)]);
                self.template(s, false, &targets, &[Seg::Key("gates"), Seg::Key(key)]);
            }
        }
        self.rto_phases();
        let gates = &self.pb.gates;
        if gates.rpo.is_some() && gates.rpo_from.is_none() {
            let span = self.spans.key(&[Seg::Key("gates"), Seg::Key("rpo")]);
            self.error(
                "`rpo` needs `rpo_from`: the timestamp of the newest restored data",
                span,
            );
        }
        let scope = Scope {
            roots: &["vars", "env", "drill", "steps", "rto", "rpo"],
            earlier: &all,
            all: &all,
            vars: &vars,
            secrets: &[],
        };
        if let Some(src) = &gates.rpo_from {
            self.template(
                src,
                false,
                &scope,
                &[Seg::Key("gates"), Seg::Key("rpo_from")],
            );
        }
        for (i, gate) in gates.custom.iter().enumerate() {
            let path = [
                Seg::Key("gates"),
                Seg::Key("custom"),
                Seg::Index(i),
                Seg::Key("check"),
            ];
            self.template(&gate.check, true, &scope, &path);
        }
    }

    fn report(&mut self, dir: &Path) {
        let template = &self.pb.report.template;
        if let Some(name) = template.strip_prefix("builtin:") {
            if !super::BUILTIN_TEMPLATES.contains(&name) {
                let span = self
                    .spans
                    .value(&[Seg::Key("report"), Seg::Key("template")]);
                self.error(format!("unknown builtin template `{name}`"), span)
                    .help = Some(format!("builtins: {}", super::BUILTIN_TEMPLATES.join(", ")));
            }
        } else if !dir.join(template).is_file() {
            let span = self
                .spans
                .value(&[Seg::Key("report"), Seg::Key("template")]);
            self.error(
                format!("report template `{template}` not found (relative to the playbook)"),
                span,
            );
        }
    }
}

/// Checks that belong to the other kind (`sql` vs `files`), and files checks missing
/// what they need.
/// What a builtin of what row counts cannot see needs.
fn content_check_problem(check: &Check) -> Option<String> {
    match check.builtin? {
        Builtin::TableDigests if check.compare_to.is_none() => Some(
            "`table_digests` needs `compare_to`, e.g. \"{{ steps.backup.table_digests }}\"".into(),
        ),
        Builtin::ObjectsExist if check.compare_to.is_none() => {
            Some("`objects_exist` needs `compare_to`, e.g. \"{{ steps.backup.objects }}\"".into())
        }
        Builtin::RolesExist
            if check.roles.as_ref().is_none_or(Vec::is_empty)
                && check.grants.iter().flatten().all(|(_, g)| g.is_empty()) =>
        {
            Some("`roles_exist` needs `roles` or `grants`: it could never fail".into())
        }
        _ => None,
    }
}

fn files_check_problem(kind: StepKind, check: &Check) -> Option<String> {
    let files_builtin = check.builtin.is_some_and(Builtin::is_files);
    match (kind, check.builtin) {
        (StepKind::Files, _) if check.query.is_some() || !files_builtin => {
            Some("is not a files check: a `files` step takes builtin files_match, json_valid or file_count".into())
        }
        (StepKind::Sql, _) if files_builtin => Some("is a files check: use it in a `kind = \"files\"` step".into()),
        (_, Some(Builtin::FilesMatch)) if check.manifest.is_none() => {
            Some("`files_match` needs `manifest`, e.g. \"{{ steps.backup.manifest }}\"".into())
        }
        (_, Some(Builtin::FileCount))
            if check.max.is_none() && check.min.as_ref().is_none_or(|m| m.as_u64() == Some(0)) =>
        {
            Some("`file_count` needs `min` or `max`: it could never fail (nor with a `min` of 0 alone)".into())
        }
        _ => None,
    }
}

enum PathPart {
    Key(String),
    Index(usize),
}

/// Every templated string leaf of a step with its path.
fn collect_strings(
    value: &DeValue<'_>,
    path: &mut Vec<PathPart>,
    out: &mut Vec<(Vec<PathPart>, String)>,
) {
    match value {
        DeValue::String(s) => {
            let skip = matches!(path.last(), Some(PathPart::Key(k)) if NOT_TEMPLATED.contains(&k.as_str()));
            if !skip {
                out.push((
                    path.iter().map(PathPart::clone_part).collect(),
                    s.to_string(),
                ));
            }
        }
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(PathPart::Index(i));
                collect_strings(item.get_ref(), path, out);
                path.pop();
            }
        }
        DeValue::Table(map) => {
            for (k, v) in map {
                path.push(PathPart::Key(k.get_ref().to_string()));
                collect_strings(v.get_ref(), path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

impl PathPart {
    fn clone_part(&self) -> Self {
        match self {
            PathPart::Key(k) => PathPart::Key(k.clone()),
            PathPart::Index(i) => PathPart::Index(*i),
        }
    }
}
