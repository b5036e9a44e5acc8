//! Running PostgreSQL's programs: in their own process group (registered with the step's
//! cancel, so a timeout or Ctrl-C ends them), optionally as another OS user, with their
//! stderr kept in a file whose tail explains a failure.

use std::ffi::CString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::log::tail_file;
use crate::runner::cancel::Cancel;
use crate::runner::process;

/// An OS user the server programs run as (initdb refuses to run as root).
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

/// Makes the program run as `user` (the child drops root before exec).
pub fn as_user(expr: duct::Expression, user: Option<OsUser>) -> duct::Expression {
    match user {
        Some(u) => expr.before_spawn(move |cmd| {
            cmd.uid(u.uid).gid(u.gid);
            Ok(())
        }),
        None => expr,
    }
}

/// A started program and where its stderr goes.
pub struct Running {
    pub handle: duct::Handle,
    pub pgid: i32,
    stderr: PathBuf,
    what: String,
}

/// Starts `expr` in a new process group registered with `cancel`; stdout and stderr go
/// to `stderr_file`.
pub fn start(
    expr: duct::Expression,
    what: &str,
    stderr_file: &Path,
    cancel: &Cancel,
) -> anyhow::Result<Running> {
    let handle = process::start(process::in_new_group(
        expr.stdin_null()
            .stdout_to_stderr()
            .stderr_path(stderr_file)
            .unchecked(),
    ))
    .with_context(|| format!("cannot start {what}"))?;
    let pgid = handle.pids().first().copied().unwrap_or(0) as i32;
    cancel.register_group(pgid);
    Ok(Running {
        handle,
        pgid,
        stderr: stderr_file.to_path_buf(),
        what: what.to_string(),
    })
}

impl Running {
    /// Waits, calling `tick` every 200 ms (progress); fails with the tail of stderr when
    /// the program fails.
    pub fn wait(self, cancel: &Cancel, tick: &mut dyn FnMut()) -> anyhow::Result<()> {
        let status = loop {
            match self.handle.try_wait() {
                Ok(Some(out)) => break Ok(out.status),
                Ok(None) => {
                    tick();
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => break Err(e),
            }
        };
        process::signal_group(self.pgid, libc::SIGKILL);
        cancel.unregister_group(self.pgid);
        let status = status.with_context(|| format!("waiting for {}", self.what))?;
        if cancel.is_cancelled() {
            bail!("{} was stopped (cancelled)", self.what);
        }
        if !status.success() {
            let tail = tail_file(&self.stderr, 15, 4096);
            let how = status.code().map_or_else(
                || "was killed by a signal".to_string(),
                |c| format!("exited with {c}"),
            );
            bail!(
                "{} {how}: {}",
                self.what,
                if tail.is_empty() {
                    "(no output)".into()
                } else {
                    tail
                }
            );
        }
        Ok(())
    }

    /// Stops the program and its group now (after another failure).
    pub fn kill(self, cancel: &Cancel) {
        process::signal_group(self.pgid, libc::SIGKILL);
        let _ = self.handle.wait();
        cancel.unregister_group(self.pgid);
    }
}

/// Runs a program to completion (see `start` and `Running::wait`).
pub fn run(
    expr: duct::Expression,
    what: &str,
    stderr_file: &Path,
    cancel: &Cancel,
) -> anyhow::Result<()> {
    start(expr, what, stderr_file, cancel)?.wait(cancel, &mut || {})
}
