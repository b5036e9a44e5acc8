//! restic's newest snapshot dumped while the snapshots are listed, and a file dumped
//! without listing it: proven, never assumed (`src/sources/dump.rs`). Stand-ins first on
//! PATH order the calls: the listing waits for the dump, or a snapshot is added between
//! the listing and the dump.

use super::repos::{Repo, Tool, files_under, noise, ok, sha256_hex};

/// Shell: wait (at most 20 s) until the file `mark` exists, else fail saying `why`.
fn wait_for(mark: &std::path::Path, why: &str) -> String {
    format!(
        "n=0; until [ -f '{}' ]; do n=$((n+1)); [ $n -gt 200 ] && {{ echo '{why}' >&2; exit 3; }}; sleep 0.1; done",
        mark.display()
    )
}

/// The listing of the snapshots waits until the dump of the newest has begun (it would
/// time out if it came first), no `restic ls` runs for a plain file, and the record
/// names the newest snapshot, whose file came whole.
#[test]
fn restic_lists_the_snapshots_while_the_newest_is_dumped() {
    let Some(repo) = Repo::new(Tool::Restic) else {
        return;
    };
    let before = repo.hash();
    let out = repo.locate_stood_in(|dir| {
        let mark = dir.join("dumping");
        format!(
            "case \" $* \" in\n  *\" dump \"*) touch '{}';;\n  *\" snapshots \"*) {};;\n  *\" ls \"*) echo 'listed a plain file' >&2; exit 3;;\nesac\n",
            mark.display(),
            wait_for(&mark, "listed before any dump")
        )
    });
    let (id, _, db) = &repo.snapshots[2];
    assert_eq!(out.output("latest", "snapshot_id"), id.as_str());
    assert_eq!(out.output("latest", "sha256"), sha256_hex(db));
    assert_eq!(out.output("latest", "bytes"), db.len());
    assert_eq!(
        std::fs::read(out.path().join("out/cortex.db")).unwrap(),
        *db
    );
    out.log_has("verified: every blob's hash (restic dump)");
    assert_eq!(repo.hash(), before, "the repository changed");
}

/// The race: a snapshot is added after the listing and before `dump latest` resolves
/// `latest`, so the dump brings the added snapshot's file. The snapshot files differ
/// before and after the dump: that dump is thrown away and the listed newest is dumped
/// by id, so the record names the snapshot whose bytes `output` holds.
#[test]
fn restic_a_snapshot_added_while_dumping_is_not_taken_for_the_listed_newest() {
    let Some(repo) = Repo::new(Tool::Restic) else {
        return;
    };
    let data = repo.dir.path().to_path_buf();
    let out = repo.locate_stood_in(|dir| {
        let listed = dir.join("listed");
        format!(
            "case \" $* \" in\n  *\" snapshots \"*) \"$real\" \"$@\"; s=$?; touch '{listed}'; exit $s;;\n  *\" dump latest \"*) {}\n    printf 'added while dumping' > '{data}/data/cortex.db'\n    (cd '{data}' && \"$real\" backup -q --no-cache data) >&2 || exit 4;;\nesac\n",
            wait_for(&listed, "dumped before the listing ended"),
            listed = listed.display(),
            data = data.display()
        )
    });
    assert_eq!(repo.ids().len(), 4, "no snapshot was added while dumping");
    let (id, _, db) = &repo.snapshots[2];
    assert_eq!(out.output("latest", "candidates"), 3);
    assert_eq!(out.output("latest", "snapshot_id"), id.as_str());
    assert_eq!(out.output("latest", "sha256"), sha256_hex(db));
    assert_eq!(
        std::fs::read(out.path().join("out/cortex.db")).unwrap(),
        *db
    );
    out.log_has("the snapshots changed while the newest was dumped: it is dumped again by id");
}

