//! Which run made a thing that outlives its process: a scratch database on a server,
//! which no lock file or process group can answer for once the run is killed outright.
//! The mark is written on the thing itself when it is created (a database comment), so
//! that a later run finding it can tell what a dead run left (drop it, as that run's
//! teardown would have) from what a live run is using or a person made (leave it).
//!
//! The mark names the run and its process: pid and start time, in which pid namespace,
//! on which boot of which host. A pid the kernel has given to another process since has
//! another start time; a reboot ends every process; another host's processes, and those
//! of another pid namespace (a container sharing the host's name), cannot be seen here.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{kernel, stat};

/// What a mark starts with (a person reading the comment sees whose it is).
const PREFIX: &str = "restore-drill scratch database, made by ";

/// The run, and its step, that made something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    run: String,
    step: String,
    host: String,
    boot: Option<String>,
    /// The pid namespace its pid is a pid in (`pid:[inode]`).
    pidns: Option<String>,
    pid: i32,
    /// The process's start time (clock ticks since boot).
    start: Option<u64>,
}

/// Whether the run that made something can still be using it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// This very step made it (an earlier attempt of it, retried).
    ThisRun,
    /// Its run is over, for the reason given.
    Gone(String),
    /// Its run may still be using it (it may still be running, or another step of this
    /// run made it), for the reason given.
    MayBeInUse(String),
}

