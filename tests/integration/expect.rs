//! The other half of the test kit: running drills in the background and commands
//! beside them, what the machine holds (processes, files), and the expectations on an
//! outcome (`out.step("restore").failed_with("…")`, `out.check("fks").passed()`,
//! `out.gate("RTO").status("failed")`), which print the record and stderr when they fail.

use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Drill, Outcome, newest_artifact};

impl Drill {
    /// Runs the drill in its directory again, keeping the directory.
    pub fn run_again(&self) -> Ran {
        Ran::of(self.command().output().expect("run restore-drill"))
    }

    /// Starts the drill, its stdout and stderr each going to a new `output()`.
    pub fn spawn(&self, output: fn() -> Stdio) -> Child {
        let mut cmd = self.command();
        cmd.stdin(Stdio::null()).stdout(output()).stderr(output());
        cmd.spawn().expect("start restore-drill")
    }

    /// Starts the drill in the background.
    pub fn start(self) -> Running {
        let child = self.spawn(Stdio::piped);
        Running {
            child,
            dir: self.dir_for_tests(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Runs outside `Drill::run`

/// What a command printed and how it ended.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    fn of(out: std::process::Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Fails the test with everything the command printed when the exit code differs.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code {} (expected {code})\n--- stderr\n{}\n--- stdout\n{}",
            self.code, self.stderr, self.stdout
        );
        self
    }
}

/// `restore-drill <args>` run in `dir`.
pub fn restore_drill(dir: &Path, args: &[&str]) -> Ran {
    Ran::of(
        Command::new(env!("CARGO_BIN_EXE_restore-drill"))
            .current_dir(dir)
            .args(args)
            .output()
            .expect("run restore-drill"),
    )
}

/// The newest record in `dir`/artifacts, if there is one that parses.
pub fn latest_record(dir: &Path) -> Option<Value> {
    let newest = std::fs::read_dir(dir.join("artifacts"))
        .ok()?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .max()?;
    serde_json::from_str(&std::fs::read_to_string(newest).ok()?).ok()
}

/// A drill running in the background, to be watched and signalled.
pub struct Running {
    pub child: Child,
    pub dir: tempfile::TempDir,
}

impl Running {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The newest record, once one was written.
    pub fn record(&self) -> Option<Value> {
        latest_record(self.path())
    }

    /// Waits (at most a minute) until the record says step `id` is `status`; returns it.
    pub fn wait_step(&mut self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let found = self.record().and_then(|r| {
                let steps = r["steps"].as_array()?;
                steps.iter().find(|s| s["id"] == id).cloned()
            });
            match found {
                Some(step) if step["status"] == status => return step,
                _ if Instant::now() >= deadline => panic!("step {id} never was {status}"),
                _ => assert!(
                    self.child.try_wait().unwrap().is_none(),
                    "the drill ended before step {id} was {status}"
                ),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until step `id` is running.
    pub fn wait_running(&mut self, id: &str) {
        self.wait_step(id, "running");
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the child this test started.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    /// Killed outright (SIGKILL, as the OOM killer does) while step `id` runs.
    pub fn killed_in(mut self, id: &str) -> Outcome {
        self.wait_running(id);
        self.signal(libc::SIGKILL);
        self.finish()
    }

    /// Ctrl-C: SIGINT, then the drill ends with code 130 and an `aborted` record.
    #[track_caller]
    pub fn interrupt(self) -> Outcome {
        self.signal(libc::SIGINT);
        let out = self.finish().expect_code(130);
        out.status("aborted");
        out
    }

    /// Ctrl-C while step `first` runs, and again once cleanup step `then` runs (which
    /// skips the rest of cleanup): the drill ends with code 130 and an `aborted` record.
    #[track_caller]
    pub fn interrupt_twice(mut self, first: &str, then: &str) -> Outcome {
        self.wait_running(first);
        self.signal(libc::SIGINT);
        self.wait_running(then);
        self.interrupt()
    }

    /// Waits for the drill to end (at most a minute: a hung drill fails the test instead
    /// of hanging it).
    pub fn finish(mut self) -> Outcome {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("the drill did not end within a minute");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = Ran::of(self.child.wait_with_output().unwrap());
        Outcome {
            code: out.code,
            stdout: out.stdout,
            stderr: out.stderr,
            dir: self.dir,
        }
    }

    /// Samples every process's command line every 10 ms until the drill ends: `secret`
    /// must never be in one. Returns the outcome and the command lines holding `needle`.
    pub fn watch_processes(self, secret: &str, needle: &str) -> (Outcome, Vec<String>) {
        let mut seen = Vec::new();
        let mut run = self;
        while run.child.try_wait().unwrap().is_none() {
            for line in command_lines() {
                assert!(!line.contains(secret), "secret in a command line: {line}");
                if line.contains(needle) && !seen.contains(&line) {
                    seen.push(line);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (run.finish(), seen)
    }
}

// ---------------------------------------------------------------------------------------
// Processes, files, machine

/// `pid: command line` of every process.
fn command_lines() -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            if !cmdline.is_empty() {
                let pid = entry.file_name().to_string_lossy().into_owned();
                found.push(format!("{pid}: {cmdline}"));
            }
        }
    }
    found
}

/// Processes whose command line contains `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut lines = command_lines();
    lines.retain(|l| l.split_once(": ").is_some_and(|(_, c)| c.contains(needle)));
    lines
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// A port nothing listens on (now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Everything under `dir`, as relative paths (none when `dir` does not exist, e.g. after
/// teardown removed it).
pub fn listing(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack: Vec<_> = dir
        .exists()
        .then(|| dir.to_path_buf())
        .into_iter()
        .collect();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            found.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            }
        }
    }
    found.sort();
    found
}

/// Every file under `dir` (hidden ones too) with its content as text.
pub fn all_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for name in listing(dir) {
        let path = dir.join(name);
        if path.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            out.push((path, text));
        }
    }
    out
}

