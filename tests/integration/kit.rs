//! The test kit, in the manner of just's `Test`: playbooks built from fragments that every
//! engine shares, and expectations on a run's outcome that print the run when they fail.
//!
//! A playbook is `pb(name)` (it writes `version = 1` and `[drill]` once) plus [`Step`]s.
//! The one splice convention: a fragment goes `.before(id, ..)` or `.after(id, ..)` a step
//! of the playbook, a step is changed with `.edit(id, |s| s.set(field, value))`, and
//! `.step(..)` appends. Fragments for what the engines have in common (backups, restores,
//! checksums, checks, a corrupted backup, services, probes) are functions below.

use std::fmt;

use super::{Drill, Outcome};

// ---------------------------------------------------------------------------------------
// TOML values and tables

/// A TOML value as written: numbers, booleans, arrays, inline tables.
pub struct Raw(pub String);

pub fn raw(text: impl Into<String>) -> Raw {
    Raw(text.into())
}

/// Whatever can stand on the right of `key = `: strings are quoted, [`Raw`] is not.
pub trait ToToml {
    fn to_toml(&self) -> String;
}

impl ToToml for &str {
    fn to_toml(&self) -> String {
        let mut out = String::from("\"");
        for c in self.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
}

impl ToToml for String {
    fn to_toml(&self) -> String {
        self.as_str().to_toml()
    }
}

impl ToToml for Raw {
    fn to_toml(&self) -> String {
        self.0.clone()
    }
}

macro_rules! plain_toml {
    ($($t:ty),*) => {$(impl ToToml for $t {
        fn to_toml(&self) -> String {
            self.to_string()
        }
    })*};
}
plain_toml!(i32, i64, u32, u64, bool);

/// `path` behind a template `validate` cannot render (it knows no `drill`; the run
/// renders it as `path`), so that a test reaches the run's own refusal of it.
pub fn at_run_time(path: &str) -> String {
    format!("{{{{ drill.name[:0] }}}}{path}")
}

/// A TOML array of strings.
pub fn list(items: &[&str]) -> Raw {
    let items: Vec<String> = items.iter().map(|i| i.to_toml()).collect();
    Raw(format!("[{}]", items.join(", ")))
}

/// One table: a header line (`[vars]`, `[[steps]]`, `[[steps.checks]]`) and its fields.
#[derive(Clone)]
pub struct Table {
    header: String,
    fields: Vec<(String, String)>,
}

impl Table {
    pub fn new(header: &str) -> Self {
        Self {
            header: header.into(),
            fields: Vec::new(),
        }
    }

    /// Sets `key` (in its place when it is there already, else at the end).
    pub fn set(mut self, key: &str, value: impl ToToml) -> Self {
        let value = value.to_toml();
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some(field) => field.1 = value,
            None => self.fields.push((key.into(), value)),
        }
        self
    }

    /// Sets every `key = value` line of `lines` (values as written).
    pub fn fields(self, lines: &str) -> Self {
        lines
            .lines()
            .filter(|l| !l.trim().is_empty())
            .fold(self, |t, line| {
                let (k, v) = line
                    .split_once(" = ")
                    .unwrap_or_else(|| panic!("not a `key = value` line: {line}"));
                t.set(k.trim(), raw(v.trim()))
            })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.header)?;
        self.fields
            .iter()
            .try_for_each(|(k, v)| writeln!(f, "{k} = {v}"))
    }
}

// ---------------------------------------------------------------------------------------
// Steps and checks

/// A step of `[[steps]]`, `[[setup]]` or `[[cleanup]]`, with its checks; or raw TOML.
#[derive(Clone)]
pub struct Step {
    table: Table,
    checks: Vec<Table>,
    raw: Option<String>,
}

/// A `[[steps]]` step: `id` and `kind`, fields set with [`Step::set`].
pub fn step(id: &str, kind: &str) -> Step {
    Step {
        table: Table::new("[[steps]]").set("id", id).set("kind", kind),
        checks: Vec::new(),
        raw: None,
    }
}

/// Steps written out as TOML (what older tests and other files splice in).
pub fn raw_steps(toml: &str) -> Step {
    Step {
        table: Table::new("").set("id", raw_id(toml)),
        checks: Vec::new(),
        raw: Some(toml.trim_matches('\n').to_string() + "\n"),
    }
}

