//! A drill never harms what it tests: every path a step writes or removes is refused
//! when it is, contains or lies inside a source of the playbook, however it is spelled
//! (`..` through a folder that does not exist yet, symlinks, hard links, absolute paths),
//! and teardown removes only what the drill created.

use std::os::unix::fs::MetadataExt as _;

use super::*;

/// Everything about `dir` a drill must leave alone: each entry's relative path, kind,
/// inode and (for files) sha256.
fn snapshot(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let what = if meta.is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else if meta.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else {
                format!("file sha256 {}", sha256_of(&p))
            };
            found.push(format!("{rel}: {what}, inode {}", meta.ino()));
        }
    }
    found.sort();
    found
}

/// Runs `d`, then asserts the drill failed at `step` with an error naming `named`, and
/// that `watched` (the folder holding the source) is exactly as it was. Where `validate`
/// already refuses the playbook, the run's guard is tested with `named` known only to it.
fn assert_refused(d: Drill, watched: &str, step: &str, named: &str, case: &str) -> Outcome {
    let dir = d.path().join(watched);
    let before = snapshot(&dir);
    assert!(!before.is_empty(), "{case}: nothing to watch");
    d.known_only_to_the_run(named);
    let out = d.run().expect_code(1);
    out.step(step).failed_with(named);
    assert_eq!(snapshot(&dir), before, "{case}: the source changed");
    out
}

/// A backup of `data/src.db` to `output`, then a restore of `other.db` over `target`.
fn sqlite_playbook(output: &str, target: &str) -> Playbook {
    pb("t").step([
        sqlite_backup("data/src.db", output),
        sqlite_restore("other.db", target).set("overwrite", true),
    ])
}

/// A live database `data/src.db` (and an empty `data/sub`), and a different database
/// `other.db` to restore from (so an overwrite changes the source's bytes).
fn with_databases(d: Drill) -> Drill {
    make_db(&d.path().join("data/src.db"), 50);
    make_db(&d.path().join("other.db"), 7);
    std::fs::create_dir_all(d.path().join("data/sub")).unwrap();
    d
}

/// The databases, and the playbook restoring into `target`.
fn sqlite_restore_into(target: &str) -> Drill {
    let playbook = sqlite_playbook("{{ drill.workdir }}/backup.db", target);
    with_databases(with_dir(playbook.drill()))
}

/// Item 1: `nope/../data/src.db` with `nope` missing resolves to the source.
#[test]
fn a_sqlite_restore_through_a_missing_folder_and_dotdot_is_refused() {
    let d = sqlite_restore_into("nope/../data/src.db");
    let out = assert_refused(d, "data", "restore", "nope/../data/src.db", "nope/..");
    assert!(
        !out.path().join("nope").exists(),
        "a folder was created before the target was checked"
    );
}

/// The variants of item 1 refused before: the same source through a symlink, a hard
/// link, `sub/..`, a symlinked folder and its absolute path.
#[test]
fn a_sqlite_restore_into_the_source_however_spelled_is_refused() {
    type Setup = fn(&Path);
    let cases: [(&str, Setup); 5] = [
        ("alias.db", |p| {
            std::os::unix::fs::symlink(p.join("data/src.db"), p.join("alias.db")).unwrap()
        }),
        ("hard.db", |p| {
            std::fs::hard_link(p.join("data/src.db"), p.join("hard.db")).unwrap()
        }),
        ("data/sub/../src.db", |_| {}),
        ("linked/src.db", |p| {
            std::os::unix::fs::symlink("data", p.join("linked")).unwrap()
        }),
        ("@DIR@/data/src.db", |_| {}),
    ];
    for (target, setup) in cases {
        let d = sqlite_restore_into(target);
        setup(d.path());
        let target = target.replace("@DIR@", &d.path().display().to_string());
        assert_refused(d, "data", "restore", &target, &target);
    }
}

