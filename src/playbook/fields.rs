//! Which fields apply to which step kind, and each kind's default phase.

use super::model::{Engine, Step, StepKind};

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

/// The kind-specific fields a step of `kind` may have.
pub fn kind_fields(kind: StepKind) -> &'static [&'static str] {
    match kind {
        StepKind::Backup => &[
            "engine",
            "source",
            "output",
            "checkpoint",
            "format",
            "jobs",
            "url",
            "single_transaction",
            "skip_lock_tables",
            "paths",
            "exclude",
            "compression",
            "pg_bin_dir",
        ],
        StepKind::Locate => &["glob"],
        StepKind::Checksum => &["files", "exclude", "algorithm", "manifest", "verify"],
        StepKind::Restore => &[
            "engine",
            "from",
            "target",
            "overwrite",
            "isolation",
            "target_url",
            "target_dir",
            "pg_bin_dir",
            "os_user",
            "listen",
            "jobs",
            "compression",
        ],
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

/// Fields a step must have, given its kind (and engine, where the kind has one).
/// Each entry lists alternatives: one of them must be present.
pub fn required_fields(step: &Step) -> Vec<&'static [&'static str]> {
    use Engine::*;
    use StepKind::*;
    match (step.kind, step.engine) {
        (Backup | Restore | Sql, None) => vec![&["engine"]],
        (Backup, Some(Sqlite)) => vec![&["source"], &["output"]],
        (Backup, Some(Postgres | Mysql)) => vec![&["url"], &["output"]],
        (Backup, Some(Engine::Files)) => vec![&["paths"], &["output"]],
        (Restore, Some(Sqlite)) => vec![&["from"], &["target"]],
        (Restore, Some(Postgres)) => vec![&["from"], &["isolation", "target_url"]],
        (Restore, Some(Mysql)) => vec![&["from"], &["target_url"]],
        (Restore, Some(Engine::Files)) => vec![&["from"], &["target_dir"]],
        (Sql, Some(_)) => vec![&["database"], &["execute", "checks"]],
        (Locate, _) => vec![&["glob"]],
        (Checksum, _) => vec![&["manifest", "verify"]],
        (Http, _) => vec![&["url"]],
        (Exec | Service, _) => vec![&["run", "argv"]],
        (Manual, _) => vec![&["instructions"]],
        (Wait, _) => vec![&["duration"]],
        (StepKind::Files, _) => vec![&["directory"], &["checks"]],
    }
}

/// The phase a step's duration is counted in when the playbook does not say.
pub fn default_phase(step: &Step) -> &'static str {
    match step.kind {
        StepKind::Backup => "backup",
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
