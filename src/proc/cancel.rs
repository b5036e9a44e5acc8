//! Stopping a running step: a flag in-process work polls, and the process groups and
//! interrupt hooks of the work that cannot poll. The groups are also recorded in the
//! run's registry while they run (see `crate::proc::registry`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::group::{self, Stopped};
use super::{Key, Registry};

type Hook = Box<dyn Fn() + Send + Sync>;
type Hooks = Mutex<Vec<(u64, Hook)>>;

#[derive(Default)]
pub struct Cancel {
    flag: AtomicBool,
    groups: Mutex<Vec<(i32, Key)>>,
    /// Where groups are recorded, and the kind of step they belong to.
    registry: Registry,
    kind: String,
    hooks: Arc<Hooks>,
    next_hook: AtomicU64,
}

/// A hook registered with `Cancel::on_cancel`; dropping it removes the hook.
#[must_use = "the hook is removed when this guard is dropped"]
pub struct OnCancel {
    hooks: Weak<Hooks>,
    key: u64,
}

impl Drop for OnCancel {
    fn drop(&mut self) {
        if let Some(hooks) = self.hooks.upgrade() {
            hooks.lock().unwrap().retain(|(k, _)| *k != self.key);
        }
    }
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
        let deadline = Instant::now() + duration;
        while !self.is_cancelled() {
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
        }
        false
    }

    /// Records a process group of the step's (see `proc::tool`, which does this).
    pub(super) fn register_group(&self, pgid: i32) {
        let key = self.registry.group(&self.kind, pgid);
        self.groups.lock().unwrap().push((pgid, key));
        // A group started after the cancel still has to go.
        if self.is_cancelled() {
            group::signal_group(pgid, libc::SIGTERM);
        }
    }

    pub(super) fn unregister_group(&self, pgid: i32) {
        let mut groups = self.groups.lock().unwrap();
        for (_, key) in groups.iter().filter(|(g, _)| *g == pgid) {
            self.registry.remove(*key);
        }
        groups.retain(|(g, _)| *g != pgid);
    }

    /// Runs `hook` on cancel (e.g. interrupting a query) for as long as the returned
    /// guard lives.
    pub fn on_cancel(&self, hook: impl Fn() + Send + Sync + 'static) -> OnCancel {
        let key = self.next_hook.fetch_add(1, Ordering::SeqCst);
        self.hooks.lock().unwrap().push((key, Box::new(hook)));
        OnCancel {
            hooks: Arc::downgrade(&self.hooks),
            key,
        }
    }

    /// Stops the step's work: sets the flag and runs the hooks, then SIGTERM to every
    /// registered group, up to `grace` for them all to end, and SIGKILL to the groups
    /// still there (`group::stop_groups`). `Gone` when no process of it was running.
    pub fn stop(&self, grace: Duration) -> Stopped {
        self.flag.store(true, Ordering::SeqCst);
        for (_, hook) in self.hooks.lock().unwrap().iter() {
            hook();
        }
        let alive = || self.pgids().into_iter().any(group::group_alive);
        // Our own children: nothing is denied, and what survives SIGKILL is the worker's
        // to reap; either way SIGKILL was needed.
        group::stop_groups(&|| self.pgids(), libc::SIGTERM, grace, &alive).unwrap_or(Stopped::Kill)
    }

    pub(super) fn pgids(&self) -> Vec<i32> {
        self.groups
            .lock()
            .unwrap()
            .iter()
            .map(|(g, _)| *g)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_hook_runs_on_cancel_while_its_guard_lives() {
        let cancel = Cancel::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let guard = cancel.on_cancel(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let dropped = {
            let counted = Arc::clone(&runs);
            cancel.on_cancel(move || {
                counted.fetch_add(100, Ordering::SeqCst);
            })
        };
        drop(dropped);
        cancel.stop(Duration::ZERO);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        drop(guard);
        assert!(cancel.hooks.lock().unwrap().is_empty());
    }

    #[test]
    fn stopping_work_without_a_process_group_says_so() {
        let cancel = Cancel::default();
        assert_eq!(cancel.stop(Duration::from_secs(5)), Stopped::Gone);
        assert!(cancel.is_cancelled());
    }
}
