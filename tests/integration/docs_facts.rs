//! What the docs say of the tool besides their playbooks (docs.rs checks those), checked
//! against the tool itself, so that the docs cannot drift from it unseen:
//! - every command line shown, against clap's own definition of the CLI: its subcommand,
//!   each flag, the value of a flag or argument that takes a closed set, and each
//!   `--var` given to a playbook of the repository (or a starter `init` writes);
//! - the exit codes of the README, against `--help`;
//! - the limits the README states, against the constants;
//! - each step kind's outputs in the README's table, against what the kind declares;
//! - the fields of the field tables, against the fields of their step kind, and the
//!   README's "Every step" and "Templates" bullets, against the common fields and what a
//!   template reads of `drill` and of an earlier step;
//! - the metric names of the docs, against what `run --metrics` writes.
//!
//! Each check also runs on a deliberately broken copy of the docs, and must fail there.
//!
//! A command line is found in a fenced block (a line ending in `\`, or an indented
//! `[--flag ...` line under it, continues it) or in an inline code span, from
//! `restore-drill` on, or a span that starts with a subcommand and holds a flag
//! (`status --format prom`). It ends at a shell operator or a comment. A word in capitals
//! or `<...>` is a placeholder; `a|b` stands for a and for b.

use std::collections::BTreeSet;
use std::path::Path;

use clap::{Arg, Command, CommandFactory as _};
use restore_drill::cli::Cli;

use super::docs::{ROOT, markdown_files};

/// Code of the docs that looks like a command line and is not one, with why.
const NOT_COMMANDS: &[(&str, &str)] = &[
    (
        "restore-drill scratch database",
        "the comment of a scratch database",
    ),
    (
        "init --engine toy",
        "the engine docs/architecture.md shows how to add",
    ),
];

/// A piece of code of the docs, and where it starts.
struct Code {
    at: String,
    text: String,
}

fn read(file: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap()
}

/// The code of `markdown`: each line of a fenced block (without its `# comment`), and
/// each inline code span, with the lines of its paragraph joined. `fenced`: it all is
/// one fenced block (a playbook's comments).
fn code_of(file: &str, markdown: &str, fenced: bool) -> Vec<Code> {
    let mut code: Vec<Code> = Vec::new();
    let mut fenced = fenced;
    let mut last_line: Option<usize> = None;
    let mut paragraph: Vec<(usize, &str)> = Vec::new();
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || (!fenced && trimmed.is_empty()) {
            code.extend(spans(file, &paragraph));
            paragraph.clear();
            fenced ^= trimmed.starts_with("```");
            last_line = None;
            continue;
        }
        if !fenced {
            paragraph.push((i + 1, line));
            continue;
        }
        let text = without_comment(line);
        if text.trim().is_empty() {
            continue;
        }
        let indented = line.starts_with(char::is_whitespace);
        let flag_line = indented && (trimmed.starts_with("[-") || trimmed.starts_with('-'));
        match last_line.map(|n| &mut code[n]) {
            Some(prev) if prev.text.ends_with('\\') || flag_line => {
                if prev.text.ends_with('\\') {
                    prev.text.pop();
                }
                prev.text = format!("{} {}", prev.text.trim_end(), text.trim());
            }
            _ => {
                last_line = Some(code.len());
                let at = format!("{file}:{}", i + 1);
                let text = text.trim_end().to_string();
                code.push(Code { at, text });
            }
        }
    }
    code.extend(spans(file, &paragraph));
    code
}

/// `line` up to its shell comment (a `#` at its start or after a space).
fn without_comment(line: &str) -> &str {
    let cut = match line.trim_start().starts_with('#') {
        true => Some(0),
        false => line.find(" #"),
    };
    &line[..cut.unwrap_or(line.len())]
}

