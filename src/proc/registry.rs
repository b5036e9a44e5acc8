//! The process groups and clusters a run has started and not yet stopped, kept where the
//! next run finds them if this one dies (the runner writes them into the drill's lock
//! file on every change). Steps and engines register what they start the moment it
//! exists and remove it once stopped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::stat;

/// One process group (`pgid`) or throwaway cluster (`data_dir`, plus the postmaster's
/// group once it runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    /// `service`, `cluster`, `workdir`, or the kind of the step whose command it is
    /// (`exec`, `backup`, `restore`, ...).
    pub kind: String,
    pub step: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgid: Option<i32>,
    /// The leader's start time (clock ticks since boot): a recycled pid has another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
    /// The leader's program name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// A cluster's private directory (the data directory is `data` inside it), or the
    /// run's work directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// The run that started it and that machine boot, once a later run inherited it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

type Sink = dyn Fn(&[Tracked]) + Send + Sync;

struct Shared {
    entries: Mutex<Vec<(u64, Tracked)>>,
    next: AtomicU64,
    sink: Box<Sink>,
}

/// A handle on the run's registry, for one step (`for_step`). The default handle
/// records nothing.
#[derive(Clone, Default)]
pub struct Registry {
    shared: Option<Arc<Shared>>,
    step: Arc<str>,
}

/// What `remove` takes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key(u64);

impl Registry {
    /// `sink` is called with everything registered after every change, in order.
    pub fn new(sink: impl Fn(&[Tracked]) + Send + Sync + 'static) -> Self {
        Self {
            shared: Some(Arc::new(Shared {
                entries: Mutex::new(Vec::new()),
                next: AtomicU64::new(1),
                sink: Box::new(sink),
            })),
            step: Arc::from(""),
        }
    }

    /// The same registry, recording `step` as the owner of what is added.
    pub fn for_step(&self, step: &str) -> Self {
        Self {
            shared: self.shared.clone(),
            step: Arc::from(step),
        }
    }

    /// Adds an entry as it is.
    pub fn add(&self, entry: Tracked) -> Key {
        let Some(shared) = &self.shared else {
            return Key(0);
        };
        let key = shared.next.fetch_add(1, Ordering::SeqCst);
        self.change(|entries| entries.push((key, entry)));
        Key(key)
    }

    /// A process group that was just started (its leader is `pgid`).
    pub fn group(&self, kind: &str, pgid: i32) -> Key {
        if self.shared.is_none() || pgid <= 1 {
            return Key(0);
        }
        let mut entry = self.entry(kind);
        set_leader(&mut entry, pgid);
        self.add(entry)
    }

    /// A cluster about to be created in `dir`; its server's group comes later
    /// (`set_group`).
    pub fn cluster(&self, dir: &Path) -> Key {
        self.directory("cluster", dir)
    }

    /// A directory the run created (`workdir`, `cluster`), to remove if the run dies.
    pub fn directory(&self, kind: &str, dir: &Path) -> Key {
        if self.shared.is_none() {
            return Key(0);
        }
        let mut entry = self.entry(kind);
        entry.dir = Some(dir.to_path_buf());
        self.add(entry)
    }

    /// Records the process group of an entry (a cluster's server, once started).
    pub fn set_group(&self, key: Key, pgid: i32) {
        self.change(|entries| {
            if let Some((_, e)) = entries.iter_mut().find(|(k, _)| *k == key.0) {
                set_leader(e, pgid);
            }
        });
    }

    /// Forgets an entry: what it names was stopped.
    pub fn remove(&self, key: Key) {
        if key.0 == 0 {
            return;
        }
        self.change(|entries| entries.retain(|(k, _)| *k != key.0));
    }

    /// Everything registered now.
    pub fn entries(&self) -> Vec<Tracked> {
        self.shared.as_ref().map_or_else(Vec::new, |s| {
            let entries = s.entries.lock().unwrap_or_else(PoisonError::into_inner);
            entries.iter().map(|(_, e)| e.clone()).collect()
        })
    }

    fn entry(&self, kind: &str) -> Tracked {
        Tracked {
            kind: kind.into(),
            step: self.step.to_string(),
            pgid: None,
            start_time: None,
            program: None,
            dir: None,
            run_id: None,
            boot_id: None,
        }
    }

    /// Applies `f` and hands the result to the sink, under the lock: the sink sees the
    /// changes in the order they happened.
    fn change(&self, f: impl FnOnce(&mut Vec<(u64, Tracked)>)) {
        let Some(shared) = &self.shared else { return };
        let mut entries = shared
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut entries);
        let now: Vec<Tracked> = entries.iter().map(|(_, e)| e.clone()).collect();
        (shared.sink)(&now);
    }
}

fn set_leader(entry: &mut Tracked, pgid: i32) {
    entry.pgid = Some(pgid);
    entry.start_time = stat::start_time(pgid);
    entry.program = stat::comm(pgid);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_written_without_the_optional_fields_still_reads() {
        let t: Tracked = serde_json::from_str(r#"{"kind":"exec","step":"s","pgid":5}"#).unwrap();
        assert_eq!(
            (t.pgid, t.start_time, t.dir, t.run_id),
            (Some(5), None, None, None)
        );
    }

    #[test]
    fn every_change_reaches_the_sink_and_the_default_records_nothing() {
        let seen: Arc<Mutex<Vec<usize>>> = Arc::default();
        let s = Arc::clone(&seen);
        let registry = Registry::new(move |now| s.lock().unwrap().push(now.len()));
        let step = registry.for_step("app");
        let me = std::process::id() as i32;
        let a = step.group("service", me);
        let b = step.cluster(Path::new("/tmp/restore-drill-pg-x"));
        step.set_group(b, me);
        let all = registry.entries();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].step, "app");
        assert_eq!(all[0].start_time, stat::start_time(me));
        assert_eq!(all[1].pgid, Some(me));
        step.remove(a);
        assert_eq!(registry.entries().len(), 1);
        assert_eq!(*seen.lock().unwrap(), vec![1, 2, 2, 1]);

        let none = Registry::default().for_step("x");
        none.remove(none.group("exec", me));
        assert!(none.entries().is_empty());
    }
}
