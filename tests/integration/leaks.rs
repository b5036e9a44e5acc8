//! Secrets kept from the places the redactor does not reach: a url's password that is not
//! in `[secrets]` (a `--var`), a command line (`ps` shows it to every user), the
//! environment a backup tool inherits, and a probe that spins.

use super::repos::{PASSWORD, Repo, Tool};
use super::*;

const URL_PW: &str = "Lit3ral-Pw9";

/// A url's password that is not a secret (from the environment here, as from a `--var`)
/// is `***` in the record, the log, every report, the terminal and `plan`, and the `run`
/// that prints it reaches `sh` through no command line.
#[test]
fn a_url_password_from_a_var_is_masked_everywhere() {
    let formats = list(&["markdown", "html", "junit", "prometheus"]);
    let playbook = pb("urls")
        .var("hu", "{{ env.DRILL_URL }}")
        .table("report", "formats", formats)
        .step([
            http("probe", "{{ vars.hu }}health").set("continue_on_failure", true),
            exec(
                "talk",
                "echo 'DATABASE_URL={{ vars.hu }}' >&2; sleep 0.3; exit 1",
            ),
        ]);
    let url = format!("http://drill:{URL_PW}@127.0.0.1:1/");
    let drill = playbook
        .drill()
        .env("DRILL_URL", &url)
        .arg("--junit")
        .arg("artifacts/junit.xml");
    let (out, _) = drill.start().watch_processes(URL_PW, "DATABASE_URL");
    let out = out.expect_code(1);
    assert_eq!(
        out.output("probe", "url"),
        "http://drill:***@127.0.0.1:1/health"
    );
    assert!(
        out.log()
            .contains("DATABASE_URL=http://drill:***@127.0.0.1:1/"),
        "{}",
        out.log()
    );
    for (what, text) in everything_written(&out) {
        assert!(!text.contains(URL_PW), "the password is in {what}:\n{text}");
    }
    let var = format!("hu={url}");
    let plan = restore_drill(out.path(), &["plan", "playbook.toml", "--var", &var]);
    let plan = plan.expect_code(0);
    assert!(
        plan.stdout.contains("http://drill:***@127.0.0.1:1/health"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains(URL_PW), "{}", plan.stdout);
}

/// A secret in an exec's or a service's `run` reaches `sh` through no command line, and
/// nothing the script starts inherits it; one in an `argv` word fails the step, saying
/// which word, before anything starts.
#[test]
fn a_secret_in_a_command_never_reaches_a_command_line() {
    const TOKEN: &str = "tok-5ecret-Qz";
    let playbook = pb("argv").secret("tok", "DRILL_TOKEN").step([
        exec(
            "script",
            "sleep 0.3; echo 'got {{ secrets.tok }}'; env | grep -c RESTORE_DRILL_SCRIPT",
        )
        .set("expect_exit", 1),
        service("app")
            .set("run", "echo 'ready {{ secrets.tok }}'; sleep 30")
            .set("ready", raw("{ log_line = \"ready\" }")),
        wait("serve", "300ms"),
        step("words", "exec").set("argv", list(&["echo", "{{ secrets.tok }}"])),
    ]);
    let drill = playbook.drill().env("DRILL_TOKEN", TOKEN);
    let (out, _) = drill.start().watch_processes(TOKEN, "ready");
    assert_eq!(out.output("script", "stdout"), "got ***\n0");
    out.step("app").passed();
    out.step("words")
        .failed_with("`argv` word 2 holds a secret, which a command line shows to every user");
    for (what, text) in everything_written(&out) {
        assert!(!text.contains(TOKEN), "the token is in {what}:\n{text}");
    }
}

/// The variable `[secrets]` read a repository's password from is not in the environment
/// restic or borg gets (restic passes its environment on to `ssh`; borg's passphrase is
/// in no environment), while the tool's own way in (`RESTIC_PASSWORD_FILE`,
/// `BORG_PASSPHRASE_FD`) is.
fn the_password_is_in_no_environment_of_the_tool(tool: Tool) {
    let Some(repo) = Repo::new(tool) else { return };
    let marks = tempfile::tempdir().unwrap();
    let env = marks.path().join("env");
    repo.locate_stood_in(|_| format!("env >> '{}'\n", env.display()));
    let seen = std::fs::read_to_string(&env).unwrap();
    let way_in = match tool {
        Tool::Restic => "RESTIC_PASSWORD_FILE=",
        Tool::Borg => "BORG_PASSPHRASE_FD=",
    };
    assert!(seen.contains(way_in), "{seen}");
    assert!(
        !seen.contains(PASSWORD),
        "the password is in the environment {} got:\n{seen}",
        tool.program()
    );
}

#[test]
fn the_restic_password_is_in_no_environment_of_restic() {
    the_password_is_in_no_environment_of_the_tool(Tool::Restic);
}

#[test]
fn the_borg_passphrase_is_in_no_environment_of_borg() {
    the_password_is_in_no_environment_of_the_tool(Tool::Borg);
}

/// The variable `[secrets]` read the database password from is not in the environment of
/// the engine's tools (each gets the password in a 0600 file), while the rest of the
/// environment is; an `exec` step, the user's own command, still inherits it.
fn the_engine_tools_inherit_no_password(drill: Drill, tools: &[&str], password: &str) {
    let marks = tempfile::tempdir().unwrap();
    let bin = marks.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for tool in tools {
        let real = super::server::on_path(tool).unwrap_or_else(|| panic!("{tool} not on PATH"));
        let real = real.display();
        let wrapper = format!("#!/bin/sh\nenv > \"$ENV_MARKS/{tool}\"\nexec '{real}' \"$@\"\n");
        let path = bin.join(tool);
        std::fs::write(&path, wrapper).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&path, mode).unwrap();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let marks_dir = marks.path().display().to_string();
    let drill = drill.env("PATH", &path).env("ENV_MARKS", &marks_dir);
    drill.run().expect_code(0);
    for tool in tools {
        let seen = std::fs::read_to_string(marks.path().join(tool)).unwrap();
        assert!(
            seen.contains("ENV_MARKS="),
            "{tool} inherits the rest:\n{seen}"
        );
        assert!(
            !seen.contains(password),
            "the password is in the environment {tool} got"
        );
    }
    let exec = std::fs::read_to_string(marks.path().join("exec")).unwrap();
    assert!(
        exec.contains(password),
        "an exec step inherits the whole environment"
    );
}

/// The step that shows what a user's own command inherits.
const OWN: &str = "[[steps]]\nid = \"own\"\nkind = \"exec\"\nrun = 'env > \"$ENV_MARKS/exec\"'\n";

#[test]
fn the_database_password_is_in_no_environment_of_mariadb_dump_nor_mariadb() {
    let Some(server) = super::mysql::mariadb() else {
        return;
    };
    let (playbook, _, _) = super::mysql::shop(server);
    let drill = server.drill(playbook.step(raw_steps(OWN)));
    the_engine_tools_inherit_no_password(drill, &["mariadb-dump", "mariadb"], server.password());
}

#[test]
fn the_database_password_is_in_no_environment_of_pg_dump_nor_pg_restore() {
    use super::postgres::{PgServer, custom_drill};
    let Some(server) = PgServer::start("leaks (postgres)") else {
        return;
    };
    let target = format!("target_url = \"{}\"", server.url("drill_env"));
    let drill = custom_drill(&server, &target, &[("#AFTER_RESTORE#", OWN)]);
    the_engine_tools_inherit_no_password(drill, &["pg_dump", "pg_restore"], server.password());
}

/// `interval = "0s"` against a port that refuses: a pause of 100ms still, not a loop
/// writing a log line per attempt as fast as it can.
#[test]
fn a_zero_probe_interval_does_not_spin() {
    let probe = http("probe", &format!("http://127.0.0.1:{}/", free_port()))
        .set("interval", "0s")
        .set("retry_until", "1s");
    let out = pb("spin").step(probe).run().expect_code(1);
    let probes = out.output("probe", "probes").as_u64().unwrap();
    assert!((2..=12).contains(&probes), "{probes} attempts in 1s");
    assert!(out.log().lines().count() < 30, "{}", tail(&out.log()));
}

/// `validate` quotes the line of a problem: a url's password written there is a star per
/// character (the caret still under the problem), in `plan` and `run` alike.
#[test]
fn validate_quotes_no_url_password_of_the_playbook() {
    let url = format!("postgres://drill:{URL_PW}@db.internal/prod?{{{{ nope }}}}");
    let toml = pb("quoted")
        .step(sql("check", "postgres", &url).checks([query("one", "SELECT 1", 1)]))
        .toml();
    for sub in ["validate", "plan", "run"] {
        let out = Drill::new(&toml).subcommand(sub).run().expect_code(2);
        assert!(!out.stderr.contains(URL_PW), "{sub}: {}", out.stderr);
        let stars = "*".repeat(URL_PW.len());
        let line =
            format!("database = \"postgres://drill:{stars}@db.internal/prod?{{{{ nope }}}}\"");
        assert_has(&out.stderr, &line, sub);
        // Under `nope`: a star for each character of the password kept it in place.
        let before = format!("database = \"postgres://drill:{stars}@db.internal/prod?{{{{ ");
        let caret = format!("| {}^^^^\n", " ".repeat(before.len()));
        assert_has(&out.stderr, &caret, sub);
    }
}

/// The work directory, where dumps and restored production data land (under /tmp), is
/// the drill's user's alone.
#[test]
fn the_work_directory_is_private() {
    let out = pb("private")
        .step(exec("look", "stat -c 'mode %a' '{{ drill.workdir }}'"))
        .run()
        .expect_code(0);
    assert!(out.log().contains("mode 700"), "{}", out.log());
}

/// A credential written in the playbook itself, not in `[secrets]` (a literal, an `env`):
/// a restic password, an S3 key pair, an `Authorization` header, an exec's `PGPASSWORD`.
/// `plan` shows each as `***`, and the line `validate` quotes a star per character.
#[test]
fn plan_and_validate_show_no_credential_written_in_the_playbook() {
    const LITERALS: [&str; 5] = [
        "Env-Restic-Pw",
        "AKIALITERAL0",
        "Lit-S3-Secret",
        "Lit-Token-9",
        "Lit-Pg-Pw",
    ];
    let locate = "restic = { repository = \"s3:http://127.0.0.1:1/b/r\", password = \"{{ env.DRILL_RPW }}\" }\ns3 = { access_key = \"AKIALITERAL0\", secret_key = \"Lit-S3-Secret\" }\npaths = [\"/data/a.db\"]\noutput = \"out/a.db\"";
    let playbook = pb("creds").step([
        step("latest", "locate").fields(locate),
        http("probe", "http://127.0.0.1:1/")
            .set("headers", raw("{ Authorization = \"Bearer Lit-Token-9\" }")),
        exec("e", "true").set(
            "env",
            raw("{ PGPASSWORD = \"Lit-Pg-Pw\", PGHOST = \"db\" }"),
        ),
    ]);
    let drill = playbook.drill().env("DRILL_RPW", "Env-Restic-Pw");
    let plan = drill.subcommand("plan").run().expect_code(0);
    for shown in [
        "\"password\":\"***\"",
        "\"access_key\":\"***\",\"secret_key\":\"***\"",
        "{\"Authorization\":\"***\"}",
        "{\"PGPASSWORD\":\"***\",\"PGHOST\":\"db\"}",
    ] {
        assert_has(&plan.stdout, shown, "plan");
    }
    let typo = "restic = { repository = \"/srv/r\", password = \"Lit-Pg-Pw\", pasword = \"x\" }";
    let toml = pb("typo")
        .step(step("latest", "locate").fields(typo))
        .toml();
    let validate = Drill::new(&toml).validate().expect_code(2);
    assert_has(
        &validate.stderr,
        "password = \"*********\", pasword",
        "validate",
    );
    for text in [&plan.stdout, &plan.stderr, &validate.stderr] {
        for literal in LITERALS {
            assert!(!text.contains(literal), "{literal} is shown:\n{text}");
        }
    }
}

/// A secret cut in pieces on its way out: each line of a multi-line key printed (the log
/// is written line by line), a line longer than 8 KiB cut in the middle of the secret,
/// and a probe's body shortened (for its output, the log tail and the failure message)
/// inside it. No piece of either secret is written or shown.
#[test]
fn a_secret_cut_in_pieces_leaves_no_piece_anywhere() {
    const KEY_LINE: &str = "RWQf6LRCGA9i53mlYecO4IzT51pk";
    const PW: &str = "Cut-Secret-77x";
    let key = format!("untrusted comment: drill key\n{KEY_LINE}");
    // The secret at the end of each cut: the excerpt (300), the log tail (1024), the
    // kept body (2048), a few characters of it before each.
    let mut body = "x".repeat(295) + PW;
    body += &"y".repeat(1019 - body.len());
    body += PW;
    body += &"z".repeat(2045 - body.len());
    body += PW;
    let site = super::receiver::replying(&body);
    let playbook = pb("pieces")
        .secret("key", "DRILL_KEY")
        .secret("pw", "DRILL_PW")
        .step([
            exec(
                "talk",
                "echo \"$K\"; head -c 8190 /dev/zero | tr '\\0' y; echo \"$P tail\"; exit 1",
            )
            .set(
                "env",
                raw("{ K = \"{{ secrets.key }}\", P = \"{{ secrets.pw }}\" }"),
            )
            .set("continue_on_failure", true),
            http("probe", &format!("{}/", site.base)).set("expect_body_contains", "nope"),
        ]);
    let drill = playbook.drill().env("DRILL_KEY", &key).env("DRILL_PW", PW);
    let out = drill.run().expect_code(1);
    assert!(
        out.log().contains("[talk] stdout: ***"),
        "{}",
        tail(&out.log())
    );
    assert!(out.log().contains("…*** tail"), "{}", tail(&out.log()));
    let pieces = [
        KEY_LINE,
        &KEY_LINE[..8],
        &PW[..5],
        &PW[3..],
        "Cut-",
        "77x tail",
    ];
    for (what, text) in everything_written(&out) {
        for piece in pieces {
            assert!(
                !text.contains(piece),
                "`{piece}` is in {what}:\n{}",
                tail(&text)
            );
        }
    }
}

/// `curl -v` prints the `Authorization: Basic` header it sends: the base64 of
/// `user:password`, which decodes to the secret. Neither it nor the url's password
/// spelling reaches the log, the record or a report.
#[test]
fn a_secret_base64_encoded_by_a_tool_is_hidden() {
    const PW: &str = "B64-Secret-Pw9";
    let site = super::receiver::receiver(200, std::time::Duration::ZERO);
    let playbook = pb("basic").secret("pw", "DRILL_PW").step(
        exec(
            "curl",
            "curl -sv -u \"drill:$P\" \"$U\" -o /dev/null; curl -sv -u \"ab:$P\" \"$U\" -o /dev/null; exit 1",
        )
        .set(
            "env",
            raw(format!("{{ P = \"{{{{ secrets.pw }}}}\", U = \"{}/\" }}", site.base)),
        ),
    );
    let out = playbook.drill().env("DRILL_PW", PW).run().expect_code(1);
    let sent: Vec<String> = site
        .requests()
        .iter()
        .filter_map(|q| q.header("authorization").map(str::to_string))
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    // `drill:` and `ab:` put the password at two different offsets of the encoding.
    for masked in ["Basic ZHJpbGw6***\n", "Basic YWI6***\n"] {
        assert!(out.log().contains(masked), "{}", out.log());
    }
    for (what, text) in everything_written(&out) {
        for header in &sent {
            let encoded = header.trim_start_matches("Basic ");
            // The characters only the password's bytes make (the middle of it).
            let middle = &encoded[8..encoded.len() - 4];
            assert!(!text.contains(middle), "{header} is in {what}:\n{text}");
        }
    }
}

/// A tool that prints a secret in another case (upper-cased, lower-cased) does not show
/// it: the log, the record and the reports mask it as they mask it as written.
#[test]
fn a_secret_in_another_case_is_hidden() {
    const PW: &str = "Case-Secret-Pw9";
    let playbook = pb("case").secret("pw", "DRILL_PW").step(
        exec(
            "shout",
            "echo \"up $P\" | tr a-z A-Z; echo \"down $P\" | tr A-Z a-z >&2; exit 1",
        )
        .set("env", raw("{ P = \"{{ secrets.pw }}\" }")),
    );
    let out = playbook.drill().env("DRILL_PW", PW).run().expect_code(1);
    assert_eq!(out.output("shout", "stdout"), "UP ***");
    assert!(out.log().contains("stderr: down ***"), "{}", out.log());
    for (what, text) in everything_written(&out) {
        let lowered = text.to_ascii_lowercase();
        assert!(
            !lowered.contains(&PW.to_ascii_lowercase()),
            "the password is in {what}:\n{text}"
        );
    }
}

/// A tool that quotes a secret its own way: Python's `json.dumps` (non-ASCII as
/// `\u00eb`) and `html.escape` (`&amp;`, `&lt;`). Neither spelling reaches the log, the
/// record or a report.
#[test]
fn a_secret_quoted_by_a_tool_is_hidden() {
    const PW: &str = "Qüote&<Pw>9";
    let script = "import html, json, os\nprint(json.dumps({'pw': os.environ['P']}))\nprint('<td>' + html.escape(os.environ['P']) + '</td>')\nraise SystemExit(1)";
    let playbook = pb("quoted").secret("pw", "DRILL_PW").step(
        exec("quote", &format!("python3 -c \"{script}\""))
            .set("env", raw("{ P = \"{{ secrets.pw }}\" }")),
    );
    let out = playbook.drill().env("DRILL_PW", PW).run().expect_code(1);
    assert_eq!(
        out.output("quote", "stdout"),
        "{\"pw\": \"***\"}\n<td>***</td>"
    );
    for (what, text) in everything_written(&out) {
        for form in ["Q\\u00fcote", "ote&amp;&lt;Pw"] {
            assert!(!text.contains(form), "{form} is in {what}:\n{text}");
        }
    }
}

/// A credential written in a step but not in `[secrets]` (from `env` here, as from a
/// literal or a `--var`): an `Authorization` header a server echoes back in the probe's
/// body, and an exec's `PGPASSWORD` the command prints. Neither reaches the record, the
/// log or a report: the step's credential fields are secrets once it is rendered.
#[test]
fn a_credential_written_in_a_step_is_hidden_when_echoed() {
    const TOKEN: &str = "Env-Hdr-Token9";
    const PG: &str = "Lit-Pg-Pw-77";
    let server = super::receiver::echo(200);
    let formats = list(&["markdown", "html", "junit", "prometheus"]);
    let playbook = pb("echoed").table("report", "formats", formats).step([
        http("probe", &format!("{}/health", server.base)).set(
            "headers",
            raw("{ Authorization = \"Bearer {{ env.DRILL_TOKEN }}\" }"),
        ),
        exec("e", "echo \"pw $PGPASSWORD\"; exit 1")
            .set("env", raw(format!("{{ PGPASSWORD = \"{PG}\" }}"))),
    ]);
    let out = playbook
        .drill()
        .env("DRILL_TOKEN", TOKEN)
        .run()
        .expect_code(1);
    let sent = server.requests()[0]
        .header("authorization")
        .map(str::to_string);
    assert_eq!(sent, Some(format!("Bearer {TOKEN}")));
    out.step("probe").output_has("body", "Bearer ***");
    assert_eq!(out.output("e", "stdout"), "pw ***");
    let written = everything_written(&out).into_iter();
    for (what, text) in written.filter(|(p, _)| !p.ends_with("playbook.toml")) {
        for credential in [TOKEN, PG] {
            assert!(
                !text.contains(credential),
                "{credential} is in {what}:\n{text}"
            );
        }
    }
}
