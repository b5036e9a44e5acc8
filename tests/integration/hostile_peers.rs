//! Hostile peers of the sources: a real S3-compatible server on 127.0.0.1 whose listing
//! never ends, and a stand-in `restic` (a real shell script first on PATH) that prints
//! without end. Each `locate` fails naming what is wrong, in bounded time (60 s) and
//! memory (4 GiB of address space, and a maximum resident set measured): never a hang,
//! never the machine's memory.

use std::io::{BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use super::hostile::{Bounded, tool};
use super::hostile_files::bounded_cmd;
use super::receiver::read_head;
use super::*;

/// A real HTTP server on 127.0.0.1 on which `answer(target, stream)` answers every
/// request (its path and query), each connection on a thread of its own.
fn serve_with(answer: impl Fn(&str, &mut TcpStream) + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let answer = std::sync::Arc::clone(&answer);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (line, _) = read_head(&mut reader);
                answer(line.split(' ').nth(1).unwrap_or_default(), &mut stream);
            });
        }
    });
    base
}

/// A server (see [`serve_with`]) that answers every request 200 with `answer(target)`.
fn serve(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> String {
    serve_with(move |target, stream| reply(stream, 200, &answer(target)))
}

/// A whole answer of `status` with `body`; the connection is then closed.
fn reply(stream: &mut TcpStream, status: u16, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A ListObjectsV2 page of `keys` that says more follow, at `next`.
fn truncated_page(keys: impl Iterator<Item = String>, next: &str) -> String {
    let contents: String = keys
        .map(|k| {
            format!("<Contents><Key>{k}</Key><LastModified>2026-11-28T03:00:00.000Z</LastModified><Size>1</Size></Contents>")
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?><ListBucketResult><IsTruncated>true</IsTruncated>{contents}<NextContinuationToken>{next}</NextContinuationToken></ListBucketResult>"
    )
}

/// Runs `playbook` in its drill directory, with `env`, bounded (see [`bounded_cmd`]) to
/// `limit` seconds: it must end failed (exit 1). The run and its record.
fn run_failing(playbook: &Playbook, env: &[(&str, &str)], limit: u64) -> (Bounded, Value) {
    let dir = playbook.drill().dir_for_tests();
    let mut cmd = tool(dir.path(), &["run", "playbook.toml", "--artifacts", "a"]);
    cmd.envs(env.iter().copied());
    let run = bounded_cmd(cmd, "run", Duration::from_secs(limit));
    assert_eq!(run.code, Some(1), "{}", tail(&run.stderr));
    (run, newest_record(&dir.path().join("a")))
}

/// The error of step `id` of `record`, which must have failed.
fn failed_step(record: &Value, id: &str) -> String {
    let steps = record["steps"].as_array().unwrap();
    let step = steps.iter().find(|s| s["id"] == id).unwrap();
    assert_eq!(step["status"], "failed", "{step:#}");
    step["error"].as_str().unwrap_or_default().to_string()
}

/// A store whose listing never ends is given up on, naming the listing, with no step
/// `timeout` to save it: the same continuation token again (it looped for ever), new
/// full pages without end (it looped, its memory growing, until the machine's ran out)
/// (pages of 5000 objects, as a store may send) and new empty pages without end.
#[test]
fn an_s3_listing_that_never_ends_fails_instead_of_looping() {
    let base = serve(|target| {
        let page: u64 = target
            .split("continuation-token=")
            .nth(1)
            .and_then(|t| t.split('&').next()?.parse().ok())
            .unwrap_or(0);
        let keys = |n: u64| (0..n).map(move |i| format!("p/{page}-{i}.db"));
        match target.split('/').nth(1).unwrap_or_default() {
            "same" => truncated_page(keys(1), "7"),
            "full" => truncated_page(keys(5000), &(page + 1).to_string()),
            _ => truncated_page(keys(0), &(page + 1).to_string()),
        }
    });
    let locate = |bucket: &str| {
        step(bucket, "locate")
            .set("glob", format!("s3://{bucket}/p/*.db"))
            .set("output", format!("{{{{ drill.workdir }}}}/{bucket}.db"))
            .set("continue_on_failure", true)
            .fields(&format!(
                "s3 = {{ endpoint = \"{base}\", path_style = true }}"
            ))
    };
    let playbook = pb("t").step(["same", "full", "empty"].map(locate));
    // A million objects take seconds to read in a debug build on a busy machine.
    let (_, record) = run_failing(&playbook, &[], 180);
    for (id, says) in [
        (
            "same",
            "listing s3://same/p/: the store gave the same continuation token twice",
        ),
        (
            "full",
            "listing s3://full/p/: more than 1,000,000 objects; name a narrower prefix",
        ),
        (
            "empty",
            "listing s3://empty/p/: the store's listing did not end after 2,000 pages",
        ),
    ] {
        assert_has(&failed_step(&record, id), says, id);
    }
}

/// An object listed at 1 byte whose GET sends a body without end (chunked, a KiB every
/// 10 ms) fails at once, naming the sizes: the download was written to the disk until
/// the request's timeout (5 minutes) went by.
#[test]
fn an_s3_object_longer_than_listed_is_not_downloaded_without_end() {
    let base = serve_with(|target, stream| {
        if target.starts_with("/b/?") {
            let page = truncated_page(std::iter::once("p/a.db".to_string()), "");
            return reply(stream, 200, &page.replace("true", "false"));
        }
        if target.ends_with("SHA256SUMS") {
            return reply(stream, 404, "");
        }
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
        let mut sent = stream.write_all(head.as_bytes());
        while sent.is_ok() {
            sent = stream.write_all(chunk.as_bytes());
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let playbook = pb("t").step(
        step("get", "locate")
            .set("glob", "s3://b/p/*.db")
            .set("output", "{{ drill.workdir }}/a.db")
            .fields(&format!(
                "s3 = {{ endpoint = \"{base}\", path_style = true }}"
            )),
    );
    let (run, record) = run_failing(&playbook, &[], 60);
    assert_has(
        &failed_step(&record, "get"),
        "s3://b/p/a.db is truncated or altered: 2 bytes downloaded, the listing says 1",
        "get",
    );
    assert!(run.elapsed < Duration::from_secs(30), "{:?}", run.elapsed);
}

/// A stand-in `restic` that never ends its JSON (it was read until the memory ran out),
/// prints an endless line of `ls --json` (likewise; its `dump` looks like a tar archive,
/// which makes the path listed), or fills its stderr with 512 MiB
/// before failing (read whole to explain the failure): each `locate` fails naming it,
/// and the run's memory stays under 256 MiB.
#[test]
fn a_restic_printing_without_end_is_stopped_in_bounded_memory() {
    let bin = tempfile::tempdir().unwrap();
    let script = r#"#!/bin/sh
case "$* $RESTIC_REPOSITORY" in
  *snapshots*endless_json*) printf '['; exec yes '{"id":"abcdef12","time":"2026-11-28T03:00:00Z"},' ;;
  *snapshots*loud*) head -c 536870912 /dev/zero | tr '\0' e >&2; exit 1 ;;
  *snapshots*) echo '[{"id":"abcdef12","time":"2026-11-28T03:00:00Z"}]' ;;
  ls*|*" ls "*) exec tr '\0' x </dev/zero ;;
  dump*|*" dump "*) exec head -c 1024 /dev/zero ;;
  *) exit 1 ;;
esac
"#;
    write_program(&bin.path().join("restic"), script);
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let locate = |id: &str| {
        step(id, "locate")
            .set("paths", list(&["/db/cortex.db"]))
            .set("output", format!("{{{{ drill.workdir }}}}/{id}.db"))
            .set("continue_on_failure", true)
            .fields(&format!(
                "restic = {{ repository = \"/nonexistent/{id}\", password = \"{{{{ secrets.pw }}}}\" }}"
            ))
    };
    let playbook = pb("t")
        .secret("pw", "REPO_PW")
        .step(["endless_json", "endless_line", "loud"].map(locate));
    let (run, record) = run_failing(&playbook, &[("PATH", &path), ("REPO_PW", "pw")], 60);
    for (id, says) in [
        (
            "endless_json",
            "restic snapshots printed JSON longer than 64 MiB (the limit)",
        ),
        ("endless_line", "restic ls printed a line longer than 1 MiB"),
        // Its tail starts inside the one long line: the cut is marked.
        ("loud", "restic snapshots exited with 1: …eeee"),
    ] {
        assert_has(&failed_step(&record, id), says, id);
    }
    assert!(
        run.max_rss < 256 << 20,
        "the run held {} MiB at once",
        run.max_rss >> 20
    );
}

