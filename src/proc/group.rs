//! Child processes in their own process groups, so that a timeout or Ctrl-C can end a
//! step's whole tree (`sh -c 'sleep 1000 & sleep 1000'` included), and so that the
//! terminal's Ctrl-C reaches the runner, which then stops them in order. Each group
//! leader is started on the spawner thread with a parent-death signal (see
//! `crate::proc::kernel`), so that even a SIGKILL of restore-drill ends it.
//!
//! Stopping a group is one thing everywhere (`stop_group`): a first signal (SIGTERM, or
//! SIGQUIT for PostgreSQL's immediate shutdown), a grace period, then SIGKILL.

use std::time::{Duration, Instant};

use super::kernel;

/// After SIGKILL, how long a group may take to disappear before it counts as surviving.
const AFTER_KILL: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(20);

/// Sends `signal` to every process of the group; false when the group is gone (or the
/// signal is not permitted: see `errno`).
pub fn signal_group(pgid: i32, signal: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is shared.
    unsafe { libc::kill(-pgid, signal) == 0 }
}

/// Whether any process of the group is left. Orphans of the group that this process
/// adopted (as a subreaper) and that have exited are reaped first: a zombie still counts
/// as a member of its group.
pub fn group_alive(pgid: i32) -> bool {
    kernel::reap_adopted();
    signal_group(pgid, 0)
}

/// Makes a duct expression start its process in a new process group, with
/// `death_signal` sent to the leader if restore-drill dies.
pub fn leading(expr: duct::Expression, death_signal: i32) -> duct::Expression {
    expr.before_spawn(move |cmd| {
        kernel::lead_group(cmd, death_signal);
        Ok(())
    })
}

/// Starts an expression made by `leading` (on the spawner thread).
pub fn start(expr: duct::Expression) -> std::io::Result<duct::Handle> {
    kernel::spawn(move || expr.start(), |h| h.pids())
}

/// How a process group was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Nothing of it was left to signal.
    Gone,
    /// It ended within the grace period after the first signal (SIGTERM, or SIGQUIT).
    Term,
    /// It outlived the grace period: SIGKILL was needed.
    Kill,
}

/// Why a process group could not be stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotStopped {
    /// Another user's processes.
    #[error("not permitted to signal process group {0} (another user's)")]
    Denied(i32),
    #[error("process group {0} survived SIGKILL")]
    Survived(i32),
}

/// Stops the group `pgid`: `first` (SIGTERM, or SIGQUIT for PostgreSQL's immediate
/// shutdown), up to `grace` for every process of it to end, then SIGKILL. `alive` tells
/// whether anything of it is left (for a group whose leader is our child, it reaps the
/// leader first: a zombie still counts as a member of its group; see `Leader::stop`).
pub fn stop_group(
    pgid: i32,
    first: i32,
    grace: Duration,
    alive: &dyn Fn() -> bool,
) -> Result<Stopped, NotStopped> {
    stop_groups(&|| vec![pgid], first, grace, alive)
}

/// The one way process groups are stopped: `first` to every group `groups` names, up
/// to `grace` for `alive` to say nothing is left, then SIGKILL to every group it names
/// then. `Gone` when nothing was alive to begin with.
pub fn stop_groups(
    groups: &dyn Fn() -> Vec<i32>,
    first: i32,
    grace: Duration,
    alive: &dyn Fn() -> bool,
) -> Result<Stopped, NotStopped> {
    if !alive() {
        return Ok(Stopped::Gone);
    }
    for pgid in groups() {
        if !signal_group(pgid, first)
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        {
            return Err(NotStopped::Denied(pgid));
        }
    }
    if wait_gone(alive, grace) {
        return Ok(Stopped::Term);
    }
    let killed = groups();
    for pgid in &killed {
        signal_group(*pgid, libc::SIGKILL);
    }
    if wait_gone(alive, AFTER_KILL) {
        Ok(Stopped::Kill)
    } else {
        Err(NotStopped::Survived(killed.first().copied().unwrap_or(0)))
    }
}

/// Waits (at most `limit`) until `alive` says nothing is left.
fn wait_gone(alive: &dyn Fn() -> bool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if !alive() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(script: &str) -> duct::Handle {
        start(leading(
            duct::cmd("sh", ["-c", script]).stdin_null().unchecked(),
            libc::SIGKILL,
        ))
        .unwrap()
    }

    fn stop(handle: &duct::Handle, grace: Duration) -> Result<Stopped, NotStopped> {
        let pgid = handle.pids()[0] as i32;
        stop_group(pgid, libc::SIGTERM, grace, &|| {
            let _ = handle.try_wait();
            group_alive(pgid)
        })
    }

    #[test]
    fn a_group_that_obeys_sigterm_is_stopped_by_it() {
        let handle = leader("sleep 100 & sleep 100");
        assert_eq!(stop(&handle, Duration::from_secs(5)), Ok(Stopped::Term));
        assert_eq!(stop(&handle, Duration::from_secs(5)), Ok(Stopped::Gone));
    }

    #[test]
    fn a_group_that_ignores_sigterm_needs_sigkill() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let handle = leader(&format!(
            "trap '' TERM; touch {}; sleep 100 & sleep 100",
            ready.display()
        ));
        while !ready.exists() {
            std::thread::sleep(POLL);
        }
        let started = Instant::now();
        assert_eq!(stop(&handle, Duration::from_millis(300)), Ok(Stopped::Kill));
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(!group_alive(handle.pids()[0] as i32));
    }
}