/// The inline code spans of a paragraph (a run of N backticks to the next run of N).
fn spans(file: &str, paragraph: &[(usize, &str)]) -> Vec<Code> {
    let Some(&(first, _)) = paragraph.first() else {
        return Vec::new();
    };
    let lines: Vec<&str> = paragraph.iter().map(|(_, l)| l.trim()).collect();
    let text = lines.join(" ");
    let mut found = Vec::new();
    let mut rest = text.as_str();
    while let Some(open) = rest.find('`') {
        let run = rest[open..].len() - rest[open..].trim_start_matches('`').len();
        let after = &rest[open + run..];
        let Some(close) = backtick_run(after, run) else {
            break;
        };
        let at = format!("{file}:{first}");
        let text = after[..close].trim().to_string();
        found.push(Code { at, text });
        rest = &after[close + run..];
    }
    found
}

/// Where in `s` a run of exactly `n` backticks starts.
fn backtick_run(s: &str, n: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i] == b'`' {
            i += 1;
        }
        match i - start {
            0 => i += 1,
            len if len == n => return Some(start),
            _ => {}
        }
    }
    None
}

/// The command lines of a piece of code: the words after each `restore-drill` (or the
/// whole span when it starts with a subcommand and holds a flag), to a shell operator.
fn command_lines<'a>(cli: &Command, code: &'a str) -> Vec<Vec<&'a str>> {
    if NOT_COMMANDS.iter().any(|(text, _)| code.contains(text)) {
        return Vec::new();
    }
    let words: Vec<&str> = code.split_whitespace().collect();
    let mut starts: Vec<usize> = (0..words.len())
        .filter(|&i| words[i] == "restore-drill" || words[i].ends_with("/restore-drill"))
        // `make restore-drill` is a target of the Makefile.
        .filter(|&i| i == 0 || words[i - 1] != "make")
        .map(|i| i + 1)
        .collect();
    // Not a TOML field named like one (`run = "./app --db x"`).
    let bare_subcommand = words
        .first()
        .is_some_and(|w| cli.find_subcommand(w).is_some())
        && words.get(1) != Some(&"=");
    if starts.is_empty() && bare_subcommand && words.iter().any(|w| w.starts_with("--")) {
        starts.push(0);
    }
    let ends = |w: &&str| {
        ["&&", "||", "|", ";"].contains(w) || w.starts_with(['#', '>']) || w.starts_with("2>")
    };
    starts
        .into_iter()
        .map(|s| {
            words[s..]
                .iter()
                .take_while(|w| !ends(w))
                .copied()
                .collect()
        })
        .filter(|line: &Vec<&str>| !line.is_empty())
        .collect()
}

/// A word without the brackets and ellipses of a synopsis.
fn bare(word: &str) -> &str {
    let mut w = word;
    loop {
        let t = w
            .trim_end_matches("...")
            .trim_matches(['[', ']', '(', ')', ',', '"', '\'']);
        if t == w {
            return t;
        }
        w = t;
    }
}

fn is_placeholder(value: &str) -> bool {
    value.is_empty()
        || value.contains(|c: char| c.is_ascii_uppercase())
        || value.starts_with('<')
        || value.contains("...")
}

/// What is wrong with `value` of `arg`: a value outside its closed set.
fn value_problem(arg: &Arg, value: &str) -> Option<String> {
    let possible = arg.get_possible_values();
    if possible.is_empty() {
        return None;
    }
    let wrong: Vec<&str> = value
        .split('|')
        .filter(|v| !is_placeholder(v) && !possible.iter().any(|p| p.matches(v, false)))
        .collect();
    let names: Vec<&str> = possible.iter().map(|p| p.get_name()).collect();
    (!wrong.is_empty()).then(|| {
        format!(
            "`{}` takes {}, not {}",
            arg.get_id(),
            names.join(", "),
            wrong.join(", ")
        )
    })
}

