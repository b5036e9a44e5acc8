//! Checks and gates that could pass while checking nothing (issue 16): each has a failing
//! input here, end to end, without a database server (these run under `make mutants`).

use super::receiver::echo;
use super::*;

// ---------------------------------------------------------------------------------------
// checksum `verify` with `files`

/// `data.bin` and `other.bin` beside the playbook; `SHA256SUMS` written by coreutils'
/// `sha256sum data.bin` (a relative path, from the directory the drill runs in); then
/// `corrupt` (or not), then `check` verifying the manifest for the files `listed`
/// (absolute paths, spliced in once the drill's directory is known).
fn verify_listed(corrupted: bool, listed: &[&str]) -> Outcome {
    let make = |dir: &Path| {
        let files: Vec<String> = listed
            .iter()
            .map(|f| dir.join(f).display().to_string())
            .collect();
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        let mut book = pb("t").step(exec("sums", "sha256sum data.bin > SHA256SUMS"));
        if corrupted {
            book = book.step(corrupt("data.bin"));
        }
        book.step(
            step("check", "checksum")
                .set("verify", "SHA256SUMS")
                .set("files", list(&files)),
        )
    };
    let d = pb("t")
        .drill()
        .file("data.bin", &vec![7u8; 4096])
        .file("other.bin", b"other");
    let playbook = make(d.path());
    d.rewrite(&playbook);
    d.run()
}

/// Item 1: it passed with `verified: 0`, the manifest's `data.bin` never equal to the
/// absolute path listed.
#[test]
fn a_corrupted_file_fails_verify_with_a_relative_manifest_and_absolute_files() {
    let out = verify_listed(true, &["data.bin"]).expect_code(1);
    let check = out.step("check");
    check.failed_with("data.bin: checksum mismatch");
    assert_eq!(check.output("verified"), 0);
    assert_eq!(check.output("failed"), 1);
}

#[test]
fn a_good_file_passes_verify_with_a_relative_manifest_and_absolute_files() {
    let out = verify_listed(false, &["data.bin"]).expect_code(0);
    let check = out.step("check");
    check.passed();
    assert_eq!(check.output("verified"), 1);
    assert_eq!(check.output("failed"), 0);
}

#[test]
fn a_listed_file_missing_from_the_manifest_fails_naming_it() {
    let out = verify_listed(false, &["data.bin", "other.bin"]).expect_code(1);
    let check = out.step("check");
    check.failed_with("other.bin: not in manifest SHA256SUMS");
    assert_eq!(check.output("verified"), 1);
    assert_eq!(check.output("failed"), 1);
}

// ---------------------------------------------------------------------------------------
// The RTO

/// The phases the record says were counted, for `rto_phases` (None: the default).
fn counted_phases(rto_phases: Option<&[&str]>) -> (Vec<String>, f64) {
    let mut book = pb("t")
        .gate("rto", "1h")
        .step(wait("prepare", "1ms").set("phase", "other").in_setup())
        .step(wait("backup", "1ms").set("phase", "backup"))
        .step(wait("prep", "1ms").set("phase", "setup"))
        .step(wait("restore", "1ms").set("phase", "restore"))
        .step(manual("decide", "decide", "Decide.").set("assume", "10m"))
        .step(wait("verify", "1ms").set("phase", "verify"));
    if let Some(phases) = rto_phases {
        book = book.gate("rto_phases", list(phases));
    }
    let out = book.run().expect_code(0);
    let rto = &out.record()["rto"];
    let counted = rto["counted_phases"].as_array().unwrap();
    let names = counted.iter().map(|p| p.as_str().unwrap().to_string());
    (names.collect(), rto["measured_s"].as_f64().unwrap())
}

/// The RTO counts every phase of `[[steps]]` but `backup` and `setup` by default, and
/// exactly the phases `rto_phases` names.
#[test]
fn the_rto_counts_exactly_the_phases_it_should() {
    let (phases, measured) = counted_phases(None);
    assert_eq!(phases, ["restore", "decide", "verify"]);
    assert!((600.0..601.0).contains(&measured), "{measured}");
    let (phases, measured) = counted_phases(Some(&["backup", "verify"]));
    assert_eq!(phases, ["backup", "verify"]);
    assert!(
        measured < 1.0,
        "the assumed 10m of `decide` was counted: {measured}"
    );
}

// ---------------------------------------------------------------------------------------
// SQLite checks against what the backup saw

/// Recreates `dispatches` without its foreign key (the rows and columns unchanged).
fn drop_the_foreign_key() -> Step {
    tamper(
        "sqlite",
        "{{ steps.restore.target }}",
        "PRAGMA foreign_keys = OFF;
CREATE TABLE copy AS SELECT * FROM dispatches;
DROP TABLE dispatches;
ALTER TABLE copy RENAME TO dispatches;",
    )
}

/// `foreign_keys` with `compare_to` on SQLite: fails when a key of the backup is gone.
#[test]
fn foreign_keys_compared_with_the_backup_fail_when_a_key_is_gone_on_sqlite() {
    let fks =
        builtin("fks_kept", "foreign_keys").set("compare_to", "{{ steps.backup.foreign_keys }}");
    let book = super::sqlite::playbook().edit("verify", |s| s.checks(fks));
    let out = super::sqlite::drill_of(book.clone()).run().expect_code(0);
    out.check("fks_kept").passed();
    assert_eq!(
        out.output("backup", "foreign_keys"),
        serde_json::json!(["dispatches(service_id) -> services(id)"])
    );

    let tampered = book.after("restore", drop_the_foreign_key());
    let out = super::sqlite::drill_of(tampered).run().expect_code(1);
    out.check("fks_kept")
        .failed_with("dispatches(service_id) -> services(id) is missing");
    out.check("counts").passed();
}

