//! What a person or cron mail sees never holds a secret (issue 9, item 4), and the
//! artifacts' I/O failures are exit 3 naming the path and leave no temp file (items 5, 6).

use std::path::Path;
use std::process::Command;

use super::*;

/// Has `@`, `/`, `:` and `!`: characters a connection url must percent-encode.
const SECRET: &str = "Sx7-p@ss/w:rd!k9";

/// Every form of [`SECRET`] a leak could take: as is, fully percent-encoded, the way the
/// playbook below encodes it by hand (`!` left raw, `/` as lowercase `%2f`).
fn secret_forms() -> [&'static str; 3] {
    [SECRET, "Sx7-p%40ss%2Fw%3Ard%21k9", "Sx7-p%40ss%2fw%3Ard!k9"]
}

/// Steps that put the secret into each place a leak could come from, going on after
/// each failure.
fn leaky() -> Playbook {
    let one = || query("one", "SELECT 1", 1);
    let exec_output = exec(
        "exec_output",
        "echo 'stdout {{ secrets.pw }}'; echo 'stderr {{ secrets.pw }}' >&2; exit 3",
    );
    let token = query(
        "token",
        "SELECT 'token={{ secrets.pw }}'",
        "token=something else",
    );
    let url_in_output = exec(
        "url_in_output",
        "echo 'DATABASE_URL=postgres://drill:{{ vars.enc }}@db.internal/prod' >&2; exit 1",
    );
    let postgres_url = "postgres://drill:{{ vars.enc }}@127.0.0.1:1/prod";
    let steps = [
        exec_output
            .set("name", "log in as {{ secrets.pw }}")
            .set("runbook", "log in with {{ secrets.pw }}, then check"),
        sql("check_value", "sqlite", "db.sqlite").checks(token),
        sql("error_message", "sqlite", "no-such-{{ secrets.pw }}/x.db").checks(one()),
        url_in_output,
        sql("postgres_url", "postgres", postgres_url).checks(one()),
        http("http_url", "http://drill:{{ vars.enc }}@127.0.0.1:1/health"),
    ];
    // The password put into a url by hand, as users do: only what must be, lowercase hex.
    let enc = "{{ secrets.pw | replace('@', '%40') | replace('/', '%2f') | replace(':', '%3A') }}";
    let formats = list(&["markdown", "html", "junit", "prometheus"]);
    pb("leaky")
        .secret("pw", "DRILL_LEAK_SECRET")
        .var("enc", enc)
        .table("report", "formats", formats)
        .gate("rto", "15m")
        .step(steps.map(|s| s.set("continue_on_failure", true)))
}

