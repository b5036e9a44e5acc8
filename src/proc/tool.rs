//! Running a program: in its own process group, registered with the step's cancel (so
//! a timeout or Ctrl-C ends it) or, for what outlives the step (a service, a server),
//! held by whoever stops it later; optionally as another OS user; with its stderr kept
//! in a file whose tail explains a failure.

use std::ffi::CString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::cancel::Cancel;
use super::group::{self, NotStopped, Stopped};
use crate::log::tail_file;

/// How often a wait wakes up to call its `tick` (progress).
const TICK: Duration = Duration::from_millis(200);

/// An OS user a program runs as (initdb refuses to run as root).
#[derive(Debug, Clone, Copy)]
pub struct OsUser {
    pub uid: u32,
    pub gid: u32,
}

impl OsUser {
    pub fn lookup(name: &str) -> anyhow::Result<Self> {
        let c = CString::new(name).context("bad os_user")?;
        // SAFETY: getpwnam returns a pointer into static storage or null; it is read at once.
        let pw = unsafe { libc::getpwnam(c.as_ptr()) };
        if pw.is_null() {
            bail!("os_user `{name}` does not exist on this machine");
        }
        // SAFETY: checked non-null above.
        let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
        Ok(Self { uid, gid })
    }

    pub fn chown(&self, path: &Path) -> anyhow::Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .with_context(|| format!("cannot give {} to uid {}", path.display(), self.uid))
    }
}

/// A program to start. Its expression keeps the redirections the caller gave it (they
/// win over the ones `logged` adds around them).
pub struct Tool {
    expr: duct::Expression,
    what: String,
    stderr: Option<PathBuf>,
    death_signal: i32,
}

impl Tool {
    /// `what` names it in errors ("pg_dump", "the service `app`").
    pub fn new(expr: duct::Expression, what: impl Into<String>) -> Self {
        Self {
            expr: expr.unchecked(),
            what: what.into(),
            stderr: None,
            death_signal: libc::SIGKILL,
        }
    }

    /// Runs it as `user` (the child drops root before exec); as this process with None.
    pub fn as_user(mut self, user: Option<OsUser>) -> Self {
        if let Some(u) = user {
            self.expr = self.expr.before_spawn(move |cmd| {
                cmd.uid(u.uid).gid(u.gid);
                Ok(())
            });
        }
        self
    }

    /// Stdin from nothing, stdout and stderr into `file`, whose tail explains a failure.
    pub fn logged(mut self, file: &Path) -> Self {
        self.expr = self.expr.stdin_null().stdout_to_stderr().stderr_path(file);
        self.stderr = Some(file.to_path_buf());
        self
    }

    /// Stderr into `file`, whose tail explains a failure (stdin and stdout as given).
    pub fn stderr_to(mut self, file: &Path) -> Self {
        self.expr = self.expr.stderr_path(file);
        self.stderr = Some(file.to_path_buf());
        self
    }

    /// The signal the kernel sends the leader if restore-drill dies (SIGKILL unless
    /// told otherwise: SIGQUIT asks PostgreSQL for an immediate shutdown).
    pub fn death_signal(mut self, signal: i32) -> Self {
        self.death_signal = signal;
        self
    }

    /// Starts it in a process group of its own that outlives the step (a service, a
    /// server): not registered with any cancel; whoever holds the `Leader` stops it.
    pub fn spawn(self) -> anyhow::Result<Leader> {
        let handle = group::start(group::leading(self.expr, self.death_signal))
            .with_context(|| format!("cannot start {}", self.what))?;
        let pgid = handle.pids().first().copied().unwrap_or(0) as i32;
        Ok(Leader {
            handle,
            pgid,
            what: self.what,
            stderr: self.stderr,
        })
    }

    /// Starts it in a process group of its own, registered with `cancel` until it is
    /// waited for, killed or dropped.
    pub fn start(self, cancel: &Cancel) -> anyhow::Result<Running<'_>> {
        let leader = self.spawn()?;
        cancel.register_group(leader.pgid);
        Ok(Running {
            leader,
            cancel,
            done: false,
        })
    }

    /// Runs it to completion; fails when it fails (see `Running::wait`).
    pub fn run(self, cancel: &Cancel) -> anyhow::Result<()> {
        self.start(cancel)?.wait()
    }
}

/// The leader of a process group this process started, with the handle that reaps it.
pub struct Leader {
    handle: duct::Handle,
    pgid: i32,
    what: String,
    stderr: Option<PathBuf>,
}

impl Leader {
    /// Its pid, which is also its process group's id.
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Its exit status once it has exited (reaping it); None while it runs.
    pub fn exited(&self) -> Option<ExitStatus> {
        self.handle.try_wait().ok().flatten().map(|o| o.status)
    }