fn raw_id(toml: &str) -> String {
    toml.lines()
        .find_map(|l| l.strip_prefix("id = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or("")
        .to_string()
}

impl Step {
    pub fn set(mut self, key: &str, value: impl ToToml) -> Self {
        self.table = self.table.set(key, value);
        self
    }

    /// Sets every `key = value` line of `lines`.
    pub fn fields(mut self, lines: &str) -> Self {
        self.table = self.table.fields(lines);
        self
    }

    /// Adds checks: one [`Table`] or several.
    pub fn checks(mut self, checks: impl IntoIterator<Item = Table>) -> Self {
        self.checks.extend(checks);
        self
    }

    /// Changes the check called `name`.
    pub fn edit_check(mut self, name: &str, edit: impl FnOnce(Table) -> Table) -> Self {
        let quoted = name.to_toml();
        let at = self
            .checks
            .iter()
            .position(|c| c.get("name") == Some(quoted.as_str()))
            .unwrap_or_else(|| panic!("no check {name} in step {}", self.id()));
        self.checks[at] = edit(self.checks[at].clone());
        self
    }

    /// The step goes to `[[setup]]`.
    pub fn in_setup(mut self) -> Self {
        self.table.header = "[[setup]]".into();
        self
    }

    /// The step goes to `[[cleanup]]`.
    pub fn in_cleanup(mut self) -> Self {
        self.table.header = "[[cleanup]]".into();
        self
    }

    pub fn id(&self) -> String {
        let id = self.table.get("id").unwrap_or("\"\"");
        id.trim_matches('"').to_string()
    }

    /// setup, steps, cleanup: the order of the sections in the playbook.
    fn rank(&self) -> u8 {
        match self.table.header.as_str() {
            "[[setup]]" => 0,
            "[[cleanup]]" => 2,
            _ => 1,
        }
    }
}

/// One check is a list of one, wherever checks are taken.
impl IntoIterator for Table {
    type Item = Table;
    type IntoIter = std::iter::Once<Table>;
    fn into_iter(self) -> Self::IntoIter {
        std::iter::once(self)
    }
}

/// One step is a list of one, wherever steps are taken.
impl IntoIterator for Step {
    type Item = Step;
    type IntoIter = std::iter::Once<Step>;
    fn into_iter(self) -> Self::IntoIter {
        std::iter::once(self)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(raw) = &self.raw {
            return f.write_str(raw);
        }
        write!(f, "{}", self.table)?;
        self.checks.iter().try_for_each(|c| write!(f, "{c}"))
    }
}

/// A check of a `sql` or `files` step.
pub fn check(name: &str) -> Table {
    Table::new("[[steps.checks]]").set("name", name)
}

/// A builtin check.
pub fn builtin(name: &str, builtin: &str) -> Table {
    check(name).set("builtin", builtin)
}

/// A query check expecting `expect`.
pub fn query(name: &str, sql: &str, expect: impl ToToml) -> Table {
    check(name).set("query", sql).set("expect", expect)
}

/// The schema checks of an SQL engine, each compared with what the backup saw.
pub fn compare_checks() -> Vec<Table> {
    [
        ("tables", "tables_exist", "tables"),
        ("indexes", "indexes_exist", "indexes"),
        ("fks", "foreign_keys", "foreign_keys"),
        ("counts", "table_counts", "table_counts"),
    ]
    .into_iter()
    .map(|(name, kind, output)| {
        builtin(name, kind).set("compare_to", format!("{{{{ steps.backup.{output} }}}}"))
    })
    .chain([builtin("integrity", "integrity")])
    .collect()
}

/// Checks of the names the user lists (`tables = [...]`): `listed` (each exists: all of
/// `present`), `one count` (the row count of `counted` alone, against the backup's) and
/// `not there` (`absent`, which must fail naming it).
pub fn listed_table_checks(present: &[&str], counted: &str, absent: &str) -> Vec<Table> {
    vec![
        builtin("listed", "tables_exist").set("tables", list(present)),
        builtin("one count", "table_counts")
            .set("compare_to", "{{ steps.backup.table_counts }}")
            .set("tables", list(&[counted])),
        builtin("not there", "tables_exist").set("tables", list(&[absent])),
    ]
}

// ---------------------------------------------------------------------------------------
// Fragments

/// A `backup` step of `engine` writing `output`; its source fields are set by the caller.
pub fn backup(engine: &str, output: &str) -> Step {
    step("backup", "backup")
        .set("engine", engine)
        .set("output", output)
}

pub fn sqlite_backup(source: &str, output: &str) -> Step {
    backup("sqlite", output).set("source", source)
}

/// A `restore` step of `engine` from `from`; its target fields are set by the caller.
pub fn restore(engine: &str, from: &str) -> Step {
    step("restore", "restore")
        .set("engine", engine)
        .set("from", from)
}

pub fn sqlite_restore(from: &str, target: &str) -> Step {
    restore("sqlite", from).set("target", target)
}

/// A `files` backup of `paths` (globs of files to leave out: `exclude`).
pub fn files_backup(paths: &[&str], output: &str) -> Step {
    backup("files", output).set("paths", list(paths))
}

pub fn files_restore(from: &str, target_dir: &str) -> Step {
    restore("files", from).set("target_dir", target_dir)
}

/// A `sql` step on `database`.
pub fn sql(id: &str, engine: &str, database: &str) -> Step {
    step(id, "sql")
        .set("engine", engine)
        .set("database", database)
}

/// Statements run on `database` (damage done to a restored copy).
pub fn tamper(engine: &str, database: &str, statements: &str) -> Step {
    sql("tamper", engine, database).set("execute", statements)
}

/// A `files` step checking `directory`.
pub fn files_check(id: &str, directory: &str) -> Step {
    step(id, "files").set("directory", directory)
}

/// `manifest`, a SHA256SUMS of the backup, and `verify_backup`, which checks it.
pub fn manifest_steps() -> [Step; 2] {
    [
        step("manifest", "checksum")
            .set("files", list(&["{{ steps.backup.path }}"]))
            .set("manifest", "{{ drill.workdir }}/b/SHA256SUMS"),
        step("verify_backup", "checksum").set("verify", "{{ steps.manifest.manifest }}"),
    ]
}

pub fn exec(id: &str, run: &str) -> Step {
    step(id, "exec").set("run", run)
}

pub fn wait(id: &str, duration: &str) -> Step {
    step(id, "wait").set("duration", duration)
}

pub fn manual(id: &str, phase: &str, instructions: &str) -> Step {
    step(id, "manual")
        .set("phase", phase)
        .set("instructions", instructions)
}

pub fn service(id: &str) -> Step {
    step(id, "service")
}

/// An `http` probe of `url`.
pub fn http(id: &str, url: &str) -> Step {
    step(id, "http").set("url", url)
}

/// Overwrites 16 bytes in the middle of `file` (a template or a path).
pub fn corrupt(file: &str) -> Step {
    exec(
        "corrupt",
        &format!(
            "f='{file}'; n=$(stat -c %s \"$f\"); printf 'XXXXXXXXXXXXXXXX' | dd of=\"$f\" bs=1 seek=$((n / 2)) conv=notrunc 2>/dev/null"
        ),
    )
}

/// Overwrites bytes in the middle of the backup.
pub fn corrupt_backup() -> Step {
    corrupt("{{ steps.backup.path }}")
}

/// Cuts the backup to `size`, a shell expression of `$n`, its size now.
pub fn truncate_backup(size: &str) -> Step {
    exec(
        "truncate",
        &format!(
            "f='{{{{ steps.backup.path }}}}'; n=$(stat -c %s \"$f\"); truncate -s $(({size})) \"$f\""
        ),
    )
}

/// The cleanup step that leaves `cleaned` beside the playbook.
pub fn mark_cleaned() -> Step {
    exec("mark", "touch cleaned").in_cleanup()
}

// ---------------------------------------------------------------------------------------
// Playbooks

/// A playbook: `version = 1`, `[drill]` named `name`, tables, steps.
#[derive(Clone)]
pub struct Playbook {
    name: String,
    tables: Vec<Table>,
    steps: Vec<Step>,
}

pub fn pb(name: &str) -> Playbook {
    Playbook {
        name: name.into(),
        tables: Vec::new(),
        steps: Vec::new(),
    }
}

impl Playbook {
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// Sets `key` in the top-level table `[header]` (made when missing).
    pub fn table(mut self, header: &str, key: &str, value: impl ToToml) -> Self {
        let header = format!("[{header}]");
        match self.tables.iter().position(|t| t.header == header) {
            Some(at) => self.tables[at] = self.tables[at].clone().set(key, value),
            None => self.tables.push(Table::new(&header).set(key, value)),
        }
        self
    }

    pub fn var(self, key: &str, value: impl ToToml) -> Self {
        self.table("vars", key, value)
    }

    /// A secret read from the environment variable `env`.
    pub fn secret(self, key: &str, env: &str) -> Self {
        self.table("secrets", key, raw(format!("{{ env = \"{env}\" }}")))
    }

    pub fn gate(self, key: &str, value: impl ToToml) -> Self {
        self.table("gates", key, value)
    }

    /// A top-level table added as is (`[[gates.custom]]`, say).
    pub fn section(mut self, table: Table) -> Self {
        self.tables.push(table);
        self
    }

    /// Appends `steps`, one [`Step`] or several (each to its section: setup, steps or
    /// cleanup).
    pub fn step(mut self, steps: impl IntoIterator<Item = Step>) -> Self {
        self.steps.extend(steps);
        self
    }

    fn position(&self, id: &str) -> usize {
        self.steps
            .iter()
            .position(|s| s.id() == id)
            .unwrap_or_else(|| panic!("no step `{id}` in the playbook:\n{self}"))
    }

    /// Puts `steps` (one [`Step`] or several) right before the step `id`.
    pub fn before(mut self, id: &str, steps: impl IntoIterator<Item = Step>) -> Self {
        let at = self.position(id);
        self.steps.splice(at..at, steps);
        self
    }

    /// Puts `steps` (one [`Step`] or several) right after the step `id`.
    pub fn after(mut self, id: &str, steps: impl IntoIterator<Item = Step>) -> Self {
        let at = self.position(id) + 1;
        self.steps.splice(at..at, steps);
        self
    }

    /// Changes the step `id`.
    pub fn edit(mut self, id: &str, edit: impl FnOnce(Step) -> Step) -> Self {
        let at = self.position(id);
        self.steps[at] = edit(self.steps[at].clone());
        self
    }

    pub fn toml(&self) -> String {
        self.to_string()
    }

    /// A drill of this playbook.
    pub fn drill(&self) -> Drill {
        Drill::new(&self.toml())
    }

    /// Runs it as it is.
    pub fn run(&self) -> Outcome {
        self.drill().run()
    }
}

impl fmt::Display for Playbook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "version = 1\n[drill]\nname = {}", self.name.to_toml())?;
        self.tables.iter().try_for_each(|t| write!(f, "{t}"))?;
        let mut steps: Vec<&Step> = self.steps.iter().collect();
        steps.sort_by_key(|s| s.rank());
        steps.into_iter().try_for_each(|s| write!(f, "{s}"))
    }
}