#[test]
fn a_secret_reaches_no_terminal_line_and_no_artifact() {
    let d = leaky().drill();
    rusqlite::Connection::open(d.path().join("db.sqlite"))
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER)")
        .unwrap();
    // Without --quiet (the progress display a person sees; plain lines, as stderr is not
    // a terminal here), with it, and as a walkthrough (its prompts show the runbook; no
    // one answers: stdin is closed, so the drill goes on).
    for mode in ["progress", "--quiet", "--walkthrough"] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_restore-drill"));
        cmd.current_dir(d.path())
            .args(["run", "playbook.toml", "--artifacts", "artifacts"])
            .args(["--junit", "artifacts/junit.xml"])
            .args(["--metrics", "artifacts/drill.prom"])
            .env("DRILL_LEAK_SECRET", SECRET);
        if mode != "progress" {
            cmd.arg(mode);
        }
        let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let record = newest_record(&d.path().join("artifacts"));
        // The secret was used (each step saw it) and is shown as ***.
        let step = |id: &str| {
            record["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == id)
                .unwrap()
                .clone()
        };
        assert_eq!(step("exec_output")["outputs"]["stdout"], "stdout ***");
        assert_eq!(step("exec_output")["name"], "log in as ***");
        assert_eq!(
            step("exec_output")["runbook"],
            "log in with ***, then check"
        );
        assert_eq!(step("check_value")["checks"][0]["actual"], "token=***");
        assert!(
            step("error_message")["error"]
                .as_str()
                .unwrap()
                .contains("no-such-***"),
            "{}",
            step("error_message")
        );
        assert_eq!(
            step("http_url")["outputs"]["url"],
            "http://drill:***@127.0.0.1:1/health"
        );
        assert!(
            stderr.contains("token=***") && stderr.contains("log in as ***"),
            "the failed check is on stderr: {stderr}"
        );
        if mode == "--walkthrough" {
            assert!(stderr.contains("log in with ***, then check"), "{stderr}");
        }
        let log =
            std::fs::read_to_string(newest_artifact(&d.path().join("artifacts"), ".log")).unwrap();
        assert!(
            log.contains("DATABASE_URL=postgres://drill:***@db.internal/prod"),
            "{log}"
        );
        let mut seen = vec![
            ("stdout".to_string(), stdout.into_owned()),
            ("stderr".to_string(), stderr.into_owned()),
        ];
        seen.extend(
            all_files(&d.path().join("artifacts"))
                .into_iter()
                .map(|(p, t)| (p.display().to_string(), t)),
        );
        for ext in ["json", "log", "md", "html", "xml", "prom"] {
            assert!(
                seen.iter().any(|(p, _)| p.ends_with(ext)),
                "no .{ext} among {:?}",
                seen.iter().map(|s| &s.0).collect::<Vec<_>>()
            );
        }
        for (what, text) in &seen {
            for form in secret_forms() {
                assert!(
                    !text.contains(form),
                    "{mode}: `{form}` leaked into {what}:\n{text}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Artifacts that cannot be written: the tool breaking (exit 3), named by path, no debris.

/// A drill whose one step prints 200 KB: the log alone fills a 64 KiB filesystem.
fn small() -> Drill {
    let talk = exec("talk", "head -c 200000 /dev/zero | tr '\\0' x; echo");
    let formats = list(&["markdown", "html"]);
    pb("small")
        .table("report", "formats", formats)
        .step(talk)
        .drill()
}

/// The tool's binary, runnable by `nobody` (a target dir under a private home is not:
/// then a hard link, or a copy, in `dir`).
fn binary_for_nobody(dir: &Path) -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_restore-drill"));
    let runs = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if runs {
        return bin;
    }
    let local = dir.join("restore-drill");
    if std::fs::hard_link(&bin, &local).is_err() {
        std::fs::copy(&bin, &local).unwrap();
    }
    local
}

/// Runs `restore-drill run playbook.toml --quiet --artifacts <artifacts>` in `dir` inside
/// a private mount namespace, after `setup` (shell) made the artifacts filesystem there;
/// `ls -A` of the artifacts folder, taken before the namespace is gone, is in `listing`.
/// None (and a loud note) where this machine lets no one mount.
fn in_private_mounts(dir: &Path, setup: &str, artifacts: &str) -> Option<std::process::Output> {
    let script = format!(
        "{setup} || exit 99\n\"$BIN\" run playbook.toml --quiet --artifacts {artifacts}\nrc=$?\nls -A {artifacts} > listing\nexit $rc"
    );
    let mut cmd = Command::new("unshare");
    if !is_root() {
        cmd.arg("--map-root-user");
    }
    let out = cmd
        .args(["--mount", "sh", "-c", &script])
        .current_dir(dir)
        .env("BIN", env!("CARGO_BIN_EXE_restore-drill"))
        .output();
    match out {
        Ok(o) if o.status.code() != Some(99) => Some(o),
        other => {
            let test = std::thread::current().name().unwrap_or("?").to_string();
            let why = format!("cannot mount in a private namespace here ({other:?})");
            skip(&format!("a part of {test}"), &why);
            None
        }
    }
}

/// The run ended with exit 3, and its stderr says each of `texts`.
fn exit_3_saying(out: &std::process::Output, texts: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    for text in texts {
        assert_has(&stderr, text, "exit 3");
    }
}

#[test]
fn a_read_only_artifacts_folder_is_exit_3_naming_the_path() {
    // Mode 555: as root, permissions do not apply, so the run is made as `nobody`.
    let d = small();
    let dir = d.path();
    let ro = dir.join("ro");
    std::fs::create_dir(&ro).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(binary_for_nobody(dir));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_restore-drill"))
    };
    let out = cmd
        .current_dir(dir)
        .args(["run", "playbook.toml", "--quiet", "--artifacts", "ro"])
        .output()
        .unwrap();
    exit_3_saying(&out, &["ro/.restore-drill-small.lock", "Permission denied"]);
    assert_eq!(
        std::fs::read_dir(&ro).unwrap().count(),
        0,
        "nothing written"
    );

    // A read-only filesystem (EROFS): a read-only bind mount, which binds root too.
    let ro2 = dir.join("ro2");
    std::fs::create_dir(&ro2).unwrap();
    if let Some(out) = in_private_mounts(
        dir,
        "mount --bind ro2 ro2 && mount -o remount,bind,ro ro2",
        "ro2",
    ) {
        exit_3_saying(
            &out,
            &["ro2/.restore-drill-small.lock", "Read-only file system"],
        );
    }
}

#[test]
fn a_full_disk_is_exit_3_naming_the_file_and_leaves_no_temp_file() {
    let d = small();
    let dir = d.path();
    std::fs::create_dir(dir.join("full")).unwrap();
    let Some(out) = in_private_mounts(dir, "mount -t tmpfs -o size=64k tmpfs full", "full") else {
        return;
    };
    // The error names the file.
    exit_3_saying(
        &out,
        &[
            "cannot write full/restore_drill_",
            "No space left on device",
        ],
    );
    let listing = std::fs::read_to_string(dir.join("listing")).unwrap();
    assert!(
        listing.lines().all(|name| !name.contains(".tmp")),
        "temp files left behind:\n{listing}"
    );
    assert!(listing.contains(".json"), "{listing}");
}

/// The report writers are observers of the run like the record writer: one that cannot
/// write its file ends the run as `error` (exit 3) naming it, the record (written after
/// the reports) says so and does not list it, and the other reports are written, as
/// before.
#[test]
fn a_report_that_cannot_be_written_is_exit_3_naming_it_and_not_listed() {
    let d = pb("reports")
        .table("report", "formats", list(&["markdown"]))
        .step(wait("w", "1ms"))
        .drill()
        .file("missing", b"a file where a folder should be");
    let d = d.arg("--junit").arg("missing/j.xml");
    let out = d.arg("--metrics").arg("m.prom").run().expect_code(3);
    let why = "cannot write missing/j.xml: ";
    out.stderr_has(&format!("error: {why}")).status("error");
    let record = out.record();
    assert!(
        record["error"].as_str().unwrap().starts_with(why),
        "{record}"
    );
    let listed: Vec<&String> = record["artifacts"].as_object().unwrap().keys().collect();
    assert_eq!(listed, ["json", "log", "markdown", "prometheus"]);
    // The other reports say what the record says (they said PASSED, and success 1).
    assert!(
        out.file("m.prom")
            .contains("restore_drill_success{drill=\"reports\"} 0")
    );
    out.report_has("ERROR");
}
