//! The kernel's help against processes outliving restore-drill.
//!
//! - Every process-group leader a run starts gets a *parent-death signal*
//!   (`PR_SET_PDEATHSIG`): when restore-drill dies, even of SIGKILL, the kernel signals it.
//!   The kernel sends that signal when the *thread* that started the child ends, not the
//!   process, so leaders are started on one thread that lives as long as the process
//!   (`spawn`): a service started from a step's worker thread would otherwise die with
//!   that step.
//! - restore-drill is a *child subreaper* (`PR_SET_CHILD_SUBREAPER`) while it runs: what
//!   a step's processes leave behind is re-parented to it rather than to pid 1, and it
//!   reaps those orphans when they exit (`reap_adopted`), leaving alone its own children,
//!   whose owners wait for them.
//! - Every such process carries `RESTORE_DRILL_RUN_ID=<run id>` in its environment,
//!   which its own children inherit: that is how the next run tells what a dead run left
//!   from an unrelated process that was given a recycled pid.

use std::cell::Cell;
use std::io;
use std::os::unix::process::CommandExt as _;
use std::panic::AssertUnwindSafe;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use super::stat;

/// The environment variable that marks every process a run starts (and their children).
pub const RUN_ID_VAR: &str = "RESTORE_DRILL_RUN_ID";

/// How often the spawner thread reaps adopted orphans when nothing else happens.
const REAP_EVERY: Duration = Duration::from_millis(200);

static RUN_ID: Mutex<Option<String>> = Mutex::new(None);
static SUBREAPER: AtomicBool = AtomicBool::new(false);
/// The children this process started through `spawn` (pid, start time): the reaper
/// leaves them to whoever waits for them.
static DIRECT: Mutex<Vec<(i32, u64)>> = Mutex::new(Vec::new());

type Job = Box<dyn FnOnce() + Send>;
static SPAWNER: OnceLock<Option<Sender<Job>>> = OnceLock::new();

thread_local! {
    static ON_SPAWNER: Cell<bool> = const { Cell::new(false) };
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Marks the processes started from now on as the run `id`'s.
pub fn set_run_id(id: &str) {
    *lock(&RUN_ID) = Some(id.to_string());
}

pub fn run_id() -> Option<String> {
    lock(&RUN_ID).clone()
}

/// Makes `cmd` start a process-group leader: in a new group, marked with the run id, and,
/// when started through `spawn`, signalled with `death_signal` when restore-drill dies.
pub fn lead_group(cmd: &mut Command, death_signal: i32) {
    cmd.process_group(0);
    if let Some(id) = run_id() {
        cmd.env(RUN_ID_VAR, id);
    }
    if ON_SPAWNER.with(Cell::get) {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the hook only makes two system calls and allocates nothing, which is
        // what may run between fork and exec.
        unsafe {
            cmd.pre_exec(move || die_with_parent(parent, death_signal));
        }
    }
}

/// In the child, before exec: the death signal, then a check that the parent did not
/// already die before it was set (the kernel would then never send it).
fn die_with_parent(parent: libc::pid_t, signal: i32) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl(2) on the calling process only.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: getppid cannot fail.
        if unsafe { libc::getppid() } != parent {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (parent, signal);
    Ok(())
}

/// Runs `start` (which starts child processes, e.g. `Command::spawn`) on the spawner
/// thread, which lives as long as the process, so that the children's death signal
/// fires only when restore-drill itself dies. `pids` names the children started: the
/// reaper leaves them to their owner.
pub fn spawn<T: Send + 'static>(
    start: impl FnOnce() -> io::Result<T> + Send + 'static,
    pids: impl Fn(&T) -> Vec<u32> + Send + 'static,
) -> io::Result<T> {
    let job = move || {
        // Held across the fork: the reaper cannot take a child for an orphan before it
        // is on the list.
        let mut direct = lock(&DIRECT);
        if direct.len() > 64 {
            direct.retain(|(pid, t)| stat::start_time(*pid) == Some(*t));
        }
        let started = start();
        if let Ok(out) = &started {
            for pid in pids(out) {
                let pid = pid as i32;
                if let Some(t) = stat::start_time(pid) {
                    direct.push((pid, t));
                }
            }
        }
        started
    };
    let (tx, rx) = mpsc::channel();
    let boxed: Job = Box::new(move || {
        let _ = tx.send(job());
    });
    match spawner() {
        Some(spawner) => {
            if let Err(mpsc::SendError(boxed)) = spawner.send(boxed) {
                boxed();
            }
        }
        // No spawner thread: start here, without the death signal (see `lead_group`).
        None => boxed(),
    }
    rx.recv()
        .unwrap_or_else(|_| Err(io::Error::other("the spawner thread failed")))
}

