//! restic's newest snapshot dumped while the snapshots are listed, and a file dumped
//! without listing it: proven, never assumed (`src/sources/dump.rs`). Stand-ins first on
//! PATH order the calls: the listing waits for the dump, or a snapshot is added between
//! the listing and the dump.

use super::repos::{PASSWORD, Repo, Tool, ok, sha256_hex};

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
/// restored as that file (checked against its listed size), a directory as a tree.
#[test]
fn restic_a_tar_file_stays_a_file_and_a_directory_a_tree() {
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
    let repo_path = repo.path();
    ok(repo
        .tool
        .cmd(data)
        .args(["backup", "-q", "-r", repo_path.to_str().unwrap(), "data"]));
    let before = repo.hash();
    let fields = "paths = [\"/data/archive.tar\"]\noutput = \"out/archive.tar\"";
    let file = repo.run(&repo.locate(fields), PASSWORD).expect_code(0);
    assert_eq!(
        std::fs::read(file.path().join("out/archive.tar")).unwrap(),
        archive
    );
    file.log_has("verified: size");
    let fields = "paths = [\"/data/sub\"]\noutput = \"out/sub\"";
    let tree = repo.run(&repo.locate(fields), PASSWORD).expect_code(0);
    let notes = tree.path().join("out/sub/data/sub/notes.txt");
    assert_eq!(std::fs::read_to_string(notes).unwrap(), "run 2\n");
    assert_eq!(repo.hash(), before, "the repository changed");
}