impl Drill {
    /// Adds a SQLite database with `rows` dispatches at `rel` (see [`super::make_db`]).
    pub fn db(self, rel: &str, rows: i64) -> Self {
        super::make_db(&self.path().join(rel), rows);
        self
    }

    /// `restore-drill validate` of the playbook.
    pub fn validate(self) -> Outcome {
        self.subcommand("validate").run()
    }

    /// Replaces the playbook (for a second run in the same directory).
    pub fn rewrite(&self, playbook: &Playbook) -> &Self {
        std::fs::write(self.path().join("playbook.toml"), playbook.toml()).unwrap();
        self
    }
}

/// What makes a path known only to the run (`env` renders then, not at `validate`).
pub const LATE: &str = "{{ env.RD_NEVER_SET | default('') }}";

impl Drill {
    /// For a test of the run's own path guard: where `validate` already refuses the
    /// playbook (a write onto a source the file shows), asserts it says so, then respells
    /// every `"named"` of the file so that only the run knows it. Whether it was refused.
    pub fn known_only_to_the_run(&self, named: &str) -> bool {
        let checked = std::process::Command::new(env!("CARGO_BIN_EXE_restore-drill"))
            .current_dir(self.path())
            .args(["validate", "playbook.toml"])
            .output()
            .unwrap();
        if checked.status.success() {
            return false;
        }
        let said = String::from_utf8_lossy(&checked.stderr);
        assert!(
            said.contains("a drill never writes to a source of the playbook"),
            "{named}: {said}"
        );
        let file = self.path().join("playbook.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        let spelled = format!("\"{named}\"");
        assert!(text.contains(&spelled), "{named} is not in\n{text}");
        std::fs::write(&file, text.replace(&spelled, &format!("\"{LATE}{named}\""))).unwrap();
        true
    }
}