/// A backup's output through a symlink (or `..` through a missing folder) onto its source.
#[test]
fn a_backup_output_onto_its_source_is_refused() {
    for (output, setup) in [
        ("out.db", true),
        ("nope/../data/src.db", false),
        ("data/sub/../src.db", false),
    ] {
        let d = with_databases(sqlite_playbook(output, "{{ drill.workdir }}/r.db").drill());
        if setup {
            std::os::unix::fs::symlink("data/src.db", d.path().join("out.db")).unwrap();
        }
        let out = assert_refused(d, "data", "backup", output, output);
        assert!(!out.path().join("nope").exists(), "{output}");
    }
}

const KB: &[&str] = &["tree/config", "tree/kb"];

/// A files backup of `paths`, then a restore of it into `target`.
fn files_playbook(paths: &[&str], target: &str) -> Playbook {
    pb("t").step([
        files_backup(paths, "{{ drill.workdir }}/b/tree.tar.zst"),
        files_restore("{{ steps.backup.path }}", target),
    ])
}

/// The backed-up tree beside the playbook.
fn with_tree(d: Drill) -> Drill {
    let d = d
        .file("tree/config/app.toml", b"port = 8080\n")
        .file("tree/kb/index.json", br#"{"articles": 2}"#)
        .file("tree/kb/a/1.json", br#"{"id": 1}"#);
    std::fs::create_dir_all(d.path().join("tree/kb/empty")).unwrap();
    std::fs::create_dir_all(d.path().join("tree/emptydir")).unwrap();
    d
}

fn files_restore_into(paths: &[&str], target: &str) -> Drill {
    with_tree(with_dir(files_playbook(paths, target).drill()))
}

/// Item 2: `nope/../tree/kb` is the backed-up `kb/`; teardown used to delete it.
#[test]
fn a_files_restore_through_a_missing_folder_and_dotdot_is_refused() {
    let d = files_restore_into(KB, "nope/../tree/kb");
    let out = assert_refused(d, "tree", "restore", "nope/../tree/kb", "nope/..");
    assert!(!out.path().join("nope").exists());
}

/// Item 2: a files backup's `paths` are sources, also when the restore reads an archive
/// without its manifest (which names the folders it was taken from).
#[test]
fn a_files_restore_into_an_empty_folder_of_a_backed_up_tree_is_refused() {
    let playbook = files_playbook(&["tree"], "tree/emptydir")
        .edit("backup", |s| {
            s.set("output", "{{ drill.workdir }}/b/tree.tar")
                .set("compression", "none")
        })
        .after(
            "backup",
            exec("lose_manifest", "rm '{{ steps.backup.manifest }}'"),
        );
    let d = playbook
        .drill()
        .file("tree/config/app.toml", b"port = 8080\n")
        .file("tree/kb/index.json", b"{}");
    std::fs::create_dir_all(d.path().join("tree/emptydir")).unwrap();
    assert_refused(d, "tree", "restore", "tree/emptydir", "tree/emptydir");
}

/// The variants of item 2 refused before: a symlinked folder, an absolute path, `sub/..`
/// into the tree.
#[test]
fn a_files_restore_into_the_backed_up_tree_however_spelled_is_refused() {
    for target in [
        "kblink/restored",
        "@DIR@/tree/kb/restored",
        "tree/config/../kb/restored",
    ] {
        let d = files_restore_into(KB, target);
        std::os::unix::fs::symlink("tree/kb", d.path().join("kblink")).unwrap();
        let target = target.replace("@DIR@", &d.path().display().to_string());
        assert_refused(d, "tree", "restore", &target, &target);
    }
}

/// A files backup's output inside the tree it archives (here through `..`).
#[test]
fn a_files_backup_output_inside_its_tree_is_refused() {
    for output in ["tree/kb/tree.tar.zst", "nope/../tree/kb/a/tree.tar.zst"] {
        let playbook =
            files_playbook(KB, "{{ drill.workdir }}/r").edit("backup", |s| s.set("output", output));
        let out = assert_refused(
            with_tree(playbook.drill()),
            "tree",
            "backup",
            output,
            output,
        );
        assert!(!out.path().join("nope").exists(), "{output}");
    }
}

/// Item 3: a checksum manifest written over the live database.
#[test]
fn a_checksum_manifest_onto_a_source_is_refused() {
    // The live database is a source as a backup's `source`, and as the `database` of a
    // read-only check that ran before.
    let sums = |files: &str, manifest: &str| {
        step("sums", "checksum")
            .set("files", list(&[files]))
            .set("manifest", manifest)
    };
    let backup_source = pb("t").step([
        sqlite_backup("data/src.db", "{{ drill.workdir }}/backup.db"),
        sums("{{ steps.backup.path }}", "data/src.db"),
    ]);
    let checked_live = pb("t").step([
        sql("live", "sqlite", "data/src.db").checks(query(
            "rows",
            "SELECT count(*) FROM dispatches",
            50,
        )),
        sums("other.db", "data/sub/../src.db"),
    ]);
    for (case, playbook, named) in [
        ("a backup's source", backup_source, "data/src.db"),
        (
            "a read-only check's database",
            checked_live,
            "data/sub/../src.db",
        ),
    ] {
        assert_refused(
            with_databases(playbook.drill()),
            "data",
            "sums",
            named,
            case,
        );
    }
}

/// Teardown removes what the drill created, and nothing that was there before the run.
#[test]
fn teardown_removes_only_the_folders_the_drill_created() {
    let d = files_restore_into(KB, "out/new/restored");
    std::fs::create_dir_all(d.path().join("out")).unwrap();
    std::fs::write(d.path().join("out/keep.txt"), b"mine").unwrap();
    let out = d.run().expect_code(0);
    assert_eq!(
        listing(&out.path().join("out")),
        vec!["keep.txt".to_string()]
    );
}

/// The playbook with `@DIR@` replaced by the drill's folder (for absolute paths).
fn with_dir(d: Drill) -> Drill {
    let path = d.path().join("playbook.toml");
    let toml = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        toml.replace("@DIR@", &d.path().display().to_string()),
    )
    .unwrap();
    d
}

/// A symlink left (or planted) where a backup writes its partial file, pointing into the
/// backed-up tree: the backup replaces the link and never writes through it (it used to
/// overwrite `tree/config/app.toml` with the archive). The same link as the manifest is
/// refused, naming where it leads.
#[test]
fn a_files_backup_never_writes_through_a_symlink_at_its_partial_file_or_manifest() {
    for planted in ["tree.tar.zst.partial", "tree.tar.zst.manifest.jsonl"] {
        let playbook = files_playbook(KB, "{{ drill.workdir }}/r")
            .edit("backup", |s| s.set("output", "out/tree.tar.zst"));
        let d = with_tree(playbook.drill());
        std::fs::create_dir_all(d.path().join("out")).unwrap();
        let link = d.path().join("out").join(planted);
        std::os::unix::fs::symlink(d.path().join("tree/config/app.toml"), &link).unwrap();
        if planted.ends_with(".partial") {
            let before = snapshot(&d.path().join("tree"));
            let out = d.run().expect_code(0);
            assert_eq!(
                snapshot(&out.path().join("tree")),
                before,
                "the source changed"
            );
            assert!(
                std::fs::symlink_metadata(&link).is_err(),
                "the partial file is left"
            );
        } else {
            assert_refused(d, "tree", "backup", "tree/config/app.toml", planted);
        }
    }
}

/// A files backup of `data/sub`, then the sqlite source named through it
/// (`data/sub/../src.db`): listed as a source although its text starts with the tree's
/// (it used to be skipped as "inside the last source", and the restore overwrote it).
#[test]
fn a_source_named_through_a_backed_up_folder_and_dotdot_is_still_a_source() {
    let playbook = pb("t").step([
        files_backup(&["data/sub"], "{{ drill.workdir }}/tree.tar").set("id", "files"),
        sqlite_backup("data/sub/../src.db", "{{ drill.workdir }}/backup.db"),
        sqlite_restore("other.db", "data/src.db").set("overwrite", true),
    ]);
    let d = with_databases(playbook.drill());
    std::fs::write(d.path().join("data/sub/f"), b"x").unwrap();
    assert_refused(d, "data", "restore", "data/sub/../src.db", "files, then ..");
}

/// A `sql` step with `execute` on `database`, after a backup of `data/src.db` and a
/// files backup of `data/sub` (`vars.data` is `data`).
fn writing_sql(database: &str) -> Drill {
    let scrub = sql("scrub", "sqlite", database).set("execute", "DELETE FROM dispatches");
    let playbook = pb("t").var("data", "data").step([
        files_backup(&["data/sub"], "{{ drill.workdir }}/tree.tar").set("id", "files"),
        sqlite_backup("data/src.db", "{{ drill.workdir }}/backup.db"),
        scrub,
    ]);
    let d = with_databases(playbook.drill());
    std::fs::write(d.path().join("data/sub/f"), b"x").unwrap();
    d
}

/// A writable `sql` step never writes to a source, however it is named, at run time
/// too (where `validate` cannot see: symlinks): the backup's source through a link (it
/// used to delete its rows), `..` out of a linked folder, or a new database inside a
/// backed-up folder (which is not created).
#[test]
fn a_writable_sql_step_on_a_source_is_refused() {
    for (database, relation) in [
        ("alias.db", "it is"),
        ("linked/../src.db", "it is"),
        ("linked/new.db", "lies inside"),
    ] {
        let d = writing_sql(database);
        std::os::unix::fs::symlink("data/src.db", d.path().join("alias.db")).unwrap();
        std::os::unix::fs::symlink("data/sub", d.path().join("linked")).unwrap();
        let out = assert_refused(d, "data", "scrub", database, database);
        out.step("scrub").failed_with(relation);
    }
}

/// The drill's own restored copy is no source: a writable step on it still runs, and a
/// database that does not exist yet is created new (a demo's source, before its backup).
#[test]
fn a_writable_sql_step_on_the_restored_copy_or_a_new_database_runs() {
    let create = sql("create", "sqlite", "new/src.db")
        .set(
            "execute",
            "CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);",
        )
        .in_setup();
    let scrub = sql("scrub", "sqlite", "{{ steps.restore.target }}")
        .set("execute", "DELETE FROM t")
        .checks([query("emptied", "SELECT count(*) FROM t", 0)]);
    let out = pb("t")
        .step([
            create,
            sqlite_backup("new/src.db", "{{ drill.workdir }}/backup.db"),
            sqlite_restore("{{ steps.backup.path }}", "{{ drill.workdir }}/r.db"),
            scrub,
        ])
        .drill()
        .run()
        .expect_code(0);
    out.step("scrub").passed();
    let kept = rusqlite::Connection::open(out.path().join("new/src.db")).unwrap();
    let rows: i64 = kept
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2, "the source was changed");
}