/// What is wrong with a command line (`words` from the subcommand on).
fn line_problems(cli: &Command, words: &[&str]) -> Vec<String> {
    let Some(first) = words.first().map(|w| bare(w)) else {
        return Vec::new();
    };
    let (command, rest) = match first.starts_with('-') {
        true => (cli, words),
        false => match cli.find_subcommand(first) {
            Some(sub) => (sub, &words[1..]),
            None => return vec![format!("there is no subcommand `{first}`")],
        },
    };
    let mut problems = Vec::new();
    let mut positionals = command.get_positionals();
    let mut rest = rest.iter().map(|w| bare(w)).filter(|w| !w.is_empty());
    let mut playbook = None;
    let mut vars = Vec::new();
    while let Some(word) = rest.next() {
        let (arg, inline) = if let Some(long) = word.strip_prefix("--") {
            let (name, value) = long
                .split_once('=')
                .map_or((long, None), |(n, v)| (n, Some(v)));
            (
                command.get_arguments().find(|a| a.get_long() == Some(name)),
                value,
            )
        } else if word.len() == 2 && word.starts_with('-') {
            let short = word.chars().nth(1);
            (
                command.get_arguments().find(|a| a.get_short() == short),
                None,
            )
        } else {
            if let Some(arg) = positionals.next() {
                problems.extend(value_problem(arg, word));
                playbook = playbook.or((arg.get_id() == "playbook").then_some(word));
            }
            continue;
        };
        let Some(arg) = arg else {
            problems.push(format!("`{}` has no flag `{word}`", command.get_name()));
            continue;
        };
        let takes = arg.get_action().takes_values();
        if let Some(value) = inline.or_else(|| takes.then(|| rest.next()).flatten()) {
            problems.extend(value_problem(arg, value));
            if arg.get_long() == Some("var") && !is_placeholder(value) {
                vars.push(value.split('=').next().unwrap_or(value));
            }
        }
    }
    problems.extend(var_problems(playbook, &vars));
    problems
}

/// The vars of the playbook a command line names, when it is one of the repository's or
/// a starter `init` writes (`<engine>-drill.toml`); None when it is not.
fn playbook_vars(playbook: &str) -> Option<BTreeSet<String>> {
    let file = match playbook.strip_suffix("-drill.toml") {
        Some(engine) => format!("templates/init/{engine}.toml"),
        None => playbook.to_string(),
    };
    let text = std::fs::read_to_string(Path::new(ROOT).join(file)).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let vars = table.get("vars").and_then(|v| v.as_table());
    Some(
        vars.map(|v| v.keys().cloned().collect())
            .unwrap_or_default(),
    )
}

fn var_problems(playbook: Option<&str>, vars: &[&str]) -> Vec<String> {
    let Some((playbook, known)) = playbook.and_then(|p| Some((p, playbook_vars(p)?))) else {
        return Vec::new();
    };
    vars.iter()
        .filter(|v| !known.contains(**v))
        .map(|v| format!("{playbook} has no var `{v}` (`run` refuses it)"))
        .collect()
}

/// The wrong command lines of `markdown` (or of a playbook's comments, `fenced`), and
/// how many were checked.
fn command_problems(cli: &Command, file: &str, text: &str, fenced: bool) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for code in code_of(file, text, fenced) {
        for line in command_lines(cli, &code.text) {
            checked += 1;
            for problem in line_problems(cli, &line) {
                wrong.push(format!("{}: `{}`: {problem}", code.at, line.join(" ")));
            }
        }
    }
    (checked, wrong)
}

fn cli() -> Command {
    let mut cli = Cli::command();
    cli.build();
    cli
}

/// The comments of the shipped playbooks and starters (their `#` cut off).
fn playbook_comments() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for dir in ["playbooks", "templates/init"] {
        let entries = std::fs::read_dir(Path::new(ROOT).join(dir)).unwrap();
        for entry in entries {
            let name = format!("{dir}/{}", entry.unwrap().file_name().to_string_lossy());
            let text = read(&name);
            let comments: Vec<&str> = text
                .lines()
                .map(|l| l.trim_start().strip_prefix('#').unwrap_or(""))
                .map(|l| if l.starts_with(':') { "" } else { l })
                .collect();
            found.push((name, comments.join("\n")));
        }
    }
    found
}