fn spawner() -> Option<&'static Sender<Job>> {
    SPAWNER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            std::thread::Builder::new()
                .name("restore-drill-spawner".into())
                .spawn(move || {
                    ON_SPAWNER.with(|f| f.set(true));
                    loop {
                        match rx.recv_timeout(REAP_EVERY) {
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                            }
                            Err(RecvTimeoutError::Timeout) => reap_adopted(),
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                })
                .ok()
                .map(|_| tx)
        })
        .as_ref()
}

/// Makes this process the reaper of its descendants' orphans (Linux; elsewhere nothing).
pub fn become_subreaper() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl(2) on the calling process only.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        SUBREAPER.store(true, Ordering::SeqCst);
        // Its thread reaps the orphans every REAP_EVERY.
        let _ = spawner();
    }
    Ok(())
}

/// Reaps the exited orphans this process adopted as a subreaper. Its own children (the
/// ones `spawn` started, and those in its own process group, which libraries start and
/// wait for) are left to their owners.
pub fn reap_adopted() {
    if !SUBREAPER.load(Ordering::SeqCst) {
        return;
    }
    let mut direct = lock(&DIRECT);
    if !any_exited_child() {
        return;
    }
    direct.retain(|(pid, t)| stat::start_time(*pid) == Some(*t));
    let me = std::process::id() as i32;
    // SAFETY: getpgrp cannot fail.
    let my_group = unsafe { libc::getpgrp() };
    for s in stat::all() {
        let adopted = s.ppid == me
            && s.is_zombie()
            && s.pgrp != my_group
            && !direct.contains(&(s.pid, s.start_time));
        if adopted {
            // SAFETY: waitpid(2) on a zombie child of ours that nobody else waits for.
            unsafe { libc::waitpid(s.pid, std::ptr::null_mut(), libc::WNOHANG) };
        }
    }
}

/// Whether some child has exited and is not reaped yet (without reaping it).
fn any_exited_child() -> bool {
    // SAFETY: an all-zero siginfo_t is valid; waitid(2) fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: WNOWAIT leaves the child waitable for its owner.
    let r = unsafe {
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: si_pid is set by a successful waitid (0 when no child is waitable).
    r == 0 && unsafe { info.si_pid() } != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_started_through_spawn_carries_the_run_id_in_its_own_group() {
        set_run_id("unit-run");
        let child = spawn(
            || {
                let mut cmd = Command::new("sleep");
                cmd.arg("5");
                lead_group(&mut cmd, libc::SIGKILL);
                cmd.spawn()
            },
            |c| vec![c.id()],
        );
        let mut child = child.unwrap();
        let pid = child.id() as i32;
        let s = stat::stat(pid).unwrap();
        assert_eq!(s.pgrp, pid, "a group of its own");
        assert!(stat::environ_has(pid, RUN_ID_VAR, "unit-run"));
        #[cfg(target_os = "linux")]
        {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            // The death signal is not in /proc; its effect is shown by the integration
            // tests. Here: the child runs and is ours.
            assert!(status.contains(&format!("PPid:\t{}", std::process::id())));
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
