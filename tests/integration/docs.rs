//! The documentation's playbooks cannot drift from the tool: every ```` ```toml ```` block
//! of README.md and docs/*.md, every starter of templates/init/ and every playbook of
//! playbooks/ goes through the real `restore-drill validate`.
//!
//! The rule for a block of the markdown:
//! - with a top-level `version = ` line it is a **complete playbook**: it must validate as
//!   written, and run and pass on a bare machine (SQLite, files; one that needs a server
//!   belongs in playbooks/, whose suites run it against one). Each `{ env = "X" }` secret
//!   it declares is given a value, and a demo database lies at `artifacts/demo/cortex.db`.
//! - any other block is a **fragment**: it is validated inside a minimal playbook
//!   (`version = 1`, `[drill] name = ...` put before it, and a `wait` step after it when
//!   it has no `[[steps]]`, such as a `[notify]` table), and the only problems allowed are
//!   the names it leans on without showing them: a step, var or secret defined elsewhere
//!   ("template references unknown step/var/secret"). So a misspelt field, a field of
//!   another kind, a bad value or a missing required field fails this test.
//!
//! A block that is not TOML at all (`isolation = ...`) is not marked `toml`.

use std::path::Path;

use serde_json::Value;

use super::*;

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// What a fragment may lean on without showing it.
const ELSEWHERE: &[&str] = &[
    "template references unknown step `",
    "template references unknown var `",
    "template references unknown secret `",
];

struct Block {
    /// `file:line` of the block's first line.
    at: String,
    text: String,
}

impl Block {
    fn is_complete(&self) -> bool {
        self.text.lines().any(|l| l.starts_with("version ="))
    }
}

