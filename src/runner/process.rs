//! Child processes in their own process groups, so that a timeout or Ctrl-C can end a
//! step's whole tree (`sh -c 'sleep 1000 & sleep 1000'` included), and so that the
//! terminal's Ctrl-C reaches the runner, which then stops them in order. Each group
//! leader is started on the spawner thread with a parent-death signal (see
//! `crate::proc::kernel`), so that even a SIGKILL of restore-drill ends it.

use crate::proc::kernel;

/// Sends `signal` to every process of the group; false when the group is gone.
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

/// Makes a duct expression start its process in a new process group, killed (SIGKILL)
/// if restore-drill dies.
pub fn in_new_group(expr: duct::Expression) -> duct::Expression {
    leading(expr, libc::SIGKILL)
}

/// `in_new_group`, with `death_signal` sent to the leader if restore-drill dies.
pub fn leading(expr: duct::Expression, death_signal: i32) -> duct::Expression {
    expr.before_spawn(move |cmd| {
        kernel::lead_group(cmd, death_signal);
        Ok(())
    })
}

/// Starts an expression made by `in_new_group` (on the spawner thread).
pub fn start(expr: duct::Expression) -> std::io::Result<duct::Handle> {
    kernel::spawn(move || expr.start(), |h| h.pids())
}

/// Starts an expression made by `in_new_group`, reading its stdout.
pub fn reader(expr: duct::Expression) -> std::io::Result<duct::ReaderHandle> {
    kernel::spawn(move || expr.reader(), |h| h.pids())
}