#[test]
fn every_command_line_of_the_docs_is_one_the_tool_takes() {
    let cli = cli();
    let markdown = markdown_files().into_iter().map(|f| (read(&f), f, false));
    let comments = playbook_comments().into_iter().map(|(f, c)| (c, f, true));
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (text, file, fenced) in markdown.chain(comments) {
        let (n, problems) = command_problems(&cli, &file, &text, fenced);
        checked += n;
        wrong.extend(problems);
    }
    assert!(
        checked > 50,
        "the docs' command lines were not found ({checked})"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The checker itself: a flag, a value, a subcommand or a var the tool does not take
/// fails it, in a fenced block, a continued line and an inline span alike.
#[test]
fn the_command_line_check_fails_on_a_flag_the_tool_lacks() {
    let cli = cli();
    let markdown = "Run `restore-drill run x.toml --quiet` or `status --format prom`.\n\n\
        ```sh\nrestore-drill run playbooks/sqlite.toml \\\n    --var source_db=a.db  # ok\n\
        restore-drill init [--engine sqlite|postgres]\n             [-o FILE]\n```\n";
    let (checked, wrong) = command_problems(&cli, "x.md", markdown, false);
    assert_eq!((checked, wrong.len()), (4, 0), "{wrong:?}");
    let broken = [
        (
            "`restore-drill run x.toml --artifact d`",
            "`run` has no flag `--artifact`",
        ),
        (
            "`status --format yaml`",
            "`format` takes text, json, prom, not yaml",
        ),
        (
            "`restore-drill histroy`",
            "there is no subcommand `histroy`",
        ),
        (
            "```\nrestore-drill init [--engine sqlite|oracle]\n```",
            "not oracle",
        ),
        (
            "```\nrestore-drill schedule systemd|launchd x.toml\n```",
            "not launchd",
        ),
        (
            "```\nrestore-drill report\n    [-x FILE]\n```",
            "has no flag `-x`",
        ),
        (
            "```\nrestore-drill run playbooks/sqlite.toml \\\n  --var source=x\n```",
            "playbooks/sqlite.toml has no var `source`",
        ),
        (
            "`restore-drill run postgres-drill.toml --var pg_ulr=x`",
            "postgres-drill.toml has no var `pg_ulr`",
        ),
    ];
    for (markdown, problem) in broken {
        let (checked, wrong) = command_problems(&cli, "x.md", markdown, false);
        assert_eq!(checked, 1, "{markdown}");
        assert!(wrong.join("\n").contains(problem), "{markdown}: {wrong:?}");
    }
}

/// The exit codes of a table (`| 0 | meaning |`) or of `--help` (`  0    meaning`).
fn exit_codes(text: &str) -> Vec<(u8, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim().trim_start_matches('|').trim();
            let (code, meaning) = l.split_once([' ', '|'])?;
            let meaning = meaning.trim().trim_start_matches('|').trim();
            Some((
                code.parse().ok()?,
                meaning.trim_end_matches('|').trim().to_string(),
            ))
        })
        .collect()
}

/// The exit codes of the README's table.
fn readme_exit_codes(readme: &str) -> Vec<(u8, String)> {
    let table = readme.split("## Exit codes").nth(1).unwrap().trim_start();
    exit_codes(&table[..table.find("\n\n").unwrap_or(table.len())])
}

#[test]
fn the_readmes_exit_codes_are_the_ones_help_gives() {
    let readme = read("README.md");
    let documented = readme_exit_codes(&readme);
    assert_eq!(documented.len(), 5, "{documented:?}");
    for args in [&["--help"][..], &["run", "--help"]] {
        let help = super::restore_drill(Path::new(ROOT), args).stdout;
        let given = exit_codes(help.split("Exit codes:").nth(1).unwrap());
        assert_eq!(documented, given, "README.md's exit codes against {args:?}");
    }
    // A code or a meaning changed in the text alone is found.
    let code = readme.replace("| 3 | the runner", "| 4 | the runner");
    let meaning = readme.replace("| 1 | drill failed", "| 1 | drill did not pass");
    for wrong in [code, meaning] {
        assert_ne!(readme_exit_codes(&wrong), documented);
        assert_eq!(readme_exit_codes(&wrong).len(), 5);
    }
}

