//! Loading a playbook: parse, deserialize section by section, validate.
//!
//! Each section and each step is deserialized on its own so that one run of `validate`
//! reports every problem, each with the place in the file it comes from.

mod diagnostic;
mod engine;
mod evidence;
mod fields;
mod formats;
mod lenient;
mod locate;
mod model;
mod notify;
mod outputs;
mod pgbackrest;
mod spans;
mod status;
mod validate;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// Where a step is: the record's type, the playbook's sections.
pub use crate::artifact::Section;
pub use diagnostic::{Diagnostic, line_col};
pub use engine::{
    Clash, EngineSpec, KindSpec, Method, SCHEMA_OUTPUTS, find_spec, kind_spec, one_of,
};
pub use evidence::EvidenceSettings;
pub use fields::{
    COMMON, NATIVE_FIELDS, NOT_TEMPLATED, allowed_fields, default_phase, field_value, kind_fields,
};
pub use formats::{BUILTIN_TEMPLATES, ReportFormat};
pub use locate::{Borg, Decompress, Decrypt, Restic, S3Settings};
pub use model::*;
pub use notify::{NotifyOn, NotifySettings, Webhook};
pub use outputs::{STEP_VIEW, kind_outputs, step_outputs};
pub use status::{ExpectStatus, StatusPattern};

/// A playbook read from disk and found valid.
#[derive(Debug, Clone)]
pub struct LoadedPlaybook {
    pub path: PathBuf,
    pub sha256: String,
    pub playbook: Playbook,
    /// The engines it was checked against, which its steps run with.
    pub engines: Vec<&'static EngineSpec>,
    /// What `validate` warns of (an `env.X` without a default), rendered.
    pub warnings: Vec<String>,
}

impl LoadedPlaybook {
    /// The directory relative paths in the playbook are resolved against.
    pub fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Every step with its section, in the order the runner sees them.
    pub fn all_steps(&self) -> impl Iterator<Item = (Section, &Step)> {
        self.playbook.all_steps()
    }
}

/// A required field of a rendered step (validation has already said it is present).
pub fn required<'s, T: ?Sized>(value: Option<&'s T>, field: &str) -> anyhow::Result<&'s T> {
    value.ok_or_else(|| anyhow::anyhow!("missing field `{field}`"))
}

/// The backup method `step` names among its engine's `methods` (the first when it
/// names none), after its rendering: an unknown one, or a field it refuses, is an error.
pub fn method<'m>(step: &Step, engine: &str, methods: &'m [Method]) -> anyhow::Result<&'m Method> {
    let present = |f: &str| field_value(step, f).is_some();
    let has = |f: &str, v: &str| field_value(step, f).is_some_and(|x| x == v);
    engine::method(step.method.as_deref(), methods, present, has)
        .map_err(|e| anyhow::anyhow!("backup/{engine}: {e}"))
}

impl Playbook {
    /// The steps of one section.
    pub fn section(&self, section: Section) -> &[Step] {
        match section {
            Section::Setup => &self.setup,
            Section::Steps => &self.steps,
            Section::Cleanup => &self.cleanup,
        }
    }