/// `validate` refuses what the run would: a writable `sql` step on a source known from
/// the file (through a var and `..`, or inside a backed-up folder), at its `database`;
/// one creating the source before its backup (a demo's setup) is left to the run.
#[test]
fn validate_points_at_a_writable_sql_step_on_a_source() {
    for (database, relation) in [
        (
            "{{ vars.data }}/sub/../src.db",
            "is data/src.db, the `source` of step `backup`",
        ),
        (
            "data/sub/new.db",
            "lies inside data/sub, the `paths` of step `files`",
        ),
    ] {
        let d = writing_sql(database);
        let toml = std::fs::read_to_string(d.path().join("playbook.toml")).unwrap();
        let line = toml
            .lines()
            .position(|l| l.starts_with("database ="))
            .unwrap()
            + 1;
        let out = d.validate().expect_code(2);
        out.stderr_has(&format!("`database` of step `scrub` {relation}"))
            .stderr_has(&format!("--> playbook.toml:{line}:12"));
    }
    let create = sql("create", "sqlite", "data/src.db").set("execute", "CREATE TABLE t (x)");
    let demo = pb("t").step([
        create.in_setup(),
        sqlite_backup("data/src.db", "{{ drill.workdir }}/backup.db"),
    ]);
    demo.drill().validate().expect_code(0);
}

