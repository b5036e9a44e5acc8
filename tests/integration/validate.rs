//! Invalid playbooks: exit 2, nothing run, every problem pointed at with file:line:col.

use super::*;

/// Runs `validate` and `run` on `toml`; both must exit 2, name `location` and show `snippet`
/// under a caret, and the run must create nothing.
fn rejects(toml: &str, message: &str, location: &str, snippet: &str) {
    let validate = Drill::new(toml).validate().expect_code(2);
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

/// As [`rejects`], with `help` said under the problem.
fn rejects_helping(toml: &str, (message, location, snippet): (&str, &str, &str), help: &str) {
    rejects(toml, message, location, snippet);
    Drill::new(toml).validate().stderr_has(help);
}

#[test]
fn an_unknown_field_is_pointed_at_with_a_suggestion() {
    let toml = pb("t").step(wait("w", "1s").set("tiemout", "5s")).toml();
    let refused = ("unknown field `tiemout`", "8:1", "8 | tiemout = \"5s\"");
    rejects_helping(&toml, refused, "did you mean `timeout`?");
}

#[test]
fn a_field_of_another_kind_is_refused() {
    let toml = pb("t").step(wait("w", "1s").set("source", "x.db")).toml();
    let message = "field `source` does not apply to a `wait` step";
    rejects(&toml, message, "8:1", "source = \"x.db\"");
}

#[test]
fn a_field_of_the_copy_kind_is_refused_elsewhere() {
    let toml = pb("t").step(wait("w", "1s").set("to", "s3://b/x/")).toml();
    let message = "field `to` does not apply to a `wait` step";
    rejects(&toml, message, "8:1", "to = \"s3://b/x/\"");
}

#[test]
fn a_remote_locate_without_output_is_refused() {
    let s3 = step("l", "locate").set("glob", "s3://bucket/db-*.zst");
    rejects(
        &pb("t").step(s3).toml(),
        "locate step `l` needs `output`",
        "5:6",
        "id = \"l\"",
    );
    let restic = step("l", "locate").fields("restic = { repository = \"/srv/restic\" }");
    rejects(
        &pb("t").step(restic).toml(),
        "locate step `l` needs `output`",
        "5:6",
        "id = \"l\"",
    );
    // A local file is used where it is.
    let local = step("l", "locate").set("glob", "backups/*.db");
    Drill::new(&pb("t").step(local).toml())
        .validate()
        .expect_code(0);
}

#[test]
fn an_unknown_backup_method_is_refused_with_a_suggestion() {
    let toml = pb("t")
        .step(
            backup("mysql", "x.sql")
                .set("url", "mysql://u@h/db")
                .set("method", "mariabackupp"),
        )
        .toml();
    let message = "`method` must be \"dump\" (mysqldump) or \"mariabackup\" (mariabackup), not \"mariabackupp\"";
    let refused = (message, "10:10", "method = ");
    rejects_helping(&toml, refused, "did you mean `mariabackup`?");
}

#[test]
fn a_field_the_backup_method_does_not_take_is_refused() {
    let base = backup("postgres", "base")
        .set("url", "postgres://u@h/db")
        .set("method", "basebackup")
        .set("digests", true);
    let toml = pb("t").step(base).toml();
    let message = "`digests` does not apply to `method = \"basebackup\"`";
    let refused = (message, "11:1", "digests = true");
    rejects_helping(&toml, refused, "digests need a dump's snapshot");
    let physical = backup("mysql", "x")
        .set("url", "mysql://u@h/db")
        .set("method", "mariabackup")
        .set("single_transaction", true);
    let message = "`single_transaction` does not apply to `method = \"mariabackup\"`";
    rejects(
        &pb("t").step(physical).toml(),
        message,
        "11:1",
        "single_transaction",
    );
}

#[test]
fn sample_on_a_check_says_where_it_belongs() {
    let digests = builtin("d", "table_digests").set("sample", raw("0.1"));
    let toml = pb("t")
        .step(sql("v", "sqlite", "x.db").checks([digests]))
        .toml();
    let refused = ("unknown field `sample`", "12:1", "sample = 0.1");
    rejects_helping(
        &toml,
        refused,
        "`sample` belongs on the backup step, beside `digests = true`",
    );
}

#[test]
fn a_wrong_type_is_pointed_at() {
    let toml = pb("t").step(step("w", "wait").set("duration", 5)).toml();
    let message = "invalid type: integer `5`, expected a string";
    rejects(&toml, message, "7:12", "duration = 5");
}

#[test]
fn a_duplicate_step_id_names_the_first() {
    let toml = pb("t").step([wait("w", "1s"), wait("w", "1s")]).toml();
    rejects(&toml, "duplicate step id `w`", "9:6", "id = \"w\"");
    Drill::new(&toml).validate().stderr_has("line 5");
}

#[test]
fn a_template_referencing_an_unknown_step_is_refused() {
    let restore = sqlite_restore("{{ steps.bakup.path }}", "t.db").set("id", "r");
    let toml = pb("t").step([wait("backup", "1s"), restore]).toml();
    let message = "template references unknown step `bakup`";
    rejects_helping(
        &toml,
        (message, "12:12", "from = "),
        "did you mean `backup`?",
    );
}

#[test]
fn a_template_referencing_a_later_step_is_refused() {
    let first = exec("first", "echo {{ steps.second.status }}");
    let toml = pb("t").step([first, wait("second", "1s")]).toml();
    let message = "references step `second`, which runs later";
    rejects(&toml, message, "7:16", "run = ");
}

#[test]
fn a_bad_duration_is_refused() {
    let toml = pb("t").step(wait("w", "soon")).toml();
    rejects(&toml, "bad duration `soon`", "7:12", "duration = \"soon\"");
    let locate = step("l", "locate")
        .fields("glob = \"s3://b/*.db\"\noutput = \"x.db\"\ns3 = { timeout = \"a fortnight\" }");
    let toml = pb("t").step(locate).toml();
    rejects(
        &toml,
        "bad duration `a fortnight`",
        "9:18",
        "timeout = \"a fortnight\"",
    );
}

#[test]
fn an_unknown_kind_or_engine_is_refused() {
    let toml = pb("t").step(step("w", "teleport")).toml();
    let snippet = "kind = \"teleport\"";
    rejects(&toml, "unknown value `teleport`", "6:8", snippet);
    let oracle = step("b", "backup")
        .set("engine", "oracle")
        .set("source", "a");
    let toml = pb("t").step(oracle.set("output", "b")).toml();
    let snippet = "engine = \"oracle\"";
    rejects(&toml, "unknown value `oracle`", "7:10", snippet);
}

#[test]
fn a_missing_required_field_is_refused() {
    let backup = step("b", "backup")
        .set("engine", "sqlite")
        .set("output", "b.db");
    let toml = pb("t").step(backup).toml();
    let message = "backup step `b` (engine sqlite) needs `source`";
    rejects(&toml, message, "5:6", "id = \"b\"");
    let toml = "version = 1\n[[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"1s\"\n";
    let out = Drill::new(toml).validate().expect_code(2);
    out.stderr_has("missing table `[drill]`");
}

#[test]
fn a_check_that_could_never_fail_is_refused() {
    let count = sql("v", "sqlite", "x.db").checks(check("count").set("query", "SELECT 1"));
    let toml = pb("t").step(count).toml();
    let message = "has a query but no expectation";
    rejects(&toml, message, "10:8", "name = \"count\"");
}

/// Two checks of one step on one name: results are kept by name, so a gate reading
/// `steps.v.checks['count']` (and the step's `checks` output) saw only one of them.
#[test]
fn two_checks_of_a_step_on_one_name_are_refused() {
    let twins = [query("count", "SELECT 1", 1), query("count", "SELECT 2", 2)];
    let toml = pb("t")
        .step(sql("v", "sqlite", "x.db").checks(twins))
        .toml();
    let message = "check `count` of step `v` has the name of check 1 of the step";
    rejects(&toml, message, "14:8", "name = \"count\"");
}

/// A step given both of two fields it takes one of used one and silently dropped the
/// other: `argv` ran and `run` did not; a checksum wrote `manifest` and never verified.
#[test]
fn a_step_given_both_of_two_exclusive_fields_is_refused() {
    let both = exec("e", "echo run").set("argv", list(&["echo", "argv"]));
    let message = "exec step `e` takes one command, not `run` and `argv`";
    rejects(&pb("t").step(both).toml(), message, "5:6", "id = \"e\"");
    let both = step("c", "checksum")
        .set("files", list(&["x.db"]))
        .set("manifest", "SUMS")
        .set("verify", "SUMS");
    let message = "checksum step `c` takes one manifest, not `manifest` and `verify`";
    rejects(&pb("t").step(both).toml(), message, "5:6", "id = \"c\"");
}

/// A written-out `pick` or copy `to` that the step refuses is refused before anything
/// runs (it was refused only when the step's turn came, after the backup and all).
#[test]
fn a_locate_pick_or_a_copy_to_the_step_refuses_is_refused() {
    let pick = step("l", "locate")
        .set("glob", "*.db")
        .set("pick", "newset");
    let message = "`pick` must be newest, oldest or random, not `newset`";
    rejects_helping(
        &pb("t").step(pick).toml(),
        (message, "8:8", "pick = \"newset\""),
        "did you mean `newest`?",
    );
    let to = step("c", "copy")
        .set("files", list(&["x.db"]))
        .set("to", "/srv/offsite/");
    let (toml, message) = (pb("t").step(to).toml(), "`to` must be an s3:// url");
    rejects(&toml, message, "8:6", "to = \"/srv/offsite/\"");
}

/// A playbook of no `[[steps]]` (here only a setup) ran and passed, exit 0, having
/// restored and checked nothing.
#[test]
fn a_playbook_without_steps_is_refused() {
    let toml = pb("t").step(wait("w", "1s").in_setup()).toml();
    rejects(&toml, "the playbook has no `[[steps]]`", "2:2", "[drill]");
}

#[test]
fn every_problem_is_reported_in_one_pass() {
    let toml = pb("t")
        .gate("rto", "a while")
        .step(wait("a", "1s").set("tiemout", "1s"))
        .step(wait("b", "later"))
        .step(exec("b", "{{ vars.nope }}"));
    let out = toml.drill().validate().expect_code(2);
    for expected in [
        "unknown field `tiemout`",
        "bad duration `a while`",
        "bad duration `later`",
        "duplicate step id `b`",
        "unknown var `nope`",
        "5 problems found",
    ] {
        out.stderr_has(expected);
    }
}

#[test]
fn a_toml_syntax_error_is_located() {
    let toml = pb("t").toml() + "[[steps]\nid = \"w\"\n";
    let out = Drill::new(&toml).validate().expect_code(2);
    out.stderr_has("--> playbook.toml:4:");
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
        for command in ["validate", "plan"] {
            let path = path.to_str().unwrap();
            restore_drill(&repo(""), &[command, path]).expect_code(0);
        }
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
        let out = restore_drill(&repo(""), &["schema", which]);
        let committed = std::fs::read_to_string(repo(file)).unwrap_or_default();
        assert!(
            out.stdout == committed,
            "{file} is stale: run `make schemas` and commit the result"
        );
    }
}

