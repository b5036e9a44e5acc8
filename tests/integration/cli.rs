//! The command line itself: completions, the man page, help texts, exit codes of the
//! commands around a run.

use super::*;
use std::path::Path;

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

/// `init --engine X` writes a starter for the user's own database: nothing but the
/// playbook and the schema its `#:schema` line names, no demo (no service, no setup that
/// creates data), valid; its hint is the command to run, `--var` included, which `plan`
/// accepts as given and which, for SQLite pointed at a real database, passes.
#[test]
fn init_writes_a_self_contained_starter_and_the_exact_command_to_run_it() {
    let schema = restore_drill(Path::new("."), &["schema", "playbook"]).stdout;
    for engine in ["sqlite", "postgres", "mysql", "files"] {
        let dir = tempfile::tempdir().unwrap();
        let cmd = |args: &[&str]| restore_drill(dir.path(), args);
        let out = cmd(&["init", "--engine", engine]).expect_code(0);
        let name = format!("{engine}-drill.toml");
        let mut expected = vec![name.clone(), "playbook.schema.json".to_string()];
        expected.sort();
        assert_eq!(listing(dir.path()), expected, "nothing but these");
        let text = std::fs::read_to_string(dir.path().join(&name)).unwrap();
        assert_eq!(text.lines().next(), Some("#:schema ./playbook.schema.json"));
        let written = std::fs::read_to_string(dir.path().join("playbook.schema.json")).unwrap();
        assert_eq!(written, schema, "{engine}: the schema of this version");
        // What it runs (comments may suggest what to add).
        let runs: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        for demo in [
            "kind = \"service\"",
            "[[setup]]",
            "demo",
            "cortex",
            "Cortex",
        ] {
            assert!(!runs.iter().any(|l| l.contains(demo)), "{engine}: {demo}");
        }
        cmd(&["validate", &name]).expect_code(0);
        let hint = out.stderr.lines().last().unwrap().trim();
        let command = hint
            .split("restore-drill ")
            .nth(1)
            .unwrap_or_else(|| panic!("{hint}"));
        let args: Vec<&str> = command.split_whitespace().collect();
        assert_eq!(args[..3], ["run", name.as_str(), "--var"], "{hint}");
        let plan = [&["plan"], &args[1..]].concat();
        cmd(&plan).expect_code(0);
        if engine == "sqlite" {
            super::make_db(&dir.path().join("app.db"), 20);
            let run: Vec<&str> = args
                .iter()
                .map(|a| match a.starts_with("source_db=") {
                    true => "source_db=app.db",
                    false => a,
                })
                .collect();
            cmd(&run).expect_code(0);
        }
    }
}
