//! `locate` from a restic repository that lives on S3 (`s3:http://127.0.0.1:PORT/bucket/
//! repo`) on the suite's real S3 server (`s3store.rs`: s3s-fs, which checks every
//! signature), its key pair from the step's `s3` table filled from `[secrets]`. The
//! tests' own restic calls take the keys from their environment; the drill's take them
//! from the playbook alone (the drill's environment holds other, wrong keys).

use super::repos::{PASSWORD, Tool, noise, ok, stand_in};
use super::s3store::{KEY_ENV, SECRET_ENV, Store};
use super::*;

const SUITE: &str = "restic-s3";

/// A restic repository in a bucket of its own, with one snapshot of `data/cortex.db`.
struct S3Repo {
    store: &'static Store,
    bucket: String,
    url: String,
    db: Vec<u8>,
    id: String,
}

impl S3Repo {
    /// None (the test skips) without the S3 server or restic.
    fn new(bucket: &str) -> Option<Self> {
        let store = Store::shared(SUITE)?;
        if !Tool::Restic.present() {
            return None;
        }
        let bucket = store.bucket(bucket);
        let url = format!("s3:{}/{bucket}/repo", store.endpoint());
        let dir = tempfile::tempdir().unwrap();
        let restic = || {
            let mut cmd = Tool::Restic.cmd(dir.path());
            cmd.env("RESTIC_REPOSITORY", &url)
                .env("AWS_ACCESS_KEY_ID", &store.access_key)
                .env("AWS_SECRET_ACCESS_KEY", &store.secret_key);
            cmd
        };
        ok(restic().arg("init"));
        let db = noise(200_000, 7);
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/cortex.db"), &db).unwrap();
        ok(restic().args(["backup", "-q", "data"]));
        let listing = ok(restic().args(["snapshots", "--json"]));
        let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
        let id = listing[0]["id"].as_str().unwrap().to_string();
        Some(Self {
            store,
            bucket,
            url,
            db,
            id,
        })
    }

    /// A playbook locating `/data/cortex.db` into `out/cortex.db`, with `s3` the step's
    /// table.
    fn locate(&self, s3: &str) -> Playbook {
        let restic = format!(
            "restic = {{ repository = \"{}\", password = \"{{{{ secrets.repo_pw }}}}\" }}",
            self.url
        );
        pb("restic-s3")
            .secret("repo_pw", "REPO_PW")
            .secret("s3_key", KEY_ENV)
            .secret("s3_secret", SECRET_ENV)
            .step(step("latest", "locate").fields(&format!(
                "{restic}\ns3 = {s3}\npaths = [\"/data/cortex.db\"]\noutput = \"out/cortex.db\""
            )))
    }

    /// Runs it with `secret` for `s3_secret`, and other keys (and a session token) in the
    /// drill's own environment, which must not be used. `path`: the PATH to run with.
    fn run(&self, playbook: &Playbook, secret: &str, path: Option<&str>) -> Outcome {
        let mut drill = playbook
            .drill()
            .env("REPO_PW", PASSWORD)
            .env(KEY_ENV, &self.store.access_key)
            .env(SECRET_ENV, secret)
            .env("AWS_ACCESS_KEY_ID", "AMBIENTKEY000000")
            .env("AWS_SECRET_ACCESS_KEY", "ambient-wrong-secret")
            .env("AWS_SESSION_TOKEN", "ambient-session-token");
        if let Some(path) = path {
            drill = drill.env("PATH", path);
        }
        drill.run()
    }
}

/// The `s3` table with the keys from `[secrets]`.
const TABLE: &str = "{ region = \"us-east-1\", access_key = \"{{ secrets.s3_key }}\", secret_key = \"{{ secrets.s3_secret }}\", path_style = true }";

/// The secret is in nothing the drill wrote or printed.
#[track_caller]
fn assert_unleaked(out: &Outcome, secret: &str) {
    for (what, text) in everything_written(out) {
        assert!(!text.contains(secret), "the secret key leaked into {what}");
    }
}