#[test]
fn the_artifact_of_a_run_matches_its_schema_shape() {
    let out = super::sqlite::drill_of(super::sqlite::playbook()).run();
    let out = out.expect_code(0);
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

/// A locate step with `repository` (restic) or borg, and an `s3` table.
fn locate_with_s3(source: &str, s3: &str) -> String {
    let locate = step("l", "locate").fields(&format!(
        "{source}\ns3 = {s3}\npaths = [\"/data/x.db\"]\noutput = \"x.db\""
    ));
    pb("t").step(locate).toml()
}

#[test]
fn an_s3_table_that_does_not_fit_the_repository_is_refused() {
    let keys = "{ access_key = \"k\", secret_key = \"s\" }";
    let restic = "restic = { repository = \"/srv/restic\" }";
    let toml = locate_with_s3(restic, keys);
    let message = "`s3` applies to a restic repository on S3 (`s3:...`), not `/srv/restic`";
    rejects(&toml, message, "8:1", "s3 = {");
    let borg = "borg = { repository = \"/srv/borg\" }";
    let toml = locate_with_s3(borg, keys);
    rejects(
        &toml,
        "`s3` does not apply to a borg repository",
        "8:1",
        "s3 = {",
    );
    let on_s3 = "restic = { repository = \"s3:http://127.0.0.1:9000/b/repo\" }";
    let toml = locate_with_s3(on_s3, "{ endpoint = \"http://127.0.0.1:9000\" }");
    let message = "`s3.endpoint` does not apply to a restic repository: restic takes the endpoint in the repository";
    rejects(&toml, message, "8:19", "endpoint = ");
    let toml = locate_with_s3(on_s3, "{ access_key = \"k\" }");
    rejects(
        &toml,
        "needs both `access_key` and `secret_key`",
        "8:1",
        "s3 = {",
    );
    // Every problem of one table in one pass.
    let all_wrong = "{ endpoint = \"http://h\", timeout = \"5m\", access_key = \"k\" }";
    let validate = Drill::new(&locate_with_s3(on_s3, all_wrong)).validate();
    validate
        .expect_code(2)
        .stderr_has("`s3.endpoint` does not apply")
        .stderr_has("`s3.timeout` does not apply")
        .stderr_has("needs both `access_key` and `secret_key`");
    let fits = locate_with_s3(on_s3, keys);
    Drill::new(&fits).validate().expect_code(0);
}

/// A zero `timeout` (a step's, a probe's request's, `ready`'s) ends the wait before it
/// began: refused at the value. A zero gate or `max_duration` is a target, and stays.
#[test]
fn a_zero_timeout_is_refused() {
    let url = "http://127.0.0.1:1/";
    for (step, field, location) in [
        (wait("w", "1s").set("timeout", "0s"), "timeout", "8:11"),
        (
            http("h", url).set("request_timeout", "0ms"),
            "request_timeout",
            "8:19",
        ),
        (
            service("s")
                .set("run", "sleep 9")
                .set("ready", raw("{ log_line = \"up\", timeout = \"0s\" }")),
            "timeout",
            "8:38",
        ),
    ] {
        let toml = pb("t").step(step).toml();
        let message = format!("a `{field}` of `0");
        rejects(&toml, &message, location, "gives up before anything starts");
    }
    let kept = pb("t")
        .gate("rto", "0s")
        .step(wait("w", "1ms").set("max_duration", "0s"));
    kept.drill().validate().expect_code(0);
}

/// `rto_phases` naming no phase a step of `[[steps]]` has (a typo) would leave the RTO
/// never measured: refused at its place, naming the phases there are (a list naming more
/// phases than the steps have passes). A `[notify]` table
/// without a channel would send nothing: refused too. Their good shapes pass.
#[test]
fn an_rto_phase_no_step_has_and_a_notify_without_a_channel_are_refused() {
    let step = || wait("w", "1ms").set("phase", "restore");
    let phases = |names: &[&str]| pb("t").gate("rto", "5m").gate("rto_phases", list(names));
    let typo = phases(&["restor", "verfy"]).step(step()).toml();
    let problem = (
        "no step of [[steps]] is in `restor` or `verfy`",
        "6:14",
        "\"restor\"",
    );
    rejects_helping(&typo, problem, "the phases of [[steps]]: restore");
    let silent = pb("t")
        .table("notify", "on", list(&["failure"]))
        .step(step())
        .toml();
    let problem = ("[notify] names no channel", "4:2", "[notify]");
    rejects_helping(&silent, problem, "set `healthchecks`, `webhook` or `ntfy`");

    phases(&["restore"])
        .step(step())
        .drill()
        .validate()
        .expect_code(0);
    let ntfy = pb("t")
        .table("notify", "ntfy", "https://ntfy.sh/t")
        .step(step());
    ntfy.drill().validate().expect_code(0);
}

/// A field of an engine that takes a closed set of values (`compression`, `format`,
/// `method`, `isolation`, `target`) given another is refused at the value, saying the
/// values the engine (and its backup method) takes: `validate` said OK and the drill failed
/// at the step, after the backup. Every value taken passes, and so does a templated one
/// (known only to the run, which checks it again).
#[test]
fn a_value_the_engine_does_not_take_is_refused_at_its_place() {
    let files = || files_backup(&["tree"], "x.tar");
    let pg = || backup("postgres", "x.dump").set("url", "postgres://u@h/db");
    let base = || pg().set("method", "basebackup");
    let pg_restore = || restore("postgres", "x.dump");
    let physical = || pg_restore().set("isolation", "ephemeral");
    let my = || backup("mysql", "x.sql").set("url", "mysql://u@h/db");
    let my_restore = || restore("mysql", "x.sql");
    let zstd_gzip_none = "must be \"zstd\", \"gzip\" or \"none\", not \"lz4\"";
    let dump = "with `method = \"dump\"` (the default), `format` must be \"custom\" or \"directory\", not \"tar\"";
    let docker = "`isolation` must be \"ephemeral\", not \"docker\"";
    let refused = [
        (files(), "compression", "lz4", zstd_gzip_none, ""),
        (my(), "compression", "lz4", zstd_gzip_none, ""),
        (
            pg(),
            "format",
            "tar",
            dump,
            "\"tar\" is a `format` of `method = \"basebackup\"` (pg_basebackup)",
        ),
        (
            base(),
            "format",
            "custom",
            "with `method = \"basebackup\"`, `format` must be \"plain\" or \"tar\", not \"custom\"",
            "\"custom\" is a `format` of `method = \"dump\"` (pg_dump)",
        ),
        (
            pg(),
            "compression",
            "gzip",
            "`compression` must be \"zstd\" or \"none\", not \"gzip\"",
            "",
        ),
        (
            pg(),
            "method",
            "mariabackup",
            "`method` must be \"dump\" (pg_dump) or \"basebackup\" (pg_basebackup), not \"mariabackup\"",
            "",
        ),
        (
            my(),
            "method",
            "basebackup",
            "`method` must be \"dump\" (mysqldump) or \"mariabackup\" (mariabackup), not \"basebackup\"",
            "",
        ),
        (pg_restore(), "isolation", "docker", docker, ""),
        (my_restore(), "isolation", "docker", docker, ""),
        (
            physical(),
            "target",
            "latst",
            "`target` must be \"immediate\" or \"latest\", not \"latst\"",
            "did you mean `latest`?",
        ),
    ];
    for (step, field, value, message, help) in refused {
        let toml = pb("t").step(step.set(field, value)).toml();
        let snippet = format!("{field} = \"{value}\"");
        let line = toml.lines().position(|l| l == snippet).expect("written") + 1;
        let location = format!("{line}:{}", field.len() + 4);
        match help {
            "" => rejects(&toml, message, &location, &snippet),
            help => rejects_helping(&toml, (message, &location, &snippet), help),
        }
    }

    let templated = "{{ vars.v }}";
    let taken = [
        (
            files(),
            "compression",
            &["zstd", "gzip", "none", templated][..],
        ),
        (my(), "compression", &["zstd", "gzip", "none"]),
        (my(), "method", &["dump", "mariabackup"]),
        (pg(), "format", &["custom", "directory", templated]),
        (base(), "format", &["plain", "tar"]),
        (
            pg().set("method", templated),
            "format",
            &["plain", "custom"],
        ),
        (pg(), "compression", &["zstd", "none"]),
        (pg(), "method", &["dump", "basebackup"]),
        (pg_restore(), "isolation", &["ephemeral", templated]),
        (my_restore(), "isolation", &["ephemeral"]),
        (physical(), "target", &["immediate", "latest", templated]),
    ];
    let mut good = pb("t").var("v", "x");
    for (n, (step, field, values)) in taken.into_iter().enumerate() {
        for (i, value) in values.iter().enumerate() {
            let step = step.clone().set("id", format!("s{n}_{i}"));
            good = good.step(step.set(field, *value));
        }
    }
    good.drill().validate().expect_code(0);
}

/// `jobs = 0`, `jobs` past 256 and a `sample` of NaN are refused at their place: they
/// passed `validate`, then failed the step mid-drill (`sample`), started pg_dump with
/// billions of jobs, or ran one job where none were asked (`jobs = 0`).
#[test]
fn numbers_out_of_range_are_refused_where_they_are_written() {
    let pg = |jobs: &str| {
        backup("postgres", "x.dump")
            .set("url", "postgres://u@h/db")
            .set("jobs", raw(jobs))
    };
    let sampled = sqlite_backup("x.db", "x.bak")
        .set("digests", true)
        .set("sample", raw("nan"));
    for (step, message, location, snippet) in [
        (
            pg("0"),
            "`jobs = 0` runs no job: give 1 or more",
            "10:8",
            "jobs = 0",
        ),
        (
            pg("4294967295"),
            "`jobs = 4294967295` is more than the limit of 256",
            "10:8",
            "jobs = 4294967295",
        ),
        (
            sampled,
            "`sample` must be a fraction of the rows above 0 and at most 1, such as 0.05, not NaN",
            "11:10",
            "sample = nan",
        ),
    ] {
        rejects(&pb("t").step(step).toml(), message, location, snippet);
    }
    // Each range's edges: its last values taken, the first ones past them refused.
    let edge = |id: &str, step: Step| step.set("id", id.to_string());
    let sampled = |sample: &str| {
        sqlite_backup("x.db", "x.bak")
            .set("digests", true)
            .set("sample", raw(sample))
    };
    let retried = |retries: &str| pg("1").set("retries", raw(retries));
    pb("t")
        .step(edge("j1", pg("1")))
        .step(edge("j256", pg("256")))
        .step(edge("r1000", retried("1000")))
        .step(edge("s1", sampled("1.0")))
        .step(edge("s_small", sampled("1e-9")))
        .drill()
        .validate()
        .expect_code(0);
    for (step, message) in [
        (pg("257"), "`jobs = 257` is more than the limit of 256"),
        (
            retried("1001"),
            "`retries = 1001` is more than the limit of 1000",
        ),
        (sampled("0.0"), "above 0 and at most 1, such as 0.05, not 0"),
        (
            sampled("1.0001"),
            "above 0 and at most 1, such as 0.05, not 1.0001",
        ),
    ] {
        let validate = pb("t").step(step).drill().validate().expect_code(2);
        validate.stderr_has(message);
    }
}

/// A path written where a local `locate` glob would find it, from that step on (its own
/// `output` too), is refused at its place: the next run would take the drill's copy for
/// the newest backup. A backup written there before the locate is the drill's own flow.
#[test]
fn a_write_among_the_backups_a_local_glob_reads_is_refused() {
    let locate = |output: &str| {
        step("latest", "locate").fields(&format!("glob = \"backups/*.db\"\noutput = \"{output}\""))
    };
    let own = pb("t").step(locate("backups/./restored.db")).toml();
    let message = "`output` of step `latest` is a backup the `glob` of step `latest` would find (backups/*.db)";
    let line = own.lines().position(|l| l.starts_with("output =")).unwrap() + 1;
    rejects(&own, message, &format!("{line}:10"), "output = ");
    let later = pb("t")
        .step(locate("out/a.db"))
        .step(sqlite_restore("{{ steps.latest.path }}", "backups/new.db"))
        .toml();
    let message = "`target` of step `restore` is a backup the `glob` of step `latest` would find";
    let line = later
        .lines()
        .position(|l| l.starts_with("target ="))
        .unwrap()
        + 1;
    rejects(&later, message, &format!("{line}:10"), "target = ");
    // Before the locate, in a folder below, or of another name: fine.
    let fine = pb("t")
        .step(sqlite_backup("db.sqlite", "backups/new.db"))
        .step(locate("out/a.db"))
        .step(sqlite_restore(
            "{{ steps.latest.path }}",
            "backups/old/a.db",
        ))
        .step(sqlite_restore("{{ steps.latest.path }}", "backups/a.db.txt").set("id", "again"))
        .toml();
    Drill::new(&fine).validate().expect_code(0);
}

/// `validate` of `toml` (as written) names each `(problem, line:column)` at its place with
/// a caret, and counts `problems` in all.
fn reports_each(toml: &str, expected: &[(&str, &str)], problems: usize) -> String {
    let out = Drill::new(toml).validate().expect_code(2);
    let blocks: Vec<&str> = out.stderr.split("\nerror: ").collect();
    for (message, at) in expected {
        let place = format!("--> playbook.toml:{at}\n");
        assert!(
            blocks
                .iter()
                .any(|b| b.contains(message) && b.contains(&place) && b.contains('^')),
            "missing {message:?} at {at} in:\n{}",
            out.stderr
        );
    }
    out.stderr_has(&format!("{problems} problems found"));
    out.stderr.clone()
}

#[test]
fn a_bad_field_of_drill_or_gates_hides_neither_the_next_nor_the_steps() {
    let toml = "version = 1\n[drill]\nname = \"t\"\nbogus = 1\nbogus2 = 2\n[gates]\n\
        rto = \"a while\"\nrtoo = \"1m\"\nrpoo = \"1m\"\n\
        [[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"later\"\n";
    let expected = [
        ("unknown field `bogus`", "4:1"),
        ("unknown field `bogus2`", "5:1"),
        ("bad duration `a while`", "7:7"),
        ("unknown field `rtoo`", "8:1"),
        ("unknown field `rpoo`", "9:1"),
        ("bad duration `later`", "13:12"),
    ];
    reports_each(toml, &expected, 6);
}

#[test]
fn a_bad_version_or_drill_table_hides_nothing_else() {
    let toml = "version = \"one\"\n[drill]\nname = 3\n\
        [[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"later\"\n";
    let expected = [
        ("expected u32", "1:11"),
        ("expected a string", "3:8"),
        ("bad duration `later`", "7:12"),
    ];
    reports_each(toml, &expected, 3);
    let toml = "[[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"later\"\n";
    let expected = [
        ("missing field `version`", "1:1"),
        ("missing table `[drill]`", "1:1"),
        ("bad duration `later`", "4:12"),
    ];
    reports_each(toml, &expected, 3);
}

#[test]
fn every_bad_field_of_a_nested_table_is_reported_with_the_rest_of_its_step() {
    let toml = "version = 1\n[drill]\nname = \"t\"\n[[steps]]\nid = \"l\"\nkind = \"locate\"\n\
        output = \"x\"\nrestic = { repository = \"/srv/r\", bogus = 1, bogus2 = 2 }\n\
        timeout = \"zz\"\n";
    let expected = [
        ("unknown field `bogus`", "8:35"),
        ("unknown field `bogus2`", "8:46"),
        ("bad duration `zz`", "9:11"),
    ];
    reports_each(toml, &expected, 3);
}

/// A step of `[[steps.checks]]` tables (`checks`, each a TOML text of fields).
fn sql_step_with_checks(checks: &[&str]) -> String {
    let mut toml = "version = 1\n[drill]\nname = \"t\"\n[[steps]]\nid = \"v\"\nkind = \"sql\"\n\
        engine = \"sqlite\"\ndatabase = \"x.db\"\ntimeout = \"zz\"\n"
        .to_string();
    for check in checks {
        toml += &format!("[[steps.checks]]\n{check}\n");
    }
    toml
}

#[test]
fn every_bad_check_of_a_list_is_reported_with_the_rest_of_its_step() {
    let toml = sql_step_with_checks(&[
        "name = \"a\"\nquery = \"select 1\"\nbogus = 1",
        "name = 3\nquery = \"select 1\"",
        "name = \"b\"\nquery = \"select 1\"\nbogus2 = 1\nexpect = 1",
    ]);
    let expected = [
        ("bad duration `zz`", "9:11"),
        ("unknown field `bogus`", "13:1"),
        ("expected a string", "15:8"),
        ("unknown field `bogus2`", "20:1"),
    ];
    reports_each(&toml, &expected, 4);
    // A check lacking the field another had wrong (left out there) is its own problem.
    let toml = sql_step_with_checks(&[
        "name = 3\nquery = \"select 1\"\nexpect = 1",
        "query = \"select 1\"\nexpect = 1",
    ]);
    let expected = [
        ("expected a string", "11:8"),
        ("missing field `name`", "14:1"),
    ];
    reports_each(&toml, &expected, 3);
    // An unknown field of a check leaves the check's own problems to be seen.
    let toml = sql_step_with_checks(&["name = \"a\"\nquery = \"select 1\"\nbogus = 1"]);
    let expected = [
        ("unknown field `bogus`", "13:1"),
        (
            "check `a` of step `v` has a query but no expectation",
            "11:8",
        ),
    ];
    reports_each(&toml, &expected, 3);
}

#[test]
fn every_problem_of_one_check_is_reported() {
    let toml = sql_step_with_checks(&[
        "name = \"a\"\nbuiltin = \"integrity\"",
        "name = \"a\"\nbuiltin = \"tables_exist\"",
    ]);
    let expected = [
        (
            "check `a` of step `v` `tables_exist` needs `tables`",
            "14:8",
        ),
        ("check `a` of step `v` has the name of check 1", "14:8"),
    ];
    reports_each(&toml, &expected, 3);
}

#[test]
fn every_bad_value_of_a_list_is_reported() {
    let toml = sql_step_with_checks(&["name = \"a\"\nbuiltin = \"tables_exist\"\ntables = [1, 2]"])
        + "[report]\nformats = [\"pdf\", \"doc\"]\n";
    let expected = [
        ("expected a string", "13:11"),
        ("expected a string", "13:14"),
        ("unknown value `pdf`", "15:12"),
        ("unknown value `doc`", "15:19"),
    ];
    // The check read without its `tables` would seem to lack them: not said.
    let stderr = reports_each(&toml, &expected, 5);
    assert!(!stderr.contains("needs `tables`"), "{stderr}");
}