/// The README's sentences stating a limit, written from the constants.
fn limit_phrases() -> Vec<String> {
    use restore_drill::limits::*;
    use restore_drill::template::{FIELD, MAX_ELIFS, MAX_OPERATORS, REPORT};
    assert_eq!(
        MAX_TEMPLATE_BYTES, MAX_PLAYBOOK_BYTES,
        "the README gives one limit"
    );
    assert_eq!((REPORT.fuel, FIELD.fuel), (REPORT.items, FIELD.items));
    let secs = |d: std::time::Duration| d.as_secs();
    vec![
        format!(
            "A playbook (or a report template) is at most {}, a run record read back {}, \
             a checksum manifest {}, an age identity file {};",
            size_text(MAX_PLAYBOOK_BYTES),
            size_text(MAX_RECORD_BYTES),
            size_text(MAX_MANIFEST_BYTES),
            size_text(MAX_SETTINGS_BYTES)
        ),
        format!("`retries` (at most {MAX_RETRIES})"),
        format!("`retries` is at most {MAX_RETRIES}, `jobs` 1 to {MAX_JOBS}"),
        format!("of at most {MAX_DURATION_TEXT}"),
        format!(
            "holds at most {MAX_OPERATORS} operators, and a template at most {MAX_ELIFS} `elif`s"
        ),
        format!(
            "runs at most {} instructions (minijinja fuel), prints or walks at most {} values \
             and {}, and gets {} s; a report, whose data grows with the drill, {} \
             instructions and values, {} and {} s.",
            thousands(FIELD.fuel as usize),
            thousands(FIELD.items as usize),
            size_text(FIELD.bytes),
            secs(FIELD.time),
            thousands(REPORT.fuel as usize),
            size_text(REPORT.bytes),
            secs(REPORT.time)
        ),
        format!(
            "The first {} problems are listed",
            restore_drill::playbook::MAX_SHOWN
        ),
        format!(
            "the RTO of its last {} passes",
            restore_drill::report::fleet::TREND_RUNS
        ),
        format!(
            "charts the RTO of the drill's last {} passing runs",
            restore_drill::report::RTO_HISTORY_RUNS
        ),
    ]
}

/// `text` with every run of white space one space (a sentence may wrap anywhere).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn missing_limits(readme: &str) -> Vec<String> {
    let readme = one_line(readme);
    limit_phrases()
        .into_iter()
        .map(|p| one_line(&p))
        .filter(|p| !readme.contains(p.as_str()))
        .map(|p| format!("README.md no longer says (a constant or the text changed): {p}"))
        .collect()
}

#[test]
fn every_limit_the_readme_states_is_the_tools() {
    let readme = read("README.md");
    // A limit changed in the text alone is found.
    let wrong = real_then_broken(&readme, missing_limits, "`jobs` 1 to 256", "`jobs` 1 to 64");
    assert_eq!(wrong.len(), 1);
    let health = read("docs/health-and-services.md");
    let connect = restore_drill::engines::answer::CONNECT_LIMIT.as_secs();
    assert!(one_line(&health).contains(&format!("(MySQL), {connect} s by default")));
}

/// What `check` finds in `real` (the docs) fails the test; what it finds there once
/// `from` is replaced by `to` (a deliberate mistake) is returned.
fn real_then_broken(
    real: &str,
    check: fn(&str) -> Vec<String>,
    from: &str,
    to: &str,
) -> Vec<String> {
    let problems = check(real);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(real.contains(from), "`{from}` is no longer in the docs");
    check(&real.replace(from, to))
}

/// The `noun`s of `owner` `documented` and not `declared`, then those declared and not
/// documented.
fn mismatches(
    owner: &str,
    noun: &str,
    documented: &BTreeSet<String>,
    declared: &BTreeSet<String>,
) -> Vec<String> {
    let unknown = documented.difference(declared);
    let mut found: Vec<String> = unknown
        .map(|n| format!("{owner} has no {noun} `{n}`"))
        .collect();
    let left_out = declared.difference(documented);
    found.extend(left_out.map(|n| format!("{owner}'s {noun} `{n}` is not listed")));
    found
}

