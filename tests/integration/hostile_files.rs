//! Paths that are not files: a named pipe (FIFO) nobody writes to, where a plain open
//! waits for ever, and `/dev/zero`, which never ends. Every read of a path the user
//! names is an error naming it, at once, in bounded memory: never a hang, never the
//! machine's memory.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::time::Duration;

use super::hostile::{Bounded, run_bounded, tool};
use super::*;

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// `restore-drill <args>` in `dir`, bounded in time and to 4 GiB of address space (a
/// file read whole would otherwise take the machine's memory), and sane.
fn bounded(dir: &Path, args: &[&str]) -> Bounded {
    bounded_cmd(tool(dir, args), &args.join(" "), Duration::from_secs(60))
}

/// `cmd` bounded in time (`limit`) and to 4 GiB of address space, and sane.
pub fn bounded_cmd(mut cmd: std::process::Command, what: &str, limit: Duration) -> Bounded {
    // SAFETY: setrlimit is async-signal-safe; it touches only this child's limits.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 4 << 30,
                rlim_max: 4 << 30,
            };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let out = run_bounded(cmd, limit);
    out.assert_sane(what);
    out
}

/// A FIFO given as the playbook, a report template or a record among others is an
/// error naming it: validate, plan, run, report, status, history and verify end.
#[test]
fn a_named_pipe_given_to_a_command_is_an_error_not_a_hang() {
    let d = pb("t").step(wait("w", "1ms")).run().expect_code(0);
    let dir = d.path();
    mkfifo(&dir.join("pipe.toml"));
    mkfifo(&dir.join("artifacts/restore_drill_29991231T000000Z.json"));
    let record = newest_artifact(&dir.join("artifacts"), "Z.json");
    let record = record.to_str().unwrap();
    let says = "is a named pipe (FIFO) that nothing was written to";
    for args in [
        &["validate", "pipe.toml"][..],
        &["plan", "pipe.toml"],
        &["run", "pipe.toml", "--artifacts", "a"],
        &["report", "artifacts/restore_drill_29991231T000000Z.json"],
        &["report", record, "--template", "pipe.toml"],
    ] {
        let out = bounded(dir, args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", tail(&out.stderr));
        assert_has(&out.stderr, says, format!("{args:?}"));
    }
    // A record among others must be a regular file, which the tool wrote.
    let says = "not a regular file (a FIFO, socket, device or directory)";
    for args in [&["status", "artifacts"][..], &["history", "artifacts"]] {
        let out = bounded(dir, args);
        assert_eq!(out.code, Some(0), "{args:?}: {}", tail(&out.stderr));
        assert_has(&out.stderr, says, format!("{args:?}"));
        assert_has(&out.stdout, "passed", format!("{args:?}"));
    }
    let out = bounded(dir, &["verify", "artifacts"]);
    assert_eq!(out.code, Some(1), "{}", tail(&out.stderr));
    assert_has(&out.stdout, says, "verify");
}

/// A step reading a FIFO or `/dev/zero` fails naming it, with no `timeout` to save it:
/// a SQLite database (it waited for ever; `/dev/zero` passed as an empty database), a
/// checksum manifest (`/dev/zero` was read until the memory ran out) and an age
/// identity file.
#[test]
fn a_step_reading_a_named_pipe_or_dev_zero_fails_naming_it() {
    let fifo = "{{ drill.playbook_dir }}/pipe";
    let out = "{{ drill.workdir }}/out";
    let age = raw("{ age_identity = \"/dev/zero\" }");
    let steps = [
        sqlite_backup(fifo, out).set("id", "backup_pipe"),
        sqlite_backup("/dev/zero", out).set("id", "backup_zero"),
        sql("query_pipe", "sqlite", fifo).checks([builtin("ok", "integrity")]),
        step("manifest_pipe", "checksum").set("verify", fifo),
        step("manifest_zero", "checksum").set("verify", "/dev/zero"),
        step("identity_zero", "locate")
            .set("glob", "{{ drill.playbook_dir }}/playbook.toml")
            .set("decrypt", age)
            .set("output", out),
    ];
    let d = pb("t")
        .step(steps.map(|s| s.set("continue_on_failure", true)))
        .drill();
    mkfifo(&d.path().join("pipe"));
    let dir = d.dir_for_tests();
    let run = bounded(dir.path(), &["run", "playbook.toml", "--artifacts", "a"]);
    assert_eq!(run.code, Some(1), "{}", tail(&run.stderr));
    let record = newest_record(&dir.path().join("a"));
    let error = |id: &str| {
        let steps = record["steps"].as_array().unwrap();
        let step = steps.iter().find(|s| s["id"] == id).unwrap();
        assert_eq!(step["status"], "failed", "{step:#}");
        step["error"].as_str().unwrap().to_string()
    };
    for (id, says) in [
        ("backup_pipe", "database ./pipe is not a regular file"),
        ("backup_zero", "database /dev/zero is not a regular file"),
        ("query_pipe", "database ./pipe is not a regular file"),
        (
            "manifest_pipe",
            "cannot read manifest ./pipe: is a named pipe",
        ),
        (
            "manifest_zero",
            "cannot read manifest /dev/zero: larger than the limit",
        ),
        (
            "identity_zero",
            "identity file: larger than the limit of 1 MiB",
        ),
    ] {
        assert_has(&error(id), says, id);
    }
}

/// A check whose query returns a 24 MB text and one returning 200,000 rows keep a
/// record of kilobytes (the first 4 KiB of a text, the first 100 rows), which `report`
/// reads back; they made one past its 64 MiB limit (three copies of the text).
#[test]
fn a_check_query_returning_a_blob_or_a_table_keeps_a_small_record() {
    let rows = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) SELECT i FROM n";
    let checks = [
        query("blob", "SELECT hex(zeroblob(12000000))", "x"),
        check("table")
            .set("query", rows)
            .set("expect_rows", raw("[[1]]")),
    ];
    let d = pb("t")
        .step(sql("q", "sqlite", "db.sqlite").checks(checks))
        .drill();
    rusqlite::Connection::open(d.path().join("db.sqlite"))
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER)")
        .unwrap();
    let out = d.run().expect_code(1);
    let json = newest_artifact(&out.path().join("artifacts"), ".json");
    let size = std::fs::metadata(&json).unwrap().len();
    assert!(size < 1 << 20, "a record of {size} bytes");
    let record = out.record();
    let blob = &record["steps"][0]["checks"][0];
    assert_has(
        blob["actual"].as_str().unwrap(),
        "… (24000000 bytes)",
        "blob",
    );
    assert_has(
        blob["detail"].as_str().unwrap(),
        "… (24000000 bytes)",
        "blob",
    );
    let table = record["steps"][0]["checks"][1]["actual"]
        .as_array()
        .unwrap();
    assert_eq!(table.len(), 101, "{:?}", &table[..3]);
    assert_eq!(table[100], "… and 199900 more");
    let json = json.to_str().unwrap();
    restore_drill(out.path(), &["report", json]).expect_code(0);
}
