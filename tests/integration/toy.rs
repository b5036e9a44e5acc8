//! The toy engine, end to end.

use super::*;

#[test]
fn the_toy_engine_backs_up_restores_validates_and_scaffolds() {
    let playbook =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/toy.toml"))
            .unwrap();
    let out = Drill::new(&playbook).run().expect_code(0);
    assert_eq!(out.step("backup")["outputs"]["bytes"], 6);
    assert_eq!(out.step("restore")["outputs"]["bytes"], 6);
    let bad = playbook.replace("target = \"{{ drill.workdir }}/r/data.txt\"", "");
    let v = Drill::new(&bad).subcommand("validate").run().expect_code(2);
    assert!(
        v.stderr
            .contains("restore step `restore` (engine toy) needs `target`"),
        "{}",
        v.stderr
    );
    let init = std::process::Command::new(env!("CARGO_BIN_EXE_restore-drill"))
        .current_dir(out.path())
        .args(["init", "--engine", "toy"])
        .status()
        .unwrap();
    assert!(init.success());
    assert!(out.path().join("toy-drill.toml").is_file());
}
