//! `locate`'s sources (a local glob; S3) and the `copy` step; S3 against a real S3-compatible server that checks
//! signatures (`s3store.rs`: moto_server with IAM authentication).

use super::s3store::{KEY_ENV, SECRET_ENV, Store, sha256};
use super::*;

const SUITE: &str = "s3";

/// The suite's S3 server, started on first use; None (the test skips) where it cannot run.
fn test_store() -> Option<&'static Store> {
    Store::shared(SUITE)
}

/// A playbook with one step, `latest`, locating `glob` in the test store into
/// `backup/latest.bin` of the drill's workdir... kept under the drill dir (`out/`).
fn locate(store: &Store, glob: &str, extra: &str) -> Playbook {
    pb("s3")
        .secret("s3_key", KEY_ENV)
        .secret("s3_secret", SECRET_ENV)
        .step(step("latest", "locate").fields(&format!(
            "glob = \"{glob}\"\ns3 = {}\noutput = \"out/latest.bin\"\n{extra}",
            store.table()
        )))
}

fn run(store: &Store, playbook: &Playbook) -> Outcome {
    run_with_secret(store, playbook, &store.secret_key)
}

fn run_with_secret(store: &Store, playbook: &Playbook, secret: &str) -> Outcome {
    playbook
        .drill()
        .env(KEY_ENV, &store.access_key)
        .env(SECRET_ENV, secret)
        .run()
}

fn outputs(outcome: &Outcome) -> serde_json::Value {
    outcome.record()["steps"][0]["outputs"].clone()
}