    pub fn all_steps(&self) -> impl Iterator<Item = (Section, &Step)> {
        let tag = |section| move |step| (section, step);
        self.setup
            .iter()
            .map(tag(Section::Setup))
            .chain(self.steps.iter().map(tag(Section::Steps)))
            .chain(self.cleanup.iter().map(tag(Section::Cleanup)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read playbook {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render_all(.file, .text, .diagnostics))]
    Invalid {
        file: String,
        text: String,
        diagnostics: Vec<Diagnostic>,
    },
}

/// How many problems are shown; the rest are counted ("… and 9,950 more").
pub const MAX_SHOWN: usize = 50;

fn render_all(file: &str, text: &str, diagnostics: &[Diagnostic]) -> String {
    let lines = diagnostic::Lines::new(text);
    let mut out: String = diagnostics
        .iter()
        .take(MAX_SHOWN)
        .map(|d| d.render_with(file, &lines) + "\n")
        .collect();
    let n = diagnostics.len();
    if n > MAX_SHOWN {
        out.push_str(&format!(
            "… and {} more\n\n",
            crate::limits::thousands(n - MAX_SHOWN)
        ));
    }
    let warnings = diagnostics.iter().filter(|d| d.warning).count();
    out.push_str(&format!(
        "{file}: {} problem{} found",
        crate::limits::thousands(n - warnings),
        if n - warnings == 1 { "" } else { "s" }
    ));
    if warnings > 0 {
        out.push_str(&format!(
            " (and {} warning{})",
            crate::limits::thousands(warnings),
            if warnings == 1 { "" } else { "s" }
        ));
    }
    out
}

/// Reads, parses and validates a playbook; `engines` are the engines its steps may name
/// (the caller passes the registry's specs: this layer does not know the engines).
pub fn load(path: &Path, engines: &[&'static EngineSpec]) -> Result<LoadedPlaybook, LoadError> {
    // Bounded: a playbook is never read whole before its size is known to be sane.
    let text =
        crate::limits::read_text(path, crate::limits::MAX_PLAYBOOK_BYTES).map_err(|source| {
            LoadError::Io {
                path: path.to_path_buf(),
                source,
            }
        })?;
    let invalid = |diagnostics| LoadError::Invalid {
        file: path.display().to_string(),
        text: text.clone(),
        diagnostics,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let (root, errors) = DeTable::parse_recoverable(&text);
    let (parsed, mut problems) = parse_partial(&root, &errors);
    // Semantic checks run on whatever parsed, so one pass reports every problem.
    if let Some((playbook, layout)) = &parsed {
        let spans = spans::SpanIndex::new(root);
        problems.extend(validate::validate(
            playbook, layout, &text, spans, dir, engines,
        ));
    }
    // In the order of the file, whichever check found them.
    problems.sort_by_key(|d| d.span.as_ref().map_or(0, |s| s.start));
    let playbook = match parsed {
        Some((playbook, _)) if problems.iter().all(|d| d.warning) => playbook,
        _ => return Err(invalid(problems)),
    };
    let lines = diagnostic::Lines::new(&text);
    let file = path.display().to_string();
    let warnings = problems
        .iter()
        .map(|d| d.render_with(&file, &lines))
        .collect();
    Ok(LoadedPlaybook {
        path: path.to_path_buf(),
        sha256: hex(&Sha256::digest(text.as_bytes())),
        playbook,
        engines: engines.to_vec(),
        warnings,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Deserializes the document into the model, collecting every problem.
pub fn parse(text: &str) -> Result<Playbook, Vec<Diagnostic>> {
    let (root, errors) = DeTable::parse_recoverable(text);
    match parse_partial(&root, &errors) {
        (Some((playbook, _)), diags) if diags.is_empty() => Ok(playbook),
        (_, diags) => Err(diags),
    }
}

/// Where each step of the file stands, parsed or not: validation walks this so that spans
/// point at the right table and references to a step that failed to parse do not cascade.
#[derive(Debug, Default)]
pub struct Layout {
    /// (section, index in the file's array, the step's `id` text, index among parsed steps)
    pub steps: Vec<(Section, usize, Option<String>, Option<usize>)>,
}

/// The playbook as far as it deserializes (steps that fail are left out), and the problems.
fn parse_partial(
    root: &Spanned<DeTable<'_>>,
    errors: &[toml::de::Error],
) -> (Option<(Playbook, Layout)>, Vec<Diagnostic>) {
    if !errors.is_empty() {
        return (None, errors.iter().map(toml_diagnostic).collect());
    }
    let mut sections = Sections::default();
    let mut layout = Layout::default();
    let mut diags = Vec::new();
    for (key, value) in root.get_ref() {
        let name: &str = key.get_ref();
        match name {
            "version" => sections.version = de(value, &mut diags),
            "drill" => sections.drill = lenient::de_lenient(value, &mut diags),
            "vars" => sections.vars = lenient::de_lenient(value, &mut diags),
            "secrets" => sections.secrets = lenient::de_lenient(value, &mut diags),
            "gates" => sections.gates = lenient::de_lenient(value, &mut diags),
            "report" => sections.report = lenient::de_lenient(value, &mut diags),
            "evidence" => sections.evidence = lenient::de_lenient(value, &mut diags),
            "notify" => sections.notify = lenient::de_lenient(value, &mut diags),
            "setup" => sections.setup = de_steps(Section::Setup, value, &mut layout, &mut diags),
            "steps" => sections.steps = de_steps(Section::Steps, value, &mut layout, &mut diags),
            "cleanup" => {
                sections.cleanup = de_steps(Section::Cleanup, value, &mut layout, &mut diags)
            }
            _ => diags.push(unknown_field(name, Some(key.span()), TOP_LEVEL)),
        }
    }
    if !root.get_ref().keys().any(|k| k.get_ref() == "version") {
        diags.push(
            Diagnostic::new("missing field `version`", Some(0..0))
                .with_help("add `version = 1` at the top"),
        );
    }
    if !root.get_ref().keys().any(|k| k.get_ref() == "drill") {
        diags.push(
            Diagnostic::new("missing table `[drill]`", Some(0..0))
                .with_help("add `[drill]` with at least `name = \"...\"`"),
        );
    }
    let order = |s: &Section| match s {
        Section::Setup => 0,
        Section::Steps => 1,
        Section::Cleanup => 2,
    };
    layout
        .steps
        .sort_by_key(|(section, i, _, _)| (order(section), *i));
    (Some((sections.finish(), layout)), diags)
}

const TOP_LEVEL: &[&str] = &[
    "version", "drill", "vars", "secrets", "gates", "report", "evidence", "notify", "setup",
    "steps", "cleanup",
];

#[derive(Default)]
struct Sections {
    version: Option<u32>,
    drill: Option<DrillMeta>,
    vars: Option<indexmap::IndexMap<String, serde_json::Value>>,
    secrets: Option<indexmap::IndexMap<String, SecretSource>>,
    gates: Option<Gates>,
    report: Option<ReportSettings>,
    evidence: Option<EvidenceSettings>,
    notify: Option<NotifySettings>,
    setup: Option<Vec<Step>>,
    steps: Option<Vec<Step>>,
    cleanup: Option<Vec<Step>>,
}

impl Sections {
    /// A bad or missing `version` or `[drill]` is reported already: the rest is checked
    /// all the same (a playbook with a problem is never run).
    fn finish(self) -> Playbook {
        Playbook {
            version: self.version.unwrap_or(1),
            drill: self.drill.unwrap_or_default(),
            vars: self.vars.unwrap_or_default(),
            secrets: self.secrets.unwrap_or_default(),
            gates: self.gates.unwrap_or_default(),
            report: self.report.unwrap_or_default(),
            evidence: self.evidence.unwrap_or_default(),
            notify: self.notify.unwrap_or_default(),
            setup: self.setup.unwrap_or_default(),
            steps: self.steps.unwrap_or_default(),
            cleanup: self.cleanup.unwrap_or_default(),
        }
    }
}

fn de<T: DeserializeOwned>(value: &Spanned<DeValue<'_>>, diags: &mut Vec<Diagnostic>) -> Option<T> {
    T::deserialize(ValueDeserializer::from(value.clone()))
        .map_err(|e| {
            // Suggestions cost a search: only for the problems that are shown.
            let suggest = diags.len() < MAX_SHOWN;
            diags.push(serde_diagnostic(&e, value.span(), suggest))
        })
        .ok()
}

/// Steps one by one, so that a mistake in one does not hide the mistakes in the next.
fn de_steps(
    section: Section,
    value: &Spanned<DeValue<'_>>,
    layout: &mut Layout,
    diags: &mut Vec<Diagnostic>,
) -> Option<Vec<Step>> {
    let Some(items) = value.get_ref().as_array() else {
        diags.push(Diagnostic::new(
            format!(
                "expected an array of tables (`[[{}]]`), found {}",
                section.as_str(),
                value.get_ref().type_str()
            ),
            Some(value.span()),
        ));
        return None;
    };
    let mut steps = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let id = item
            .get_ref()
            .as_table()
            .and_then(|t| t.get("id"))
            .and_then(|v| v.get_ref().as_str())
            .map(str::to_string);
        let parsed = lenient::de_lenient::<Step>(item, diags).map(|step| {
            steps.push(step);
            steps.len() - 1
        });
        layout.steps.push((section, i, id, parsed));
    }
    Some(steps)
}

fn toml_diagnostic(err: &toml::de::Error) -> Diagnostic {
    Diagnostic::new(err.message().trim().to_string(), err.span())
}

/// serde's messages, made shorter where they list every field of a step.
fn serde_diagnostic(
    err: &toml::de::Error,
    fallback: std::ops::Range<usize>,
    suggest: bool,
) -> Diagnostic {
    let message = err.message().trim();
    let span = err.span().or(Some(fallback));
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return match suggest {
            true => unknown_field(field, span, &known),
            false => Diagnostic::new(format!("unknown field `{field}`"), span),
        };
    }
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some((variant, expected)) = rest.split_once('`')
    {
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return Diagnostic::new(format!("unknown value `{variant}`"), span)
            .with_help(format!("expected one of: {}", known.join(", ")));
    }
    Diagnostic::new(message.to_string(), span)
}

/// Fields that belong to another table than the one they are often written in, with where.
const MISPLACED: &[(&str, &str)] = &[(
    "sample",
    "`sample` belongs on the backup step, beside `digests = true`: the backup hashes the sample and the check compares it",
)];

fn unknown_field(field: &str, span: Option<std::ops::Range<usize>>, known: &[&str]) -> Diagnostic {
    let diag = Diagnostic::new(format!("unknown field `{field}`"), span);
    if let Some((_, place)) = MISPLACED.iter().find(|(f, _)| *f == field) {
        return diag.with_help(place.to_string());
    }
    match closest(field, known) {
        Some(suggestion) => diag.with_help(format!("did you mean `{suggestion}`?")),
        None if known.len() <= 12 => {
            diag.with_help(format!("expected one of: {}", known.join(", ")))
        }
        None => diag,
    }
}

/// The known name nearest to a misspelling, if it is near enough to be a typo.
pub fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    // A name this long is no typo of a field or an id, and comparing it would cost its
    // length squared.
    const LONGEST: usize = 64;
    let len = word.chars().count();
    if len > LONGEST {
        return None;
    }
    known
        .iter()
        // The lengths alone rule most names out, without the cost of an edit distance.
        .filter(|k| k.len() <= 4 * LONGEST && len.abs_diff(k.chars().count()) <= 2.max(k.len() / 4))
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(method: Option<&str>) -> Step {
        let toml = match method {
            Some(m) => format!("id = \"b\"\nkind = \"backup\"\nmethod = \"{m}\""),
            None => "id = \"b\"\nkind = \"backup\"".to_string(),
        };
        toml::from_str(&toml).unwrap()
    }

    #[test]
    fn a_backup_method_is_the_default_one_of_the_engines_or_an_error_naming_them() {
        const METHODS: &[Method] = &[
            Method::new("dump", "pg_dump"),
            Method::new("basebackup", "pg_basebackup").lacks(&["jobs"], "jobs are pg_dump's"),
        ];
        let name = |step: &Step| method(step, "postgres", METHODS).map(|m| m.name);
        assert_eq!(name(&backup(None)).unwrap(), "dump");
        assert_eq!(name(&backup(Some("dump"))).unwrap(), "dump");
        assert_eq!(name(&backup(Some("basebackup"))).unwrap(), "basebackup");
        let err = name(&backup(Some("rsync"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "backup/postgres: `method` must be \"dump\" (pg_dump) or \"basebackup\" (pg_basebackup), not \"rsync\""
        );
        // A field the method refuses, once the step is rendered (`method` a template).
        let mut base = backup(Some("basebackup"));
        base.jobs = Some(2);
        assert_eq!(
            name(&base).unwrap_err().to_string(),
            "backup/postgres: `jobs` does not apply to `method = \"basebackup\"`: jobs are pg_dump's"
        );
        let mut dump = backup(Some("dump"));
        dump.jobs = Some(2);
        assert_eq!(name(&dump).unwrap(), "dump");
    }
}
