//! What a throwaway database server of an isolated restore (PostgreSQL's cluster,
//! MariaDB's `mariadbd`) is made of: a fresh 0700 temp directory, given to `os_user`
//! when the drill runs as root (the servers refuse to run as root), registered for
//! teardown and in the run's process registry the moment it exists; the one server
//! process started in it, in a group of its own, stopped at teardown with `stop_group`
//! before the directory goes.
//!
//! The directory is a temp directory rather than a folder of the drill's work
//! directory: as root the server runs as another OS user, which could not enter the work
//! directory without opening it, and the backups in it, to every local user.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};

use super::Ctx;
use crate::proc::{Cancel, Key, Leader, OsUser, Registry};

/// The prefixes of the throwaway servers' directories, by engine: a later run removes
/// only directories named so (see `runner::leftovers`).
pub const POSTGRES_PREFIX: &str = "restore-drill-pg-";
pub const MARIADB_PREFIX: &str = "restore-drill-mariadb-";
pub const PREFIXES: &[&str] = &[POSTGRES_PREFIX, MARIADB_PREFIX];

/// The files naming a throwaway server's pid inside its data directory (`data`).
pub const PID_FILES: &[&str] = &["postmaster.pid", "mariadbd.pid"];

const STOP_GRACE: Duration = Duration::from_secs(10);

/// Creates the private directory (registering its removal is the caller's first job,
/// see `register`).
fn private_dir(prefix: &str, os_user: Option<OsUser>) -> anyhow::Result<PathBuf> {
    let base = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .context("cannot create the throwaway server's directory")?
        .keep();
    // By its resolved path, which a later run checks before removing it (`leftovers`).
    let base = std::fs::canonicalize(&base).unwrap_or(base);
    if let Some(u) = os_user {
        u.chown(&base)?;
        if let Err(e) = reachable_by(&base, u) {
            let _ = std::fs::remove_dir(&base);
            return Err(e);
        }
    }
    Ok(base)
}

/// Fails, naming the directory, when `user` could not enter `dir`: every parent needs
/// search permission for it (a private TMPDIR such as /root/tmp has not).
fn reachable_by(dir: &Path, user: OsUser) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    for parent in dir.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(parent) else {
            continue;
        };
        let mode = meta.mode();
        let ok = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        ensure!(
            ok,
            "os_user (uid {}) cannot enter {}, so it cannot reach the throwaway server in {}; set TMPDIR to a directory every user can traverse, such as /tmp",
            user.uid,
            parent.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Resolves `os_user`: required as root, where the server programs refuse to run
/// (`refusal` says so, and names the setting).
pub fn resolve_user(os_user: Option<&str>, refusal: &str) -> anyhow::Result<Option<OsUser>> {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    match (me == 0, os_user) {
        (true, None) => bail!("{refusal}"),
        (root, Some(name)) => {
            let user = OsUser::lookup(name)?;
            ensure!(
                root || user.uid == me,
                "os_user `{name}` differs from the user running the drill: switching users needs root"
            );
            Ok((user.uid != me).then_some(user))
        }
        (false, None) => Ok(None),
    }
}

/// The server of a throwaway directory, shared with the teardown registered before it
/// started, and its entry in the run's registry of processes (so that the next run
/// stops the server and removes the directory if this run dies).
#[derive(Clone, Default)]
pub struct Server {
    leader: Arc<Mutex<Option<Leader>>>,
    procs: Registry,
    key: Option<Key>,
    /// The first signal of the teardown (SIGQUIT: PostgreSQL's immediate shutdown).
    stop_signal: i32,
}

/// A throwaway directory named `prefix...`, registered in `ctx.resources` (as `kind`)
/// and `ctx.procs` the moment it exists, and its server-to-be.
pub fn register(
    ctx: &Ctx<'_>,
    kind: &str,
    prefix: &str,
    user: Option<OsUser>,
    stop_signal: i32,
) -> anyhow::Result<(PathBuf, Server)> {
    let base = private_dir(prefix, user)?;
    let key = ctx.procs.cluster(&base);
    Ok(serve(ctx, kind, base, key, stop_signal))
}

/// A throwaway directory filled before it is known that a server will run in it (a
/// backup copied while it is verified): registered in `ctx.procs` as a cluster-to-be,
/// and in `ctx.resources` as `staging` (removed at teardown) until [`Staging::serve`].
pub struct Staging {
    pub base: PathBuf,
    key: Key,
}

/// A new [`Staging`] directory named `prefix...`.
pub fn staging(ctx: &Ctx<'_>, prefix: &str, user: Option<OsUser>) -> anyhow::Result<Staging> {
    let base = private_dir(prefix, user)?;
    let key = ctx.procs.cluster(&base);
    let b = base.clone();
    ctx.resources.register(
        "staging",
        &base.display().to_string(),
        ctx.step_id,
        move || match std::fs::remove_dir_all(&b) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", b.display()))
            }
            _ => Ok(()),
        },
    );
    Ok(Staging { base, key })
}