/// Every file under `artifacts/` and beside the playbook, stdout and stderr.
pub fn everything_written(out: &Outcome) -> Vec<(String, String)> {
    let mut seen = vec![
        ("stdout".to_string(), out.stdout.clone()),
        ("stderr".to_string(), out.stderr.clone()),
    ];
    let files = all_files(out.path()).into_iter();
    seen.extend(files.map(|(p, t)| (p.display().to_string(), t)));
    seen
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn sha256_of(path: &Path) -> String {
    sha256_hex(&std::fs::read(path).unwrap())
}

// ---------------------------------------------------------------------------------------
// Expectations

/// The last 3,000 bytes of `s` (what a failure message shows of a long output).
pub fn tail(s: &str) -> &str {
    let mut start = s.len().saturating_sub(3000);
    while !s.is_char_boundary(start) {
        start -= 1;
    }
    &s[start..]
}

/// `text` holds `needle`; else the test fails naming `what` and showing `text`'s tail.
#[track_caller]
pub fn assert_has(text: &str, needle: &str, what: impl fmt::Display) {
    assert!(
        text.contains(needle),
        "{what}: {needle:?} is not in\n{}",
        tail(text)
    );
}

/// What a step, a check or a gate of the record is.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Step,
    Check,
    Gate,
}

/// A step, check or gate as the record has it: indexable like the JSON it is, with
/// expectations that print it and the run when they fail.
pub struct Seen {
    value: Value,
    part: Part,
    run: String,
}

impl Deref for Seen {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.value
    }
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.value, f)
    }
}

impl fmt::Debug for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.value, f)
    }
}

impl Seen {
    #[track_caller]
    fn fail(&self, what: &str) -> ! {
        panic!("{what}\n--- as recorded\n{:#}\n{}", self.value, self.run)
    }

    /// The message of a failure: `error` of a step, `detail` of a check or gate.
    pub fn message(&self) -> String {
        let field = if self.part == Part::Step {
            "error"
        } else {
            "detail"
        };
        match &self.value[field] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }

    /// `status` of a step or gate.
    #[track_caller]
    pub fn status(&self, status: &str) -> &Self {
        if self.value["status"] != status {
            self.fail(&format!("status is not {status}"));
        }
        self
    }

    #[track_caller]
    pub fn passed(&self) -> &Self {
        match self.part {
            Part::Check if self.value["passed"] != true => self.fail("the check did not pass"),
            Part::Check => self,
            _ => self.status("passed"),
        }
    }

    #[track_caller]
    pub fn failed(&self) -> &Self {
        match self.part {
            Part::Check if self.value["passed"] != false => self.fail("the check did not fail"),
            Part::Check => self,
            _ => self.status("failed"),
        }
    }

    /// Failed, with `text` in its message.
    #[track_caller]
    pub fn failed_with(&self, text: &str) -> &Self {
        self.failed().says(text)
    }

    /// `text` is in the message (whatever the status).
    #[track_caller]
    pub fn says(&self, text: &str) -> &Self {
        if !self.message().contains(text) {
            self.fail(&format!("{text:?} is not in the message"));
        }
        self
    }

    /// The output `name` of a step.
    #[track_caller]
    pub fn output(&self, name: &str) -> &Value {
        match self.value["outputs"].get(name) {
            Some(v) => v,
            None => self.fail(&format!("no output `{name}`")),
        }
    }

    /// The output `name` of a step is text holding `text`.
    #[track_caller]
    pub fn output_has(&self, name: &str, text: &str) -> &Self {
        if !self.output(name).as_str().is_some_and(|s| s.contains(text)) {
            self.fail(&format!("{text:?} is not in output `{name}`"));
        }
        self
    }

