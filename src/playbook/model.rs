//! The serde model of playbook format version 1.
//!
//! Every string is a minijinja template, rendered just before its step runs. The model
//! is deliberately flat: a step carries the fields of every kind, and validation (see
//! `validate.rs`) rejects a field that does not apply to the step's kind, pointing at it.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ReportFormat;
use super::locate::{Borg, Decompress, Decrypt, Restic, S3Settings};

/// A restore drill playbook (format version 1).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// Format version: always 1.
    pub version: u32,
    pub drill: DrillMeta,
    /// Variables, rendered once in order; each may use `env` and earlier vars.
    #[serde(default)]
    pub vars: IndexMap<String, Value>,
    /// Secrets read from the environment; usable in templates, never written anywhere.
    #[serde(default)]
    pub secrets: IndexMap<String, SecretSource>,
    #[serde(default)]
    pub gates: Gates,
    #[serde(default)]
    pub report: ReportSettings,
    /// Signed, chained records (`restore-drill verify`).
    #[serde(default)]
    pub evidence: super::EvidenceSettings,
    /// Alerts: healthchecks pings, a webhook, ntfy.
    #[serde(default)]
    pub notify: super::NotifySettings,
    /// Runs first; a failure stops the drill (cleanup still runs). Not counted in the RTO.
    #[serde(default)]
    pub setup: Vec<Step>,
    /// The drill itself.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Always runs, in order, after success, failure, timeout or interruption.
    #[serde(default)]
    pub cleanup: Vec<Step>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrillMeta {
    /// `[a-z0-9_-]+`; used in file names and locks.
    pub name: String,
    pub title: Option<String>,
    /// Markdown.
    pub description: Option<String>,
    pub owner: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// Name of the environment variable holding the secret.
    pub env: String,
    /// When true, a missing variable yields an empty secret instead of an error.
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gates {
    /// Recovery time objective: the sum of the durations of the steps in `rto_phases`.
    pub rto: Option<String>,
    /// Phases counted in the RTO (default: every phase of `[[steps]]` but `backup`).
    pub rto_phases: Option<Vec<String>>,
    /// Recovery point objective: the maximum age of the newest restored data.
    pub rpo: Option<String>,
    /// Timestamp (RFC 3339, `YYYY-MM-DD HH:MM:SS` UTC, or unix seconds) of the newest restored data.
    pub rpo_from: Option<String>,
    #[serde(default)]
    pub custom: Vec<CustomGate>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomGate {
    pub name: String,
    /// A minijinja expression over `steps`, `vars`, `drill`, `rto`, `rpo`; true passes.
    pub check: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// `builtin:markdown` or a path (relative to the playbook) to a minijinja template.
    #[serde(default = "default_template")]
    pub template: String,
    /// Report files written beside the JSON record.
    #[serde(default = "default_formats")]
    pub formats: Vec<ReportFormat>,
}

impl Default for ReportSettings {
    fn default() -> Self {
        Self {
            template: default_template(),
            formats: default_formats(),
        }
    }
}

fn default_template() -> String {
    "builtin:markdown".into()
}

fn default_formats() -> Vec<ReportFormat> {
    vec![ReportFormat::Markdown]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    Backup,
    Checksum,
    Restore,
    Sql,
    Http,
    Exec,
    Service,
    Manual,
    Locate,
    Wait,
    /// Verifies a directory tree (a restored `files` backup) with `checks`.
    Files,
    /// Uploads `files` to an object store (`to = "s3://bucket/prefix/"`), each with its sha256.
    Copy,
}

impl StepKind {
    pub const ALL: [StepKind; 12] = [
        StepKind::Backup,
        StepKind::Checksum,
        StepKind::Restore,
        StepKind::Sql,
        StepKind::Http,
        StepKind::Exec,
        StepKind::Service,
        StepKind::Manual,
        StepKind::Locate,
        StepKind::Wait,
        StepKind::Files,
        StepKind::Copy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Backup => "backup",
            StepKind::Checksum => "checksum",
            StepKind::Restore => "restore",
            StepKind::Sql => "sql",
            StepKind::Http => "http",
            StepKind::Exec => "exec",
            StepKind::Service => "service",
            StepKind::Manual => "manual",
            StepKind::Locate => "locate",
            StepKind::Wait => "wait",
            StepKind::Files => "files",
            StepKind::Copy => "copy",
        }
    }
}

/// A step's `engine`: a name, checked by validation against the engines passed to `load`.
/// The JSON schema lists the names (`schema::playbook` fills them in from the registry).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EngineName(pub String);

impl std::ops::Deref for EngineName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EngineName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for EngineName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Engine".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Sha256,
    Blake3,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Blake3 => "blake3",
        }
    }

    /// The algorithm a manifest's file name says, as b3sum's and coreutils' users name
    /// them: `B3SUMS`, `*.b3`, `*.b3sum`, `*.blake3` (blake3); `SHA256SUMS`, `*.sha256`,
    /// `*.sha256sum` (sha256). None for any other name, or a name still to be rendered.
    pub fn from_manifest_name(path: &str) -> Option<Algorithm> {
        let name = path.rsplit(['/', '\\']).next()?;
        if name.contains("{{") || name.contains("{%") {
            return None;
        }
        let name = name.to_ascii_lowercase();
        let ext = name.rsplit_once('.').map(|(_, e)| e);
        match (name.as_str(), ext) {
            ("b3sums", _) | (_, Some("b3" | "b3sum" | "b3sums" | "blake3")) => {
                Some(Algorithm::Blake3)
            }
            ("sha256sums", _) | (_, Some("sha256" | "sha256sum" | "sha256sums")) => {
                Some(Algorithm::Sha256)
            }
            _ => None,
        }
    }
}

