//! Stopping a running step: a flag in-process work polls, and the process groups and
//! interrupt hooks of the work that cannot poll.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::process;

type Hook = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
pub struct Cancel {
    flag: AtomicBool,
    groups: Mutex<Vec<i32>>,
    hooks: Mutex<Vec<(u64, Hook)>>,
    next_hook: Mutex<u64>,
}

impl Cancel {
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
        self.groups.lock().unwrap().push(pgid);
        // A group started after the cancel still has to go.
        if self.is_cancelled() {
            process::signal_group(pgid, libc::SIGTERM);
        }
    }

    pub fn unregister_group(&self, pgid: i32) {
        self.groups.lock().unwrap().retain(|g| *g != pgid);
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
        for pgid in self.groups.lock().unwrap().iter() {
            process::signal_group(*pgid, libc::SIGTERM);
        }
    }

    /// SIGKILL for whatever group is still registered (after the grace period).
    pub fn kill_remaining(&self) {
        for pgid in self.groups.lock().unwrap().iter() {
            process::signal_group(*pgid, libc::SIGKILL);
        }
    }
}