// ---------------------------------------------------------------------------------------
// Never restore onto the backup being restored

#[test]
fn a_restore_onto_the_backup_it_restores_is_refused() {
    let onto_itself = super::sqlite::playbook().edit("restore", |s| {
        s.set("target", "{{ steps.backup.path }}")
            .set("overwrite", true)
    });
    let out = super::sqlite::drill_of(onto_itself).run().expect_code(1);
    let backup = out.output("backup", "path");
    let backup = backup.as_str().unwrap();
    out.step("restore")
        .failed_with(&format!("refusing to write target {backup}"))
        .says("a source of this playbook (`from` of step `restore`)");
    out.step("verify").status("not_run");
}

/// A files restore onto its archive, or into the folder holding it, is refused and the
/// archive is left as it was (the drill's workdir is kept to look at it).
#[test]
fn a_files_restore_onto_the_archive_it_restores_is_refused() {
    for target in ["{{ steps.backup.path }}", "{{ drill.workdir }}/b"] {
        let book = pb("t")
            .step(files_backup(
                &["tree"],
                "{{ drill.workdir }}/b/tree.tar.zst",
            ))
            .step(files_restore("{{ steps.backup.path }}", target));
        let d = book.drill().file("tree/a.txt", b"a").arg("--keep-workdir");
        let out = d.run().expect_code(1);
        let _kept = out.kept_workdir();
        let archive = out.output("backup", "path");
        let archive = Path::new(archive.as_str().unwrap());
        out.step("restore")
            .failed()
            .says(&archive.parent().unwrap().display().to_string());
        let bytes = std::fs::metadata(archive).unwrap().len();
        assert_eq!(out.output("backup", "bytes"), bytes, "{target}");
    }
}

// ---------------------------------------------------------------------------------------
// Secrets in the metrics and in http headers

const SECRET: &str = "Hdr-s3cret-Vq8";

#[track_caller]
fn assert_no_secret(out: &Outcome) {
    let seen = everything_written(out);
    for ext in [".json", ".log", ".md", ".html", ".xml", ".prom"] {
        assert!(
            seen.iter().any(|(p, _)| p.ends_with(ext)),
            "no {ext} written"
        );
    }
    for (what, text) in seen {
        assert!(
            !text.contains(SECRET),
            "the secret leaked into {what}:\n{text}"
        );
    }
}

/// A run with every report: markdown, html, junit (`--junit`) and metrics (`--metrics`).
fn every_report(book: Playbook) -> Drill {
    let formats = list(&["markdown", "html", "junit"]);
    book.secret("token", "DRILL_CHECKS_SECRET")
        .table("report", "formats", formats)
        .drill()
        .env("DRILL_CHECKS_SECRET", SECRET)
        .arg("--metrics")
        .arg("artifacts/drill.prom")
}

/// A step's name holds the secret; its `max_duration` gate is named after it, and the
/// gate's name is a label of the metrics.
#[test]
fn the_metrics_hold_no_secret() {
    let slow = wait("slow", "20ms")
        .set("name", "log in as {{ secrets.token }}")
        .set("max_duration", "1ms");
    let out = every_report(pb("t").step(slow)).run().expect_code(1);
    let metrics = out.file("artifacts/drill.prom");
    assert!(
        metrics.contains("gate=\"log in as *** under 1ms\"} 0"),
        "the secret would be in the metrics: {metrics}"
    );
    assert_no_secret(&out);
}

/// A secret sent in a header reaches no artifact, however the probe ends: passing (the
/// body kept as an output), failing on its status or its body (the body quoted in the
/// error and the log tail).
#[test]
fn a_header_secret_reaches_no_artifact() {
    for (status, fields, code) in [
        (200, "", 0),
        (503, "", 1),
        (200, "expect_body_contains = \"healthy\"", 1),
    ] {
        let server = echo(status);
        let probe = http("probe", &format!("{}/health", server.base))
            .set(
                "headers",
                raw(r#"{ Authorization = "Bearer {{ secrets.token }}" }"#),
            )
            .fields(fields);
        let out = every_report(pb("t").step(probe)).run().expect_code(code);
        let sent: Vec<String> = server
            .requests()
            .into_iter()
            .flat_map(|r| r.headers)
            .collect();
        let sent = sent.join("\n");
        assert!(
            sent.contains(&format!("Bearer {SECRET}")),
            "the header was not sent: {sent}"
        );
        out.step("probe").output_has("body", "Bearer ***");
        if code == 1 {
            out.step("probe").says("Bearer ***");
        }
        assert_no_secret(&out);
    }
}

/// An `sql` step with `checks = []` and nothing to execute passed `validate` and the
/// run, green, having verified nothing (only a step without `checks` was refused).
#[test]
fn an_sql_step_with_no_checks_and_nothing_to_execute_is_refused() {
    let empty = step("verify", "sql")
        .set("engine", "sqlite")
        .set("database", "db.sqlite")
        .set("checks", raw("[]"));
    let book = pb("t").step(empty.clone());
    let said = "sql step `verify` (engine sqlite) needs one of `execute`, `checks` (its `checks` is empty: it would check nothing)";
    book.drill().validate().expect_code(2).stderr_has(said);
    book.drill().run().expect_code(2).stderr_has(said);
    // With something to execute it is a step of work, not a verification.
    let work = empty.set("execute", "CREATE TABLE t(a)");
    pb("t").step(work).drill().validate().expect_code(0);
}
