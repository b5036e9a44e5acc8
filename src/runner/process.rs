//! Child processes in their own process groups, so that a timeout or Ctrl-C can end a
//! step's whole tree (`sh -c 'sleep 1000 & sleep 1000'` included), and so that the
//! terminal's Ctrl-C reaches the runner, which then stops them in order.

use std::os::unix::process::CommandExt as _;

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

/// Makes a duct expression start its process in a new process group.
pub fn in_new_group(expr: duct::Expression) -> duct::Expression {
    expr.before_spawn(|cmd| {
        cmd.process_group(0);
        Ok(())
    })
}
