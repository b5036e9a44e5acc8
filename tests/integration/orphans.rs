//! Processes left behind by a restore-drill that was SIGKILLed: the kernel ends the
//! group leaders it started (parent-death signal), restore-drill adopts and reaps the
//! orphans of its steps while it runs (child subreaper), and the next run of the same
//! drill stops whatever the dead run recorded in its lock file, and says so.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// state, ppid, pgrp, start time of a process, from /proc.
fn stat(pid: i32) -> Option<(char, i32, i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some((
        fields[0].chars().next()?,
        fields[1].parse().ok()?,
        fields[2].parse().ok()?,
        fields[19].parse().ok()?,
    ))
}

/// A process as it was seen: a later one with the same pid is another process.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    pid: i32,
    start: u64,
}

impl Seen {
    fn now(pid: i32) -> Option<Self> {
        stat(pid).map(|(_, _, _, start)| Self { pid, start })
    }

    /// Running (a zombie has exited: only its parent has not reaped it yet).
    fn alive(&self) -> bool {
        stat(self.pid).is_some_and(|(state, _, _, start)| start == self.start && state != 'Z')
    }
}

/// The live members of a process group.
fn members(pgid: i32) -> Vec<Seen> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| stat(*pid).is_some_and(|(state, _, pgrp, _)| pgrp == pgid && state != 'Z'))
        .filter_map(Seen::now)
        .collect()
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills what a test saw, whatever happened (a failing test leaves no sleeps behind).
struct Reap(Vec<Seen>);

impl Drop for Reap {
    fn drop(&mut self) {
        for p in self.0.iter().filter(|p| p.alive()) {
            // SAFETY: kill(2) on a process this test's drill started (same start time).
            unsafe { libc::kill(p.pid, libc::SIGKILL) };
        }
    }
}

