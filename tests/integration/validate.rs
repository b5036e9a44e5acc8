//! Invalid playbooks: exit 2, nothing run, every problem pointed at with file:line:col.

use super::*;

/// Runs `validate` and `run` on `toml`; both must exit 2, name `location` and show `snippet`
/// under a caret, and the run must create nothing.
fn rejects(toml: &str, message: &str, location: &str, snippet: &str) {
    let d = Drill::new(toml);
    let validate = d.subcommand("validate").run().expect_code(2);
    let err = &validate.stderr;
    assert!(err.contains(message), "missing {message:?} in:\n{err}");
    assert!(
        err.contains(&format!("--> playbook.toml:{location}")),
        "missing location {location} in:\n{err}"
    );
    assert!(
        err.contains(snippet),
        "missing snippet {snippet:?} in:\n{err}"
    );
    assert!(err.contains('^'), "no caret in:\n{err}");
    let run = Drill::new(toml).run().expect_code(2);
    assert!(
        !run.path().join("artifacts").exists(),
        "an invalid playbook ran"
    );
}

const HEAD: &str = "version = 1\n[drill]\nname = \"t\"\n";

#[test]
fn an_unknown_field_is_pointed_at_with_a_suggestion() {
    let toml = format!(
        "{HEAD}[[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"1s\"\ntiemout = \"5s\"\n"
    );
    rejects(
        &toml,
        "unknown field `tiemout`",
        "8:1",
        "8 | tiemout = \"5s\"",
    );
    let out = Drill::new(&toml).subcommand("validate").run();
    assert!(out.stderr.contains("did you mean `timeout`?"));
}

#[test]
fn a_field_of_another_kind_is_refused() {
    let toml = format!(
        "{HEAD}[[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"1s\"\nsource = \"x.db\"\n"
    );
    rejects(
        &toml,
        "field `source` does not apply to a `wait` step",
        "8:1",
        "source = \"x.db\"",
    );
}

#[test]
fn a_wrong_type_is_pointed_at() {
    let toml = format!("{HEAD}[[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = 5\n");
    rejects(
        &toml,
        "invalid type: integer `5`, expected a string",
        "7:12",
        "duration = 5",
    );
}

#[test]
fn a_duplicate_step_id_names_the_first() {
    let step = "[[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"1s\"\n";
    let toml = format!("{HEAD}{step}{step}");
    rejects(&toml, "duplicate step id `w`", "9:6", "id = \"w\"");
    assert!(
        Drill::new(&toml)
            .subcommand("validate")
            .run()
            .stderr
            .contains("line 5")
    );
}

#[test]
fn a_template_referencing_an_unknown_step_is_refused() {
    let toml = format!(
        "{HEAD}[[steps]]\nid = \"backup\"\nkind = \"wait\"\nduration = \"1s\"\n[[steps]]\nid = \"r\"\nkind = \"restore\"\nengine = \"sqlite\"\nfrom = \"{{{{ steps.bakup.path }}}}\"\ntarget = \"t.db\"\n"
    );
    rejects(
        &toml,
        "template references unknown step `bakup`",
        "12:8",
        "from = ",
    );
    assert!(
        Drill::new(&toml)
            .subcommand("validate")
            .run()
            .stderr
            .contains("did you mean `backup`?")
    );
}

#[test]
fn a_template_referencing_a_later_step_is_refused() {
    let toml = format!(
        "{HEAD}[[steps]]\nid = \"first\"\nkind = \"exec\"\nrun = \"echo {{{{ steps.second.status }}}}\"\n[[steps]]\nid = \"second\"\nkind = \"wait\"\nduration = \"1s\"\n"
    );
    rejects(
        &toml,
        "references step `second`, which runs later",
        "7:7",
        "run = ",
    );
}

#[test]
fn a_bad_duration_is_refused() {
    let toml = format!("{HEAD}[[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"soon\"\n");
    rejects(&toml, "bad duration `soon`", "7:12", "duration = \"soon\"");
}