impl Owner {
    /// This process, as the run it is running, in its step `step`.
    pub fn this_run(step: &str) -> Self {
        let pid = std::process::id() as i32;
        Self {
            run: kernel::run_id().unwrap_or_default(),
            step: step.to_string(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            boot: stat::boot_id(),
            pidns: this_pidns(),
            pid,
            start: stat::start_time(pid),
        }
    }

    /// This process as the holder of run `run_id`'s lock: the fields a drill's lock file
    /// names its holder by, which [`Owner::of_lock`] reads back.
    pub fn lock_fields(run_id: &str) -> serde_json::Map<String, Value> {
        let me = Self::this_run("");
        let mut fields = serde_json::Map::new();
        fields.insert("pid".into(), me.pid.into());
        fields.insert("host".into(), me.host.into());
        fields.insert("run_id".into(), run_id.into());
        fields.insert("boot_id".into(), me.boot.into());
        fields.insert("start".into(), me.start.into());
        fields.insert("pidns".into(), me.pidns.into());
        fields
    }

    /// The holder a drill's lock file names (see `lockfile`). A lock written before it
    /// recorded its pid namespace was written in this one (same host and boot).
    pub fn of_lock(lock: &Value) -> Self {
        let text = |k: &str| lock[k].as_str().map(str::to_string);
        Self {
            run: text("run_id").unwrap_or_default(),
            step: String::new(),
            host: text("host").unwrap_or_default(),
            boot: text("boot_id"),
            pidns: text("pidns").or_else(this_pidns),
            pid: lock["pid"]
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(0),
            start: lock["start"].as_u64(),
        }
    }

    /// The text written on what it made.
    pub fn mark(&self) -> String {
        let fields = serde_json::to_string(self).unwrap_or_default();
        format!("{PREFIX}{fields}")
    }

    /// The owner a mark names; None for any other text (a person's comment, none).
    pub fn from_mark(text: &str) -> Option<Self> {
        serde_json::from_str(text.strip_prefix(PREFIX)?).ok()
    }

    /// Whether its run can still be using what it made, seen from this run's `step`.
    pub fn liveness(&self, step: &str) -> Liveness {
        self.seen_from(&Self::this_run(step), |pid| {
            stat::stat(pid)
                .filter(|s| !s.is_zombie())
                .map(|s| s.start_time)
        })
    }

    /// `start_of`: a live process's start time, None when there is no such process.
    fn seen_from(&self, me: &Self, start_of: impl Fn(i32) -> Option<u64>) -> Liveness {
        let (run, pid) = (&self.run, self.pid);
        if !run.is_empty() && *run == me.run && pid == me.pid {
            return match self.step == me.step {
                true => Liveness::ThisRun,
                false => Liveness::MayBeInUse(format!(
                    "step `{}` of this run made it (each restore needs a scratch database of its own)",
                    self.step
                )),
            };
        }
        if self.host != me.host {
            return Liveness::MayBeInUse(format!(
                "run {run} made it on host `{}`, whose processes this run cannot see",
                self.host
            ));
        }
        match (&self.boot, &me.boot) {
            (Some(then), Some(now)) if then != now => {
                return Liveness::Gone(format!(
                    "run {run} made it before this machine last started"
                ));
            }
            (Some(_), Some(_)) => {}
            _ => {
                return Liveness::MayBeInUse(format!(
                    "run {run} made it, and without the machine's boot id this run cannot tell whether its process {pid} is that run"
                ));
            }
        }
        if self.pidns.is_none() || self.pidns != me.pidns {
            return Liveness::MayBeInUse(format!(
                "run {run} made it in another pid namespace (another container?), whose processes this run cannot see"
            ));
        }
        match start_of(pid) {
            Some(started) if self.start.is_none_or(|s| s == started) => Liveness::MayBeInUse(
                format!("run {run} made it, and its process {pid} is still running"),
            ),
            _ => Liveness::Gone(format!("run {run} made it, and its process {pid} is gone")),
        }
    }
}

/// This process's pid namespace (`pid:[inode]`).
pub fn this_pidns() -> Option<String> {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(run: &str, host: &str, boot: Option<&str>, pid: i32, start: Option<u64>) -> Owner {
        Owner {
            run: run.into(),
            step: "restore".into(),
            host: host.into(),
            boot: boot.map(str::to_string),
            pidns: Some("pid:[1]".into()),
            pid,
            start,
        }
    }

    #[test]
    fn a_mark_reads_back_and_other_text_names_no_owner() {
        let me = Owner::this_run("restore");
        assert_eq!(Owner::from_mark(&me.mark()), Some(me.clone()));
        assert!(
            me.mark()
                .starts_with("restore-drill scratch database, made by {")
        );
        for text in [
            "",
            "our reporting database",
            "restore-drill scratch database, made by x",
        ] {
            assert_eq!(Owner::from_mark(text), None, "{text}");
        }
    }

    /// Only a run that is provably over gives up what it made: every doubt keeps it.
    #[test]
    fn only_a_run_provably_over_is_gone() {
        let me = owner("run-2", "h", Some("boot-1"), 20, Some(500));
        let alive = |pid| (pid == 10).then_some(100);
        let seen = |o: Owner| o.seen_from(&me, alive);
        let gone = |l: Liveness| matches!(l, Liveness::Gone(_));
        let kept = |l: Liveness| matches!(l, Liveness::MayBeInUse(_));

        assert_eq!(
            seen(owner("run-2", "h", Some("boot-1"), 20, Some(500))),
            Liveness::ThisRun
        );
        // Another step of this run: its restore may be what later steps check.
        let mut other_step = owner("run-2", "h", Some("boot-1"), 20, Some(500));
        other_step.step = "restore_again".into();
        let Liveness::MayBeInUse(why) = seen(other_step) else {
            panic!("another step of this run")
        };
        assert!(
            why.starts_with("step `restore_again` of this run made it"),
            "{why}"
        );
        // The same process under another run id, or the same id in another process.
        assert!(kept(seen(owner(
            "run-9",
            "h",
            Some("boot-1"),
            10,
            Some(100)
        ))));
        assert!(gone(seen(owner(
            "run-2",
            "h",
            Some("boot-1"),
            11,
            Some(100)
        ))));
        // Its process runs (without a recorded start time, any process of that pid does).
        assert!(kept(seen(owner(
            "run-1",
            "h",
            Some("boot-1"),
            10,
            Some(100)
        ))));
        assert!(kept(seen(owner("run-1", "h", Some("boot-1"), 10, None))));
        // Its pid is free, or now another process's.
        let Liveness::Gone(why) = seen(owner("run-1", "h", Some("boot-1"), 11, Some(100))) else {
            panic!("a free pid")
        };
        assert_eq!(why, "run run-1 made it, and its process 11 is gone");
        assert!(gone(seen(owner(
            "run-1",
            "h",
            Some("boot-1"),
            10,
            Some(99)
        ))));
        // The machine restarted since.
        assert!(gone(seen(owner(
            "run-1",
            "h",
            Some("boot-0"),
            10,
            Some(100)
        ))));
        // Another host, or no boot id on either side: nothing can be told.
        let Liveness::MayBeInUse(why) = seen(owner("run-1", "g", Some("boot-1"), 11, None)) else {
            panic!("another host")
        };
        assert!(why.contains("on host `g`"), "{why}");
        assert!(kept(seen(owner("run-1", "h", None, 11, None))));
        // Another pid namespace (a container with the host's name), or none recorded.
        let mut contained = owner("run-1", "h", Some("boot-1"), 11, Some(100));
        contained.pidns = Some("pid:[2]".into());
        let Liveness::MayBeInUse(why) = seen(contained.clone()) else {
            panic!("another pid namespace")
        };
        assert!(why.contains("another pid namespace"), "{why}");
        contained.pidns = None;
        assert!(kept(seen(contained.clone())));
        // ...unless the machine restarted since.
        contained.boot = Some("boot-0".into());
        assert!(gone(seen(contained)));
        let no_boot = owner("run-2", "h", None, 20, Some(500));
        assert!(kept(
            owner("run-1", "h", Some("boot-1"), 11, None).seen_from(&no_boot, alive)
        ));
    }

    #[test]
    fn this_process_is_alive_to_another_run() {
        let mut me = Owner::this_run("restore");
        me.run = "another-run".into();
        assert!(matches!(me.liveness("restore"), Liveness::MayBeInUse(_)));
    }
}
