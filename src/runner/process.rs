//! Child processes in their own process groups, so that a timeout or Ctrl-C can end a
//! step's whole tree (`sh -c 'sleep 1000 & sleep 1000'` included), and so that the
//! terminal's Ctrl-C reaches the runner, which then stops them in order.

use std::os::unix::process::CommandExt as _;
use std::time::{Duration, Instant};

/// Sends `signal` to every process of the group; false when the group is gone.
pub fn signal_group(pgid: i32, signal: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is shared.
    unsafe { libc::kill(-pgid, signal) == 0 }
}

pub fn group_alive(pgid: i32) -> bool {
    signal_group(pgid, 0)
}

/// SIGTERM, up to `grace` for the group to exit, then SIGKILL. Returns true when the
/// group had to be killed.
pub fn terminate_group(pgid: i32, grace: Duration) -> bool {
    if !signal_group(pgid, libc::SIGTERM) {
        return false;
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !group_alive(pgid) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal_group(pgid, libc::SIGKILL)
}

/// Makes a duct expression start its process in a new process group.
pub fn in_new_group(expr: duct::Expression) -> duct::Expression {
    expr.before_spawn(|cmd| {
        cmd.process_group(0);
        Ok(())
    })
}