fn error(outcome: &Outcome) -> String {
    outcome.record()["steps"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// 70 MiB (above the 64 MiB from which transfers go in parts) of varied bytes: byte `i`
/// is `i * mul >> shift`.
fn large_body(mul: u32, shift: u32) -> Vec<u8> {
    (0..70u32 << 20)
        .map(|i| (i.wrapping_mul(mul) >> shift) as u8)
        .collect()
}

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// Three objects an hour apart (the newest an hour old), with a SHA256SUMS.
fn three_backups(store: &Store, bucket: &str) -> Vec<(String, Vec<u8>)> {
    store.bucket(bucket);
    let mut made = Vec::new();
    for i in 0..3u32 {
        let body = format!("backup number {i}\n")
            .repeat(1000 + i as usize)
            .into_bytes();
        let key = format!("hourly/cortex-{i}.db");
        store.put(bucket, &key, &body);
        store.backdate(bucket, &key, HOUR * (3 - i));
        made.push((key, body));
    }
    let sums: String = made
        .iter()
        .map(|(k, b)| format!("{}  {}\n", sha256(b), k.trim_start_matches("hourly/")))
        .collect();
    store.put(bucket, "hourly/SHA256SUMS", sums.as_bytes());
    made
}

#[test]
fn s3_locate_downloads_the_newest_or_a_random_object_verified_and_never_writes_the_bucket() {
    let Some(store) = test_store() else { return };
    let made = three_backups(store, "pick-bucket");
    let before = store.snapshot("pick-bucket");
    let out = run(store, &locate(store, "s3://pick-bucket/hourly/*.db", "")).expect_code(0);
    let o = outputs(&out);
    assert_eq!(o["url"], "s3://pick-bucket/hourly/cortex-2.db", "{o}");
    assert_eq!(o["candidates"], 3);
    assert_eq!(o["bytes"], made[2].1.len());
    let age = o["age_s"].as_f64().unwrap();
    assert!((3590.0..3700.0).contains(&age), "{o}");
    assert!(
        (o["largest_gap_s"].as_f64().unwrap() - 3600.0).abs() < 60.0,
        "{o}"
    );
    let copy = std::fs::read(out.path().join("out/latest.bin")).unwrap();
    assert_eq!(copy, made[2].1);
    let record = out.record();
    let file = &record["files"][0];
    assert!(
        file["path"].as_str().unwrap().ends_with("/out/latest.bin"),
        "{file}"
    );
    assert_eq!(file["step"], "latest");
    assert_eq!(file["sha256"], sha256(&made[2].1));
    out.log_has("verified: size, SHA256SUMS");
    let oldest = run(
        store,
        &locate(store, "s3://pick-bucket/hourly/*.db", "pick = \"oldest\""),
    )
    .expect_code(0);
    assert_eq!(
        outputs(&oldest)["url"],
        "s3://pick-bucket/hourly/cortex-0.db"
    );
    let mut seen = std::collections::HashSet::new();
    for _ in 0..8 {
        let out = run(
            store,
            &locate(store, "s3://pick-bucket/hourly/*.db", "pick = \"random\""),
        )
        .expect_code(0);
        let url = outputs(&out)["url"].as_str().unwrap().to_string();
        let (_, body) = made
            .iter()
            .find(|(k, _)| url.ends_with(k.as_str()))
            .unwrap();
        assert_eq!(
            &std::fs::read(out.path().join("out/latest.bin")).unwrap(),
            body
        );
        seen.insert(url);
    }
    assert!(seen.len() > 1, "8 random picks all chose {seen:?}");
    assert_eq!(
        store.snapshot("pick-bucket"),
        before,
        "the drill wrote to the source bucket"
    );
}

#[test]
fn s3_listing_pages_through_more_than_1000_objects() {
    let Some(store) = test_store() else { return };
    store.bucket("page-bucket");
    store.seed_files(
        "page-bucket",
        (0..1005).map(|i| (format!("p/obj-{i:04}.bin"), format!("{i}").into_bytes())),
    );
    store.seed_files("page-bucket", [("p/other.txt".to_string(), b"x".to_vec())]);
    let out = run(store, &locate(store, "s3://page-bucket/p/obj-*.bin", "")).expect_code(0);
    let o = outputs(&out);
    assert_eq!(o["candidates"], 1005, "{o}");
    out.log_has("1005 objects under s3://page-bucket/p/obj- (2 pages)");
}

#[test]
fn s3_a_wrong_secret_key_fails_with_403_and_is_printed_nowhere() {
    let Some(store) = test_store() else { return };
    three_backups(store, "auth-bucket");
    let wrong = "wrong-Secret-Value-4711";
    let out = run_with_secret(
        store,
        &locate(store, "s3://auth-bucket/hourly/*.db", ""),
        wrong,
    )
    .expect_code(1);
    let err = error(&out);
    assert!(err.contains("HTTP 403 SignatureDoesNotMatch"), "{err}");
    assert!(err.contains("check `s3.secret_key`"), "{err}");
    let artifacts = listing(&out.path().join("artifacts"));
    let mut everything = format!("{}{}", out.stdout, out.stderr);
    for name in artifacts {
        everything.push_str(
            &std::fs::read_to_string(out.path().join("artifacts").join(name)).unwrap_or_default(),
        );
    }
    assert!(
        !everything.contains(wrong) && !everything.contains("4711"),
        "the secret leaked:\n{everything}"
    );
    assert!(
        !out.path().join("out").exists(),
        "a failed locate left its output folder"
    );
}

/// Fails naming the object, and leaves neither `output` nor a temporary file.
fn expect_refused(out: &Outcome, url: &str, why: &str) {
    let err = error(out);
    assert!(err.contains(url) && err.contains(why), "{err}");
    let left = listing(&out.path().join("out"));
    assert!(left.is_empty(), "a refused download left {left:?}");
}

#[test]
fn s3_an_object_truncated_in_the_store_fails_naming_it() {
    let Some(store) = test_store() else { return };
    store.bucket("cut-bucket");
    let body = b"0123456789".repeat(50_000);
    store.put_with(
        "cut-bucket",
        "db/cortex.db",
        &body,
        &[("x-amz-meta-sha256", sha256(&body))],
    );
    store.truncate("cut-bucket", "db/cortex.db", 123_456);
    let out = run(store, &locate(store, "s3://cut-bucket/db/*.db", "")).expect_code(1);
    expect_refused(
        &out,
        "s3://cut-bucket/db/cortex.db",
        "is altered or truncated",
    );
}

#[test]
fn s3_an_object_its_sha256sums_disagrees_with_fails_naming_it() {
    let Some(store) = test_store() else { return };
    store.bucket("sums-bucket");
    store.put("sums-bucket", "d/a.db", b"the real backup");
    let sums = format!("{}  a.db\n", sha256(b"another backup"));
    store.put("sums-bucket", "d/SHA256SUMS", sums.as_bytes());
    let out = run(store, &locate(store, "s3://sums-bucket/d/*.db", "")).expect_code(1);
    expect_refused(&out, "s3://sums-bucket/d/a.db", "SHA256SUMS says");
}

#[test]
fn s3_a_glob_matches_case_sensitively_as_a_local_one_does() {
    let Some(store) = test_store() else { return };
    store.bucket("case-bucket");
    for (i, key) in ["hourly/0-Full.db", "hourly/1-full.db"].iter().enumerate() {
        store.put("case-bucket", key, key.as_bytes());
        store.backdate("case-bucket", key, HOUR * (2 - i as u32));
    }
    // `1-full.db` is newer, but another name: S3 keys, like file names, tell case.
    let out = run(
        store,
        &locate(store, "s3://case-bucket/hourly/*-Full.db", ""),
    )
    .expect_code(0);
    let o = outputs(&out);
    assert_eq!(o["url"], "s3://case-bucket/hourly/0-Full.db", "{o}");
    assert_eq!(o["candidates"], 1, "{o}");
}

#[test]
fn s3_an_empty_bucket_fails_saying_no_backup_matches() {
    let Some(store) = test_store() else { return };
    store.bucket("empty-bucket");
    let out = run(store, &locate(store, "s3://empty-bucket/*.db", "")).expect_code(1);
    assert!(
        error(&out).contains("no backup file matches `s3://empty-bucket/*.db`"),
        "{}",
        error(&out)
    );
}

#[test]
fn s3_expect_every_names_the_gap_and_still_reports_the_candidates() {
    let Some(store) = test_store() else { return };
    store.bucket("gap-bucket");
    for (i, hours_ago) in [9u32, 8, 2, 1].into_iter().enumerate() {
        let key = format!("h/{i}.db");
        store.put("gap-bucket", &key, b"x");
        store.backdate("gap-bucket", &key, HOUR * hours_ago);
    }
    let pb = |every: &str| {
        locate(
            store,
            "s3://gap-bucket/h/*.db",
            &format!("within = \"1d\"\nexpect_every = \"{every}\""),
        )
    };
    let out = run(store, &pb("90m")).expect_code(1);
    let err = error(&out);
    assert!(
        err.contains("a backup is expected every 90m, but no backup between"),
        "{err}"
    );
    assert!(err.contains("(6h)"), "{err}");
    let o = outputs(&out);
    assert_eq!(o["candidates"], 4);
    assert!(
        (o["largest_gap_s"].as_f64().unwrap() - 6.0 * 3600.0).abs() < 60.0,
        "{o}"
    );
    run(store, &pb("7h")).expect_code(0);
}

#[test]
fn copy_uploads_files_with_their_sha256_and_locate_verifies_them() {
    let Some(store) = test_store() else { return };
    store.bucket("copy-bucket");
    let before = b"an older line\n".to_vec();
    store.put(
        "copy-bucket",
        "offsite/SHA256SUMS",
        format!("{}  old.db\n", sha256(&before)).as_bytes(),
    );
    let playbook = locate(store, "s3://copy-bucket/offsite/*.db", "").before(
        "latest",
        [step("offsite", "copy").fields(&format!(
            "files = [\"data/*.db\"]\nto = \"s3://copy-bucket/offsite/\"\ns3 = {}",
            store.table()
        ))],
    );
    let a = b"database a".repeat(1000);
    let out = playbook
        .drill()
        .file("data/a.db", &a)
        .file("data/b.db", b"database b")
        .env(KEY_ENV, &store.access_key)
        .env(SECRET_ENV, &store.secret_key)
        .run()
        .expect_code(0);
    assert_eq!(store.get("copy-bucket", "offsite/a.db"), a);
    let sums = String::from_utf8(store.get("copy-bucket", "offsite/SHA256SUMS")).unwrap();
    assert!(sums.contains(&format!("{}  a.db", sha256(&a))), "{sums}");
    assert!(
        sums.contains(&format!("{}  b.db", sha256(b"database b"))),
        "{sums}"
    );
    assert!(
        sums.contains("  old.db"),
        "the copy dropped an older line: {sums}"
    );
    let record = out.record();
    let files: Vec<&str> = record["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert!(
        files.contains(&"s3://copy-bucket/offsite/a.db"),
        "{files:?}"
    );
    let log = out.log();
    for check in [
        "SHA256SUMS",
        "the store's sha256 checksum",
        "the object's sha256 metadata",
    ] {
        assert!(log.contains(check), "{check}: {log}");
    }
}

/// A `copy` adds nothing where a `locate` of this drill read its backups: a `to` that is
/// the glob's folder (its objects and `SHA256SUMS`), or a folder above it, is refused
/// naming the source, and the bucket is as it was. (A copy placed before the locate is
/// the drill's own backup flow, as above.)
#[test]
fn copy_into_the_folder_a_locate_read_is_refused() {
    let Some(store) = test_store() else { return };
    three_backups(store, "source-bucket");
    let before = store.snapshot("source-bucket");
    for (to, relation) in [
        ("s3://source-bucket/hourly/", "is"),
        ("s3://source-bucket", "contains"),
    ] {
        let copy = step("offsite", "copy").fields(&format!(
            "files = [\"out/latest.bin\"]\nto = \"{to}\"\ns3 = {}",
            store.table()
        ));
        let playbook = locate(store, "s3://source-bucket/hourly/*.db", "").step([copy]);
        let out = run(store, &playbook).expect_code(1);
        out.step("latest").passed();
        out.step("offsite").failed_with(&format!(
            "it {relation} s3://source-bucket/hourly/, a source of this playbook (`glob` of step `latest`)"
        ));
        assert_eq!(
            store.snapshot("source-bucket"),
            before,
            "{to}: the source changed"
        );
    }
}

/// A copy never overwrites: the bucket may hold the backups a drill reads. An object of
/// the same name with other content, or a `SHA256SUMS` line saying another sha256, fails
/// the step naming it, and the bucket is as it was; the same content again passes.
#[test]
fn copy_never_overwrites_an_object_or_a_listed_line() {
    let Some(store) = test_store() else { return };
    store.bucket("keep-bucket");
    let theirs = b"last night's production backup".to_vec();
    let at = |key: &str| format!("s3://keep-bucket/{key}");
    let copy = |files: &str| {
        let fields = format!(
            "files = [\"{files}\"]\nto = \"s3://keep-bucket/prod/\"\ns3 = {}",
            store.table()
        );
        pb("t")
            .secret("s3_key", KEY_ENV)
            .secret("s3_secret", SECRET_ENV)
            .step(step("offsite", "copy").fields(&fields))
    };
    let drill = |book: Playbook, name: &str, body: &[u8]| {
        book.drill()
            .file(&format!("data/{name}"), body)
            .env(KEY_ENV, &store.access_key)
            .env(SECRET_ENV, &store.secret_key)
            .run()
    };
    // An object there already, with other content (no sha256 metadata).
    store.put("keep-bucket", "prod/cortex.db", &theirs);
    let before = store.snapshot("keep-bucket");
    let out = drill(copy("data/cortex.db"), "cortex.db", b"the drill's copy").expect_code(1);
    let err = error(&out);
    assert!(
        err.contains(&at("prod/cortex.db")) && err.contains("never overwrites"),
        "{err}"
    );
    assert_eq!(store.snapshot("keep-bucket"), before, "the bucket changed");
    // A listed line with another sha256, for a name not yet uploaded.
    let sums = format!("{}  other.db\n", sha256(b"what production wrote"));
    store.put("keep-bucket", "prod/SHA256SUMS", sums.as_bytes());
    let before = store.snapshot("keep-bucket");
    let out = drill(copy("data/other.db"), "other.db", b"something else").expect_code(1);
    assert!(
        error(&out).contains("never changes a listed file's line"),
        "{}",
        error(&out)
    );
    assert_eq!(store.snapshot("keep-bucket"), before, "the bucket changed");
    // The same content as an object uploaded before: accepted.
    drill(copy("data/new.db"), "new.db", b"new").expect_code(0);
    drill(copy("data/new.db"), "new.db", b"new").expect_code(0);
    assert_eq!(store.get("keep-bucket", "prod/new.db"), b"new");
}

#[test]
fn a_sha256sums_changed_by_another_writer_meanwhile_keeps_their_line() {
    use restore_drill::sources::s3::ObjectAt;
    use restore_drill::sources::s3::upload::{Written, listed_sums, put_sums, update_sums};
    let Some(store) = test_store() else { return };
    store.bucket("sums-race");
    let client = store.client();
    let line = |name: &str, body: &[u8]| format!("{}  {name}\n", sha256(body));
    let ours = [("ours.db".to_string(), sha256(b"ours"))];
    for first in [None, Some(line("first.db", b"first"))] {
        let dir = if first.is_some() { "b/" } else { "a/" };
        let key = format!("{dir}SHA256SUMS");
        let at = ObjectAt {
            client: &client,
            bucket: "sums-race",
            key: &key,
        };
        if let Some(text) = &first {
            store.put("sums-race", &key, text.as_bytes());
        }
        // This copy reads the listing; another writer then adds its line.
        let mut read = listed_sums(at, &ours).unwrap();
        let theirs = format!(
            "{}{}",
            first.clone().unwrap_or_default(),
            line("theirs.db", b"x")
        );
        store.put("sums-race", &key, theirs.as_bytes());
        read.lines.push((ours[0].1.clone(), ours[0].0.clone()));
        let written = put_sums(at, &read).unwrap();
        assert_eq!(
            written,
            Written::Changed,
            "{dir}: a stale listing is refused"
        );
        assert_eq!(store.get("sums-race", &key), theirs.as_bytes(), "{dir}");
        // The copy's own write reads it again: every line is kept.
        update_sums(at, &ours).unwrap();
        let now = String::from_utf8(store.get("sums-race", &key)).unwrap();
        assert_eq!(
            now,
            format!("{theirs}{}", line("ours.db", b"ours")),
            "{dir}"
        );
    }
}

#[test]
fn locate_expect_every_on_local_files_names_the_gap() {
    let playbook = |every: &str| {
        pb("local-gap").step(step("latest", "locate").fields(&format!(
            "glob = \"backups/*.db\"\nwithin = \"1d\"\nexpect_every = \"{every}\""
        )))
    };
    let drill = playbook("90m").drill();
    for (name, hours_ago) in [("a", 30u32), ("b", 9), ("c", 8), ("d", 2), ("e", 1)] {
        let path = drill.path().join(format!("backups/{name}.db"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = std::fs::File::create(&path).unwrap();
        file.set_modified(std::time::SystemTime::now() - HOUR * hours_ago)
            .unwrap();
    }
    let out = drill.run().expect_code(1);
    let err = error(&out);
    assert!(
        err.contains("no backup between") && err.contains("(6h)"),
        "{err}"
    );
    let o = outputs(&out);
    assert_eq!(
        o["candidates"], 4,
        "the backup older than `within` is no candidate: {o}"
    );
    assert_eq!(o["path"], "backups/e.db");
}

/// From 64 MiB on, an object comes in parallel ranged GETs; the copy is still verified
/// whole (the SHA256SUMS and the ETag's md5 over the reassembled file).
#[test]
fn s3_a_large_object_comes_in_parallel_parts_and_is_verified_whole() {
    let Some(store) = test_store() else { return };
    store.bucket("big-bucket");
    let body = large_body(2654435761, 13);
    store.seed_files("big-bucket", [("b/big.db".to_string(), body.clone())]);
    let sums = format!("{}  big.db\n", sha256(&body));
    store.put("big-bucket", "b/SHA256SUMS", sums.as_bytes());
    let out = run(store, &locate(store, "s3://big-bucket/b/*.db", "")).expect_code(0);
    assert_eq!(outputs(&out)["sha256"], sha256(&body));
    assert!(std::fs::read(out.path().join("out/latest.bin")).unwrap() == body);
    out.log_has("SHA256SUMS, the store's ETag (md5)");
}

/// The shipped example (`init --engine s3`): its backup flow copies a backup into the
/// bucket, and the drill restores the newest one from there.
#[test]
fn the_s3_playbook_runs_against_the_test_store() {
    let Some(store) = test_store() else { return };
    store.bucket("backups");
    let drill = Drill::new(include_str!("../../playbooks/s3.toml"))
        .env("S3_ENDPOINT", &store.endpoint())
        .env("S3_ACCESS_KEY", &store.access_key)
        .env("S3_SECRET_KEY", &store.secret_key);
    let out = drill.run().expect_code(0);
    let record = out.record();
    let latest = &record["steps"][3];
    assert_eq!(latest["id"], "latest");
    assert!(
        latest["outputs"]["url"]
            .as_str()
            .unwrap()
            .starts_with("s3://backups/cortex/hourly/cortex-")
    );
}

/// A connection that breaks off mid-download (streamed, and in parallel parts) fails the
/// step naming the object, and leaves neither `output` nor a temporary file.
#[test]
fn s3_a_download_broken_off_fails_naming_the_object_and_leaves_nothing() {
    let Some(store) = test_store() else { return };
    store.bucket("broken-bucket");
    let small = b"0123456789abcdef".repeat(40_000);
    let big = vec![7u8; 70 << 20];
    store.seed_files(
        "broken-bucket",
        [("s/a.db".to_string(), small), ("l/b.db".to_string(), big)],
    );
    let proxy = store.cutting_proxy(200_000);
    let table = store
        .table()
        .replace(&store.endpoint(), &format!("http://127.0.0.1:{proxy}"));
    for (glob, url) in [
        ("s3://broken-bucket/s/*.db", "s3://broken-bucket/s/a.db"),
        ("s3://broken-bucket/l/*.db", "s3://broken-bucket/l/b.db"),
    ] {
        let playbook = pb("s3")
            .secret("s3_key", KEY_ENV)
            .secret("s3_secret", SECRET_ENV)
            .step(step("latest", "locate").fields(&format!(
                "glob = \"{glob}\"\ns3 = {table}\noutput = \"out/latest.bin\""
            )));
        let out = run(store, &playbook).expect_code(1);
        expect_refused(&out, url, "broke off");
    }
}

/// A store that stops sending mid-object fails the step after `s3.timeout` naming the
/// object, instead of hanging the drill.
#[test]
fn s3_a_store_that_stalls_mid_object_fails_after_the_timeout() {
    let Some(store) = test_store() else { return };
    store.bucket("stalled-bucket");
    let body = b"0123456789abcdef".repeat(40_000);
    store.seed_files("stalled-bucket", [("s/a.db".to_string(), body)]);
    let proxy = store.stalling_proxy(200_000, std::time::Duration::from_secs(60));
    let table = store
        .table()
        .replace(&store.endpoint(), &format!("http://127.0.0.1:{proxy}"))
        .replace(
            "path_style = true }",
            "path_style = true, timeout = \"3s\" }",
        );
    let playbook = pb("s3")
        .secret("s3_key", KEY_ENV)
        .secret("s3_secret", SECRET_ENV)
        .step(step("latest", "locate").fields(&format!(
            "glob = \"s3://stalled-bucket/s/*.db\"\ns3 = {table}\noutput = \"out/latest.bin\""
        )));
    let started = std::time::Instant::now();
    let out = run(store, &playbook).expect_code(1);
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    expect_refused(&out, "s3://stalled-bucket/s/a.db", "timeout");
}

/// A local backup copied to `output` stays a source: a later restore may not overwrite
/// the original.
#[test]
fn locate_a_local_backup_copied_to_output_keeps_the_original_a_source() {
    let drill = pb("local-copy")
        .step(
            step("latest", "locate").fields("glob = \"backups/*.db\"\noutput = \"copy/latest.db\""),
        )
        .step(
            sqlite_restore("{{ steps.latest.path }}", &at_run_time("backups/a.db"))
                .set("overwrite", true),
        )
        .drill();
    make_db(&drill.path().join("backups/a.db"), 10);
    let before = std::fs::read(drill.path().join("backups/a.db")).unwrap();
    let out = drill.run().expect_code(1);
    assert_eq!(outputs(&out)["url"], "backups/a.db");
    let copy = std::fs::read(out.path().join("copy/latest.db")).unwrap();
    assert_eq!(copy, before);
    let restore = &out.record()["steps"][1];
    let err = restore["error"].as_str().unwrap_or_default();
    // A source from before the step ran: every file its glob matches.
    assert!(
        err.contains("a source of this playbook (`glob` of step `latest`)"),
        "{restore}"
    );
    assert_eq!(
        std::fs::read(out.path().join("backups/a.db")).unwrap(),
        before
    );
}

/// A local backup, copied to `output` or used where it is, is checked against the
/// `SHA256SUMS` beside it, as an object in a bucket is: one altered since its sums were
/// written fails, naming both hashes (a copy was checked for its size alone, a file used
/// in place not at all).
#[test]
fn locate_a_local_backup_is_checked_against_the_sha256sums_beside_it() {
    let copied = "glob = \"backups/*.db\"\noutput = \"copy/latest.db\"";
    let cases = [(&b"the backup, before"[..], 1), (b"the backup", 0)];
    for ((summed, code), fields) in cases
        .into_iter()
        .flat_map(|c| [(c, copied), (c, "glob = \"backups/*.db\"")])
    {
        let sums = format!("{}  a.db\n", sha256_hex(summed));
        let out = pb("local-sums")
            .step(step("latest", "locate").fields(fields))
            .drill()
            .file("backups/a.db", b"the backup")
            .file("backups/SHA256SUMS", sums.as_bytes())
            .run()
            .expect_code(code);
        if code == 0 && fields == copied {
            out.log_has("verified: size, SHA256SUMS");
        } else if code == 0 {
            out.log_has("verified: SHA256SUMS");
            assert_eq!(outputs(&out)["sha256"], sha256_hex(b"the backup"));
        } else {
            let step = out.step("latest");
            step.failed_with("is altered or truncated")
                .says("SHA256SUMS says");
        }
    }
}

/// Every recovery point a local `glob` matches is a source, not only the one picked: a
/// restore over the older one is refused and it stays as it was.
#[test]
fn locate_protects_every_match_of_its_glob() {
    let drill = pb("local")
        .step(step("latest", "locate").fields("glob = \"backups/*.db\""))
        .step(
            sqlite_restore("{{ steps.latest.path }}", &at_run_time("backups/a.db"))
                .set("overwrite", true),
        )
        .drill();
    make_db(&drill.path().join("backups/a.db"), 10);
    make_db(&drill.path().join("backups/b.db"), 20);
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let older = std::fs::File::open(drill.path().join("backups/a.db")).unwrap();
    older.set_modified(hour_ago).unwrap();
    let before = std::fs::read(drill.path().join("backups/a.db")).unwrap();
    let out = drill.run().expect_code(1);
    assert_eq!(outputs(&out)["url"], "backups/b.db");
    let err = out.record()["steps"][1]["error"].to_string();
    assert!(err.contains("`glob` of step `latest`"), "{err}");
    assert_eq!(
        std::fs::read(out.path().join("backups/a.db")).unwrap(),
        before
    );
}

/// A new file the glob would match is a backup too: a locate's `output` among the backups
/// (through a symlink to their folder), or a later restore there, is refused before
/// anything is written, and the folder holds only the backups (the next run would take
/// the drill's copy for the newest one, and its schedule audit would count it).
#[test]
fn nothing_is_written_where_a_local_glob_would_find_it() {
    // Paths `validate` cannot see into (a link; a template it cannot render), so that
    // the run's own refusal is what is tested (`validate::a_write_among_the_backups_a_local_glob_reads_is_refused`).
    for (output, restore_to) in [
        ("into/restored.db", "out/a.db"),
        ("out/a.db", "backups/new.db"),
    ] {
        let restore_to = &at_run_time(restore_to);
        let drill = pb("local")
            .step(
                step("latest", "locate")
                    .fields(&format!("glob = \"backups/*.db\"\noutput = \"{output}\"")),
            )
            .step(sqlite_restore("{{ steps.latest.path }}", restore_to))
            .drill();
        make_db(&drill.path().join("backups/a.db"), 10);
        std::os::unix::fs::symlink("backups", drill.path().join("into")).unwrap();
        let out = drill.run().expect_code(1);
        let names: Vec<String> = std::fs::read_dir(out.path().join("backups"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.db"], "{output}, {restore_to}");
        let failed = if output.starts_with("into") {
            "latest"
        } else {
            "restore"
        };
        out.step(failed)
            .failed_with("a backup `glob` of step `latest` would find, a source of this playbook");
    }
}

/// A drill of `book` with two recovery points, `backups/db-0.bak` an hour older.
fn two_points(book: Playbook) -> Drill {
    let d = book
        .drill()
        .file("backups/db-0.bak", b"the older point")
        .file("backups/db-1.bak", b"the newest point");
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let older = std::fs::File::open(d.path().join("backups/db-0.bak")).unwrap();
    older.set_modified(hour_ago).unwrap();
    d
}

/// `locate` never replaces what is at its `output` unless this run made it: another
/// recovery point (`backups/db-0.bak`, once overwritten with the newest), or any file or
/// folder, is refused and kept as it was. A retried attempt replaces its own output.
#[test]
fn locate_never_replaces_an_existing_output_but_its_own() {
    let book = |output: &str| {
        pb("t").step(
            step("latest", "locate")
                .fields(&format!("glob = \"backups/*.bak\"\noutput = \"{output}\"")),
        )
    };
    for output in ["backups/db-0.bak", "precious/notes.txt", "precious"] {
        let d =
            two_points(book(&at_run_time(output))).file("precious/notes.txt", b"not the drill's");
        let out = d.run().expect_code(1);
        let err = error(&out);
        assert!(
            err.contains("already exists: locate never replaces"),
            "{output}: {err}"
        );
        let read = |p: &str| std::fs::read(out.path().join(p)).unwrap();
        assert_eq!(read("backups/db-0.bak"), b"the older point");
        assert_eq!(read("precious/notes.txt"), b"not the drill's");
    }
    // Two attempts, the first failing after its output is in place (a gap in the
    // schedule): the second replaces that output and fails the same way.
    let retried = book("out/latest.bak").edit("latest", |s| {
        s.fields("expect_every = \"1m\"\nretries = 1\nretry_delay = \"1ms\"")
    });
    let out = two_points(retried).run().expect_code(1);
    let step = &out.record()["steps"][0];
    assert_eq!(step["attempts"], 2, "{step}");
    assert!(error(&out).contains("no backup between"), "{}", error(&out));
}

/// From 64 MiB on `copy` uploads in parts; the object still carries the whole file's
/// sha256, which `locate` verifies on the way back.
#[test]
fn copy_uploads_a_large_file_in_parts_and_locate_brings_it_back_verified() {
    let Some(store) = test_store() else { return };
    store.bucket("multi-bucket");
    let body = large_body(40503, 7);
    let playbook = locate(store, "s3://multi-bucket/m/*.db", "").before(
        "latest",
        [step("offsite", "copy").fields(&format!(
            "files = [\"data/big.db\"]\nto = \"s3://multi-bucket/m\"\ns3 = {}",
            store.table()
        ))],
    );
    let out = playbook
        .drill()
        .file("data/big.db", &body)
        .env(KEY_ENV, &store.access_key)
        .env(SECRET_ENV, &store.secret_key)
        .run()
        .expect_code(0);
    assert!(store.get("multi-bucket", "m/big.db") == body);
    assert_eq!(out.record()["steps"][1]["outputs"]["sha256"], sha256(&body));
    let log = out.log();
    for check in ["SHA256SUMS", "the object's sha256 metadata"] {
        assert!(log.contains(check), "{check}: {log}");
    }
}
