//! Stopping a running step: a flag in-process work polls, and the process groups and
//! interrupt hooks of the work that cannot poll. The groups are also recorded in the
//! run's registry while they run (see `crate::proc::registry`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::process;
use crate::proc::{Key, Registry};

type Hook = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
pub struct Cancel {
    flag: AtomicBool,
    groups: Mutex<Vec<(i32, Key)>>,
    /// Where groups are recorded, and the kind of step they belong to.
    registry: Registry,
    kind: String,
    hooks: Mutex<Vec<(u64, Hook)>>,
    next_hook: Mutex<u64>,
}

impl Cancel {
    /// A step's cancel, recording its process groups in `registry` as `kind`.
    pub fn tracking(registry: Registry, kind: &str) -> Self {
        Self {
            registry,
            kind: kind.into(),
            ..Self::default()
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Fails with "cancelled" once the step was told to stop; for loops in long work.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.is_cancelled() {
            anyhow::bail!("cancelled");
        }
        Ok(())
    }

    /// Sleeps, waking early when cancelled. Returns false when cancelled.
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = std::time::Instant::now() + duration;
        while !self.is_cancelled() {
            let now = std::time::Instant::now();
            if now >= deadline {
                return true;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
        }
        false
    }

    pub fn register_group(&self, pgid: i32) {
        let key = self.registry.group(&self.kind, pgid);
        self.groups.lock().unwrap().push((pgid, key));
        // A group started after the cancel still has to go.
        if self.is_cancelled() {
            process::signal_group(pgid, libc::SIGTERM);
        }
    }

    pub fn unregister_group(&self, pgid: i32) {
        let mut groups = self.groups.lock().unwrap();
        for (_, key) in groups.iter().filter(|(g, _)| *g == pgid) {
            self.registry.remove(*key);
        }
        groups.retain(|(g, _)| *g != pgid);
    }

    /// Registers work to run on cancel (e.g. interrupting a SQLite query); returns a key.
    pub fn on_cancel(&self, hook: impl Fn() + Send + Sync + 'static) -> u64 {
        let mut next = self.next_hook.lock().unwrap();
        *next += 1;
        self.hooks.lock().unwrap().push((*next, Box::new(hook)));
        *next
    }

    pub fn remove_hook(&self, key: u64) {
        self.hooks.lock().unwrap().retain(|(k, _)| *k != key);
    }

    /// Sets the flag, runs the hooks, and sends SIGTERM to every registered group.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        for (_, hook) in self.hooks.lock().unwrap().iter() {
            hook();
        }
        for (pgid, _) in self.groups.lock().unwrap().iter() {
            process::signal_group(*pgid, libc::SIGTERM);
        }
    }

    /// SIGKILL for whatever group is still registered (after the grace period).
    pub fn kill_remaining(&self) {
        for (pgid, _) in self.groups.lock().unwrap().iter() {
            process::signal_group(*pgid, libc::SIGKILL);
        }
    }
}