/// The ```` ```toml ```` blocks of `markdown` (an indented one, in a list, unindented).
fn toml_blocks(file: &str, markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let fence = line.trim();
        match &mut open {
            None if fence == "```toml" => open = Some((i + 2, indent, String::new())),
            Some((first, _, text)) if fence == "```" => {
                let at = format!("{file}:{first}");
                blocks.push(Block {
                    at,
                    text: std::mem::take(text),
                });
                open = None;
            }
            Some((_, indent, text)) => {
                let cut = line.len().min(*indent);
                text.push_str(line.get(cut..).unwrap_or(line));
                text.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// The `error:` lines of a validation.
fn errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .collect()
}

/// What is wrong with `block` (empty: nothing), each naming where it is.
fn problems(block: &Block) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let complete = block.is_complete();
    let text = match complete {
        true => block.text.clone(),
        false => {
            let has_steps = block.text.lines().any(|l| l.trim() == "[[steps]]");
            let end = match has_steps {
                true => "",
                false => "\n[[steps]]\nid = \"fragment_end\"\nkind = \"wait\"\nduration = \"1s\"\n",
            };
            format!(
                "version = 1\n[drill]\nname = \"doc-fragment\"\n\n{}{end}",
                block.text
            )
        }
    };
    std::fs::write(dir.path().join("playbook.toml"), &text).unwrap();
    let out = restore_drill(dir.path(), &["validate", "playbook.toml"]);
    let wrong: Vec<&str> = errors(&out.stderr)
        .into_iter()
        .filter(|e| complete || !ELSEWHERE.iter().any(|ok| e.starts_with(ok)))
        .collect();
    let fails = complete && out.code != 0;
    if wrong.is_empty() && !fails {
        return Vec::new();
    }
    let what = if complete { "playbook" } else { "fragment" };
    vec![format!(
        "{} (a {what}): {}\n{}",
        block.at,
        wrong.join("; "),
        out.stderr
    )]
}

/// Runs a complete example where a new user would: a demo database where the README's
/// playbook looks for it, each secret it declares set.
fn run_complete(block: &Block) -> Option<String> {
    let drill = Drill::new(&block.text);
    make_db(&drill.path().join("artifacts/demo/cortex.db"), 100);
    let secrets = block.text.split("{ env = \"").skip(1);
    let names: Vec<&str> = secrets.filter_map(|s| s.split('"').next()).collect();
    let drill = names
        .iter()
        .fold(drill, |d, name| d.env(name, "doc-example-value"));
    let out = drill.run();
    (out.code != 0).then(|| format!("{}: exit {}\n{}", block.at, out.code, out.stderr))
}

pub fn markdown_files() -> Vec<String> {
    let mut files = vec!["README.md".to_string()];
    let docs = std::fs::read_dir(Path::new(ROOT).join("docs")).unwrap();
    let mut more: Vec<String> = docs
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    more.sort();
    files.extend(more);
    files
}

#[test]
fn every_toml_example_of_the_docs_validates_and_the_complete_ones_pass() {
    let mut found = Vec::new();
    let mut wrong = Vec::new();
    for file in markdown_files() {
        let markdown = std::fs::read_to_string(Path::new(ROOT).join(&file)).unwrap();
        for block in toml_blocks(&file, &markdown) {
            let found_wrong = problems(&block);
            if block.is_complete() && found_wrong.is_empty() {
                wrong.extend(run_complete(&block));
            }
            wrong.extend(found_wrong);
            found.push(block);
        }
    }
    assert!(
        found.iter().any(Block::is_complete) && found.len() > 20,
        "the docs' examples were not found ({} blocks)",
        found.len()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn every_starter_and_shipped_playbook_validates() {
    for dir in ["templates/init", "playbooks"] {
        let mut files: Vec<String> = std::fs::read_dir(Path::new(ROOT).join(dir))
            .unwrap()
            .map(|e| format!("{dir}/{}", e.unwrap().file_name().to_string_lossy()))
            .filter(|n| n.ends_with(".toml"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no playbooks in {dir}");
        let args = [
            &["validate"],
            &files.iter().map(String::as_str).collect::<Vec<_>>()[..],
        ]
        .concat();
        let out = restore_drill(Path::new(ROOT), &args);
        assert_eq!(out.code, 0, "{dir}:\n{}", out.stderr);
        assert!(errors(&out.stderr).is_empty(), "{}", out.stderr);
    }
}

/// The checker itself: a misspelt field fails it, in a fragment as in a whole playbook,
/// and a fragment may lean on a step defined elsewhere, never on a field that is not.
#[test]
fn the_docs_check_fails_on_a_misspelt_field() {
    let markdown = "Text.\n\n```toml\n[[steps]]\nid = \"verify\"\nkind = \"sql\"\nengine = \"sqlite\"\ndatabase = \"{{ steps.restore.target }}\"\n[[steps.checks]]\nname = \"fks\"\nbuiltin = \"foreign_keys\"\n```\n\n- a list:\n\n  ```toml\n  [[steps]]\n  id = \"w\"\n  kind = \"wait\"\n  duration = \"1s\"\n  tiemout = \"5s\"\n  ```\n";
    let blocks = toml_blocks("x.md", markdown);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[1].at, "x.md:17");
    assert!(
        problems(&blocks[0]).is_empty(),
        "{:?}",
        problems(&blocks[0])
    );
    says(&blocks[1], "x.md:17 (a fragment): unknown field `tiemout`");

    let complete = Block {
        at: "y.md:3".into(),
        text: pb("t").step(wait("w", "1s").set("tiemout", "5s")).toml(),
    };
    assert!(complete.is_complete());
    says(&complete, "y.md:3 (a playbook): unknown field `tiemout`");
}

/// The problems the check finds in `block` include `problem`.
fn says(block: &Block, problem: &str) {
    let found = problems(block).join("");
    assert!(found.contains(problem), "{found}");
}

/// What the docs promise and the tool did not do, found by this audit.
///
/// "Undefined names are errors, caught by `validate` before anything runs": a misspelt
/// secret, in a step or in `[notify]`/`[evidence]` (rendered before the run), was not
/// (a step failed mid-drill with "undefined value", naming nothing).
#[test]
fn validate_names_an_unknown_secret_wherever_a_template_reads_it() {
    let toml = pb("t")
        .secret("token", "TOKEN")
        .table("notify", "ntfy", "https://ntfy.sh/{{ secrets.topic }}")
        .table("evidence", "sign_key", "{{ secrets.minisign_key }}")
        .step(exec("e", "echo {{ secrets.tokne }}"))
        .toml();
    let out = Drill::new(&toml).validate().expect_code(2);
    for name in ["topic", "minisign_key", "tokne"] {
        out.stderr_has(&format!("template references unknown secret `{name}`"));
    }
    out.stderr_has("did you mean `token`?");
    out.stderr_has("3 problems found");
    let notify = toml.lines().position(|l| l.starts_with("ntfy =")).unwrap() + 1;
    // The caret stands under the name, not at the value's quote (column 8).
    out.stderr_has(&format!("--> playbook.toml:{notify}:28"));
    // Declared, they are fine.
    let fixed = toml.replace("secrets.topic", "secrets.token");
    let fixed = fixed.replace("secrets.minisign_key", "secrets.token");
    let fixed = fixed.replace("secrets.tokne", "secrets.token");
    Drill::new(&fixed).validate().expect_code(0);
}

/// docs/postgres.md showed `compression = "zstd"` beside `format = "directory"`: pg_dump
/// then failed with "no output directory specified". `validate` refuses the pair at the
/// second field's place; where one is a template, the step says which fields clash,
/// before it connects (no server is needed to see either).
#[test]
fn a_zstd_compressed_directory_dump_is_refused_naming_both_fields() {
    let clash = "`compression = \"zstd\"` does not go with `format = \"directory\"`";
    let dump = |format: &str| {
        backup("postgres", "{{ drill.workdir }}/dump")
            .set("url", "postgres://app@127.0.0.1:1/app")
            .set("format", format)
            .set("compression", "zstd")
    };
    let toml = pb("t").step(dump("directory")).toml();
    let out = Drill::new(&toml).validate().expect_code(2);
    let line = toml
        .lines()
        .position(|l| l.starts_with("format ="))
        .unwrap()
        + 1;
    out.stderr_has(clash)
        .stderr_has(&format!("--> playbook.toml:{line}:10"))
        .stderr_has("a directory dump compresses its own files");
    // Known only to the run, it fails the step, not the drill's other steps.
    let templated = pb("t").var("f", "directory").step(dump("{{ vars.f }}"));
    templated.drill().validate().expect_code(0);
    templated
        .run()
        .expect_code(1)
        .step("backup")
        .failed_with(clash);
    // Either alone is fine.
    Drill::new(&pb("t").step(dump("custom")).toml())
        .validate()
        .expect_code(0);
}

/// The README's `RESTIC_DEMO_PASSWORD=demo restore-drill run playbooks/restic.toml`
/// panicked ("every step has a record"): the secret `demo` is redacted in the record's
/// step ids too (`demo_db` is `***_db` there), and the runner found each step's record
/// by its id. It finds it by position now, and so do the `max_duration` gate of a step
/// that did not pass (which went missing instead of being `not_evaluated`) and a custom
/// gate reading a skipped step (which passed on its `duration_s` of 0).
#[test]
fn a_secret_inside_a_step_id_is_hidden_and_the_drill_still_runs_to_its_verdict() {
    let toml = pb("t")
        .secret("pw", "DOC_PW")
        .step(exec("demo_ok", "true").set("max_duration", "1m"))
        .step(exec("demo_fails", "exit 3").set("max_duration", "1m"))
        .toml();
    let out = Drill::new(&toml).env("DOC_PW", "demo").run().expect_code(1);
    let record = out.record();
    let ids: Vec<&str> = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["***_ok", "***_fails"]);
    assert_eq!(gate_statuses(&record), ["passed", "not_evaluated"]);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);

    let skipped = pb("t")
        .secret("pw", "DOC_PW")
        .step(exec("demo_skipped", "true").set("when", "false"))
        .gate(
            "custom",
            raw("[{ name = \"quick\", check = \"steps.demo_skipped.duration_s < 1\" }]"),
        )
        .toml();
    let out = Drill::new(&skipped).env("DOC_PW", "demo").run();
    assert_eq!(gate_statuses(&out.record()), ["not_evaluated"]);
}

fn gate_statuses(record: &Value) -> Vec<&str> {
    let gates = record["gates"].as_array().unwrap();
    gates
        .iter()
        .map(|g| g["status"].as_str().unwrap())
        .collect()
}

/// The README lists `done_by` among a manual step's outputs (who did it, in a
/// walkthrough), but `validate` refused `{{ steps.fix.done_by }}` ("has no output"); in an
/// automated run `note` and `done_by` are none, so a template reading them still renders.
#[test]
fn a_manual_steps_done_by_and_note_can_be_read_after_it() {
    let echo = exec(
        "who",
        "echo 'done by {{ steps.fix.done_by }}, {{ steps.fix.note }}'",
    );
    let out = pb("t")
        .step(manual("fix", "decide", "Fix it."))
        .step(echo)
        .run()
        .expect_code(0);
    assert_eq!(out.output("fix", "done_by"), Value::Null);
    assert_eq!(out.output("who", "stdout"), "done by None, None");
}