/// `validate` refuses, at the field, every write onto a source that the file alone
/// shows (text and `vars`): before a long run reaches it. What only the run can know
/// (symlinks, hard links, templates of `env` or earlier steps) is left to the run's
/// guard (the tests above), and the usual shapes pass.
#[test]
fn validate_points_at_every_write_onto_a_source_the_file_shows() {
    let restore_over = |target: &str| {
        pb("t").var("live", "data").step([
            sqlite_backup("data/src.db", "{{ drill.workdir }}/b.db"),
            sqlite_restore("{{ steps.backup.path }}", target).set("overwrite", true),
        ])
    };
    let refused = [
        (
            restore_over("{{ vars.live }}/sub/../src.db"),
            "target",
            "`target` of step `restore` is data/src.db, the `source` of step `backup`",
        ),
        (
            restore_over("data"),
            "target",
            "`target` of step `restore` contains data/src.db",
        ),
        (
            // The backup's source is protected from the first step on.
            pb("t").step([
                sqlite_restore("other.db", "./data/src.db").set("overwrite", true),
                sqlite_backup("data/src.db", "{{ drill.workdir }}/b.db"),
            ]),
            "target",
            "`target` of step `restore` is data/src.db",
        ),
        (
            pb("t").step(sqlite_backup("data/src.db", "data/src.db.d/../src.db")),
            "output",
            "`output` of step `backup` is data/src.db",
        ),
        (
            pb("t").step([
                files_backup(&["tree"], "{{ drill.workdir }}/t.tar.zst"),
                files_restore("{{ steps.backup.path }}", "tree/new"),
            ]),
            "target_dir",
            "`target_dir` of step `restore` lies inside tree, the `paths` of step `backup`",
        ),
        (
            pb("t").step([
                sqlite_restore("other.db", "{{ drill.workdir }}/r.db"),
                step("sums", "checksum")
                    .set("files", list(&["x"]))
                    .set("manifest", "other.db"),
            ]),
            "manifest",
            "`manifest` of step `sums` is other.db, the `from` of step `restore`",
        ),
    ];
    for (playbook, field, said) in refused {
        let d = playbook.drill();
        let toml = std::fs::read_to_string(d.path().join("playbook.toml")).unwrap();
        let lines: Vec<&str> = toml.lines().collect();
        let line = lines
            .iter()
            .rposition(|l| l.starts_with(&format!("{field} =")))
            .unwrap()
            + 1;
        let column = field.len() + 4;
        d.validate()
            .expect_code(2)
            .stderr_has(said)
            .stderr_has("a drill never writes to a source of the playbook")
            .stderr_has(&format!("--> playbook.toml:{line}:{column}"));
    }
    let allowed = [
        // A backup writes what a later restore reads.
        pb("t").step([
            sqlite_backup("data/src.db", "out/b.db"),
            sqlite_restore("out/b.db", "out/r.db"),
        ]),
        // A restore's source is its own from its step on: an earlier step may write it.
        pb("t").step([
            step("sums", "checksum")
                .set("files", list(&["x"]))
                .set("manifest", "other.db"),
            sqlite_restore("other.db", "{{ drill.workdir }}/r.db"),
        ]),
        // Known only to the run.
        restore_over("{{ env.LIVE }}/src.db"),
        restore_over("{{ drill.workdir }}/r.db"),
    ];
    for playbook in allowed {
        playbook.drill().validate().expect_code(0);
    }
}
