//! Fleets in a bucket (issue 15, item 4): `run --artifacts s3://bucket/prefix/` uploads
//! the record and reports to `prefix/<drill>/` and chains the next run to it; `status`
//! and `history s3://...` read the records there as they read a tree of folders. Against
//! the real S3 server of `s3store.rs` (s3s-fs, which checks every signature).

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::fleet::{DAY, put, template};
use super::receiver::replying;
use super::s3store::{Store, sha256};
use super::*;

const SUITE: &str = "fleet-s3";

/// The suite's store (None: skipped), a new bucket `name` in it, and its environment.
fn store_with(name: &str) -> Option<(&'static Store, String, Aws)> {
    let store = Store::shared(SUITE)?;
    Some((store, store.bucket(name), Aws::of(store)))
}

/// The store as the AWS environment names it.
struct Aws {
    endpoint: String,
    key: String,
    secret: String,
}

impl Aws {
    fn of(store: &Store) -> Self {
        Self {
            endpoint: store.endpoint(),
            key: store.access_key.clone(),
            secret: store.secret_key.clone(),
        }
    }

    /// `restore-drill <args>` in `dir`, with this environment only (nothing of the
    /// machine's own AWS settings), temporary files in `dir/tmp`.
    fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_restore-drill"));
        cmd.current_dir(dir).args(args).env("TMPDIR", &tmp);
        for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
            cmd.env_remove(name);
        }
        cmd.env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", &self.key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret);
        cmd
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Ran {
        let out = self.command(dir, args).output().expect("run restore-drill");
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// `run playbook.toml --artifacts <url>` of `drill`'s folder.
fn run_into(aws: &Aws, drill: &Drill, url: &str) -> Ran {
    aws.run(
        drill.path(),
        &["run", "playbook.toml", "--artifacts", url, "--quiet"],
    )
}

/// The keys under `prefix` in `bucket`, sorted.
fn keys(store: &Store, bucket: &str, prefix: &str) -> Vec<String> {
    let cancel = restore_drill::proc::Cancel::default();
    let (objects, _) = store.client().list(bucket, prefix, &cancel).unwrap();
    let mut keys: Vec<String> = objects.into_iter().map(|o| o.key).collect();
    keys.sort();
    keys
}

/// A drill of one short step with markdown and HTML reports (and an RTO for the chart).
fn charted(name: &str) -> Drill {
    pb(name)
        .table("report", "formats", list(&["markdown", "html"]))
        .gate("rto", "1h")
        .step(wait("w", "1ms"))
        .drill()
}

#[test]
fn a_run_into_s3_uploads_its_record_and_reports_and_the_next_run_chains_to_it() {
    let Some((store, bucket, aws)) = store_with("fleet-runs") else {
        return;
    };
    let drill = charted("orders");
    let url = format!("s3://{bucket}/nightly/");
    let first = run_into(&aws, &drill, &url).expect_code(0);
    assert_has(
        &first.stderr,
        "uploaded 4 files to s3://fleet-runs/nightly/orders/",
        "run",
    );
    let uploaded = keys(store, &bucket, "nightly/");
    let names: Vec<&str> = uploaded
        .iter()
        .map(|k| k.strip_prefix("nightly/orders/restore_drill_").unwrap())
        .map(|n| n.split_once('.').unwrap().1)
        .collect();
    assert_eq!(names, ["html", "json", "log", "md"], "{uploaded:?}");
    let json_key = uploaded.iter().find(|k| k.ends_with(".json")).unwrap();
    let first_bytes = store.get(&bucket, json_key);
    let record: Value = serde_json::from_slice(&first_bytes).unwrap();
    assert_eq!(record["status"], "passed");
    assert_eq!(record["drill"]["name"], "orders");
    assert_eq!(
        record["previous"],
        Value::Null,
        "the first run of the drill"
    );
    assert_eq!(
        record["artifacts"]["json"],
        format!("s3://{bucket}/{json_key}")
    );
    let log_key = uploaded.iter().find(|k| k.ends_with(".log")).unwrap();
    assert_eq!(
        record["artifacts"]["log"],
        format!("s3://{bucket}/{log_key}")
    );
    assert!(
        !drill.path().join("artifacts").exists(),
        "nothing written locally"
    );
    assert_eq!(
        listing(&drill.path().join("tmp")),
        Vec::<String>::new(),
        "staging removed"
    );

    let second = run_into(&aws, &drill, &url).expect_code(0);
    assert_has(&second.stderr, "uploaded 4 files", "the second run");
    let now = keys(store, &bucket, "nightly/orders/");
    assert_eq!(now.len(), 8, "{now:?}");
    let newest = now.iter().rfind(|k| k.ends_with(".json")).unwrap();
    assert_ne!(newest, json_key);
    let again: Value = serde_json::from_slice(&store.get(&bucket, newest)).unwrap();
    assert_eq!(again["previous"]["run_id"], record["run_id"]);
    assert_eq!(again["previous"]["sha256"], sha256(&first_bytes));
    // The HTML report charts both passes: the first one's record was fetched.
    let html_key = now.iter().rfind(|k| k.ends_with(".html")).unwrap();
    let html = String::from_utf8(store.get(&bucket, html_key)).unwrap();
    assert_eq!(
        html.matches("<circle class=\"run\"").count(),
        2,
        "a point per pass"
    );
}

/// Copies every file under `tree` into `bucket` under `prefix`.
fn upload_tree(store: &Store, bucket: &str, prefix: &str, tree: &Path) {
    let files = listing(tree)
        .into_iter()
        .filter(|rel| tree.join(rel).is_file())
        .map(|rel| {
            (
                format!("{prefix}{rel}"),
                std::fs::read(tree.join(&rel)).unwrap(),
            )
        });
    store.seed_files(bucket, files);
}

#[test]
fn status_and_history_of_an_s3_prefix_show_what_they_show_of_the_same_tree() {
    let Some((store, bucket, aws)) = store_with("fleet-status") else {
        return;
    };
    let t = template();
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    for (i, rto) in [(40, 100.0), (30, 120.0), (2, 90.0)] {
        put(root, &t, "orders", "passed", i * DAY, rto);
    }
    put(&root.join("eu"), &t, "billing", "passed", 50 * DAY, 60.0);
    put(&root.join("eu"), &t, "ledger", "failed", 3 * DAY, 60.0);
    upload_tree(store, &bucket, "fleet/", root);
    // Beside the records, what is not one is passed over.
    store.put(&bucket, "fleet/orders/notes.txt", b"not a record");
    let url = format!("s3://{bucket}/fleet");
    let here = drill_dir();
    for args in [
        &["status", "--max-age", "35d"][..],
        &["status", "--format", "prom"],
        &["history"],
    ] {
        let local = restore_drill(root, &[args, &["."]].concat());
        let remote = aws.run(here.path(), &[args, &[url.as_str()]].concat());
        assert_eq!(remote.code, local.code, "{args:?}: {}", remote.stderr);
        assert_eq!(remote.stdout, local.stdout, "{args:?}: {}", remote.stderr);
    }
    let status = aws.run(here.path(), &["status", &url]).expect_code(1);
    assert_eq!(status.stdout.lines().count(), 6, "{}", status.stdout);
    assert_has(
        &status.stdout,
        "stale: the last passing run of drill `billing`",
        "status",
    );
    let json = aws.run(here.path(), &["status", &url, "--format", "json"]);
    let json: Value = serde_json::from_str(&json.expect_code(1).stdout).unwrap();
    let rows: Vec<(&str, bool)> = json["drills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["drill"].as_str().unwrap(), d["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        rows,
        [("billing", false), ("ledger", false), ("orders", true)]
    );
    aws.run(here.path(), &["status", &url, "--drill", "orders"])
        .expect_code(0);
    let empty = aws.run(here.path(), &["status", &format!("s3://{bucket}/none/")]);
    assert_has(
        &empty.expect_code(1).stdout,
        "missing: no passing run of any drill in s3://fleet-status/none/",
        "an empty prefix",
    );
}

/// An empty folder to run commands in.
fn drill_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// `text` does not hold `secret`.
#[track_caller]
fn no_secret(ran: &Ran, secret: &str) {
    for text in [&ran.stdout, &ran.stderr] {
        assert!(!text.contains(secret), "the secret was printed:\n{text}");
    }
}

#[test]
fn wrong_credentials_or_an_unreachable_store_fail_clearly_and_run_nothing() {
    let Some((store, bucket, _)) = store_with("fleet-refused") else {
        return;
    };
    let wrong = Aws {
        secret: "wrong-secret-Zq81".into(),
        ..Aws::of(store)
    };
    let here = drill_dir();
    let url = format!("s3://{bucket}/p/");
    let status = wrong.run(here.path(), &["status", &url]).expect_code(2);
    assert_has(
        &status.stderr,
        "cannot read s3://fleet-refused/p/",
        "status",
    );
    assert_has(&status.stderr, "SignatureDoesNotMatch", "status");
    assert_has(&status.stderr, "AWS_SECRET_ACCESS_KEY", "the hint");
    no_secret(&status, &wrong.secret);
    no_secret(&status, &store.secret_key);

    let drill = charted("refused");
    let run = run_into(&wrong, &drill, &url).expect_code(3);
    assert_has(&run.stderr, "SignatureDoesNotMatch", "run");
    assert_has(&run.stderr, "nothing was run", "run");
    no_secret(&run, &wrong.secret);
    assert_eq!(keys(store, &bucket, ""), Vec::<String>::new());

    // Down, and its url holds a password (a proxy's): named, the password `***`.
    let down = Aws {
        endpoint: format!("http://drill:Endpoint-Pw7@127.0.0.1:{}", free_port()),
        ..Aws::of(store)
    };
    let status = down.run(here.path(), &["history", &url]).expect_code(2);
    assert_has(
        &status.stderr,
        "http://drill:***@127.0.0.1:",
        "the endpoint",
    );
    no_secret(&status, "Endpoint-Pw7");
    assert_has(
        &status.stderr,
        "cannot read s3://fleet-refused/p/",
        "history",
    );
    assert_has(
        &status.stderr,
        "127.0.0.1",
        "the endpoint it could not reach",
    );
    let run = run_into(&down, &drill, &url).expect_code(3);
    assert_has(&run.stderr, "nothing was run", "run");
    no_secret(&run, &store.secret_key);
    no_secret(&run, "Endpoint-Pw7");
}

/// A proxy in front of the store that passes everything through until `cut` exists,
/// then breaks every connection (a store that goes away mid-run). Its port.
fn cut_when(store: &Store, cut: PathBuf) -> u16 {
    store.forward(move |client, server| {
        for (from, to) in [
            (client.try_clone().unwrap(), server.try_clone().unwrap()),
            (server, client),
        ] {
            let cut = cut.clone();
            std::thread::spawn(move || pipe(from, to, &cut));
        }
    })
}

/// Copies `from` to `to` until either ends or `cut` exists.
fn pipe(mut from: TcpStream, mut to: TcpStream, cut: &Path) {
    let mut buf = vec![0u8; 16 << 10];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || cut.exists() || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[test]
fn an_upload_that_fails_exits_3_keeping_the_files_and_a_failed_drill_keeps_1() {
    let Some((store, bucket, _)) = store_with("fleet-cut") else {
        return;
    };
    let url = format!("s3://{bucket}/p/");
    for (status, code) in [("true", 3), ("false", 1)] {
        let flag = tempfile::tempdir().unwrap().keep().join("store-gone");
        let run = format!("touch {} && {status}", flag.display());
        let drill = pb("cut").step(exec("gone", &run)).drill();
        let aws = Aws {
            endpoint: format!("http://127.0.0.1:{}", cut_when(store, flag)),
            ..Aws::of(store)
        };
        let run = run_into(&aws, &drill, &url).expect_code(code);
        assert_has(
            &run.stderr,
            "the run's artifacts were not all uploaded",
            "run",
        );
        let kept = run.stderr.split("they are kept in ").nth(1).unwrap();
        let kept = kept.lines().next().unwrap();
        let record = newest_record(Path::new(kept));
        let verdict = if code == 3 { "passed" } else { "failed" };
        assert_eq!(record["status"], verdict, "the record keeps its verdict");
        no_secret(&run, &store.secret_key);
    }
    assert_eq!(keys(store, &bucket, "p/"), Vec::<String>::new());
}

#[test]
fn temporary_keys_send_their_session_token_signed() {
    // An S3 endpoint that answers with an empty listing, keeping the request.
    let store = replying("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>");
    let here = drill_dir();
    let aws = Aws {
        endpoint: store.base.clone(),
        key: "ASIATEMPORARYKEY".into(),
        secret: "temporary-secret-4kq".into(),
    };
    let token = "session-token-Xy7+/=";
    let mut cmd = aws.command(here.path(), &["status", "s3://temp/p/"]);
    cmd.env("AWS_SESSION_TOKEN", token);
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "an empty prefix: no passing run"
    );
    let request = &store.requests()[0];
    let head = request.headers.join("\r\n").to_ascii_lowercase();
    assert_has(
        &head,
        &format!("x-amz-security-token: {}", token.to_ascii_lowercase()),
        "the request",
    );
    assert_has(&head, "credential=asiatemporarykey/", "the request");
    let signed = head.split("signedheaders=").nth(1).unwrap_or_default();
    assert_has(
        signed.split(',').next().unwrap(),
        "x-amz-security-token",
        "the signed headers",
    );
    let printed = String::from_utf8_lossy(&out.stderr) + String::from_utf8_lossy(&out.stdout);
    assert!(
        !printed.contains(token) && !printed.contains(&aws.secret),
        "{printed}"
    );
}

/// `verify s3://...` checks the records and signatures under a prefix as it checks the
/// same tree on disk: intact, it says so naming the bucket; a record edited in the bucket
/// is named by its path below the prefix. The bucket is only read.
#[test]
fn verify_of_an_s3_prefix_checks_chains_and_signatures_as_on_disk() {
    let Some((store, bucket, aws)) = store_with("fleet-verify") else {
        return;
    };
    let Some((dir, _key)) = super::evidence::signed_history(3) else {
        return;
    };
    let artifacts = dir.path().join("artifacts");
    upload_tree(store, &bucket, "evidence/team-a/", &artifacts);
    let url = format!("s3://{bucket}/evidence/");
    let verify = ["verify", url.as_str(), "--pubkey", "key.pub"];
    let ran = aws.run(dir.path(), &verify);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let ok = format!("ok: 3 records of 1 drill in {url}: chains intact, 3 signed and verified");
    assert_has(&ran.stderr, &ok, "verify");

    let keys_before = keys(store, &bucket, "");
    let records: Vec<&String> = keys_before
        .iter()
        .filter(|k| k.ends_with(".json"))
        .collect();
    let name = records[1].rsplit('/').next().unwrap();
    super::evidence::edit_a_byte(&artifacts.join(name));
    let edited = std::fs::read(artifacts.join(name)).unwrap();
    store.seed_files(&bucket, [(records[1].clone(), edited)]);
    let ran = aws.run(dir.path(), &verify);
    assert_eq!(ran.code, 1, "{}{}", ran.stdout, ran.stderr);
    assert_has(&ran.stdout, &format!("team-a/{name}: edited"), "verify");
    assert_has(
        &ran.stderr,
        &format!("tampered: 2 problems in 3 records of 1 drill in {url}"),
        "verify",
    );
    assert_eq!(
        keys(store, &bucket, ""),
        keys_before,
        "verify wrote to the bucket"
    );
}

/// The `YYYYMMDDTHHMMSSZ` of each second from now on, for `seconds` seconds.
fn the_next_seconds(seconds: i64) -> Vec<String> {
    let now = jiff::Timestamp::now();
    (0..seconds)
        .map(|s| {
            (now + jiff::SignedDuration::from_secs(s))
                .strftime("%Y%m%dT%H%M%SZ")
                .to_string()
        })
        .collect()
}

#[test]
fn a_run_into_s3_never_replaces_the_files_of_another_run_of_the_same_second() {
    let Some((store, bucket, aws)) = store_with("fleet-same-second") else {
        return;
    };
    // Another machine's run of each coming second has uploaded its log (not yet its
    // record, so this run cannot know of it from the records it fetches).
    for ts in the_next_seconds(60) {
        let key = format!("nightly/orders/restore_drill_{ts}.log");
        store.put(&bucket, &key, b"the other run's log\n");
    }
    let before = store.snapshot(&bucket);
    let drill = charted("orders");
    let ran = run_into(&aws, &drill, &format!("s3://{bucket}/nightly/")).expect_code(3);
    for says in [
        "exists already (another run of the same second?)",
        "none of this run's files was uploaded",
        "they are kept in",
    ] {
        assert_has(&ran.stderr, says, "run");
    }
    assert_eq!(store.snapshot(&bucket), before, "the bucket is as it was");
    let kept = listing(&drill.path().join("tmp"));
    assert!(
        kept.iter().any(|f| f.ends_with(".json")),
        "the record is kept in the staging folder: {kept:?}"
    );
}

#[test]
fn an_upload_is_refused_by_the_store_where_an_object_of_its_name_exists() {
    use restore_drill::sources::s3::{ObjectAt, upload};
    let Some((store, bucket, _)) = store_with("fleet-conditional") else {
        return;
    };
    store.put(&bucket, "a/restore_drill_1.json", b"the first\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("restore_drill_1.json");
    std::fs::write(&file, "the second\n").unwrap();
    let client = store.client();
    let at = ObjectAt {
        client: &client,
        bucket: &bucket,
        key: "a/restore_drill_1.json",
    };
    // What two writers that both looked first would do: the second PUT is refused.
    let err = format!("{:#}", upload::put_plain(at, &file).err().expect("refused"));
    assert_has(&err, "HTTP 412", "the upload");
    assert_has(&err, "it was not replaced", "the upload");
    assert_eq!(store.get(&bucket, "a/restore_drill_1.json"), b"the first\n");
    let at = ObjectAt {
        key: "a/restore_drill_2.json",
        ..at
    };
    upload::put_plain(at, &file).expect("a new name is written");
    assert_eq!(
        store.get(&bucket, "a/restore_drill_2.json"),
        b"the second\n"
    );
}

/// `run --artifacts` into the bucket area a `locate` of the drill read (here the folder
/// of its glob, `backups/`, holds the drill's folder `backups/orders/`) uploads nothing:
/// the run keeps its verdict and record, the files stay in the staging folder, and the
/// source is as it was. Elsewhere in the same bucket, the upload goes ahead.
#[test]
fn artifacts_are_never_uploaded_into_an_area_a_locate_read() {
    let Some((store, bucket, aws)) = store_with("fleet-located") else {
        return;
    };
    store.put(&bucket, "backups/orders-1.db", b"a backup\n");
    let before = store.snapshot(&bucket);
    let locate = step("latest", "locate").fields(&format!(
        "glob = \"s3://{bucket}/backups/*.db\"\ns3 = {}\noutput = \"{{{{ drill.workdir }}}}/latest.bin\"\n",
        store.table()
    ));
    let drill = pb("orders")
        .secret("s3_key", "AWS_ACCESS_KEY_ID")
        .secret("s3_secret", "AWS_SECRET_ACCESS_KEY")
        .step([locate])
        .drill();
    let refused = run_into(&aws, &drill, &format!("s3://{bucket}/backups/"));
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert_has(
        &refused.stderr,
        &format!(
            "refusing to write the run's artifacts to s3://{bucket}/backups/orders/: it lies inside s3://{bucket}/backups/, a source of this playbook (`glob` of step `latest`)"
        ),
        "run",
    );
    assert_has(&refused.stderr, "they are kept in", "run");
    assert_eq!(store.snapshot(&bucket), before, "the located area changed");

    let beside = run_into(&aws, &drill, &format!("s3://{bucket}/drills/"));
    assert_eq!(beside.code, 0, "{}", beside.stderr);
    assert_eq!(keys(store, &bucket, "drills/orders/").len(), 3);
}