/// The rows of the README's step kinds table: the kind and the outputs it names.
fn documented_outputs(readme: &str) -> Vec<(String, BTreeSet<String>)> {
    let table = readme.split("### Step kinds").nth(1).unwrap().trim_start();
    let table = &table[..table.find("\n\n").unwrap()];
    table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|row| {
            let cells: Vec<&str> = row.split(" | ").collect();
            let kind = cells[0].trim_start_matches("| `").trim_end_matches('`');
            let outputs = cells.last().unwrap().trim_end_matches('|');
            let names = outputs
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect();
            (kind.to_string(), names)
        })
        .collect()
}

/// What the table gets wrong: an output the kind does not have, or one it has that the
/// table leaves out (a backup's and a restore's: SQLite's, whose row it is).
fn output_problems(readme: &str) -> Vec<String> {
    use restore_drill::playbook::{SCHEMA_OUTPUTS, StepKind, kind_outputs};
    let mut problems = Vec::new();
    let rows = documented_outputs(readme);
    let kinds: Vec<String> = rows.iter().map(|(k, _)| k.clone()).collect();
    for kind in StepKind::ALL {
        let name = serde_json::to_value(kind).unwrap();
        let name = name.as_str().unwrap();
        let Some((_, documented)) = rows.iter().find(|(k, _)| k == name) else {
            problems.push(format!(
                "step kind `{name}` is not in the table ({kinds:?})"
            ));
            continue;
        };
        let mut declared: BTreeSet<String> =
            kind_outputs(kind).iter().map(|s| s.to_string()).collect();
        if matches!(kind, StepKind::Backup | StepKind::Restore) {
            declared.extend(SCHEMA_OUTPUTS.iter().map(|s| s.to_string()));
            let specs = restore_drill::engines::specs();
            let sqlite = specs.iter().find(|e| e.name == "sqlite").unwrap();
            let outputs = sqlite.kind(kind).unwrap().outputs;
            declared.extend(outputs.iter().map(|s| s.to_string()));
        }
        if kind == StepKind::Backup {
            declared.insert("table_digests".into());
        }
        let owner = format!("`{name}`");
        problems.extend(mismatches(&owner, "output", documented, &declared));
    }
    problems
}

/// The fields of a `| field | default | meaning |` table under `heading`.
fn table_fields(markdown: &str, heading: &str) -> BTreeSet<String> {
    let section = markdown.split(heading).nth(1).unwrap();
    let table = section.split("| field |").nth(1).unwrap();
    let table = &table[..table.find("\n\n").unwrap()];
    table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|row| {
            let cell = row.split(" | ").next().unwrap();
            let names: Vec<String> = cell
                .split('`')
                .skip(1)
                .step_by(2)
                .map(|n| n.split('.').next().unwrap().to_string())
                .collect();
            names
        })
        .collect()
}

fn field_problems(markdown: &str) -> Vec<String> {
    use restore_drill::playbook::{StepKind, kind_fields};
    let mut problems = Vec::new();
    for (heading, kind) in [
        ("## `http`", StepKind::Http),
        ("## `service`", StepKind::Service),
    ] {
        let documented = table_fields(markdown, heading);
        let declared: BTreeSet<String> = kind_fields(kind).iter().map(|s| s.to_string()).collect();
        problems.extend(mismatches(heading, "field", &documented, &declared));
    }
    problems
}

