//! Hostile or absurd input: the tool answers with a clear error (exit 2, or a failed step)
//! in bounded time, never a panic (exit 101), an abort (a signal) or a hang.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

const HEAD: &str = "version = 1\n[drill]\nname = \"t\"\n";

/// What a bounded run of the binary did.
pub struct Bounded {
    /// None: killed by a signal (or by us, past the limit).
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl Bounded {
    /// Never a panic, a signal or a hang.
    pub fn assert_sane(&self, what: &str) {
        assert!(
            !self.timed_out,
            "{what}: still running after {:?}\n{}",
            self.elapsed,
            tail(&self.stderr)
        );
        assert!(
            self.signal.is_none(),
            "{what}: killed by signal {:?}\n{}",
            self.signal,
            tail(&self.stderr)
        );
        assert_ne!(
            self.code,
            Some(101),
            "{what}: panicked\n{}",
            tail(&self.stderr)
        );
    }
}

fn tail(s: &str) -> &str {
    let mut start = s.len().saturating_sub(3000);
    while !s.is_char_boundary(start) {
        start -= 1;
    }
    &s[start..]
}

/// Runs `cmd`, killing it after `limit`; output is read while it runs.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Bounded {
    use std::os::unix::process::ExitStatusExt as _;
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start restore-drill");
    let reader = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            // Keep the start of what is printed; drain the rest so the child never blocks.
            let mut kept = Vec::new();
            let mut buf = [0u8; 64 * 1024];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if kept.len() < 4 << 20 {
                    kept.extend_from_slice(&buf[..n]);
                }
            }
            String::from_utf8_lossy(&kept).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    Bounded {
        code: status.code(),
        signal: if timed_out { None } else { status.signal() },
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        elapsed,
        timed_out,
    }
}

/// `restore-drill <args…>` in `dir`.
pub fn tool(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_restore-drill"));
    cmd.current_dir(dir).args(args);
    cmd
}

/// `validate` and `plan` of `toml`, each bounded; both must be sane.
fn validate_and_plan(toml: &str, limit: Duration) -> (Bounded, Bounded, tempfile::TempDir) {
    let dir = Drill::new(toml).dir_for_tests();
    let validate = run_bounded(tool(dir.path(), &["validate", "playbook.toml"]), limit);
    validate.assert_sane("validate");
    let plan = run_bounded(tool(dir.path(), &["plan", "playbook.toml"]), limit);
    plan.assert_sane("plan");
    (validate, plan, dir)
}

const HUGE: &str = "18446744073709551615s";