/// A dump that begins like a tar archive is listed: a file that is itself a tar is
/// restored as that file (checked against its listed size), a directory as a tree. The
/// newest snapshot's path is dumped once beside the listing; when that dump began like a
/// tar archive, the fetch lists the path without dumping it again to see: a tree comes
/// after that single dump (its files byte for byte), a tar file after one more, by id.
#[test]
fn restic_a_tar_file_stays_a_file_and_a_directory_a_tree_dumped_once() {
    let Some(repo) = Repo::new(Tool::Restic) else {
        return;
    };
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(6);
    header.set_mode(0o644);
    header.set_cksum();
    archive
        .append_data(&mut header, "inner.txt", &b"inner\n"[..])
        .unwrap();
    let archive = archive.into_inner().unwrap();
    let data = repo.dir.path();
    std::fs::write(data.join("data/archive.tar"), &archive).unwrap();
    std::fs::write(data.join("data/sub/blob.bin"), noise(200_000, 9)).unwrap();
    let repo_path = repo.path();
    ok(repo
        .tool
        .cmd(data)
        .args(["backup", "-q", "-r", repo_path.to_str().unwrap(), "data"]));
    let before = repo.hash();
    let logs = tempfile::tempdir().unwrap();
    // Locates with `fields`, restic's calls logged: the outcome and how many dumped.
    let dumps = |fields: &str, name: &str| {
        let log = logs.path().join(name);
        let logging = format!("printf '%s\\n' \"$*\" >> '{}'\n", log.display());
        let out = repo.locate_stood_in_with(fields, |_| logging);
        let calls = std::fs::read_to_string(&log).unwrap();
        let dumped = calls.lines().filter(|l| l.split(' ').any(|a| a == "dump"));
        (out, dumped.count())
    };
    let fields = "paths = [\"/data/sub\"]\noutput = \"out/sub\"";
    let (tree, dumped) = dumps(fields, "tree.log");
    assert_eq!(dumped, 1, "the tree was dumped again after `dump latest`");
    let restored = tree.path().join("out/sub");
    let files = files_under(&data.join("data/sub"));
    assert_eq!(files.len(), 2);
    assert_eq!(files_under(&restored).len(), files.len());
    for file in files {
        let rel = file.strip_prefix(data).unwrap();
        let got = std::fs::read(restored.join(rel)).unwrap();
        assert_eq!(got, std::fs::read(&file).unwrap(), "{}", rel.display());
    }
    let fields = "paths = [\"/data/archive.tar\"]\noutput = \"out/archive.tar\"";
    let (file, dumped) = dumps(fields, "file.log");
    assert_eq!(
        std::fs::read(file.path().join("out/archive.tar")).unwrap(),
        archive
    );
    file.log_has("verified: size");
    assert_eq!(dumped, 2, "the tar file: `dump latest`, then by id");
    assert_eq!(repo.hash(), before, "the repository changed");
}

/// A snapshot of a live file on this host: a restore over the file it was taken of is
/// refused (the snapshot's `paths` are sources), for restic (`/abs/path`) and borg
/// (`abs/path`), and the live file is left as it was.
#[test]
fn a_restore_over_the_live_file_a_snapshot_was_taken_of_is_refused() {
    use super::repos::PASSWORD;
    use super::{make_db, sqlite_restore};
    for tool in [Tool::Restic, Tool::Borg] {
        if !tool.present() {
            eprintln!("SKIPPED: {} is not installed", tool.program());
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let live = root.join("live/app.db");
        make_db(&live, 10);
        let repo = root.join("repo");
        let mut init = tool.cmd(&root);
        match tool {
            Tool::Restic => init.args(["init", "--repo"]).arg(&repo),
            Tool::Borg => init.args(["init", "--encryption=repokey"]).arg(&repo),
        };
        ok(&mut init);
        let mut backup = tool.cmd(&root);
        match tool {
            Tool::Restic => backup.args(["backup", "--repo"]).arg(&repo).arg(&live),
            Tool::Borg => backup
                .arg("create")
                .arg(format!("{}::one", repo.display()))
                .arg(&live),
        };
        ok(&mut backup);
        let named = match tool {
            Tool::Restic => live.display().to_string(),
            Tool::Borg => live
                .display()
                .to_string()
                .trim_start_matches('/')
                .to_string(),
        };
        let live_text = live.display().to_string();
        let fields = format!(
            "{}\npaths = [\"{named}\"]\noutput = \"out/app.db\"",
            tool.table(&repo)
        );
        let before = std::fs::read(&live).unwrap();
        let out = super::pb("repos")
            .secret("repo_pw", "REPO_PW")
            .step(super::step("latest", "locate").fields(&fields))
            .step(sqlite_restore("{{ steps.latest.path }}", &live_text).set("overwrite", true))
            .drill()
            .env("REPO_PW", PASSWORD)
            .run()
            .expect_code(1);
        out.step("restore").failed_with("`paths` of step `latest`");
        assert_eq!(std::fs::read(&live).unwrap(), before, "{}", tool.program());
    }
}
