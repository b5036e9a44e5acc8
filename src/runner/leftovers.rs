//! What a run that died left running, stopped by the next run of the same drill.
//!
//! A run records the process groups and clusters it starts in its lock file (see
//! `lock` and `crate::proc::registry`). When a run takes over a lock whose holder died,
//! it stops each of them, but only what is verifiably that run's: the group must still
//! exist on the same boot, and one of its processes must be either the recorded leader
//! (same pid and start time) or carry the dead run's `RESTORE_DRILL_RUN_ID` in its
//! environment. A pid the kernel has since given to an unrelated process is left alone.
//! Groups get SIGTERM (a cluster's server SIGQUIT, PostgreSQL's immediate shutdown), a
//! grace period, then SIGKILL; a cluster's directory is removed once its server is gone.

use std::path::Path;
use std::time::Duration;

use super::Runner;
use crate::artifact::ResourceRecord;
// The throwaway servers' directory prefixes and pid files (see `engines::throwaway`).
use crate::engines::throwaway::{PID_FILES, PREFIXES as CLUSTER_PREFIXES};
use crate::proc::group::{self, NotStopped, Stopped};
use crate::proc::kernel::RUN_ID_VAR;
use crate::proc::stat::{self, Stat};
use crate::proc::{Registry, Tracked};

/// Between the first signal and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);
/// The prefix of a run's work directory (`restore-drill-<drill>-`).
const WORKDIR_PREFIX: &str = "restore-drill-";

/// What became of one thing the dead run left.
#[derive(Debug)]
pub struct Leftover {
    /// `process group 1234`, or a cluster's or work directory.
    pub id: String,
    pub step: Option<String>,
    /// Gone now (stopped, or already gone).
    pub removed: bool,
    pub detail: String,
    /// Something was stopped, or could not be: worth a warning, not just a log line.
    pub notable: bool,
}

impl Runner<'_> {
    /// Stops what the run whose lock was taken over left, and records it.
    pub(super) fn stop_leftovers(&mut self) {
        let inherited = self.lock.take_inherited();
        for left in stop(inherited, &self.procs) {
            let line = format!("{}: {}", left.id, left.detail);
            self.log.write("leftovers", &line);
            if left.notable {
                let msg = format!("left by the run that died: {line}");
                self.record.warnings.push(msg.clone());
                self.notice(&msg);
            }
            self.record.resources.push(ResourceRecord {
                kind: "leftover".into(),
                id: self.redactor.redact(&left.id),
                step: left.step,
                removed: left.removed,
                detail: Some(self.redactor.redact(&left.detail)),
            });
        }
    }
}

/// Stops every entry, keeping each recorded in `registry` until it is dealt with (a run
/// killed while stopping them leaves them to the next one).
pub fn stop(mut inherited: Vec<Tracked>, registry: &Registry) -> Vec<Leftover> {
    // Processes first: a directory goes once nothing of the run runs in it.
    inherited.sort_by_key(|t| t.kind == "workdir");
    let keys: Vec<_> = inherited.iter().map(|t| registry.add(t.clone())).collect();
    inherited
        .into_iter()
        .zip(keys)
        .map(|(t, key)| {
            let left = stop_one(&t);
            registry.remove(key);
            left
        })
        .collect()
}