/// One step of setup, steps or cleanup. Common fields first, then the fields of each kind.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique identifier (`[a-z_][a-z0-9_]*`); later templates read `steps.<id>.<output>`.
    pub id: String,
    pub kind: StepKind,
    /// Human title (default: derived from the id).
    pub name: Option<String>,
    /// Groups durations in the RTO table.
    pub phase: Option<String>,
    /// Markdown: what this step does and why.
    pub runbook: Option<String>,
    /// Hard limit: the step (and its whole process group) is killed and fails.
    pub timeout: Option<String>,
    /// Timing gate: the step may succeed, but the gate fails if it took longer.
    pub max_duration: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    pub retry_delay: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub continue_on_failure: bool,
    /// Minijinja expression; the step is skipped when it is false.
    pub when: Option<String>,

    // backup / restore / sql
    // The engine's name, checked against the engines passed to `load` (`src/engines/`).
    pub engine: Option<EngineName>,
    /// backup: the database or file to back up (sqlite).
    pub source: Option<String>,
    /// backup: where the backup is written.
    pub output: Option<String>,
    /// backup/sqlite: run a WAL checkpoint on the source first.
    pub checkpoint: Option<bool>,
    /// backup/postgres: `custom` or `directory` (pg_dump), `plain` or `tar`
    /// (`method = "basebackup"`).
    pub format: Option<String>,
    /// backup/restore postgres: parallel jobs.
    pub jobs: Option<u32>,
    /// backup (postgres, mysql): connection url; http: the url probed.
    pub url: Option<String>,
    /// backup/mysql: consistent dump with --single-transaction (default true).
    pub single_transaction: Option<bool>,
    /// backup/mysql: --skip-lock-tables (TiDB).
    pub skip_lock_tables: Option<bool>,
    /// backup/files: globs of what to archive.
    pub paths: Option<Vec<String>>,
    /// backup/files, checksum: globs to leave out.
    pub exclude: Option<Vec<String>>,
    /// backup/files and backup/mysql: `zstd`, `gzip` or `none`; backup/postgres (pg_dump):
    /// `zstd` or `none`.
    pub compression: Option<String>,
    /// backup (sqlite, postgres, mysql): also output `table_digests`, each table's content
    /// digest, in the snapshot of the counts.
    pub digests: Option<bool>,
    /// backup with `digests`: hash only this fraction of the rows (0 < sample <= 1), a
    /// deterministic sample by key, on tables with a single integer key.
    pub sample: Option<f64>,

    // locate / copy
    /// locate: the recovery points: a local glob or `s3://bucket/prefix-glob`.
    pub glob: Option<String>,
    /// locate, copy: the S3-compatible store of an `s3://` glob or `to`.
    pub s3: Option<S3Settings>,
    /// locate: which recovery point: `newest` (default), `oldest` or `random`.
    pub pick: Option<String>,
    /// locate: only recovery points younger than this are candidates.
    pub within: Option<String>,
    /// locate: retention audit: a gap between recovery points longer than this fails.
    pub expect_every: Option<String>,
    /// copy: where `files` are uploaded: `s3://bucket/prefix/`.
    pub to: Option<String>,
    /// locate: a restic repository holding the recovery points (instead of `glob`).
    pub restic: Option<Restic>,
    /// locate: a borg repository holding the recovery points (instead of `glob`).
    pub borg: Option<Borg>,
    /// locate (restic, borg): `latest` (the default: `pick` chooses), a snapshot id or an
    /// archive name.
    pub snapshot: Option<String>,
    /// locate (restic, borg): check the repository first (`restic check
    /// --read-data-subset`, `borg check --repository-only`).
    pub check: Option<bool>,
    /// locate: the backup is age-encrypted; decrypted on the way to `output`.
    pub decrypt: Option<Decrypt>,
    /// locate: decompress on the way to `output` (`auto`: by the name's extension).
    pub decompress: Option<Decompress>,

    // checksum
    /// checksum: globs of the files to hash.
    pub files: Option<Vec<String>>,
    pub algorithm: Option<Algorithm>,
    /// checksum: write a manifest (`sha256sum -c` format) to this path.
    pub manifest: Option<String>,
    /// checksum: verify the files listed in this manifest.
    pub verify: Option<String>,

    // restore
    /// restore: the backup to restore.
    pub from: Option<String>,
    /// restore/sqlite: the path of the restored database; restore/postgres physical:
    /// `immediate` or `latest` (the recovery target).
    pub target: Option<String>,
    /// restore/sqlite: replace an existing target (a safety copy is kept until success).
    pub overwrite: Option<bool>,
    /// restore/postgres: `ephemeral` (a throwaway cluster).
    pub isolation: Option<String>,
    /// restore (postgres, mysql): a scratch database to create, restore into and drop.
    pub target_url: Option<String>,
    /// restore/files: the directory to extract into.
    pub target_dir: Option<String>,
    /// restore/postgres: directory of initdb/pg_ctl/pg_restore.
    pub pg_bin_dir: Option<String>,
    /// restore/postgres: run server commands as this OS user (needed as root).
    pub os_user: Option<String>,
    /// restore/postgres ephemeral: also listen on this TCP address (e.g. "127.0.0.1").
    pub listen: Option<String>,
    /// restore/postgres physical: the directory the source archives its WAL into (read only).
    pub wal_archive: Option<String>,
    /// restore/postgres physical: recover up to this time (RFC 3339).
    pub target_time: Option<String>,
    /// restore/postgres physical: recover up to this WAL location (e.g. "0/3000060").
    pub target_lsn: Option<String>,
    /// restore/postgres physical: recover up to this named restore point.
    pub target_name: Option<String>,
    /// restore/postgres: a pgBackRest stanza as the source instead of `from`.
    pub pgbackrest: Option<PgBackRest>,

    // sql
    /// sql: a path (sqlite) or connection url.
    pub database: Option<String>,
    /// sql: statements to run before the checks.
    pub execute: Option<String>,
    /// sql: verifications.
    pub checks: Option<Vec<Check>>,

    // files
    /// files: the directory whose tree the checks verify.
    pub directory: Option<String>,

    // http
    /// http: the request method; backup/postgres: `dump` (default) or `basebackup`.
    pub method: Option<String>,
    pub headers: Option<IndexMap<String, String>>,
    /// http: request body.
    pub body: Option<String>,
    /// http: a code, a list of codes, or a class such as "2xx".
    pub expect_status: Option<Value>,
    /// http: the response JSON must contain this (subset match).
    pub expect_json: Option<Value>,
    pub expect_body_contains: Option<String>,
    pub request_timeout: Option<String>,
    /// http: keep probing until it passes or this much time went by.
    pub retry_until: Option<String>,
    pub interval: Option<String>,

    // exec / service
    /// exec/service: a shell command (run through `sh -c`).
    pub run: Option<String>,
    /// exec/service: program and arguments, without a shell.
    pub argv: Option<Vec<String>>,
    pub cwd: Option<String>,
    pub env: Option<IndexMap<String, String>>,
    /// exec: the expected exit code (default 0).
    pub expect_exit: Option<i32>,
    /// service: readiness probe.
    pub ready: Option<Ready>,
    /// service: time between SIGTERM and SIGKILL at stop.
    pub stop_grace: Option<String>,

    // manual
    /// manual: what the operator does (markdown).
    pub instructions: Option<String>,
    /// manual: duration counted in automated runs (marked assumed in the report).
    pub assume: Option<String>,

    // wait
    pub duration: Option<String>,
}

