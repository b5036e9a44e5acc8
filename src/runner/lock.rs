//! One run of a drill at a time per artifacts directory: two runs of the same drill would
//! race for its ports, scratch databases and record names.
//!
//! The lock is `flock(2)` on `<artifacts>/.restore-drill-<name>.lock`, so the kernel
//! releases it when its holder dies, however it dies: a lock left by a dead run is simply
//! free, and is taken over. The file names the holder (pid, host, start time) for the
//! message the second run prints, and is emptied on a clean release, so leftover content
//! tells that the previous holder died without releasing it. `history` and `status` read
//! it too, to tell a run that died from one still running (`crate::proc::lockfile`).
//!
//! It is also the run's state file: the process groups and clusters the run started and
//! has not stopped yet (`processes`, rewritten on every change), which the next run stops
//! if this one dies (see `leftovers`).

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};

use super::RunError;
use crate::proc::Tracked;

pub struct DrillLock {
    state: Arc<State>,
    pub path: PathBuf,
    /// Who held the lock last without releasing it (a run that died), when someone did.
    pub took_over: Option<String>,
    /// What that run left recorded, each stamped with its run id and boot, until this
    /// run takes it to stop it (`take_inherited`).
    inherited: Vec<Tracked>,
    /// The dead run's content, put back if this run ends before taking `inherited`
    /// (a usage error): its processes stay for the next run to stop.
    previous: String,
}

/// The open lock file and what this run writes into it.
struct State {
    file: Mutex<Written>,
    me: serde_json::Map<String, Value>,
}

struct Written {
    file: File,
    /// Length of the last content written (a shorter one is padded over it first).
    len: u64,
    released: bool,
}

impl DrillLock {
    /// Takes the drill's lock, or says who holds it (a usage error: nothing was run).
    /// A lock that cannot be opened, locked or written is the tool breaking (exit 3),
    /// named by its path: a read-only or full artifacts directory, say.
    pub fn acquire(artifacts_dir: &Path, drill: &str, run_id: &str) -> Result<Self, RunError> {
        let path = crate::proc::lockfile::path(artifacts_dir, drill);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| broken("open", &path, e))?;
        // SAFETY: flock(2) on a descriptor this function owns; no memory is shared.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(RunError::Usage(format!(
                    "another run of drill `{drill}` is in progress ({}); lock {}",
                    holder(&read_all(&mut file)),
                    path.display()
                )));
            }
            return Err(broken("lock", &path, err));
        }
        let previous = read_all(&mut file);
        let took_over = (!previous.trim().is_empty()).then(|| holder(&previous));
        let inherited = inherited(&previous);
        // Which process is this run (for the message of a second run, and for `history`
        // and `status`, which tell a run that died from one still running).
        let mut me = crate::proc::Owner::lock_fields(run_id);
        me.insert(
            "started_at".into(),
            jiff::Timestamp::now().to_string().into(),
        );
        let state = State {
            file: Mutex::new(Written {
                file,
                len: previous.len() as u64,
                released: false,
            }),
            me,
        };
        // The dead run's processes stay recorded until this run has stopped them.
        state
            .write(&inherited)
            .map_err(|e| broken("write", &path, e))?;
        Ok(Self {
            state: Arc::new(state),
            path,
            took_over,
            inherited,
            previous,
        })
    }

    /// What the run that died left recorded (once: this run now answers for it).
    pub fn take_inherited(&mut self) -> Vec<Tracked> {
        std::mem::take(&mut self.inherited)
    }

    /// Writes the run's process groups and clusters into the lock file (for `Registry`).
    pub fn recorder(&self) -> impl Fn(&[Tracked]) + Send + Sync + 'static {
        let state = Arc::clone(&self.state);
        move |processes| {
            let _ = state.write(processes);
        }
    }
}

impl State {
    /// Rewrites the content in place (the file must stay the one that is locked): the
    /// new content, padded with spaces over the old one, then cut to length, so that a
    /// run killed in between still leaves valid JSON.
    fn write(&self, processes: &[Tracked]) -> std::io::Result<()> {
        let mut w = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if w.released {
            return Ok(());
        }
        let mut content = self.me.clone();
        content.insert("processes".into(), json!(processes));
        let mut bytes = format!("{}\n", Value::Object(content)).into_bytes();
        let len = bytes.len() as u64;
        bytes.resize(len.max(w.len) as usize, b' ');
        w.file.write_all_at(&bytes, 0)?;
        w.file.set_len(len)?;
        w.len = len;
        Ok(())
    }
}

