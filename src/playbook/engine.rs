//! What validation knows of the engines without knowing them: each engine declares an
//! `EngineSpec` (in `src/engines/<name>/`), and the caller of `load` passes them in. The
//! playbook layer never imports the engines (they import the playbook's `Step`).

use super::model::{Builtin, Step, StepKind};

/// An engine as the playbook layer sees it: its name, its starter playbook, and for each
/// step kind it serves (`backup`, `restore`, `sql`), the fields it reads.
#[derive(Debug)]
pub struct EngineSpec {
    pub name: &'static str,
    /// The playbook `restore-drill init --engine <name>` writes: a starter for the user's
    /// own database, whose first line is `#:schema ./playbook.schema.json`.
    pub example: &'static str,
    /// The command that runs the starter, `{playbook}` standing for its path (the hint
    /// `init` prints).
    pub run: &'static str,
    pub kinds: &'static [KindSpec],
    /// What that command needs besides when root runs it (the engine's server programs
    /// refuse root: `--var os_user=...`); `init` run as root prints it after `run`.
    pub run_as_root: &'static str,
}

/// What an engine reads from a step of one kind.
#[derive(Debug)]
pub struct KindSpec {
    pub kind: StepKind,
    /// The fields it takes besides the kind's own (`engine`; `database`, `execute`,
    /// `checks` for `sql`). Each is a field of `Step` (a new one is added there).
    pub fields: &'static [&'static str],
    /// The fields it needs; each entry lists alternatives, one of which must be present.
    pub required: &'static [&'static [&'static str]],
    /// Fields naming what the step reads on this machine (a text field: one path; a list
    /// field: globs): sources, which the drill never writes to nor removes.
    pub reads: &'static [&'static str],
    /// Fields naming what a restore creates on this machine: the drill's own, so that a
    /// later step reading it makes no source.
    pub makes: &'static [&'static str],
    /// The outputs it adds to the kind's own (`database`, `cluster_dir`, ...).
    pub outputs: &'static [&'static str],
    /// Whether it reports a database's schema: outputs `table_counts`, `tables`,
    /// `indexes`, `foreign_keys`, `objects`, and with `digests = true` `table_digests`
    /// (`SCHEMA_OUTPUTS`).
    pub schema: bool,
    /// Builtin checks that mean nothing for this engine, each with why (`validate`
    /// refuses them).
    pub lacks: &'static [(Builtin, &'static str)],
    /// The ways it takes a backup (`method = "..."`), the first the default; none where
    /// it has one way only.
    pub methods: &'static [Method],
    /// Fields that take one of a closed set of values, with the set: `validate` refuses
    /// any other value at its place (a templated one is known only to the run, which
    /// checks it again). A set that depends on the backup method is the `Method`'s.
    pub values: &'static [Values],
}

/// A field that takes one of a closed set of values, with the set, as the engine spells
/// them: `("isolation", &["ephemeral"])`.
pub type Values = (&'static str, &'static [&'static str]);

/// `"a"`, `"a" or "b"`, `"a", "b" or "c"`: the values a field takes, for messages.
pub fn one_of(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("\"{v}\"")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// One way an engine takes a backup (`method = "basebackup"`), with the step's fields
/// that mean nothing to it: `validate` refuses them beside it, saying why, and so does
/// the step where `method` is a template.
#[derive(Debug)]
pub struct Method {
    pub name: &'static str,
    /// The program it runs (`pg_basebackup`), for messages.
    pub tool: &'static str,
    /// Fields it does not take, and why (`pg_dump's options`).
    lacks: (&'static [&'static str], &'static str),
    /// A physical copy of the server: no `digests` (nor `sample`).
    physical: bool,
    /// The closed sets of values of its fields (`format` is pg_dump's or pg_basebackup's).
    pub values: &'static [Values],
    /// Values of two of its fields that do not go together.
    pub clashes: &'static [Clash],
}

/// Two values of two fields that do not go together, and why: `validate` refuses them
/// at the second field's place, and so does the step where one is a template.
#[derive(Debug)]
pub struct Clash {
    pub first: (&'static str, &'static str),
    pub second: (&'static str, &'static str),
    pub why: &'static str,
}

impl Clash {
    /// That the two values do not go together (the message without the reason).
    pub fn message(&self) -> String {
        let ((a, x), (b, y)) = (self.first, self.second);
        format!("`{a} = \"{x}\"` does not go with `{b} = \"{y}\"`")
    }
}

/// Why a physical backup takes no digests.
const PHYSICAL: &str = "digests need a dump's snapshot; a physical backup restores what was committed until its end, after the snapshot its counts come from";

impl Method {
    pub const fn new(name: &'static str, tool: &'static str) -> Self {
        Self {
            name,
            tool,
            lacks: (&[], ""),
            physical: false,
            values: &[],
            clashes: &[],
        }
    }

    /// Its fields that take one of a closed set of values, with the sets.
    pub const fn values(self, values: &'static [Values]) -> Self {
        Self { values, ..self }
    }

    /// Values of its fields that do not go together.
    pub const fn clashes(self, clashes: &'static [Clash]) -> Self {
        Self { clashes, ..self }
    }

    /// The first of its clashes that a step shows (`has(field, value)`: the step's
    /// `field` is `value`).
    pub fn clash(&self, has: impl Fn(&str, &str) -> bool) -> Option<&'static Clash> {
        self.clashes.iter().find(|c| {
            let ((a, x), (b, y)) = (c.first, c.second);
            has(a, x) && has(b, y)
        })
    }

    /// The values it takes in `field`, when they are a closed set.
    pub fn allowed(&self, field: &str) -> Option<&'static [&'static str]> {
        let (_, set) = self.values.iter().find(|(f, _)| *f == field)?;
        Some(set)
    }

    /// It takes none of `fields`, for the reason `why`.
    pub const fn lacks(self, fields: &'static [&'static str], why: &'static str) -> Self {
        Self {
            lacks: (fields, why),
            ..self
        }
    }

    /// It copies the server's files (a base backup): table digests cannot be of its
    /// content, so it takes no `digests` nor `sample`.
    pub const fn physical(self) -> Self {
        Self {
            physical: true,
            ..self
        }
    }

    /// Why it does not take `field`; None when it does.
    pub fn refuses(&self, field: &str) -> Option<&'static str> {
        match field {
            "digests" | "sample" if self.physical => Some(PHYSICAL),
            _ => self.lacks.0.contains(&field).then_some(self.lacks.1),
        }
    }

    /// That `field` does not apply to it (the message without the reason).
    pub fn refusal(&self, field: &str) -> String {
        format!("`{field}` does not apply to `method = \"{}\"`", self.name)
    }
}