/// Item 8: every duration field, set past the limit, is refused by `validate` with its place.
#[test]
fn durations_past_the_limit_are_refused_where_they_are_written() {
    let cases: Vec<(String, String)> = vec![
        ("duration", format!("[[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"{HUGE}\"\n")),
        ("timeout", format!("[[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"1s\"\ntimeout = \"{HUGE}\"\n")),
        ("max_duration", format!("[[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"1s\"\nmax_duration = \"{HUGE}\"\n")),
        ("retry_delay", format!("[[steps]]\nid = \"w\"\nkind = \"exec\"\nrun = \"false\"\nretries = 1\nretry_delay = \"{HUGE}\"\n")),
        ("request_timeout", format!("[[steps]]\nid = \"h\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\nrequest_timeout = \"{HUGE}\"\n")),
        ("retry_until", format!("[[steps]]\nid = \"h\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\nretry_until = \"{HUGE}\"\n")),
        ("interval", format!("[[steps]]\nid = \"h\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\ninterval = \"{HUGE}\"\n")),
        ("stop_grace", format!("[[steps]]\nid = \"s\"\nkind = \"service\"\nrun = \"sleep 5\"\nstop_grace = \"{HUGE}\"\n")),
        ("ready.timeout", format!("[[steps]]\nid = \"s\"\nkind = \"service\"\nrun = \"sleep 5\"\nready = {{ log_line = \"x\", timeout = \"{HUGE}\" }}\n")),
        ("assume", format!("[[steps]]\nid = \"m\"\nkind = \"manual\"\ninstructions = \"x\"\nassume = \"{HUGE}\"\n")),
        ("rto", format!("[gates]\nrto = \"{HUGE}\"\n")),
        ("rpo", format!("[gates]\nrpo = \"{HUGE}\"\nrpo_from = \"2026-01-01T00:00:00Z\"\n")),
        // Just past the limit, written the way a person would.
        ("one year and a day", "[[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"366d\"\n".into()),
    ]
    .into_iter()
    .map(|(name, body)| (name.to_string(), body))
    .collect();
    for (name, body) in cases {
        let toml = format!("{HEAD}{body}");
        let out = Drill::new(&toml).subcommand("validate").run();
        assert_eq!(
            out.code, 2,
            "{name}: validate exit {}\n{}",
            out.code, out.stderr
        );
        assert!(
            out.stderr.contains("longer than the limit of 365 days"),
            "{name}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("--> playbook.toml:"),
            "{name}: {}",
            out.stderr
        );
        let run = run_bounded(Drill::new(&toml).command(), Duration::from_secs(30));
        run.assert_sane(&name);
        assert_eq!(run.code, Some(2), "{name}: run\n{}", run.stderr);
    }
    // Retries are bounded too: each attempt may take its whole `timeout`.
    let toml = format!(
        "{HEAD}[[steps]]\nid = \"x\"\nkind = \"exec\"\nrun = \"false\"\nretries = 4294967295\nretry_delay = \"0s\"\n"
    );
    let out = Drill::new(&toml)
        .subcommand("validate")
        .run()
        .expect_code(2);
    assert!(
        out.stderr
            .contains("`retries = 4294967295` is more than the limit of 1000"),
        "{}",
        out.stderr
    );
    // The limit itself is allowed.
    let toml = format!(
        "{HEAD}[[steps]]\nid = \"m\"\nkind = \"manual\"\ninstructions = \"x\"\nassume = \"365d\"\n"
    );
    Drill::new(&toml)
        .subcommand("validate")
        .run()
        .expect_code(0);
}

/// Item 8: a templated duration that renders past the limit fails its step cleanly at run
/// time: the drill ends (exit 1), its record is complete and cleanup ran.
#[test]
fn a_templated_duration_past_the_limit_fails_the_step_not_the_run() {
    let toml = format!(
        "{HEAD}[vars]\nd = \"{HUGE}\"\n\
         [[steps]]\nid = \"flaky\"\nkind = \"exec\"\nrun = \"false\"\nretries = 1\nretry_delay = \"{{{{ vars.d }}}}\"\n\
         [[steps]]\nid = \"wait\"\nkind = \"wait\"\nduration = \"{{{{ vars.d }}}}\"\ncontinue_on_failure = true\n\
         [[cleanup]]\nid = \"tidy\"\nkind = \"exec\"\nrun = \"touch cleaned\"\n"
    );
    let d = Drill::new(&toml);
    let out = run_bounded(d.command(), Duration::from_secs(60));
    out.assert_sane("run");
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let dir = d.dir_for_tests();
    assert!(dir.path().join("cleaned").exists(), "cleanup did not run");
    let record = newest_record(&dir.path().join("artifacts"));
    assert_eq!(record["status"], "failed", "{record:#}");
    let flaky = &record["steps"][0];
    assert_eq!(flaky["status"], "failed", "{flaky:#}");
    let error = flaky["error"].as_str().unwrap();
    assert!(
        error.contains("retry_delay") && error.contains("365 days"),
        "{error}"
    );
}