#[test]
fn restic_s3_repository_is_read_with_the_keys_of_the_s3_table_and_never_written() {
    let Some(repo) = S3Repo::new("restic-s3-good") else {
        return;
    };
    let before = repo.store.snapshot(&repo.bucket);
    // A stand-in restic notes its arguments and the AWS variables it was given.
    let marks = tempfile::tempdir().unwrap();
    let body = format!(
        "echo \"$*\" >> {0}/argv\necho \"key=$AWS_ACCESS_KEY_ID region=$AWS_DEFAULT_REGION token=${{AWS_SESSION_TOKEN-unset}}\" >> {0}/env\n",
        marks.path().display()
    );
    let path = stand_in("restic", &body, marks.path());
    let out = repo
        .run(&repo.locate(TABLE), &repo.store.secret_key, Some(&path))
        .expect_code(0);
    assert_eq!(
        std::fs::read(out.path().join("out/cortex.db")).unwrap(),
        repo.db
    );
    assert_eq!(out.output("latest", "snapshot_id"), repo.id.as_str());
    assert_eq!(
        out.output("latest", "url").as_str().unwrap(),
        format!("restic:{}#{}", repo.url, &repo.id[..8])
    );
    assert_unleaked(&out, &repo.store.secret_key);
    let read = |name: &str| std::fs::read_to_string(marks.path().join(name)).unwrap();
    let (argv, env) = (read("argv"), read("env"));
    for line in argv.lines() {
        assert!(line.contains("-o s3.bucket-lookup=path"), "{line}");
        assert!(!line.contains(&repo.store.secret_key), "{line}");
    }
    let want = format!("key={} region=us-east-1 token=unset", repo.store.access_key);
    assert!(env.lines().all(|l| l == want), "{env}");
    assert_eq!(
        repo.store.snapshot(&repo.bucket),
        before,
        "the drill wrote to the bucket"
    );
}

#[test]
fn restic_s3_a_wrong_secret_key_fails_clearly_and_is_printed_nowhere() {
    let Some(repo) = S3Repo::new("restic-s3-wrong") else {
        return;
    };
    let before = repo.store.snapshot(&repo.bucket);
    let wrong = "wrong-Restic-S3-secret-0815";
    let out = repo.run(&repo.locate(TABLE), wrong, None).expect_code(1);
    // restic reads the repository's config with a HEAD, whose 403 has no body to name
    // the cause: "Access Denied".
    out.step("latest")
        .failed_with("Access Denied")
        .failed_with("check `s3.access_key` and `s3.secret_key`");
    assert_unleaked(&out, wrong);
    assert_unleaked(&out, &repo.store.secret_key);
    assert!(!out.path().join("out/cortex.db").exists());
    assert_eq!(repo.store.snapshot(&repo.bucket), before);
}

/// A `copy` after the locate adds nothing to the restic repository it read (its bucket's
/// prefix, or a folder inside it): refused naming the repository, the bucket as it was.
#[test]
fn restic_s3_a_copy_into_the_repository_read_is_refused() {
    let Some(repo) = S3Repo::new("restic-s3-copy") else {
        return;
    };
    let before = repo.store.snapshot(&repo.bucket);
    let to = format!("s3://{}/repo/data/", repo.bucket);
    let copy = step("offsite", "copy").fields(&format!(
        "files = [\"out/cortex.db\"]\nto = \"{to}\"\ns3 = {}",
        repo.store.table()
    ));
    let playbook = repo.locate(TABLE).step([copy]);
    let out = repo
        .run(&playbook, &repo.store.secret_key, None)
        .expect_code(1);
    out.step("latest").passed();
    let source = format!("s3://{}/repo/, a source of this playbook", repo.bucket);
    out.step("offsite")
        .failed_with(&format!("it lies inside {source}"))
        .failed_with("`restic.repository` of step `latest`");
    assert_eq!(
        repo.store.snapshot(&repo.bucket),
        before,
        "the repository changed"
    );
}
