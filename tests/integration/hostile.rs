//! Hostile or absurd input: the tool answers with a clear error (exit 2, or a failed step)
//! in bounded time, never a panic (exit 101), an abort (a signal) or a hang.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// What a bounded run of the binary did.
pub struct Bounded {
    /// None: killed by a signal (or by us, past the limit).
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// CPU time the process used: what a test of its complexity bounds, unlike `elapsed`,
    /// which grows with the machine's load.
    pub cpu: Duration,
    /// The most memory the process held at once (its maximum resident set), in bytes.
    pub max_rss: u64,
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

/// Runs `cmd`, killing it after `limit`; output is read while it runs.
#[expect(clippy::zombie_processes, reason = "`reap` waits for it with wait4")]
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
    let (status, cpu, max_rss) = loop {
        if let Some(ended) = reap(&child, libc::WNOHANG) {
            break ended;
        }
        if started.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            break reap(&child, 0).expect("wait");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    Bounded {
        cpu,
        max_rss,
        code: status.code(),
        signal: if timed_out { None } else { status.signal() },
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        elapsed,
        timed_out,
    }
}

/// The child's exit status, the CPU time it used (user + system) and its maximum resident
/// set in bytes, once it ended: `wait4` reaps it and reports its own usage, whatever else
/// runs on the machine.
fn reap(
    child: &std::process::Child,
    flags: i32,
) -> Option<(std::process::ExitStatus, Duration, u64)> {
    use std::os::unix::process::ExitStatusExt as _;
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: both pointers are to locals that live across the call.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, flags, &mut usage) };
    (pid > 0).then(|| {
        let secs = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        let cpu = secs(usage.ru_utime) + secs(usage.ru_stime);
        let max_rss = usage.ru_maxrss as u64 * 1024;
        (std::process::ExitStatus::from_raw(status), cpu, max_rss)
    })
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
    let one = |s: Step| pb("t").step(s);
    let probe = || http("h", "http://127.0.0.1:9/");
    let daemon = || service("s").set("run", "sleep 5");
    let ready = raw(format!("{{ log_line = \"x\", timeout = \"{HUGE}\" }}"));
    let cases = [
        ("duration", one(wait("w", HUGE))),
        ("timeout", one(wait("w", "1s").set("timeout", HUGE))),
        (
            "max_duration",
            one(wait("w", "1s").set("max_duration", HUGE)),
        ),
        (
            "retry_delay",
            one(exec("w", "false")
                .set("retries", 1)
                .set("retry_delay", HUGE)),
        ),
        ("request_timeout", one(probe().set("request_timeout", HUGE))),
        ("retry_until", one(probe().set("retry_until", HUGE))),
        ("interval", one(probe().set("interval", HUGE))),
        ("stop_grace", one(daemon().set("stop_grace", HUGE))),
        ("ready.timeout", one(daemon().set("ready", ready))),
        (
            "assume",
            one(step("m", "manual")
                .set("instructions", "x")
                .set("assume", HUGE)),
        ),
        ("rto", pb("t").gate("rto", HUGE)),
        (
            "rpo",
            pb("t")
                .gate("rpo", HUGE)
                .gate("rpo_from", "2026-01-01T00:00:00Z"),
        ),
        // Just past the limit, written the way a person would.
        ("one year and a day", one(wait("w", "366d"))),
    ];
    for (name, playbook) in cases {
        let toml = playbook.toml();
        let out = Drill::new(&toml).subcommand("validate").run();
        assert_eq!(
            out.code, 2,
            "{name}: validate exit {}\n{}",
            out.code, out.stderr
        );
        assert_has(&out.stderr, "longer than the limit of 365 days", name);
        assert_has(&out.stderr, "--> playbook.toml:", name);
        let run = run_bounded(Drill::new(&toml).command(), Duration::from_secs(30));
        run.assert_sane(name);
        assert_eq!(run.code, Some(2), "{name}: run\n{}", run.stderr);
    }
    // Retries are bounded too: each attempt may take its whole `timeout`.
    let retries = exec("x", "false").set("retries", 4294967295u64);
    let out = one(retries.set("retry_delay", "0s")).drill().validate();
    let out = out.expect_code(2);
    out.stderr_has("`retries = 4294967295` is more than the limit of 1000");
    // The limit itself is allowed.
    let assume = step("m", "manual").set("instructions", "x");
    one(assume.set("assume", "365d"))
        .drill()
        .validate()
        .expect_code(0);
}