/// Item 9: expressions and templates too deep for minijinja's parser are refused with a
/// clear error, in `validate` and `plan` alike, including a custom gate's `check`.
#[test]
fn huge_expressions_are_refused_instead_of_overflowing_the_stack() {
    let nots = format!("{}false", "not ".repeat(20_000));
    let sum = format!("{}1", "1 + ".repeat(20_000));
    let elifs = format!(
        "{{% if false %}}{}{{% endif %}}",
        "{% elif false %}x".repeat(20_000)
    );
    let cases = [
        (
            "when",
            format!(
                "{HEAD}[[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"1s\"\nwhen = '{nots}'\n"
            ),
        ),
        ("vars", format!("{HEAD}[vars]\nx = \"{{{{ {sum} }}}}\"\n")),
        ("elif", format!("{HEAD}[vars]\nx = \"{elifs}\"\n")),
        (
            "gate",
            format!("{HEAD}[[gates.custom]]\nname = \"g\"\ncheck = '{nots}'\n"),
        ),
    ];
    for (name, toml) in cases {
        assert!(toml.len() > 80_000, "{name}: {} bytes", toml.len());
        let (validate, plan, _dir) = validate_and_plan(&toml, Duration::from_secs(30));
        for (what, out) in [("validate", &validate), ("plan", &plan)] {
            assert_eq!(out.code, Some(2), "{name} {what}\n{}", tail(&out.stderr));
            assert!(
                out.stderr.contains("template too complex"),
                "{name} {what}\n{}",
                tail(&out.stderr)
            );
            assert!(
                out.stderr.len() < 10_000,
                "{name} {what}: the 80 KB line was printed"
            );
        }
    }
}

/// Item 10: ten thousand problems are found in linear time, and only the first 50 are
/// listed.
#[test]
fn ten_thousand_problems_are_validated_fast_and_listed_briefly() {
    let mut toml = HEAD.to_string();
    for i in 0..10_000 {
        toml.push_str(&format!(
            "[[steps]]\nid = \"s{i}\"\nkind = \"wait\"\nduration = \"soon\"\n"
        ));
    }
    let dir = Drill::new(&toml).dir_for_tests();
    let out = run_bounded(
        tool(dir.path(), &["validate", "playbook.toml"]),
        Duration::from_secs(60),
    );
    out.assert_sane("validate");
    assert_eq!(out.code, Some(2));
    // Linear: well under a second on a quiet machine; before, 10 to 40 seconds.
    assert!(
        out.elapsed < Duration::from_secs(5),
        "validating 10,000 problems took {:?}",
        out.elapsed
    );
    assert_eq!(out.stderr.matches("error: bad duration").count(), 50);
    assert!(
        out.stderr.contains("… and 9,950 more"),
        "{}",
        tail(&out.stderr)
    );
    assert!(
        out.stderr.contains("playbook.toml: 10,000 problems found"),
        "{}",
        tail(&out.stderr)
    );
}

/// Item 11: template bombs in vars end with a clear error, quickly, in `plan` and `run`.
#[test]
fn template_bombs_are_stopped_by_fuel_and_work_limits() {
    let cases = [
        ("repeat", "{{ [1] * 100000000000 }}", "too much work"),
        (
            "joined repeat",
            "{{ ([1] * 100000000000) | join(',') }}",
            "too much work",
        ),
        (
            "nested ranges",
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            "ran out of fuel",
        ),
        (
            "printing",
            "{% for i in range(100000) %}{{ 'a' * 1000 }}{% endfor %}",
            "too much work",
        ),
    ];
    for (name, bomb, message) in cases {
        let toml = format!("{HEAD}[vars]\nx = \"\"\"{bomb}\"\"\"\n");
        let (validate, plan, dir) = validate_and_plan(&toml, Duration::from_secs(30));
        assert_eq!(validate.code, Some(0), "{name}: {}", tail(&validate.stderr));
        assert_eq!(plan.code, Some(2), "{name}: {}", tail(&plan.stderr));
        assert!(
            plan.stderr.contains("vars.x"),
            "{name}: {}",
            tail(&plan.stderr)
        );
        assert!(
            plan.stderr.contains(message),
            "{name}: {}",
            tail(&plan.stderr)
        );
        assert!(
            plan.elapsed < Duration::from_secs(10),
            "{name}: {:?}",
            plan.elapsed
        );
        let run = run_bounded(
            tool(
                dir.path(),
                &["run", "playbook.toml", "--artifacts", "a", "--quiet"],
            ),
            Duration::from_secs(30),
        );
        run.assert_sane(name);
        assert_eq!(run.code, Some(2), "{name}: {}", tail(&run.stderr));
    }
    // In a step's field, the bomb fails that step; the drill goes on to its cleanup.
    let toml = format!(
        "{HEAD}[[steps]]\nid = \"bomb\"\nkind = \"exec\"\nrun = \"echo {{{{ [1] * 100000000000 }}}}\"\n\
         [[cleanup]]\nid = \"tidy\"\nkind = \"exec\"\nrun = \"touch cleaned\"\n"
    );
    let d = Drill::new(&toml);
    let out = run_bounded(d.command(), Duration::from_secs(60));
    out.assert_sane("run");
    assert_eq!(out.code, Some(1), "{}", tail(&out.stderr));
    let dir = d.dir_for_tests();
    assert!(dir.path().join("cleaned").exists());
    let record = newest_record(&dir.path().join("artifacts"));
    let error = record["steps"][0]["error"].as_str().unwrap();
    assert!(error.contains("too much work"), "{error}");
}