/// A drill running in the background; interrupted if the test fails before it ends.
struct Background {
    child: Child,
    dir: Option<tempfile::TempDir>,
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.child.try_wait().is_ok_and(|s| s.is_none()) {
            // SAFETY: kill(2) on the child this test started.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while self.child.try_wait().is_ok_and(|s| s.is_none()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Background {
    fn start(drill: Drill) -> Self {
        let child = drill.spawn(Stdio::null);
        Self {
            child,
            dir: Some(drill.dir_for_tests()),
        }
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    fn step_status(&self, id: &str) -> Option<String> {
        let record = latest_record(self.path())?;
        let step = record["steps"].as_array()?.iter().find(|s| s["id"] == id)?;
        step["status"].as_str().map(str::to_string)
    }

    fn wait_running(&mut self, id: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.step_status(id).as_deref() != Some("running") {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the drill ended before step {id} ran"
            );
            assert!(Instant::now() < deadline, "step {id} never started");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The lock file's content (the run's state: its process groups and clusters).
    fn lock(&self, drill: &str) -> Value {
        let path = self
            .path()
            .join(format!("artifacts/.restore-drill-{drill}.lock"));
        serde_json::from_str(std::fs::read_to_string(path).unwrap().trim()).unwrap()
    }

    fn sigkill(mut self) -> tempfile::TempDir {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.dir.take().unwrap()
    }
}

/// Runs `playbook` in `dir` again, with the same artifacts directory.
fn run_again(dir: &Path, playbook: &str) -> (i32, Value, String) {
    let ran = restore_drill(
        dir,
        &["run", playbook, "--artifacts", "artifacts", "--quiet"],
    );
    (ran.code, newest_record(&dir.join("artifacts")), ran.stderr)
}

fn leftover<'a>(record: &'a Value, id: &str) -> &'a Value {
    record["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "leftover" && r["id"] == id)
        .unwrap_or_else(|| panic!("no leftover {id} in {}", record["resources"]))
}

/// The step's command: its leader writes its pid, a background child writes its own;
/// `true` at the end keeps the shell from exec'ing the last sleep.
const TREE: &str = "echo $$ > leader; sleep 1000 & echo $! > bg; sleep 1000; true";

fn playbook(kind: &str) -> Playbook {
    let held = "vars.hold == '1'";
    let tree = step("tree", kind).set("run", TREE).set("when", held);
    let playbook = pb("orphans").var("hold", "0").step(tree);
    let playbook = if kind == "service" {
        playbook.step(wait("hold", "1000s").set("when", held))
    } else {
        playbook
    };
    playbook.step(exec("after", "true"))
}

/// SIGKILLs a run while step `running` holds the process tree of `tree`, then checks
/// what the kernel did and what the next run does.
fn killed_run_leaves_nothing_after_the_next(kind: &str, running: &str) {
    let mut run = Background::start(playbook(kind).drill().arg("--var").arg("hold=1"));
    run.wait_running(running, Duration::from_secs(30));
    let read_pid = |name: &str| -> Option<i32> {
        std::fs::read_to_string(run.path().join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    wait_until("the step's processes", Duration::from_secs(10), || {
        read_pid("leader").is_some_and(|l| members(l).len() >= 3) && read_pid("bg").is_some()
    });
    let pgid = read_pid("leader").unwrap();
    let seen = members(pgid);
    let _reap = Reap(seen.clone());
    let leader = *seen.iter().find(|p| p.pid == pgid).unwrap();
    let bg = Seen::now(read_pid("bg").unwrap()).unwrap();
    assert!(leader.alive(), "the {kind}'s leader runs before the kill");

    // The run's state file names the group while it runs.
    let lock = run.lock("orphans");
    let entry = lock["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pgid"] == pgid)
        .unwrap_or_else(|| panic!("group {pgid} not in the lock file: {lock}"));
    assert_eq!(entry["kind"], kind, "{entry}");
    assert_eq!(entry["step"], "tree", "{entry}");
    let workdir = newest_record(&run.path().join("artifacts"))["workdir"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(Path::new(&workdir).is_dir());

    let dir = run.sigkill();
    // The kernel ends the leader (parent-death signal); its children live on for now.
    wait_until(
        "the leader to die with restore-drill",
        Duration::from_secs(5),
        || !leader.alive(),
    );
    assert!(
        bg.alive(),
        "the background child is only stopped by the next run"
    );

    let (code, record, stderr) = run_again(dir.path(), "playbook.toml");
    assert_eq!(code, 0, "{stderr}\n{record}");
    for p in &seen {
        assert!(!p.alive(), "{p:?} of the dead run survived the next run");
    }
    let left = leftover(&record, &format!("process group {pgid}"));
    assert_eq!(left["removed"], true, "{left}");
    assert_eq!(left["step"], "tree", "{left}");
    let detail = left["detail"].as_str().unwrap();
    assert!(detail.contains("stopped by SIGTERM"), "{detail}");
    assert!(detail.contains(kind), "{detail}");
    // The dead run's work directory goes too.
    assert!(!Path::new(&workdir).exists(), "{workdir} left behind");
    assert_eq!(leftover(&record, &workdir)["removed"], true);
    let warnings = record["warnings"].to_string();
    assert!(warnings.contains("took over the lock"), "{warnings}");
    assert!(
        warnings.contains(&format!("left by the run that died: process group {pgid}")),
        "{warnings}"
    );
    let log =
        std::fs::read_to_string(newest_artifact(&dir.path().join("artifacts"), ".log")).unwrap();
    assert!(log.contains(&format!("process group {pgid}")), "{log}");
    // A clean end leaves an empty lock: nothing for a third run to stop.
    let lock =
        std::fs::read_to_string(dir.path().join("artifacts/.restore-drill-orphans.lock")).unwrap();
    assert!(lock.is_empty(), "{lock}");
}

#[test]
fn a_sigkilled_exec_step_leaves_nothing_after_the_next_run() {
    killed_run_leaves_nothing_after_the_next("exec", "tree");
}

#[test]
fn a_sigkilled_runs_service_is_stopped_by_the_next_run() {
    // The service outlived its step (which passed): it must not die with the step's
    // thread, only with restore-drill.
    killed_run_leaves_nothing_after_the_next("service", "hold");
}

/// While restore-drill runs, an orphan of a step is re-parented to it (not pid 1), and
/// reaped once killed: no zombie is left among its children.
#[test]
fn restore_drill_adopts_and_reaps_the_orphans_of_its_steps() {
    let playbook = pb("reaper").step([
        exec(
            "orphan",
            "(sleep 1000 & echo $! > orphan); sleep 0.3; cut -d' ' -f4 /proc/$(cat orphan)/stat > orphan_ppid",
        ),
        wait("hold", "3s"),
        exec("after", "echo ok"),
    ]);
    let mut run = Background::start(playbook.drill());
    let drill_pid = run.child.id() as i32;
    run.wait_running("hold", Duration::from_secs(30));
    let orphan: i32 = std::fs::read_to_string(run.path().join("orphan"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let ppid: i32 = std::fs::read_to_string(run.path().join("orphan_ppid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(ppid, drill_pid, "the orphan was adopted by restore-drill");
    // The step's group was killed when the step ended: the orphan is reaped, not a zombie.
    wait_until(
        "the killed orphan to be reaped",
        Duration::from_secs(2),
        || stat(orphan).is_none_or(|(state, parent, _, _)| parent != drill_pid || state != 'Z'),
    );
    let status = run.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let record = newest_record(&run.path().join("artifacts"));
    assert_eq!(record["status"], "passed", "{record}");
    assert_eq!(record["steps"][2]["outputs"]["stdout"], "ok");
}

/// A throwaway PostgreSQL cluster of a SIGKILLed run: the kernel asks its server for an
/// immediate shutdown, and the next run of the drill removes what is left.
#[test]
fn a_sigkilled_runs_postgres_cluster_is_removed_by_the_next_run() {
    use super::postgres::{EPHEMERAL, PgServer, custom_drill, processes_mentioning};
    let Some(server) = PgServer::start("orphans (postgres)") else {
        return;
    };
    let hold = "[[steps]]\nid = \"hold\"\nkind = \"wait\"\nduration = \"1000s\"\n";
    let mut run = Background::start(custom_drill(
        &server,
        EPHEMERAL,
        &[("#AFTER_RESTORE#", hold)],
    ));
    run.wait_running("hold", Duration::from_secs(120));
    let lock = run.lock("pg");
    let cluster = lock["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "cluster")
        .unwrap_or_else(|| panic!("no cluster in the lock file: {lock}"))
        .clone();
    let dir = cluster["dir"].as_str().unwrap().to_string();
    assert!(cluster["pgid"].is_i64(), "{cluster}");
    assert!(
        !processes_mentioning(&dir).is_empty(),
        "the cluster runs before the kill"
    );

    let tmp = run.sigkill();
    // The kernel asked the server for an immediate shutdown: it ends by itself.
    wait_until(
        "the cluster's server to shut down after restore-drill died",
        Duration::from_secs(15),
        || processes_mentioning(&dir).is_empty(),
    );
    assert!(
        Path::new(&dir).exists(),
        "only the next run removes the directory"
    );
    std::fs::write(
        tmp.path().join("again.toml"),
        pb("pg").step(exec("noop", "true")).toml(),
    )
    .unwrap();
    let (code, record, stderr) = run_again(tmp.path(), "again.toml");
    assert_eq!(code, 0, "{stderr}\n{record}");
    let left = leftover(&record, &dir);
    assert_eq!(left["removed"], true, "{left}");
    assert!(
        left["detail"]
            .as_str()
            .unwrap()
            .contains("directory removed"),
        "{left}"
    );
    assert!(!Path::new(&dir).exists(), "{dir} left behind");
    assert!(processes_mentioning(&dir).is_empty());
}

/// A process of a step that left its process group (`setsid`, as a daemon does) is
/// stopped at teardown all the same, found by the run id it carries, and recorded as a
/// `stray` with a warning; the drill's verdict is its own.
#[test]
fn a_process_that_left_its_group_is_stopped_at_teardown() {
    let marker = format!("30{}", std::process::id() % 10_000);
    let run = format!("setsid sleep {marker} >/dev/null 2>&1 </dev/null & sleep 0.2");
    let out = pb("strays")
        .step([exec("daemon", &run), wait("w", "200ms")])
        .run()
        .expect_code(0);
    let left = processes_mentioning(&format!("sleep {marker}"));
    assert!(left.is_empty(), "left running: {left:?}");
    let stray = out.record()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "stray")
        .cloned()
        .unwrap_or_else(|| panic!("no stray in {}", out.record()["resources"]));
    assert_eq!(stray["removed"], true, "{stray}");
    let detail = stray["detail"].as_str().unwrap();
    assert!(detail.contains("(sleep): stopped by SIGTERM"), "{detail}");
    let warnings = out.record()["warnings"].to_string();
    assert!(warnings.contains("setsid or a daemon"), "{warnings}");
}

/// A step that holds the drill while `file` exists (place it after the restore).
pub fn hold_while(file: &Path) -> Step {
    let run = format!("while [ -e '{}' ]; do sleep 0.1; done", file.display());
    exec("hold", &run)
}

/// Runs `drill` until its step `hold` (see [`hold_while`]) holds it, kills the run
/// outright (SIGKILL), lets go of `hold`, and runs the drill again in the same
/// directory: how the second run ended, and its record.
pub fn killed_while_held_then_again(drill: &Drill, hold: tempfile::TempPath) -> (Ran, Value) {
    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut run = Killed(drill.spawn(Stdio::null));
    wait_until("step hold to run", Duration::from_secs(120), || {
        assert!(
            run.0.try_wait().unwrap().is_none(),
            "the drill ended before step hold ran"
        );
        let record = latest_record(drill.path());
        let steps = record.as_ref().and_then(|r| r["steps"].as_array().cloned());
        let hold = steps.and_then(|s| s.into_iter().find(|s| s["id"] == "hold"));
        hold.is_some_and(|s| s["status"] == "running")
    });
    drop(run);
    drop(hold);
    let ran = drill.run_again();
    let record = latest_record(drill.path()).expect("a record of the second run");
    (ran, record)
}

/// The mark of a drill's scratch database made by a run that is still running: this
/// test's own process, as `restore-drill` writes its own.
pub fn live_mark() -> String {
    let me = std::process::id() as i32;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let owner = serde_json::json!({
        "run": "a-live-run",
        "step": "restore",
        "host": gethostname::gethostname().to_string_lossy(),
        "boot": boot.trim(),
        "pidns": std::fs::read_link("/proc/self/ns/pid").unwrap(),
        "pid": me,
        "start": stat(me).unwrap().3,
    });
    format!("restore-drill scratch database, made by {owner}")
}

/// The warnings of a record that say `text`.
pub fn warnings_saying(record: &Value, text: &str) -> Vec<String> {
    let warnings = record["warnings"].as_array().cloned().unwrap_or_default();
    let texts = warnings.iter().filter_map(|w| w.as_str());
    texts
        .filter(|w| w.contains(text))
        .map(str::to_string)
        .collect()
}