/// How stopping a group went.
#[derive(Debug, PartialEq, Eq)]
enum Group {
    Gone,
    /// The pgid exists, but nothing in it is verifiably the dead run's.
    NotOurs,
    Stopped(&'static str),
    Survived,
    /// Another user's processes (the dead run ran as root, this one does not).
    Denied,
}

fn stop_one(t: &Tracked) -> Leftover {
    let run = t.run_id.as_deref().unwrap_or("?");
    let same_boot = t.boot_id.is_some() && t.boot_id == stat::boot_id();
    let what = match (&t.program, t.kind.as_str()) {
        (Some(p), kind) => format!("{kind} `{p}`"),
        (None, kind) => kind.to_string(),
    };
    let of = format!("{what} of step `{}` of run {run}", t.step);
    match t.kind.as_str() {
        "cluster" => return stop_cluster(t, run, same_boot, &of),
        "workdir" => return remove_workdir(t, run),
        _ => {}
    }
    let Some(pgid) = t.pgid else {
        return leftover(
            t,
            "?".into(),
            true,
            format!("{of}: no process group recorded"),
        );
    };
    let id = format!("process group {pgid}");
    let group = if same_boot {
        stop_group(
            pgid,
            |m| recorded(m, pgid, t.start_time, run),
            libc::SIGTERM,
        )
    } else {
        Group::Gone
    };
    let (removed, how) = describe(&group, pgid);
    let mut left = leftover(t, id, removed, format!("{of}: {how}"));
    left.notable = group != Group::Gone;
    left
}

fn leftover(t: &Tracked, id: String, removed: bool, detail: String) -> Leftover {
    Leftover {
        id,
        step: (!t.step.is_empty()).then(|| t.step.clone()),
        removed,
        detail,
        notable: true,
    }
}

fn describe(group: &Group, pgid: i32) -> (bool, String) {
    match group {
        Group::Gone => (true, "already gone".into()),
        Group::NotOurs => (
            false,
            format!(
                "process group {pgid} exists but is not verifiably the dead run's (a recycled pid?): left alone"
            ),
        ),
        Group::Stopped(how) => (true, format!("stopped by {how}")),
        Group::Survived => (false, format!("process group {pgid} survived SIGKILL")),
        Group::Denied => (
            false,
            format!("not permitted to signal process group {pgid} (another user's): left alone"),
        ),
    }
}

/// Whether `m` proves its group is the one the dead run recorded: it is the recorded
/// leader itself, or it carries the run's id and started after the leader.
fn recorded(m: &Stat, pgid: i32, start_time: Option<u64>, run: &str) -> bool {
    let leader = m.pid == pgid && start_time == Some(m.start_time);
    let marked =
        stat::environ_has(m.pid, RUN_ID_VAR, run) && start_time.is_none_or(|s| m.start_time >= s);
    leader || marked
}

/// Sends `first` to the group when one of its live members passes `ours`, then SIGKILL
/// after the grace period.
fn stop_group(pgid: i32, ours: impl Fn(&Stat) -> bool, first: i32) -> Group {
    let members = stat::group_members(pgid);
    if members.is_empty() {
        return Group::Gone;
    }
    if !members.iter().any(ours) {
        return Group::NotOurs;
    }
    // Not our children: their new parent reaps them, and a zombie does not count.
    let alive = || !stat::group_members(pgid).is_empty();
    match group::stop_group(pgid, first, GRACE, &alive) {
        Ok(Stopped::Gone) => Group::Gone,
        Ok(Stopped::Term) if first == libc::SIGQUIT => Group::Stopped("SIGQUIT"),
        Ok(Stopped::Term) => Group::Stopped("SIGTERM"),
        Ok(Stopped::Kill) => Group::Stopped("SIGKILL"),
        Err(NotStopped::Denied(_)) => Group::Denied,
        Err(NotStopped::Survived(_)) => Group::Survived,
    }
}

/// The server's recorded group, then any server still running in the directory (its
/// `postmaster.pid` or `mariadbd.pid` names it; its working directory proves it is that cluster's), then
/// the directory itself.
fn stop_cluster(t: &Tracked, run: &str, same_boot: bool, of: &str) -> Leftover {
    let Some(dir) = t.dir.clone() else {
        return leftover(t, "?".into(), true, format!("{of}: no directory recorded"));
    };
    let id = dir.display().to_string();
    let mut notes = Vec::new();
    let mut stopped_all = true;
    if same_boot && let Some(pgid) = t.pgid {
        let group = stop_group(
            pgid,
            |m| recorded(m, pgid, t.start_time, run),
            libc::SIGQUIT,
        );
        if group != Group::Gone {
            let (ok, how) = describe(&group, pgid);
            stopped_all &= ok;
            notes.push(format!("server {how}"));
        }
    }
    if let Some(pid) = server_in(&dir) {
        let pgid = stat::stat(pid).map_or(pid, |s| s.pgrp);
        let group = stop_group(pgid, |m| m.pid == pid, libc::SIGQUIT);
        let (ok, how) = describe(&group, pgid);
        stopped_all &= ok;
        notes.push(format!("server pid {pid} {how}"));
    }
    if !stopped_all {
        notes.push("directory kept".into());
        return leftover(t, id, false, format!("{of}: {}", notes.join("; ")));
    }
    let removed = match remove_dir(&dir, CLUSTER_PREFIXES) {
        Ok(true) => {
            notes.push("directory removed".into());
            true
        }
        Ok(false) => {
            notes.push("directory already gone".into());
            true
        }
        Err(e) => {
            notes.push(e);
            false
        }
    };
    leftover(t, id, removed, format!("{of}: {}", notes.join("; ")))
}

/// The pid of a server running in the cluster directory `dir`, if any.
fn server_in(dir: &Path) -> Option<i32> {
    let data = dir.join("data");
    let text = PID_FILES
        .iter()
        .find_map(|f| std::fs::read_to_string(data.join(f)).ok())?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    let s = stat::stat(pid)?;
    let data = data.canonicalize().ok()?;
    (!s.is_zombie() && stat::cwd(pid)? == data).then_some(pid)
}

/// The dead run's work directory (its copies of the data included).
fn remove_workdir(t: &Tracked, run: &str) -> Leftover {
    let Some(dir) = t.dir.clone() else {
        return leftover(t, "?".into(), true, "no directory recorded".into());
    };
    let (removed, how) = match remove_dir(&dir, &[WORKDIR_PREFIX]) {
        Ok(true) => (true, "removed".to_string()),
        Ok(false) => (true, "already gone".to_string()),
        Err(e) => (false, e),
    };
    let mut left = leftover(
        t,
        dir.display().to_string(),
        removed,
        format!("work directory of run {run}: {how}"),
    );
    left.notable = how != "already gone";
    left
}

/// Removes a directory the dead run created: only one named as restore-drill names
/// them (one of `prefixes`), and not through a symlink. Ok(false): it was already gone.
fn remove_dir(dir: &Path, prefixes: &[&str]) -> Result<bool, String> {
    let named = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| prefixes.iter().any(|p| n.starts_with(p)));
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("cannot look at {}: {e}", dir.display())),
    };
    if !named || !meta.is_dir() || !dir.is_absolute() {
        return Err(format!(
            "{} is not a directory restore-drill made: kept",
            dir.display()
        ));
    }
    // Recorded by its resolved path: one that now leads elsewhere (a folder on its way
    // became a symlink) is not removed through it.
    match crate::guard::leads_elsewhere(dir) {
        Ok(None) => {}
        Ok(Some(leads)) => {
            return Err(format!(
                "{} now leads to {}: kept",
                dir.display(),
                leads.display()
            ));
        }
        Err(e) => return Err(format!("cannot tell where {} leads: {e}", dir.display())),
    }
    std::fs::remove_dir_all(dir)
        .map(|_| true)
        .map_err(|e| format!("cannot remove {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt as _;
    use std::path::PathBuf;
    use std::process::{Child, Command};
    use std::time::Instant;

    fn sleeper(env: Option<&str>, dir: Option<&Path>) -> Child {
        let mut cmd = Command::new("sleep");
        cmd.arg("30").process_group(0);
        if let Some(id) = env {
            cmd.env(RUN_ID_VAR, id);
        }
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        cmd.spawn().unwrap()
    }

    fn cluster_entry(dir: PathBuf, pgid: Option<i32>) -> Tracked {
        Tracked {
            kind: "cluster".into(),
            step: "restore".into(),
            pgid,
            start_time: pgid.and_then(stat::start_time),
            program: None,
            dir: Some(dir),
            run_id: Some("dead-run".into()),
            boot_id: stat::boot_id(),
        }
    }

    fn group_entry(pgid: i32, start_time: Option<u64>) -> Tracked {
        Tracked {
            kind: "exec".into(),
            step: "hold".into(),
            pgid: Some(pgid),
            start_time,
            program: Some("sleep".into()),
            dir: None,
            run_id: Some("dead-run".into()),
            boot_id: stat::boot_id(),
        }
    }

    /// Stops `child`'s group as recorded with an earlier start time than its leader's,
    /// as if its pid had been recycled.
    fn stop_recorded_earlier(child: &Child) -> Vec<Leftover> {
        let pid = child.id() as i32;
        let start = stat::start_time(pid).unwrap();
        stop(
            vec![group_entry(pid, Some(start - 1))],
            &Registry::default(),
        )
    }

    fn gone(child: &mut Child) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn a_recorded_group_is_stopped_and_a_recycled_pid_is_left_alone() {
        // The recorded leader, same start time: stopped.
        let mut ours = sleeper(None, None);
        let pid = ours.id() as i32;
        let entry = group_entry(pid, stat::start_time(pid));
        let left = stop(vec![entry], &Registry::default());
        assert!(gone(&mut ours), "{left:?}");
        assert!(left[0].removed && left[0].detail.contains("stopped by SIGTERM"));

        // Same pgid, another start time and no marker: another process got the pid.
        let mut other = sleeper(Some("another-run"), None);
        let left = stop_recorded_earlier(&other);
        assert!(!left[0].removed, "{left:?}");
        assert!(left[0].detail.contains("not verifiably"), "{left:?}");
        assert!(
            other.try_wait().unwrap().is_none(),
            "an unrelated process was killed"
        );

        // The leader is gone but a member carries the dead run's id: stopped.
        let mut marked = sleeper(Some("dead-run"), None);
        let left = stop_recorded_earlier(&marked);
        assert!(gone(&mut marked), "{left:?}");

        // Another boot: nothing from then is alive, whatever has the pid now.
        let mut entry = group_entry(other.id() as i32, stat::start_time(other.id() as i32));
        entry.boot_id = Some("another-boot".into());
        let left = stop(vec![entry], &Registry::default());
        assert!(left[0].removed && left[0].detail.contains("already gone"));
        assert!(other.try_wait().unwrap().is_none());
        other.kill().unwrap();
        other.wait().unwrap();
    }

    #[test]
    fn a_dead_runs_folder_is_never_removed_through_a_symlink_on_its_way() {
        let root = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(root.path()).unwrap();
        let source = root.join("source").join(format!("{WORKDIR_PREFIX}x"));
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("precious"), b"keep").unwrap();
        // Recorded as `tmp/restore-drill-x`; `tmp` is now a link to the source's folder.
        std::os::unix::fs::symlink(root.join("source"), root.join("tmp")).unwrap();
        let recorded = root.join("tmp").join(format!("{WORKDIR_PREFIX}x"));
        let kept = remove_dir(&recorded, &[WORKDIR_PREFIX]).unwrap_err();
        assert_eq!(std::fs::read(source.join("precious")).unwrap(), b"keep");
        assert!(
            kept.contains("now leads to") && kept.contains("kept"),
            "{kept}"
        );
        // By its own path, it goes.
        assert_eq!(remove_dir(&source, &[WORKDIR_PREFIX]), Ok(true));
    }

    #[test]
    fn a_server_found_through_postmaster_pid_is_stopped_and_its_directory_removed() {
        let dir = tempfile::Builder::new()
            .prefix(CLUSTER_PREFIXES[0])
            .tempdir()
            .unwrap()
            .keep();
        let data = dir.join("data");
        std::fs::create_dir(&data).unwrap();
        // A stand-in server: a process whose working directory is the data directory.
        let mut server = sleeper(None, Some(&data));
        std::fs::write(
            data.join("postmaster.pid"),
            format!("{}\n{}\n", server.id(), data.display()),
        )
        .unwrap();
        // Its group was never recorded (the run died before), only the directory.
        let left = stop(vec![cluster_entry(dir.clone(), None)], &Registry::default());
        assert!(gone(&mut server), "{left:?}");
        assert!(left[0].removed, "{left:?}");
        assert!(left[0].detail.contains("directory removed"), "{left:?}");
        assert!(!dir.exists());

        // A directory not named like a cluster's is never removed.
        let other = tempfile::tempdir().unwrap();
        let left = stop(
            vec![cluster_entry(other.path().to_path_buf(), None)],
            &Registry::default(),
        );
        assert!(!left[0].removed && other.path().exists(), "{left:?}");
    }
}
