use super::*;

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(d.path()).unwrap();
    (d, root)
}

/// `path` below `root` resolves to `to` below it.
#[track_caller]
fn assert_resolves(root: &Path, path: &str, to: &str) {
    assert_eq!(resolve(&root.join(path)).unwrap(), root.join(to));
}

#[test]
fn resolves_dotdot_after_a_missing_folder_as_the_kernel_will() {
    let (_d, root) = tmp();
    fs::create_dir(root.join("data")).unwrap();
    fs::write(root.join("data/src.db"), b"x").unwrap();
    assert_resolves(&root, "nope/../data/src.db", "data/src.db");
    assert_resolves(&root, "nope/deeper/../../data/new", "data/new");
    assert_resolves(&root, "nope/x/../y", "nope/y");
}

#[test]
fn resolves_symlinks_dangling_ones_and_loops() {
    let (_d, root) = tmp();
    fs::create_dir(root.join("data")).unwrap();
    std::os::unix::fs::symlink("data", root.join("link")).unwrap();
    std::os::unix::fs::symlink("data/later.db", root.join("dangling")).unwrap();
    std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
    assert_resolves(&root, "link/../link/x", "data/x");
    assert_resolves(&root, "dangling", "data/later.db");
    assert!(resolve(&root.join("loop/x")).is_err());
}

#[test]
fn refuses_what_is_contains_or_lies_inside_a_source() {
    let (_d, root) = tmp();
    fs::create_dir_all(root.join("tree/kb")).unwrap();
    fs::write(root.join("tree/kb/a.json"), b"{}").unwrap();
    fs::hard_link(root.join("tree/kb/a.json"), root.join("hard.json")).unwrap();
    let mut s = Sources::new(&[]);
    s.add(root.join("tree/kb"), "test");
    for (path, relation) in [
        ("tree/kb", "it is"),
        ("nope/../tree/kb/new", "lies inside"),
        ("tree", "contains"),
        ("hard.json", "hard links"),
    ] {
        let e = s.check("target", &root.join(path)).unwrap_err().to_string();
        assert!(e.contains(relation), "{path}: {e}");
    }
    assert_eq!(
        s.check("target", &root.join("tree/other")).unwrap(),
        root.join("tree/other")
    );
    assert!(!root.join("nope").exists());
}

#[test]
fn create_dirs_records_only_what_it_made() {
    let (_d, root) = tmp();
    fs::create_dir(root.join("out")).unwrap();
    let made = create_dirs(&root.join("out/a/b")).unwrap();
    let paths: Vec<_> = made.iter().map(|c| c.path.clone()).collect();
    assert_eq!(paths, vec![root.join("out/a"), root.join("out/a/b")]);
    fs::write(root.join("out/a/b/f"), b"x").unwrap();
    remove_created(&made).unwrap();
    assert!(root.join("out").is_dir() && !root.join("out/a").exists());
    assert_eq!(create_dirs(&root.join("out")).unwrap(), Vec::new());
}

#[test]
fn teardown_never_removes_through_a_folder_replaced_by_a_symlink() {
    let (_d, root) = tmp();
    fs::create_dir_all(root.join("source/b")).unwrap();
    fs::write(root.join("source/b/precious"), b"keep").unwrap();
    let made = create_dirs(&root.join("out/b")).unwrap();
    // While the drill runs, the folder it made is swapped for a link to a source.
    fs::rename(root.join("out"), root.join("moved")).unwrap();
    std::os::unix::fs::symlink(root.join("source"), root.join("out")).unwrap();
    let removed = remove_created(&made);
    assert_eq!(
        fs::read(root.join("source/b/precious")).ok().as_deref(),
        Some(&b"keep"[..]),
        "the source's file was removed through the link"
    );
    let err = removed.unwrap_err().to_string();
    assert!(err.contains("out/b") && err.contains("kept"), "{err}");
    // The link itself (out) is no folder of this run's either: left where it is.
    assert!(fs::symlink_metadata(root.join("out")).unwrap().is_symlink());
}

#[test]
fn create_file_never_works_through_a_folder_swapped_for_a_symlink() {
    let (_d, root) = tmp();
    fs::create_dir(root.join("source")).unwrap();
    fs::write(root.join("source/out.partial"), b"precious").unwrap();
    // `out` was checked and resolved as a folder of its own, then became a link.
    std::os::unix::fs::symlink(root.join("source"), root.join("out")).unwrap();
    let err = create_file(&root.join("out/out.partial")).unwrap_err();
    assert_eq!(
        fs::read(root.join("source/out.partial")).unwrap(),
        b"precious"
    );
    assert!(err.to_string().contains("now leads to"), "{err}");
}

#[test]
fn create_file_replaces_a_symlink_and_never_writes_through_it() {
    use std::io::Write as _;
    let (_d, root) = tmp();
    fs::write(root.join("source.db"), b"precious").unwrap();
    std::os::unix::fs::symlink(root.join("source.db"), root.join("out.partial")).unwrap();
    create_file(&root.join("out.partial"))
        .unwrap()
        .write_all(b"backup")
        .unwrap();
    assert_eq!(fs::read(root.join("source.db")).unwrap(), b"precious");
    assert_eq!(fs::read(root.join("out.partial")).unwrap(), b"backup");
    assert!(
        !fs::symlink_metadata(root.join("out.partial"))
            .unwrap()
            .is_symlink()
    );
    fs::create_dir(root.join("dir")).unwrap();
    let e = create_file(&root.join("dir")).unwrap_err().to_string();
    assert!(e.contains("a directory is in the way"), "{e}");
}

/// A source named through a listed folder and `..` leads outside it: it is listed (and
/// protected) although its text starts with the folder's.
#[test]
fn a_source_leading_out_of_the_last_one_listed_is_listed() {
    let (_d, root) = tmp();
    fs::create_dir(root.join("data")).unwrap();
    fs::write(root.join("app.db"), b"x").unwrap();
    let mut s = Sources::new(&[]);
    s.add(root.join("data"), "files");
    // A glob's match inside the folder is protected with it, and not listed again.
    s.add(root.join("data/inside.db"), "glob");
    s.add(root.join("data/../app.db"), "sqlite");
    assert_eq!(s.list.len(), 2);
    let e = s.check("target", &root.join("app.db")).unwrap_err();
    assert!(e.to_string().contains("it is"), "{e}");
}

#[test]
fn only_a_snapshot_of_this_host_makes_its_paths_live_and_never_the_root() {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let outputs = |host: &str| {
        let json = serde_json::json!({
            "snapshot_host": host,
            "snapshot_paths": ["/srv/app", "/", "relative"],
        });
        json.as_object().unwrap().clone()
    };
    assert_eq!(
        live_paths_of_snapshot(&outputs(&host)),
        vec![PathBuf::from("/srv/app")]
    );
    assert!(live_paths_of_snapshot(&outputs("another-host")).is_empty());
    assert!(live_paths_of_snapshot(&Map::new()).is_empty());
}