impl Staging {
    /// The directory becomes a throwaway server's, as [`register`] makes one.
    pub fn serve(self, ctx: &Ctx<'_>, kind: &str, stop_signal: i32) -> (PathBuf, Server) {
        serve(ctx, kind, self.base, self.key, stop_signal)
    }
}

/// The server-to-be of `base`, its teardown registered as `kind`.
fn serve(
    ctx: &Ctx<'_>,
    kind: &str,
    base: PathBuf,
    key: Key,
    stop_signal: i32,
) -> (PathBuf, Server) {
    let server = Server {
        leader: Arc::default(),
        procs: ctx.procs.clone(),
        key: Some(key),
        stop_signal,
    };
    let (s, b) = (server.clone(), base.clone());
    ctx.resources
        .register(kind, &base.display().to_string(), ctx.step_id, move || {
            s.teardown(&b)
        });
    (base, server)
}

impl Server {
    /// Holds the started server, and records its group in the registry.
    pub fn started(&self, leader: Leader) {
        if let Some(key) = self.key {
            self.procs.set_group(key, leader.pgid());
        }
        *self.leader.lock().unwrap_or_else(|e| e.into_inner()) = Some(leader);
    }

    /// The server's exit status once it has exited; None while it runs (or before).
    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        self.leader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()?
            .exited()
    }

    /// Polls `ready` until it says yes; fails when the server `what` exits first or
    /// takes longer than `deadline`, quoting `explain` (its log).
    pub fn wait_ready(
        &self,
        what: &str,
        deadline: Duration,
        cancel: &Cancel,
        mut ready: impl FnMut() -> bool,
        explain: impl Fn() -> String,
    ) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        loop {
            cancel.check()?;
            if let Some(status) = self.exited() {
                bail!(
                    "{what} exited ({status}) before accepting connections: {}",
                    explain()
                );
            }
            if ready() {
                return Ok(());
            }
            if started.elapsed() > deadline {
                bail!(
                    "{what} did not accept connections within {deadline:?}: {}",
                    explain()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Stops the server's whole group (its first signal, SIGKILL if it lingers), then
    /// the directory goes. Fails when anything is left, so that the record says so.
    pub fn teardown(&self, base: &Path) -> anyhow::Result<()> {
        let leader = self.leader.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(leader) = leader {
            leader
                .stop(self.stop_signal, STOP_GRACE)
                .context("the throwaway server's processes are still running")?;
        }
        if base.exists() {
            std::fs::remove_dir_all(base)
                .with_context(|| format!("cannot remove {}", base.display()))?;
        }
        if let Some(key) = self.key {
            self.procs.remove(key);
        }
        Ok(())
    }
}

/// A random password for the drill's own login to a throwaway server (never stored
/// beyond it).
pub fn random_password() -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut raw = [0u8; 18];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// Gives `path` and everything under it to `user` (without following symlinks).
pub fn chown_tree(path: &Path, user: OsUser) -> anyhow::Result<()> {
    std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid))
        .with_context(|| format!("cannot give {} to uid {}", path.display(), user.uid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), user)?;
        }
    }
    Ok(())
}

/// Bytes of a file, or of every file under a directory.
pub fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| size_of(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}
