//! No step writes to a source of the playbook: refused here when the path written and
//! the source are known from the file alone (text and `vars`), as the run refuses it in
//! any case (`guard::Sources`): a restore's `target`/`target_dir`, a backup's or a
//! locate's `output`, a checksum's `manifest`, the `database` of a `sql` step with
//! `execute`; nor where a local `locate` glob would find it, from that step on.

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
    /// A backup's: the run knows it before the first step, so it is protected from
    /// every step; any other from its own step on.
    from_start: bool,
    why: String,
}

/// A path a step writes, known from the file.
struct Write<'a> {
    at: (u8, usize),
    section: &'a str,
    step: &'a Step,
    field: &'static str,
    path: PathBuf,
}

impl Write<'_> {
    /// How it meets `source`, if it does, as the run's guard would find.
    fn meets(&self, source: &Known) -> Option<&'static str> {
        let sql = self.step.kind == StepKind::Sql;
        let reached = source.from_start || source.at <= self.at;
        if !reached {
            return None;
        }
        if self.path == source.path {
            // A database not there yet is created new (a demo's source before its backup).
            let created_first = sql && self.at < source.at;
            (!created_first).then_some("is")
        } else if self.path.starts_with(&source.path) {
            Some("lies inside")
        } else if source.path.starts_with(&self.path) {
            Some("contains")
        } else {
            None
        }
    }
}

/// The fields of `step` naming what it writes (`reads` of its engine: a `sql` step's
/// `database`).
fn written_fields(
    step: &Step,
    reads: &'static [&'static str],
    makes: &'static [&'static str],
) -> &'static [&'static str] {
    match step.kind {
        StepKind::Restore => makes,
        StepKind::Backup | StepKind::Locate => &["output"],
        StepKind::Checksum => &["manifest"],
        StepKind::Sql if step.execute.is_some() => reads,
        _ => &[],
    }
}

impl Validator<'_> {
    /// Reported at the field that writes.
    pub(super) fn writes_into_sources(&mut self) {
        let vars = self.known_vars();
        let mut sources = Vec::new();
        let mut globs = Vec::new();
        let mut writes = Vec::new();
        for (section, raw, _, parsed) in &self.layout.steps {
            let Some(step) = parsed.and_then(|i| self.pb.section(*section).get(i)) else {
                continue;
            };
            let at = (*section as u8, *raw);
            let spec = kind_spec(self.engines, step);
            let (reads, makes) = spec.map_or((&[][..], &[][..]), |k| (k.reads, k.makes));
            let read_only = !(step.kind == StepKind::Sql && step.execute.is_some());
            if read_only && step.kind != StepKind::Locate {
                for field in reads {
                    let why = format!("the `{field}` of step `{}`", step.id);
                    let paths = field_texts(step, field).filter_map(|t| known_path(&t, &vars));
                    sources.extend(paths.map(|path| Known {
                        path,
                        at,
                        from_start: step.kind == StepKind::Backup,
                        why: why.clone(),
                    }));
                }
            }
            // A local glob's matches are backups from its step on (the step's own
            // `output` included): the next run would take one the drill wrote for one.
            if step.kind == StepKind::Locate {
                let pattern = field_texts(step, "glob").find_map(|t| known_pattern(&t, &vars));
                globs.extend(pattern.map(|p| (p, at, step.id.as_str())));
            }
            for field in written_fields(step, reads, makes) {
                for path in field_texts(step, field).filter_map(|t| known_path(&t, &vars)) {
                    let section = section.as_str();
                    writes.push(Write {
                        at,
                        section,
                        step,
                        field,
                        path,
                    });
                }
            }
        }
        let options = crate::globs::as_walked();
        for write in writes {
            let key = [
                Seg::Key(write.section),
                Seg::Index(write.at.1),
                Seg::Key(write.field),
            ];
            let span = self.spans.value(&key);
            let found = globs.iter().find(|(pattern, at, _)| {
                *at <= write.at && pattern.matches_path_with(&write.path, options)
            });
            if let Some((pattern, _, id)) = found {
                self.error(
                    format!(
                        "`{}` of step `{}` is a backup the `glob` of step `{id}` would find ({pattern}): a drill never writes among the backups it reads",
                        write.field, write.step.id
                    ),
                    span,
                )
                .help = Some("write into the drill's own folder, e.g. `{{ drill.workdir }}/...`".into());
                continue;
            }
            let Some((relation, source)) =
                sources.iter().find_map(|s| write.meets(s).map(|r| (r, s)))
            else {
                continue;
            };
            let help = if write.step.kind == StepKind::Sql {
                "run `execute` on the drill's own restored copy, e.g. `{{ steps.restore.target }}`"
            } else {
                "write into the drill's own folder, e.g. `{{ drill.workdir }}/...`"
            };
            self.error(
                format!(
                    "`{}` of step `{}` {relation} {}, {}: a drill never writes to a source of the playbook",
                    write.field,
                    write.step.id,
                    source.path.display(),
                    source.why
                ),
                span,
            )
            .help = Some(help.into());
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
    Some(by_name(&path))
}

/// The pattern a local glob's text names, when it renders from the file alone, its
/// folders written as [`known_path`] writes a path.
fn known_pattern(text: &str, vars: &Map<String, Value>) -> Option<glob::Pattern> {
    let glob = render(text, vars)?;
    if glob.starts_with("s3://") || !glob.contains(['*', '?', '[']) {
        return None;
    }
    glob::Pattern::new(&by_name(&glob).to_string_lossy()).ok()
}

/// `path` with `.` and `..` removed by name.
fn by_name(path: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}