impl Drop for DrillLock {
    /// Empties the file (or puts back what a dead run left, if this run never took it)
    /// and releases the lock (explicitly: a registry handle that outlives the runner
    /// keeps the file open, and writes nothing more).
    fn drop(&mut self) {
        let mut w = self
            .state
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        w.released = true;
        let keep = if self.inherited.is_empty() {
            ""
        } else {
            self.previous.as_str()
        };
        let _ = w
            .file
            .set_len(0)
            .and_then(|_| w.file.write_all_at(keep.as_bytes(), 0));
        // SAFETY: flock(2) on a descriptor the state owns; no memory is shared.
        unsafe { libc::flock(w.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

fn broken(doing: &str, path: &Path, e: std::io::Error) -> RunError {
    RunError::Broken(format!("cannot {doing} the lock {}: {e}", path.display()))
}

/// The processes a dead holder recorded, stamped with its run id and boot.
fn inherited(content: &str) -> Vec<Tracked> {
    let Ok(v) = serde_json::from_str::<Value>(content.trim()) else {
        return Vec::new();
    };
    let Ok(mut list) = serde_json::from_value::<Vec<Tracked>>(v["processes"].clone()) else {
        return Vec::new();
    };
    let text = |k: &str| v[k].as_str().map(str::to_string);
    for t in &mut list {
        t.run_id = t.run_id.take().or_else(|| text("run_id"));
        t.boot_id = t.boot_id.take().or_else(|| text("boot_id"));
    }
    list
}

fn read_all(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_string(&mut text));
    text
}

/// "pid 123 on host, started at ..." from the lock's content.
fn holder(content: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(content.trim()) else {
        return "holder unknown".into();
    };
    let field = |k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => "?".into(),
        other => other.to_string(),
    };
    format!(
        "pid {} on {}, started at {}, run {}",
        field("pid"),
        field("host"),
        field("started_at"),
        field("run_id")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::stat;

    #[test]
    fn a_second_holder_is_refused_and_names_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = DrillLock::acquire(dir.path(), "d", "run-1").unwrap();
        assert!(first.took_over.is_none());
        // flock locks belong to the open file: a second open in the same process conflicts too.
        let Err(RunError::Usage(err)) = DrillLock::acquire(dir.path(), "d", "run-2") else {
            panic!("a held lock is a usage error");
        };
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("run-1"), "{err}");
        assert!(DrillLock::acquire(dir.path(), "other", "run-3").is_ok());
        drop(first);
        let again = DrillLock::acquire(dir.path(), "d", "run-4").unwrap();
        assert!(
            again.took_over.is_none(),
            "a clean release leaves no holder behind"
        );
    }

    #[test]
    fn the_lock_records_the_runs_processes_and_hands_a_dead_runs_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".restore-drill-d.lock");
        let read = || -> Value {
            serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap()
        };
        let first = DrillLock::acquire(dir.path(), "d", "run-1").unwrap();
        let registry = crate::proc::Registry::new(first.recorder());
        let me = std::process::id() as i32;
        let key = registry.for_step("app").group("service", me);
        registry.directory("workdir", Path::new("/tmp/restore-drill-d-x"));
        assert_eq!(read()["processes"][0]["pgid"], me);
        assert_eq!(read()["processes"].as_array().unwrap().len(), 2);
        registry.remove(key);
        assert_eq!(read()["processes"].as_array().unwrap().len(), 1);
        // The run dies: its content stays in the file (simulated after a clean release).
        let key = registry.for_step("app").group("service", me);
        let left = std::fs::read_to_string(&path).unwrap();
        drop(first);
        registry.remove(key);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "", "released");
        std::fs::write(&path, &left).unwrap();

        let second = DrillLock::acquire(dir.path(), "d", "run-2").unwrap();
        assert!(second.took_over.is_some());
        // A run that ends before taking them (a usage error) puts them back.
        drop(second);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), left);
        let mut second = DrillLock::acquire(dir.path(), "d", "run-2").unwrap();
        let inherited = &second.take_inherited();
        assert_eq!(inherited.len(), 2);
        assert!(
            inherited
                .iter()
                .all(|t| t.run_id.as_deref() == Some("run-1"))
        );
        assert!(inherited.iter().all(|t| t.boot_id == stat::boot_id()));
        // Still recorded, under the new holder, until the new run has dealt with them.
        let now = read();
        assert_eq!(now["run_id"], "run-2");
        assert_eq!(now["processes"][1]["run_id"], "run-1");
        assert_eq!(now["processes"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_lock_left_by_a_dead_run_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".restore-drill-d.lock");
        std::fs::write(
            &path,
            r#"{"pid":999999,"host":"h","started_at":"2026-01-01T00:00:00Z","run_id":"old"}"#,
        )
        .unwrap();
        let lock = DrillLock::acquire(dir.path(), "d", "new").unwrap();
        assert!(lock.took_over.as_deref().unwrap().contains("pid 999999"));
        assert!(std::fs::read_to_string(&path).unwrap().contains("\"new\""));
    }
}