/// The method a step names among `methods` (the first when it names none): an unknown
/// name is an error listing them, as is a field the method refuses (`present` says
/// which fields the step has) or a clash of two values (`has(field, value)`).
pub fn method<'m>(
    given: Option<&str>,
    methods: &'m [Method],
    present: impl Fn(&str) -> bool,
    has: impl Fn(&str, &str) -> bool,
) -> Result<&'m Method, String> {
    let Some(found) = methods.iter().find(|m| given.is_none_or(|g| g == m.name)) else {
        return Err(unknown_method(given.unwrap_or_default(), methods));
    };
    let refused = ["digests", "sample"]
        .iter()
        .chain(found.lacks.0)
        .filter(|f| present(f))
        .find_map(|f| Some((f, found.refuses(f)?)));
    if let Some((field, why)) = refused {
        return Err(format!("{}: {why}", found.refusal(field)));
    }
    match found.clash(has) {
        Some(clash) => Err(format!("{}: {}", clash.message(), clash.why)),
        None => Ok(found),
    }
}

/// That `given` is none of `methods`, naming them with their programs.
pub fn unknown_method(given: &str, methods: &[Method]) -> String {
    let choices: Vec<String> = methods
        .iter()
        .map(|m| format!("\"{}\" ({})", m.name, m.tool))
        .collect();
    format!("`method` must be {}, not \"{given}\"", choices.join(" or "))
}

/// The outputs of a backup or restore of an engine that reports a schema (and a backup
/// with `digests = true`: `table_digests`).
pub const SCHEMA_OUTPUTS: &[&str] = &[
    "table_counts",
    "tables",
    "indexes",
    "foreign_keys",
    "objects",
];

impl KindSpec {
    /// A step kind the engine serves, with the fields it takes there (none required,
    /// read or made until `needs`, `reads`, `makes` say so).
    pub const fn new(kind: StepKind, fields: &'static [&'static str]) -> Self {
        Self {
            kind,
            fields,
            required: &[],
            reads: &[],
            makes: &[],
            outputs: &[],
            schema: false,
            lacks: &[],
            methods: &[],
            values: &[],
        }
    }

    /// Its `backup` steps, with the fields they take.
    pub const fn backup(fields: &'static [&'static str]) -> Self {
        Self::new(StepKind::Backup, fields)
    }

    /// Its `restore` steps, with the fields they take.
    pub const fn restore(fields: &'static [&'static str]) -> Self {
        Self::new(StepKind::Restore, fields)
    }

    /// Its `sql` steps (their fields are the kind's own: `database`, `execute`, `checks`).
    pub const fn sql() -> Self {
        Self::new(StepKind::Sql, &[])
    }

    pub const fn needs(self, required: &'static [&'static [&'static str]]) -> Self {
        Self { required, ..self }
    }

    pub const fn reads(self, reads: &'static [&'static str]) -> Self {
        Self { reads, ..self }
    }

    pub const fn makes(self, makes: &'static [&'static str]) -> Self {
        Self { makes, ..self }
    }

    /// The outputs it adds, besides the schema's.
    pub const fn outputs(self, outputs: &'static [&'static str]) -> Self {
        Self { outputs, ..self }
    }

    /// Builtins its `sql` steps refuse, each with why.
    pub const fn lacks(self, lacks: &'static [(Builtin, &'static str)]) -> Self {
        Self { lacks, ..self }
    }

    /// Its backup methods, the first the default.
    pub const fn methods(self, methods: &'static [Method]) -> Self {
        Self { methods, ..self }
    }

    /// Its fields that take one of a closed set of values, with the sets (those of one
    /// backup method are the `Method`'s).
    pub const fn values(self, values: &'static [Values]) -> Self {
        Self { values, ..self }
    }

    /// It reports the database's schema (`SCHEMA_OUTPUTS`).
    pub const fn schema(self) -> Self {
        Self {
            schema: true,
            ..self
        }
    }
}

impl EngineSpec {
    /// What it reads from a step of `kind`; None when it does not serve that kind.
    pub fn kind(&self, kind: StepKind) -> Option<&KindSpec> {
        self.kinds.iter().find(|k| k.kind == kind)
    }
}

/// The engine `name` among `engines`.
pub fn find_spec<'a>(engines: &[&'a EngineSpec], name: &str) -> Option<&'a EngineSpec> {
    engines.iter().copied().find(|e| e.name == name)
}

/// What the engine of `step` reads from a step of its kind (None: no engine, an unknown
/// one, or one that does not serve this kind).
pub fn kind_spec<'a>(engines: &[&'a EngineSpec], step: &Step) -> Option<&'a KindSpec> {
    find_spec(engines, step.engine.as_deref()?)?.kind(step.kind)
}