    /// Stops its group: `first` (SIGTERM, or SIGQUIT), up to `grace` for every process
    /// of it to end, then SIGKILL (see `group::stop_group`); reaps it on the way.
    pub fn stop(&self, first: i32, grace: Duration) -> Result<Stopped, NotStopped> {
        group::stop_group(self.pgid, first, grace, &|| {
            let _ = self.exited();
            group::group_alive(self.pgid)
        })
    }

    /// Waits for it; with `tick`, polling, and calling it every 200 ms.
    fn wait(&self, tick: Option<&mut dyn FnMut()>) -> anyhow::Result<ExitStatus> {
        let status = match tick {
            None => self.handle.wait().map(|out| out.status),
            Some(tick) => loop {
                match self.handle.try_wait() {
                    Ok(Some(out)) => break Ok(out.status),
                    Ok(None) => {
                        tick();
                        std::thread::sleep(TICK);
                    }
                    Err(e) => break Err(e),
                }
            },
        };
        status.with_context(|| format!("waiting for {}", self.what))
    }

    /// SIGKILL to its group, and reaps it.
    fn kill(&self) {
        group::signal_group(self.pgid, libc::SIGKILL);
        let _ = self.handle.wait();
    }
}

/// The last lines of a program's stderr file, or "(no output)".
fn tail(stderr: Option<&Path>) -> String {
    let tail = stderr.map(|f| tail_file(f, 15, 4096)).unwrap_or_default();
    if tail.is_empty() {
        "(no output)".into()
    } else {
        tail
    }
}

/// A started program of the step's, registered with its cancel. Dropped before it was
/// waited for, it is killed (its whole group) and reaped.
pub struct Running<'c> {
    leader: Leader,
    cancel: &'c Cancel,
    done: bool,
}

impl Running<'_> {
    pub fn pgid(&self) -> i32 {
        self.leader.pgid
    }

    /// Waits for it, then SIGKILLs what it left running in its group and unregisters the
    /// group. Its exit status, whatever it is.
    pub fn finish(self) -> anyhow::Result<ExitStatus> {
        self.finish_with(None)
    }

    /// `finish`, failing when the step was cancelled or the program did not succeed
    /// (with the tail of its stderr).
    pub fn wait(self) -> anyhow::Result<()> {
        self.wait_with(None)
    }

    /// `wait`, calling `tick` every 200 ms meanwhile (progress).
    pub fn wait_ticking(self, tick: &mut dyn FnMut()) -> anyhow::Result<()> {
        self.wait_with(Some(tick))
    }

    fn finish_with(mut self, tick: Option<&mut dyn FnMut()>) -> anyhow::Result<ExitStatus> {
        let status = self.leader.wait(tick);
        // The leader is gone; anything it left running in its group goes with it.
        group::signal_group(self.leader.pgid, libc::SIGKILL);
        self.release();
        status
    }

    fn wait_with(self, tick: Option<&mut dyn FnMut()>) -> anyhow::Result<()> {
        let cancel = self.cancel;
        let what = self.leader.what.clone();
        let stderr = self.leader.stderr.clone();
        let status = self.finish_with(tick)?;
        if cancel.is_cancelled() {
            bail!("{what} was stopped (cancelled)");
        }
        if !status.success() {
            let how = status.code().map_or_else(
                || "was killed by a signal".to_string(),
                |c| format!("exited with {c}"),
            );
            bail!("{what} {how}: {}", tail(stderr.as_deref()));
        }
        Ok(())
    }

    /// SIGKILL to its group now (after another failure), reaping it.
    pub fn kill(mut self) {
        self.leader.kill();
        self.release();
    }

    /// SIGKILL to its group without waiting (another thread is busy with its output).
    pub fn kill_group(&self) {
        group::signal_group(self.leader.pgid, libc::SIGKILL);
    }

    fn release(&mut self) {
        if !self.done {
            self.done = true;
            self.cancel.unregister_group(self.leader.pgid);
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.leader.kill();
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_program_is_explained_by_the_tail_of_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let err = Tool::new(duct::cmd("sh", ["-c", "echo broken >&2; exit 3"]), "tool")
            .logged(&dir.path().join("tool.log"))
            .run(&Cancel::default())
            .unwrap_err();
        assert_eq!(format!("{err:#}"), "tool exited with 3: broken");
    }

    #[test]
    fn a_program_dropped_before_it_ends_goes_with_its_group() {
        let cancel = Cancel::default();
        let running = Tool::new(duct::cmd("sh", ["-c", "sleep 100 & sleep 100"]), "tool")
            .start(&cancel)
            .unwrap();
        let pgid = running.pgid();
        assert!(group::group_alive(pgid));
        drop(running);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while group::group_alive(pgid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!group::group_alive(pgid));
        assert!(cancel.pgids().is_empty());
    }
}
