//! What templates read is checked before anything runs: step outputs, check names, and
//! `env.X`; and one `validate` lists every problem of a playbook.

use super::*;

/// The SQLite drill with `edit` made to its `verify` step's row-count check.
fn with_counts_from(compare_to: &str) -> Playbook {
    super::sqlite::playbook().edit("verify", |s| {
        s.edit_check("counts", |c| c.set("compare_to", compare_to))
    })
}

#[test]
fn a_misspelt_output_is_refused_with_its_place_and_the_right_name() {
    let out = with_counts_from("{{ steps.backup.tablecounts }}")
        .drill()
        .validate()
        .expect_code(2);
    out.stderr_has("error: step `backup` has no output `tablecounts`")
        .stderr_has("did you mean `table_counts`?")
        .stderr_has("compare_to = \"{{ steps.backup.tablecounts }}\"");
    assert_has(&out.stderr, "--> playbook.toml:", "file:line:col");
    assert_has(&out.stderr, "^^^", "a caret");
    // An output no step kind has: the list of what the step has.
    let out = with_counts_from("{{ steps.restore.rows }}")
        .drill()
        .validate()
        .expect_code(2);
    out.stderr_has("step `restore` has no output `rows`")
        .stderr_has("a restore step outputs: status, duration_s");
}

#[test]
fn a_misspelt_check_name_in_a_gate_is_refused() {
    for (check, wrong) in [
        ("steps.verify.checks['count']", "count"),
        ("steps.verify.checks[\"integrty\"]", "integrty"),
        ("steps.verify.checks.fk", "fk"),
    ] {
        let gate = Table::new("[[gates.custom]]")
            .set("name", "g")
            .set("check", check);
        let out = super::sqlite::playbook()
            .section(gate)
            .drill()
            .validate()
            .expect_code(2);
        out.stderr_has(&format!("step `verify` has no check `{wrong}`"));
        assert_has(&out.stderr, "did you mean `", check);
    }
    let gate = Table::new("[[gates.custom]]").set("name", "g").set(
        "check",
        "steps.verify.checks['counts'] and steps.verify.checks.fks",
    );
    let good = super::sqlite::playbook().section(gate);
    good.drill().validate().expect_code(0);
}

/// `env.X` without a default: a warning (the playbook is valid), and a run without X
/// stops naming X, not "undefined value".
#[test]
fn env_without_a_default_warns_and_an_unset_one_is_named_at_run() {
    let var = "RESTORE_DRILL_TEST_SURELY_UNSET";
    let reads = |src: &str| pb("t").step(exec("e", &format!("echo {src}")));
    let plain = reads(&format!("{{{{ env.{var} }}}}"));
    let out = plain.drill().validate().expect_code(0);
    out.stderr_has(&format!("warning: `env.{var}` has no default"));
    let out = plain.run().expect_code(1);
    out.step("e")
        .says(&format!("environment variable `{var}` is not set"));
    plain.drill().env(var, "here").run().expect_code(0);
    let defaulted = reads(&format!("{{{{ env.{var} | default('x') }}}}"));
    let out = defaulted.drill().validate().expect_code(0);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    // In a var, the run stops before anything runs, naming the variable.
    let in_var = pb("t")
        .var("where", format!("{{{{ env.{var} }}}}").as_str())
        .step(wait("w", "1ms"));
    let out = in_var.run().expect_code(2);
    out.stderr_has(&format!("environment variable `{var}` is not set"));
    // In a gate: the gate fails naming it.
    let gate = Table::new("[[gates.custom]]")
        .set("name", "g")
        .set("check", format!("env.{var} == 'x'").as_str());
    let out = pb("t").section(gate).step(wait("w", "1ms")).run();
    let out = out.expect_code(1);
    out.gate("g")
        .says(&format!("environment variable `{var}` is not set"));
}

/// Five mistakes in three steps: one `validate` lists all five, in the order of the file.
#[test]
fn one_validate_lists_every_problem_of_a_playbook() {
    let toml = r#"version = 1
[drill]
name = "five"

[[steps]]
id = "backup"
kind = "backup"
engine = "sqlite"
source = "app.db"
output = "{{ drill.workdir }}/b.db"
tiemout = "5m"
retries = "three"

[[steps]]
id = "restore"
kind = "restore"
engine = "sqlite"
from = "{{ steps.backup.path }}"
target = "{{ drill.workdir }}/r.db"
retry_delay = "5 parsecs"
overwrite = "yes"

[[steps]]
id = "verify"
kind = "sql"
engine = "sqlite"
database = "{{ steps.restore.target }}"
[[steps.checks]]
name = "counts"
builtin = "table_counts"
compare_to = "{{ steps.backup.tablecounts }}"
"#;
    let out = Drill::new(toml).validate().expect_code(2);
    let expected = [
        ("unknown field `tiemout`", "11:1"),
        ("invalid type: string \"three\"", "12:11"),
        ("bad duration `5 parsecs`", "20:15"),
        ("invalid type: string \"yes\", expected a boolean", "21:13"),
        ("step `backup` has no output `tablecounts`", "31:18"),
    ];
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), expected.len(), "{}", out.stderr);
    for ((message, at), line) in expected.iter().zip(&errors) {
        assert_has(line, message, "in the order of the file");
        out.stderr_has(&format!("playbook.toml:{at}"));
    }
    out.stderr_has("5 problems found");
    // A bad value of a field the step cannot do without is reported once, not again
    // as missing; the step's other problems still are.
    let toml = pb("t")
        .step(wait("w", "1s").set("kind", "wiat").set("tiemout", "3s"))
        .toml();
    let out = Drill::new(&toml).validate().expect_code(2);
    out.stderr_has("unknown value `wiat`")
        .stderr_has("unknown field `tiemout`")
        .stderr_has("2 problems found");
}

/// Every output a step of `out` recorded is one its kind (or engine) declares, so that
/// `validate` never refuses a name a drill would have had. Called on drills of every
/// engine and step kind (here, and in the server and service tests).
pub fn outputs_are_declared(out: &Outcome) {
    let path = out.path().join("playbook.toml");
    let specs = restore_drill::engines::specs();
    let loaded = restore_drill::playbook::load(&path, &specs).unwrap();
    let record = out.record();
    for (_, step) in loaded.all_steps() {
        let declared = restore_drill::playbook::step_outputs(step, &specs).unwrap();
        let steps = record["steps"].as_array().unwrap();
        let recorded = steps.iter().find(|s| s["id"] == step.id.as_str()).unwrap();
        for key in recorded["outputs"].as_object().unwrap().keys() {
            let known = declared.contains(&key.as_str());
            assert!(known, "{}: `{key}` is not declared", step.id);
        }
    }
}

#[test]
fn every_output_a_step_records_is_declared() {
    let drills = [
        super::sqlite::drill_of(super::sqlite::playbook()),
        super::files::tree_drill(super::files::tree_playbook(None)),
    ];
    for d in drills {
        outputs_are_declared(&d.run().expect_code(0));
    }
}