/// The README's outputs of each step kind, and the field tables, name what the tool has,
/// all of it: each check passes on the docs and finds a deliberate mistake.
#[test]
fn the_lists_of_outputs_and_fields_name_what_each_kind_has() {
    let readme = read("README.md");
    let health = read("docs/health-and-services.md");
    type Check = fn(&str) -> Vec<String>;
    let cases: [(&str, Check, &str, &str, [&str; 2]); 2] = [
        (
            &readme,
            output_problems,
            "`latency_ms`, `body`",
            "`latency`, `body`",
            [
                "`http` has no output `latency`",
                "`http`'s output `latency_ms` is not listed",
            ],
        ),
        (
            &health,
            field_problems,
            "| `stop_grace` |",
            "| `stop_timeout` |",
            [
                "## `service` has no field `stop_timeout`",
                "## `service`'s field `stop_grace` is not listed",
            ],
        ),
    ];
    for (real, check, from, to, found) in cases {
        assert_eq!(real_then_broken(real, check, from, to), found);
    }
    // The README's bullets name every field common to all kinds, and all that a
    // template reads of `drill` and of an earlier step besides its outputs.
    let readme = one_line(&readme);
    let bullets = [
        ("**Every step** has", restore_drill::playbook::COMMON),
        ("**Templates.**", restore_drill::template::DRILL_FIELDS),
        ("**Templates.**", restore_drill::playbook::STEP_VIEW),
    ];
    for (bullet, names) in bullets {
        let text = readme.split(bullet).nth(1).unwrap();
        let text = &text[..text.find(" - **").unwrap()];
        for name in names {
            assert!(
                text.contains(&format!("`{name}`")),
                "{bullet}: `{name}` is not listed"
            );
        }
    }
}

/// The metric names (`restore_drill_...`) of `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("restore_drill_") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        names.insert(name.trim_end_matches('_').to_string());
    }
    names.remove("restore_drill");
    names
}

/// What the docs get wrong of the metrics `written`: a name in `docs` that is none, one
/// the README leaves out.
fn metric_problems(written: &BTreeSet<String>, docs: &str, readme: &str) -> Vec<String> {
    let named = metric_names(docs);
    let in_readme = metric_names(readme);
    let wrong = named.difference(written);
    let wrong = wrong.map(|m| format!("the docs name `{m}`, which is no metric"));
    let missing = written.difference(&in_readme);
    let missing = missing.map(|m| format!("README.md does not name `{m}`"));
    wrong.chain(missing).collect()
}

/// The README names every metric `run --metrics` (with gates, a backup, a step that ran)
/// and `status --format prom` write, and the docs no other.
#[test]
fn the_docs_name_every_metric_and_no_other() {
    let toml = "version = 1\n[drill]\nname = \"m\"\n[gates]\nrto = \"15m\"\nrpo = \"1h\"\n\
        rpo_from = \"{{ steps.backup.snapshot_at }}\"\n[[steps]]\nid = \"backup\"\n\
        kind = \"backup\"\nengine = \"sqlite\"\nsource = \"src.db\"\n\
        output = \"{{ drill.workdir }}/b.db\"\n[[steps]]\nid = \"w\"\nkind = \"wait\"\n\
        duration = \"1ms\"\n";
    let drill = super::Drill::new(toml).arg("--metrics").arg("m.prom");
    super::make_db(&drill.path().join("src.db"), 10);
    let out = drill.run().expect_code(0);
    let mut written = metric_names(&std::fs::read_to_string(out.path().join("m.prom")).unwrap());
    // And those `status --format prom` writes.
    let status = super::restore_drill(out.path(), &["status", "artifacts", "--format", "prom"]);
    written.extend(metric_names(&status.expect_code(0).stdout));
    assert!(written.len() >= 11, "{written:?}");
    let readme = read("README.md");
    let docs: String = markdown_files().iter().map(|f| read(f)).collect();
    let problems = metric_problems(&written, &docs, &readme);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // A metric left out, or one misnamed, is found.
    let left_out = readme.replace("`restore_drill_gate_passed` of each gate", "each gate");
    let misnamed = docs.replace("restore_drill_rpo_seconds", "restore_drill_rpo_age_seconds");
    assert_eq!(
        metric_problems(&written, &docs, &left_out),
        ["README.md does not name `restore_drill_gate_passed`"]
    );
    assert_eq!(
        metric_problems(&written, &misnamed, &readme),
        ["the docs name `restore_drill_rpo_age_seconds`, which is no metric"]
    );
}
