//! A `sql` step with `execute` never writes to a source of the playbook: refused here
//! when its `database` and the source are known from the file alone (text and `vars`),
//! as the run refuses it in any case (`guard::Sources::check_writable_sql`).

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::super::engine::kind_spec;
use super::super::fields::field_value;
use super::super::model::{Step, StepKind};
use super::super::spans::Seg;
use super::Validator;
use crate::template;

/// A source known from the file: where it is, when its step runs, and why it is one.
struct Known {
    path: PathBuf,
    at: (u8, usize),
    why: String,
}

impl Validator<'_> {
    /// Reported at the `database` of the step. A database that *is* a source named by a
    /// later step is left to the run (a demo creates its source before backing it up);
    /// one that lies inside a source is always a write into it.
    pub(super) fn writable_sql(&mut self) {
        let vars = self.known_vars();
        let mut sources = Vec::new();
        let mut writers = Vec::new();
        for (section, raw, _, parsed) in &self.layout.steps {
            let Some(step) = parsed.and_then(|i| self.pb.section(*section).get(i)) else {
                continue;
            };
            let Some(spec) = kind_spec(self.engines, step) else {
                continue;
            };
            let at = (*section as u8, *raw);
            for field in spec.reads {
                let paths = field_texts(step, field).filter_map(|t| known_path(&t, &vars));
                match step.kind {
                    StepKind::Backup | StepKind::Restore => {
                        let why = format!("the `{field}` of step `{}`", step.id);
                        sources.extend(paths.map(|path| Known {
                            path,
                            at,
                            why: why.clone(),
                        }));
                    }
                    StepKind::Sql if step.execute.is_some() => {
                        writers.extend(paths.map(|path| (at, *section, step, field, path)));
                    }
                    _ => {}
                }
            }
        }
        for (at, section, step, field, path) in writers {
            let Some((relation, source)) = sources.iter().find_map(|s| {
                if path == s.path && s.at < at {
                    Some(("is", s))
                } else if path != s.path && path.starts_with(&s.path) {
                    Some(("lies inside", s))
                } else {
                    None
                }
            }) else {
                continue;
            };
            let key = [
                Seg::Key(section.as_str()),
                Seg::Index(at.1),
                Seg::Key(field),
            ];
            let span = self.spans.value(&key);
            self.error(
                format!(
                    "`{field}` of step `{}` {relation} {}, {}: a step with `execute` never writes to a source of the playbook",
                    step.id,
                    source.path.display(),
                    source.why
                ),
                span,
            )
            .help = Some(
                "run `execute` on the drill's own restored copy, e.g. `{{ steps.restore.target }}`"
                    .into(),
            );
        }
    }

    /// The `vars` that render from the file alone (no `env`, `drill`, `secrets`).
    fn known_vars(&self) -> Map<String, Value> {
        let mut known = Map::new();
        for (name, value) in &self.pb.vars {
            let rendered = match value {
                Value::String(src) => match render(src, &known) {
                    Some(s) => Value::String(s),
                    None => continue,
                },
                other => other.clone(),
            };
            known.insert(name.clone(), rendered);
        }
        known
    }
}

fn render(src: &str, vars: &Map<String, Value>) -> Option<String> {
    let ctx = minijinja::Value::from_serialize(serde_json::json!({ "vars": vars }));
    template::render(src, &ctx).ok()
}

/// The texts a field of the step names: a text, or each text of a list.
fn field_texts(step: &Step, field: &str) -> impl Iterator<Item = String> {
    let items = match field_value(step, field) {
        Some(Value::Array(items)) => items,
        Some(one) => vec![one],
        None => Vec::new(),
    };
    items
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
}

/// The path a field's text names, when it renders from the file alone and is no glob:
/// `.` and `..` removed by name (a relative path stays relative to the same folder).
fn known_path(text: &str, vars: &Map<String, Value>) -> Option<PathBuf> {
    let path = render(text, vars)?;
    if path.is_empty() || path.contains(['*', '?', '[']) {
        return None;
    }
    let mut out = PathBuf::new();
    for c in Path::new(&path).components() {
        match c {
            Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    Some(out)
}