    /// The check `name` of a step.
    #[track_caller]
    pub fn check(&self, name: &str) -> Seen {
        let found = self.value["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name));
        match found {
            Some(c) => Seen {
                value: c.clone(),
                part: Part::Check,
                run: format!("--- in step\n{:#}\n{}", self.value, self.run),
            },
            None => self.fail(&format!("no check `{name}`")),
        }
    }

    /// Name and verdict of each check of a step, in order.
    pub fn results(&self) -> Vec<(String, bool)> {
        let checks = self.value["checks"].as_array().cloned().unwrap_or_default();
        checks
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_string(),
                    c["passed"] == true,
                )
            })
            .collect()
    }

    /// The names of the checks that failed, in order.
    pub fn failed_checks(&self) -> Vec<String> {
        let results = self.results().into_iter();
        results.filter(|(_, ok)| !ok).map(|(n, _)| n).collect()
    }

    /// Every check of the step passed.
    #[track_caller]
    pub fn all_checks_passed(&self) -> &Self {
        if !self.failed_checks().is_empty() || self.value["checks"].as_array().is_none() {
            self.fail("not every check passed");
        }
        self
    }
}

impl Outcome {
    /// The run in short, for failure messages: status, each step, stderr.
    pub fn summary(&self) -> String {
        let mut text = format!("--- exit code {}\n", self.code);
        if let Some(record) = latest_record(self.path()) {
            text.push_str(&format!("--- run {}\n", record["status"]));
            for s in record["steps"].as_array().into_iter().flatten() {
                text.push_str(&format!("  {} {} {}\n", s["id"], s["status"], s["error"]));
            }
        }
        text + "--- stderr\n" + &self.stderr
    }

    #[track_caller]
    fn find(&self, list: &str, key: &str, name: &str, part: Part) -> Seen {
        let record = self.record();
        let found = record[list]
            .as_array()
            .and_then(|l| l.iter().find(|x| x[key] == name));
        match found {
            Some(v) => Seen {
                value: v.clone(),
                part,
                run: self.summary(),
            },
            None => panic!("no {list} {name}: {}\n{}", record[list], self.summary()),
        }
    }

    /// The step `id` as recorded.
    #[track_caller]
    pub fn step(&self, id: &str) -> Seen {
        self.find("steps", "id", id, Part::Step)
    }

    /// The gate `name` as recorded.
    #[track_caller]
    pub fn gate(&self, name: &str) -> Seen {
        self.find("gates", "name", name, Part::Gate)
    }

    /// The check `name` (of whichever step has it: one must).
    #[track_caller]
    pub fn check(&self, name: &str) -> Seen {
        let record = self.record();
        let steps: Vec<&Value> = record["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                s["checks"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["name"] == name))
            })
            .collect();
        assert_eq!(
            steps.len(),
            1,
            "check {name} in {} steps\n{}",
            steps.len(),
            self.summary()
        );
        self.step(steps[0]["id"].as_str().unwrap()).check(name)
    }

    /// The output `name` of step `id`.
    pub fn output(&self, id: &str, name: &str) -> Value {
        self.step(id).output(name).clone()
    }

    /// The run's status.
    #[track_caller]
    pub fn status(&self, status: &str) -> &Self {
        assert!(
            self.record()["status"] == status,
            "the run is not {status}\n{}",
            self.summary()
        );
        self
    }

    /// The first resource of `kind`.
    pub fn resource(&self, kind: &str) -> Value {
        let record = self.record();
        let found = record["resources"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["kind"] == kind));
        found
            .unwrap_or_else(|| panic!("no {kind} resource: {}", record["resources"]))
            .clone()
    }

    #[track_caller]
    pub fn report_has(&self, text: &str) -> &Self {
        let report = self.report();
        assert!(
            report.contains(text),
            "{text:?} is not in the report:\n{report}"
        );
        self
    }

    #[track_caller]
    pub fn log_has(&self, text: &str) -> &Self {
        let log = self.log();
        assert!(log.contains(text), "{text:?} is not in the log:\n{log}");
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "{text:?} is not on stderr:\n{}",
            self.stderr
        );
        self
    }

    /// The newest artifact ending in `ext`, as text.
    pub fn artifact_text(&self, ext: &str) -> String {
        std::fs::read_to_string(newest_artifact(&self.path().join("artifacts"), ext)).unwrap()
    }

    /// A file of the drill's directory, as text.
    pub fn file(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel))
            .unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    /// Whether `cleaned` (left by [`super::kit::mark_cleaned`]) is there.
    pub fn cleaned(&self) -> bool {
        self.path().join("cleaned").exists()
    }
}