#[test]
fn an_unknown_kind_or_engine_is_refused() {
    let toml = format!("{HEAD}[[steps]]\nid = \"w\"\nkind = \"teleport\"\n");
    rejects(
        &toml,
        "unknown value `teleport`",
        "6:8",
        "kind = \"teleport\"",
    );
    let toml = format!(
        "{HEAD}[[steps]]\nid = \"b\"\nkind = \"backup\"\nengine = \"oracle\"\nsource = \"a\"\noutput = \"b\"\n"
    );
    rejects(
        &toml,
        "unknown value `oracle`",
        "7:10",
        "engine = \"oracle\"",
    );
}

#[test]
fn a_missing_required_field_is_refused() {
    let toml = format!(
        "{HEAD}[[steps]]\nid = \"b\"\nkind = \"backup\"\nengine = \"sqlite\"\noutput = \"b.db\"\n"
    );
    rejects(
        &toml,
        "backup step `b` (engine sqlite) needs `source`",
        "5:6",
        "id = \"b\"",
    );
    let toml = "version = 1\n[[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"1s\"\n";
    let out = Drill::new(toml).subcommand("validate").run().expect_code(2);
    assert!(
        out.stderr.contains("missing table `[drill]`"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_check_that_could_never_fail_is_refused() {
    let toml = format!(
        "{HEAD}[[steps]]\nid = \"v\"\nkind = \"sql\"\nengine = \"sqlite\"\ndatabase = \"x.db\"\n[[steps.checks]]\nname = \"count\"\nquery = \"SELECT 1\"\n"
    );
    rejects(
        &toml,
        "has a query but no expectation",
        "10:8",
        "name = \"count\"",
    );
}

#[test]
fn every_problem_is_reported_in_one_pass() {
    let toml = format!(
        "{HEAD}[gates]\nrto = \"a while\"\n[[steps]]\nid = \"a\"\nkind = \"wait\"\nduration = \"1s\"\ntiemout = \"1s\"\n[[steps]]\nid = \"b\"\nkind = \"wait\"\nduration = \"later\"\n[[steps]]\nid = \"b\"\nkind = \"exec\"\nrun = \"{{{{ vars.nope }}}}\"\n"
    );
    let out = Drill::new(&toml)
        .subcommand("validate")
        .run()
        .expect_code(2);
    for expected in [
        "unknown field `tiemout`",
        "bad duration `a while`",
        "bad duration `later`",
        "duplicate step id `b`",
        "unknown var `nope`",
        "5 problems found",
    ] {
        assert!(
            out.stderr.contains(expected),
            "missing {expected:?} in:\n{}",
            out.stderr
        );
    }
}

#[test]
fn a_toml_syntax_error_is_located() {
    let toml = format!("{HEAD}[[steps]\nid = \"w\"\n");
    let out = Drill::new(&toml)
        .subcommand("validate")
        .run()
        .expect_code(2);
    assert!(
        out.stderr.contains("--> playbook.toml:4:"),
        "{}",
        out.stderr
    );
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn every_shipped_playbook_is_valid_and_declares_its_schema() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo("playbooks")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("#:schema ../schemas/playbook.schema.json\n"),
            "{} must start with the #:schema line",
            path.display()
        );
        let out = Command::new(env!("CARGO_BIN_EXE_restore-drill"))
            .arg("validate")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let plan = Command::new(env!("CARGO_BIN_EXE_restore-drill"))
            .arg("plan")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            plan.status.success(),
            "plan {}: {}",
            path.display(),
            String::from_utf8_lossy(&plan.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 1);
}

#[test]
fn the_committed_schemas_are_current() {
    for (which, file) in [
        ("playbook", "schemas/playbook.schema.json"),
        ("artifact", "schemas/restore_drill.schema.json"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_restore-drill"))
            .args(["schema", which])
            .output()
            .unwrap();
        let committed = std::fs::read_to_string(repo(file)).unwrap_or_default();
        assert!(
            String::from_utf8_lossy(&out.stdout) == committed,
            "{file} is stale: run `make schemas` and commit the result"
        );
    }
}

#[test]
fn the_artifact_of_a_run_matches_its_schema_shape() {
    let out = super::sqlite::drill("", "", "").run().expect_code(0);
    let record = out.record();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("schemas/restore_drill.schema.json")).unwrap(),
    )
    .unwrap();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for key in required {
        assert!(record.get(key).is_some(), "record lacks required {key}");
    }
}