/// An executable shell script at `path`.
fn write_program(path: &Path, script: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `history` and `verify` over records that each hold a 16 MiB output keep what they show
/// of each record only: their memory does not grow with the records (it grew by the
/// size of every record read; 24 records of 40 MiB took 1 GiB).
#[test]
fn history_and_verify_memory_stays_flat_over_large_records() {
    let d = pb("t").step(wait("w", "1ms")).run().expect_code(0);
    let mut record = newest_record(&d.path().join("artifacts"));
    record["steps"][0]["outputs"]["pad"] = Value::String("x".repeat(16 << 20));
    let mut held = |records: usize, command: &str| {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..records {
            let ts = format!("20261101T{i:02}0000Z");
            record["run_id"] = format!("t-{ts}-1").into();
            let path = dir.path().join(format!("restore_drill_{ts}.json"));
            std::fs::write(path, serde_json::to_vec(&record).unwrap()).unwrap();
        }
        let out = bounded_cmd(
            tool(dir.path(), &[command, "."]),
            command,
            Duration::from_secs(120),
        );
        assert_ne!(out.code, Some(2), "{}", tail(&out.stderr));
        out.max_rss
    };
    for command in ["history", "verify"] {
        let (few, many) = (held(2, command), held(10, command));
        assert!(
            many < few + (64 << 20),
            "{command}: {} MiB for 2 records, {} MiB for 10",
            few >> 20,
            many >> 20
        );
    }
}