/// Item 8: a templated duration that renders past the limit fails its step cleanly at run
/// time: the drill ends (exit 1), its record is complete and cleanup ran.
#[test]
fn a_templated_duration_past_the_limit_fails_the_step_not_the_run() {
    let d = pb("t")
        .var("d", HUGE)
        .step([
            exec("flaky", "false")
                .set("retries", 1)
                .set("retry_delay", "{{ vars.d }}"),
            wait("wait", "{{ vars.d }}").set("continue_on_failure", true),
            mark_cleaned(),
        ])
        .drill();
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
    let gate = Table::new("[[gates.custom]]").set("name", "g");
    let cases = [
        (
            "when",
            pb("t").step(wait("w", "1s").set("when", nots.as_str())),
        ),
        ("vars", pb("t").var("x", format!("{{{{ {sum} }}}}"))),
        ("elif", pb("t").var("x", elifs)),
        ("gate", pb("t").section(gate.set("check", nots.as_str()))),
    ];
    for (name, playbook) in cases {
        let toml = playbook.toml();
        assert!(toml.len() > 80_000, "{name}: {} bytes", toml.len());
        let (validate, plan, _dir) = validate_and_plan(&toml, Duration::from_secs(30));
        for (what, out) in [("validate", &validate), ("plan", &plan)] {
            assert_eq!(out.code, Some(2), "{name} {what}\n{}", tail(&out.stderr));
            assert_has(
                &out.stderr,
                "template too complex",
                format!("{name} {what}"),
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
    let playbook = (0..10_000).fold(pb("t"), |p, i| p.step(wait(&format!("s{i}"), "soon")));
    let dir = playbook.drill().dir_for_tests();
    let out = run_bounded(
        tool(dir.path(), &["validate", "playbook.toml"]),
        Duration::from_secs(60),
    );
    out.assert_sane("validate");
    assert_eq!(out.code, Some(2));
    // Linear: well under a second of CPU; before, 10 to 40 seconds.
    assert!(
        out.cpu < Duration::from_secs(5),
        "validating 10,000 problems took {:?} of CPU",
        out.cpu
    );
    assert_eq!(out.stderr.matches("error: bad duration").count(), 50);
    assert_has(&out.stderr, "… and 9,950 more", "validate");
    assert_has(
        &out.stderr,
        "playbook.toml: 10,000 problems found",
        "validate",
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
        let toml = pb("t").var("x", bomb).step(wait("w", "1ms")).toml();
        let (validate, plan, dir) = validate_and_plan(&toml, Duration::from_secs(30));
        assert_eq!(validate.code, Some(0), "{name}: {}", tail(&validate.stderr));
        assert_eq!(plan.code, Some(2), "{name}: {}", tail(&plan.stderr));
        assert_has(&plan.stderr, "vars.x", name);
        assert_has(&plan.stderr, message, name);
        assert!(
            plan.cpu < Duration::from_secs(10),
            "{name}: {:?} of CPU",
            plan.cpu
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
    let bomb = exec("bomb", "echo {{ [1] * 100000000000 }}");
    let d = pb("t").step([bomb, mark_cleaned()]).drill();
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
        assert_has(&out.stderr, "/dev/zero", format!("{args:?}"));
        assert_has(
            &out.stderr,
            "larger than the limit of 16 MiB",
            format!("{args:?}"),
        );
    }
    // A real file one byte past the limit (valid TOML: a comment).
    let big = dir.path().join("big.toml");
    let mut text = format!("{}#", pb("t").step(wait("w", "1ms")));
    text.push_str(&"x".repeat((16 << 20) + 1 - text.len()));
    std::fs::write(&big, &text).unwrap();
    let out = run_bounded(
        tool(dir.path(), &["validate", "big.toml"]),
        Duration::from_secs(20),
    );
    out.assert_sane("validate big");
    assert_eq!(out.code, Some(2));
    assert_has(&out.stderr, "16 MiB", "validate big");
    // Exactly at the limit is read.
    std::fs::write(&big, &text[..16 << 20]).unwrap();
    let out = run_bounded(
        tool(dir.path(), &["validate", "big.toml"]),
        Duration::from_secs(20),
    );
    assert_eq!(out.code, Some(0), "{}", tail(&out.stderr));

    // `report --template` and the record it reads are bounded the same way.
    let d = pb("t").step(wait("w", "1ms")).run().expect_code(0);
    let record = newest_artifact(&d.path().join("artifacts"), ".json");
    let record = record.to_str().unwrap();
    let out = run_bounded(
        tool(d.path(), &["report", record, "--template", "/dev/zero"]),
        Duration::from_secs(20),
    );
    out.assert_sane("report --template");
    assert_eq!(out.code, Some(2), "{}", tail(&out.stderr));
    assert_has(&out.stderr, "/dev/zero", "report --template");
    assert_has(&out.stderr, "16 MiB", "report --template");
    let out = run_bounded(
        tool(d.path(), &["report", "/dev/zero"]),
        Duration::from_secs(20),
    );
    out.assert_sane("report");
    assert_eq!(out.code, Some(2), "{}", tail(&out.stderr));
    assert_has(&out.stderr, "64 MiB", "report");
}
