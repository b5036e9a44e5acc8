//! Which fields apply to which step kind, and each kind's default phase.

use super::engine::{EngineSpec, KindSpec};
use super::model::{Step, StepKind};

/// Fields every step may have.
pub const COMMON: &[&str] = &[
    "id",
    "kind",
    "name",
    "phase",
    "runbook",
    "timeout",
    "max_duration",
    "retries",
    "retry_delay",
    "continue_on_failure",
    "when",
];

/// The fields of a step of `kind` itself. Backup, restore and sql steps also take the
/// fields of their engine (`allowed_fields`).
pub fn kind_fields(kind: StepKind) -> &'static [&'static str] {
    match kind {
        StepKind::Backup | StepKind::Restore => &["engine"],
        StepKind::Locate => &[
            "glob",
            "s3",
            "restic",
            "borg",
            "snapshot",
            "paths",
            "check",
            "pick",
            "within",
            "expect_every",
            "output",
            "decrypt",
            "decompress",
        ],
        StepKind::Copy => &["files", "to", "s3"],
        StepKind::Checksum => &["files", "exclude", "algorithm", "manifest", "verify"],
        StepKind::Sql => &["engine", "database", "execute", "checks"],
        StepKind::Http => &[
            "url",
            "method",
            "headers",
            "body",
            "expect_status",
            "expect_json",
            "expect_body_contains",
            "request_timeout",
            "retry_until",
            "interval",
        ],
        StepKind::Exec => &["run", "argv", "cwd", "env", "expect_exit"],
        StepKind::Service => &["run", "argv", "cwd", "env", "ready", "stop_grace"],
        StepKind::Manual => &["instructions", "assume"],
        StepKind::Wait => &["duration"],
        StepKind::Files => &["directory", "checks"],
    }
}

/// The value of `field` of a rendered `step`, None when unset; `table.key` names a key of
/// a table field (`pgbackrest.config`).
pub fn field_value(step: &Step, field: &str) -> Option<serde_json::Value> {
    let step = serde_json::to_value(step).ok()?;
    field
        .split('.')
        .try_fold(step, |mut v, key| {
            v.get_mut(key).map(serde_json::Value::take)
        })
        .filter(|v| !v.is_null())
}

/// The kind-specific fields a step of `kind` may have: the kind's own and those of every
/// engine serving the kind (a field of another engine than the step's is accepted).
pub fn allowed_fields(kind: StepKind, engines: &[&EngineSpec]) -> Vec<&'static str> {
    let mut fields = kind_fields(kind).to_vec();
    for field in engines
        .iter()
        .filter_map(|e| e.kind(kind))
        .flat_map(|k| k.fields)
    {
        if !fields.contains(field) {
            fields.push(field);
        }
    }
    fields
}

/// Whether `key` is a field of some step (one that is not was reported as an unknown
/// field when the step was read).
pub fn is_step_field(key: &str, engines: &[&EngineSpec]) -> bool {
    COMMON.contains(&key)
        || StepKind::ALL
            .iter()
            .any(|k| allowed_fields(*k, engines).contains(&key))
}

/// Fields a step must have, given its kind and, where the kind has one, its engine
/// (`engine`: what that engine reads from a step of this kind, None when unknown).
/// Each entry lists alternatives: one of them must be present.
pub fn required_fields(step: &Step, engine: Option<&KindSpec>) -> Vec<&'static [&'static str]> {
    use StepKind::*;
    match (step.kind, &step.engine) {
        (Backup | Restore | Sql, None) => vec![&["engine"]],
        (Sql, Some(_)) => vec![&["database"], &["execute", "checks"]],
        (Backup | Restore, Some(_)) => engine.map_or_else(Vec::new, |k| k.required.to_vec()),
        (Locate, _) if is_remote(step) => vec![&["glob", "restic", "borg"], &["output"]],
        (Locate, _) => vec![&["glob", "restic", "borg"]],
        (Copy, _) => vec![&["files"], &["to"]],
        (Checksum, _) => vec![&["manifest", "verify"]],
        (Http, _) => vec![&["url"]],
        (Exec | Service, _) => vec![&["run", "argv"]],
        (Manual, _) => vec![&["instructions"]],
        (Wait, _) => vec![&["duration"]],
        (StepKind::Files, _) => vec![&["directory"], &["checks"]],
    }
}