impl Step {
    /// The repository of a `locate` step's restic or borg source, when it is a local
    /// directory: a source of the playbook, which the drill never writes to.
    pub fn local_repository(&self) -> Option<&str> {
        let repo = match (&self.restic, &self.borg) {
            (Some(r), _) => r.repository.as_str(),
            (_, Some(b)) => b.repository.as_str(),
            _ => return None,
        };
        let remote =
            repo.contains("://") || repo.split_once(':').is_some_and(|(s, _)| !s.contains('/'));
        (!remote).then_some(repo)
    }
}

/// A pgBackRest stanza restored from (its repository is read, never written).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgBackRest {
    pub stanza: String,
    /// pgbackrest.conf (default: pgBackRest's own, /etc/pgbackrest/pgbackrest.conf).
    pub config: Option<String>,
    /// Run `pgbackrest verify` on the repository first.
    pub verify: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// An http url that must answer 2xx.
    pub url: Option<String>,
    /// A line (substring) the service must print.
    pub log_line: Option<String>,
    /// Deadline for readiness (default 30s).
    pub timeout: Option<String>,
}

/// A verification in a `sql` step: a query with an expectation, or a builtin.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub name: String,
    pub query: Option<String>,
    /// The single value the query must return.
    pub expect: Option<Value>,
    /// The number of rows (an integer) or the exact rows (an array of arrays).
    pub expect_rows: Option<Value>,
    pub min: Option<Value>,
    pub max: Option<Value>,
    pub builtin: Option<Builtin>,
    /// tables_exist / table_counts: the tables concerned.
    pub tables: Option<Vec<String>>,
    /// indexes_exist: the indexes that must exist.
    pub indexes: Option<Vec<String>>,
    /// table_counts: the counts to compare with (e.g. `{{ steps.backup.table_counts }}`).
    pub compare_to: Option<Value>,
    /// table_counts: allowed difference per table (rows, default 0).
    pub tolerance: Option<u64>,
    /// integrity: `quick_check` instead of the full check.
    pub quick: Option<bool>,
    /// files_match: the manifest written by backup/files (`{{ steps.backup.manifest }}`).
    pub manifest: Option<String>,
    /// json_valid / file_count: globs under the directory (json_valid: `**/*.json`).
    pub paths: Option<Vec<String>>,
    /// roles_exist: roles (PostgreSQL) or users (MySQL) that must exist and log in.
    pub roles: Option<Vec<String>>,
    /// roles_exist: privileges each role must hold, `PRIVILEGE:table` (e.g.
    /// `{ app = ["SELECT:orders"] }`).
    pub grants: Option<IndexMap<String, Vec<String>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    Integrity,
    ForeignKeys,
    TablesExist,
    IndexesExist,
    TableCounts,
    /// Each table's content digest equals the source's (`compare_to`: a backup's
    /// `table_digests`).
    TableDigests,
    /// Every sequence, AUTO_INCREMENT and `sqlite_sequence` entry is ahead of its key.
    Sequences,
    /// The views, triggers, functions, sequences and extensions of `compare_to` exist.
    ObjectsExist,
    /// `roles` exist and can log in; `grants` hold.
    RolesExist,
    /// files: the tree equals the backup's manifest (sizes, sha256, nothing missing or extra).
    FilesMatch,
    /// files: every selected file (default `**/*.json`) parses as JSON.
    JsonValid,
    /// files: the number of (selected) regular files is within `min`/`max`.
    FileCount,
}

impl Builtin {
    /// Builtins of `files` steps; the others belong to `sql` steps.
    pub fn is_files(self) -> bool {
        matches!(
            self,
            Builtin::FilesMatch | Builtin::JsonValid | Builtin::FileCount
        )
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Step {
    /// The human title: `name`, or the id with underscores as spaces.
    pub fn title(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let mut t = self.id.replace(['_', '-'], " ");
            if let Some(first) = t.get(0..1) {
                t.replace_range(0..1, &first.to_uppercase());
            }
            t
        })
    }
}