/// Item 12: a playbook (or report template, or record) past its size limit is refused
/// before it is read whole: `/dev/zero` is not read for ever.
#[test]
fn oversized_inputs_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["validate", "/dev/zero"][..],
        &["plan", "/dev/zero"],
        &["run", "/dev/zero", "--artifacts", "a"],
    ] {
        let out = run_bounded(tool(dir.path(), args), Duration::from_secs(20));
        out.assert_sane(args[0]);
        assert_eq!(out.code, Some(2), "{args:?}: {}", tail(&out.stderr));
        assert!(out.stdout.is_empty(), "{args:?}: {}", tail(&out.stdout));
        assert!(
            out.stderr.contains("/dev/zero")
                && out.stderr.contains("larger than the limit of 16 MiB"),
            "{args:?}: {}",
            tail(&out.stderr)
        );
    }
    // A real file one byte past the limit (valid TOML: a comment).
    let big = dir.path().join("big.toml");
    let mut text = format!("{HEAD}#");
    text.push_str(&"x".repeat((16 << 20) + 1 - text.len()));
    std::fs::write(&big, &text).unwrap();
    let out = run_bounded(
        tool(dir.path(), &["validate", "big.toml"]),
        Duration::from_secs(20),
    );
    out.assert_sane("validate big");
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("16 MiB"), "{}", out.stderr);
    // Exactly at the limit is read.
    std::fs::write(&big, &text[..16 << 20]).unwrap();
    let out = run_bounded(
        tool(dir.path(), &["validate", "big.toml"]),
        Duration::from_secs(20),
    );
    assert_eq!(out.code, Some(0), "{}", tail(&out.stderr));

    // `report --template` and the record it reads are bounded the same way.
    let d = Drill::new(&format!(
        "{HEAD}[[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"1ms\"\n"
    ))
    .run()
    .expect_code(0);
    let record = newest_artifact(&d.path().join("artifacts"), ".json");
    let record = record.to_str().unwrap();
    let out = run_bounded(
        tool(d.path(), &["report", record, "--template", "/dev/zero"]),
        Duration::from_secs(20),
    );
    out.assert_sane("report --template");
    assert_eq!(out.code, Some(2), "{}", tail(&out.stderr));
    assert!(
        out.stderr.contains("/dev/zero") && out.stderr.contains("16 MiB"),
        "{}",
        out.stderr
    );
    let out = run_bounded(
        tool(d.path(), &["report", "/dev/zero"]),
        Duration::from_secs(20),
    );
    out.assert_sane("report");
    assert_eq!(out.code, Some(2), "{}", tail(&out.stderr));
    assert!(out.stderr.contains("64 MiB"), "{}", out.stderr);
}
