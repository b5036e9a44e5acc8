//! borg keeps state of each repository on the client (`security/<id>/`: where the
//! repository was last seen, its manifest's timestamp, its key type), which the host's
//! own `borg create` checks on its next run. A drill reads the repository with a private
//! copy of that state: reading it at another path (a mount, a symlink, another url)
//! would otherwise record the new location, and the next production backup would stop
//! at "previously located at ..." with nobody to answer.

use std::process::{Command, Stdio};

use super::pitr::hash_tree;
use super::repos::{PASSWORD, Repo, Tool, ok};
use super::*;

#[test]
fn a_drill_reading_a_borg_repository_elsewhere_leaves_the_hosts_borg_state_alone() {
    let Some(repo) = Repo::new(Tool::Borg) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let base = home.path().join("base");
    let at_its_path = repo.path().to_str().unwrap().to_string();
    // The host's user backs up to the repository at its path.
    let host_borg = |args: &[&str]| -> Command {
        let mut cmd = Tool::Borg.cmd(repo.dir.path());
        cmd.env("BORG_BASE_DIR", &base)
            .args(args)
            .stdin(Stdio::null());
        cmd
    };
    ok(&mut host_borg(&["list", &at_its_path]));
    // Its keys, its security state and its cache.
    let before = hash_tree(&base);
    let security = base.join(".config/borg/security");
    assert!(
        security.is_dir(),
        "borg kept no state in {}",
        security.display()
    );

    // The drill reads the same repository through a symlink.
    let elsewhere = home.path().join("mounted-repo");
    std::os::unix::fs::symlink(repo.path(), &elsewhere).unwrap();
    let file = Tool::Borg.path("cortex.db");
    pb("borg-state")
        .secret("repo_pw", "REPO_PW")
        .step(step("latest", "locate").fields(&format!(
            "{}\npaths = [\"{file}\"]\ncheck = true\noutput = \"out/cortex.db\"",
            Tool::Borg.table(&elsewhere)
        )))
        .drill()
        .env("REPO_PW", PASSWORD)
        .env("BORG_BASE_DIR", base.to_str().unwrap())
        .run()
        .expect_code(0);
    assert_eq!(
        hash_tree(&base),
        before,
        "the drill changed the host's borg state in {}",
        base.display()
    );
    // The host's next backup runs as before.
    ok(&mut host_borg(&[
        "create",
        &format!("{at_its_path}::after"),
        "data",
    ]));
}