/// Fields of which a step takes only one (it would silently use one of them): the
/// fields, what each is, and the help that tells them apart.
pub fn exclusive_fields(
    kind: StepKind,
) -> Option<(&'static [&'static str], &'static str, &'static str)> {
    let run = "`run` is a shell script (`sh -c`), `argv` a program and its arguments";
    match kind {
        StepKind::Locate => Some((
            &["glob", "restic", "borg"],
            "source",
            "a locate step reads `glob`, `restic` or `borg`",
        )),
        StepKind::Exec | StepKind::Service => Some((&["run", "argv"], "command", run)),
        StepKind::Checksum => Some((
            &["manifest", "verify"],
            "manifest",
            "`manifest` writes one, `verify` checks one: use a step for each",
        )),
        _ => None,
    }
}

/// Whether a locate step's backup is remote (a repository, or an object store), so that
/// it needs an `output` to be downloaded or restored to; a local file is used in place.
fn is_remote(step: &Step) -> bool {
    let s3 = |g: &String| g.starts_with("s3://");
    step.restic.is_some() || step.borg.is_some() || step.glob.as_ref().is_some_and(s3)
}

/// The phase a step's duration is counted in when the playbook does not say.
pub fn default_phase(step: &Step) -> &'static str {
    match step.kind {
        StepKind::Backup | StepKind::Copy => "backup",
        StepKind::Checksum if step.verify.is_none() => "backup",
        StepKind::Checksum | StepKind::Locate | StepKind::Restore => "restore",
        StepKind::Sql | StepKind::Http | StepKind::Exec | StepKind::Files => "verify",
        StepKind::Service => "restart",
        StepKind::Manual => "decide",
        StepKind::Wait => "other",
    }
}

/// Fields holding durations (humantime strings), by their path inside a step.
pub const DURATION_FIELDS: &[&str] = &[
    "timeout",
    "max_duration",
    "retry_delay",
    "request_timeout",
    "retry_until",
    "interval",
    "stop_grace",
    "assume",
    "duration",
    "within",
    "expect_every",
];

/// Fields whose lone `{{ expr }}` keeps the expression's type instead of becoming text.
pub const NATIVE_FIELDS: &[&str] = &[
    "compare_to",
    "expect",
    "expect_rows",
    "expect_json",
    "expect_status",
    "min",
    "max",
];

/// Fields that are never templates (identifiers and expressions).
pub const NOT_TEMPLATED: &[&str] = &["id", "kind", "when", "engine", "algorithm", "builtin"];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name a `kind` takes, as the playbook's schema lists them.
    fn schema_names(value: &serde_json::Value, names: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(name)) = map.get("const") {
                    names.push(name.clone());
                }
                if let Some(serde_json::Value::Array(values)) = map.get("enum") {
                    names.extend(values.iter().filter_map(|v| v.as_str().map(String::from)));
                }
                map.values().for_each(|v| schema_names(v, names));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| schema_names(v, names)),
            _ => {}
        }
    }

    /// `ALL` is what field checks go through: a kind left out of it would let its fields
    /// stand on any step unrefused (as `to` of `copy` once did).
    #[test]
    fn every_step_kind_is_in_all() {
        let schema = serde_json::to_value(schemars::schema_for!(StepKind)).unwrap();
        let mut names = Vec::new();
        schema_names(&schema, &mut names);
        names.sort();
        let mut all: Vec<String> = StepKind::ALL.iter().map(|k| k.as_str().into()).collect();
        all.sort();
        assert_eq!(all, names);
    }
}
