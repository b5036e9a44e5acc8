//! The command line itself: completions, the man page, help texts, exit codes of the
//! commands around a run.

use super::*;

#[test]
fn completions_for_each_shell_and_a_man_page_name_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| restore_drill(dir.path(), args);
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef restore-drill"),
        ("fish", "complete -c restore-drill"),
    ] {
        let script = cmd(&["completions", shell]).expect_code(0).stdout;
        assert_has(&script, marker, shell);
        for sub in ["run", "validate", "plan", "status", "history", "init"] {
            assert_has(&script, sub, format!("{shell} completes `{sub}`"));
        }
    }
    cmd(&["completions", "tcsh"]).expect_code(2);
    let man = cmd(&["man"]).expect_code(0).stdout;
    assert!(
        man.starts_with(".ie") || man.starts_with(".TH"),
        "roff: {man}"
    );
    assert_has(&man, ".TH restore-drill", "the title");
    for sub in ["RUN", "VALIDATE", "STATUS", "COMPLETIONS"] {
        assert_has(&man, &format!("COMMAND: {sub}"), "a section per subcommand");
    }
    assert_has(
        &man,
        "The playbook to run",
        "positional arguments are explained",
    );
}

/// Every positional argument of every subcommand says what it is.
#[test]
fn positional_arguments_have_help() {
    let dir = tempfile::tempdir().unwrap();
    let subs = [
        "run", "validate", "plan", "report", "history", "status", "schema",
    ];
    for sub in subs {
        let help = restore_drill(dir.path(), &[sub, "-h"])
            .expect_code(0)
            .stdout;
        let args = help
            .split("Arguments:")
            .nth(1)
            .unwrap_or_else(|| panic!("{sub} has no arguments: {help}"));
        let args = args.split("Options:").next().unwrap();
        for line in args.lines().filter(|l| l.trim_start().starts_with('<')) {
            let text = line.trim().split_once('>').map(|(_, rest)| rest.trim());
            assert!(
                text.is_some_and(|t| !t.is_empty()),
                "`{sub}`: an argument without help: {line:?}\n{help}"
            );
        }
    }
}

/// `status` on a folder that is not there is a usage error, as with `history`; it is
/// not "no passing drill" (exit 1), which an alert would take for a failed drill.
#[test]
fn status_and_history_of_a_missing_folder_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["status", "history"] {
        let out = restore_drill(dir.path(), &[sub, "no-such-folder"]).expect_code(2);
        assert_has(&out.stderr, "no-such-folder", sub);
    }
}

/// The README's cron line names the drill: another drill's pass must not hide this one's
/// failure.
#[test]
fn the_readme_cron_example_watches_one_drill() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let status_lines: Vec<&str> = readme
        .lines()
        .filter(|l| l.contains("restore-drill status "))
        .collect();
    assert!(!status_lines.is_empty(), "a cron example with status");
    for line in status_lines {
        assert!(line.contains("--drill "), "{line}");
    }
}
