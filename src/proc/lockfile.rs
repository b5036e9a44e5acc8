//! A drill's lock file (`<artifacts>/.restore-drill-<drill>.lock`, taken by the runner)
//! as a reader of records sees it: whether a run whose record still says `running` is
//! really running. A live run holds its lock and its content names the run (pid, start
//! time, host, boot, run id); the kernel releases it when the run dies, however it dies,
//! and the next run of the drill takes it over. So a `running` record whose run is not
//! the lock's live holder on this host is the record of a run that died. Whether the
//! holder lives is told the way a dead run's scratch databases are (`Owner`: same boot,
//! the pid still the process with the recorded start time).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::owner::{Liveness, Owner};

/// A record of another host (whose processes cannot be seen here), or one read from a
/// bucket, that says `running` this long after it started is of a run that died.
pub const FOREIGN_RUNNING_MAX_S: f64 = 48.0 * 3600.0;

/// The largest lock file read: its holder and the process groups the run has not stopped
/// yet (a few hundred bytes each).
const MAX_LOCK_BYTES: u64 = 1 << 20;

/// What a run shown as died is said to be.
pub const NO_HOLDER: &str = "the run died (no process holds its lock)";

/// The lock file of drill `drill` in the artifacts folder `dir`.
pub fn path(dir: &Path, drill: &str) -> PathBuf {
    dir.join(format!(".restore-drill-{drill}.lock"))
}

/// Why the run `run_id` of drill `drill`, whose record says `running`, was written on
/// `host` and started at `started_at`, is over; None while it may still be running.
/// `dir` is the folder of its record (None for a bucket's: no lock to read).
pub fn died(
    dir: Option<&Path>,
    drill: &str,
    run_id: &str,
    host: &str,
    started_at: &str,
) -> Option<String> {
    let here = gethostname::gethostname();
    match dir {
        Some(dir) if here.to_string_lossy() == host => died_here(dir, drill, run_id),
        _ => died_elsewhere(host, started_at),
    }
}

fn died_here(dir: &Path, drill: &str, run_id: &str) -> Option<String> {
    let died = Some(NO_HOLDER.to_string());
    // A record is data: a name that is no file name has no lock (and reads nothing).
    if drill.is_empty() || drill.contains(['/', '\0']) {
        return died;
    }
    let text = match crate::limits::read_regular_text(&path(dir, drill), MAX_LOCK_BYTES) {
        Ok(text) => text,
        // Another user's: who holds it cannot be told.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return None,
        // Not there, or no lock file (a directory, a fifo...): nobody holds it.
        Err(_) => return died,
    };
    let Ok(holder) = serde_json::from_str::<Value>(text.trim()) else {
        // Emptied (released cleanly) or never written: nobody holds it.
        return died;
    };
    if holder["run_id"].as_str() != Some(run_id) {
        return died;
    }
    match Owner::of_lock(&holder).liveness("") {
        Liveness::Gone(_) => died,
        Liveness::ThisRun | Liveness::MayBeInUse(_) => None,
    }
}

fn died_elsewhere(host: &str, started_at: &str) -> Option<String> {
    let started = started_at.parse::<jiff::Timestamp>().ok()?;
    let age = jiff::Timestamp::now().duration_since(started).as_secs_f64();
    (age > FOREIGN_RUNNING_MAX_S).then(|| {
        format!(
            "the run died (it started more than {}h ago on host `{host}` and never finished)",
            FOREIGN_RUNNING_MAX_S / 3600.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A lock naming this process (pid, start time, host, boot) as run `run`, with `edit`.
    fn lock(dir: &Path, run: &str, edit: impl FnOnce(&mut Value)) {
        let pid = std::process::id() as i32;
        let mut v = json!({
            "pid": pid, "host": gethostname::gethostname().to_string_lossy(),
            "started_at": "2026-01-01T00:00:00Z", "run_id": run,
            "boot_id": super::super::stat::boot_id(),
            "start": super::super::stat::start_time(pid),
            "pidns": super::super::owner::this_pidns(), "processes": [],
        });
        edit(&mut v);
        std::fs::write(path(dir, "d"), v.to_string()).unwrap();
    }

    #[test]
    fn only_the_live_holder_of_the_lock_is_running() {
        let dir = tempfile::tempdir().unwrap();
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let here = |run: &str| died(Some(dir.path()), "d", run, &host, "2026-01-01T00:00:00Z");
        assert_eq!(here("r1").as_deref(), Some(NO_HOLDER), "no lock file");
        lock(dir.path(), "r1", |_| {});
        assert_eq!(here("r1"), None, "its holder runs");
        assert_eq!(
            here("r0").as_deref(),
            Some(NO_HOLDER),
            "another run holds it"
        );
        // A pid given to another process since, a reboot, a dead pid, an old lock's.
        lock(dir.path(), "r1", |v| v["start"] = json!(1));
        assert!(here("r1").is_some(), "a recycled pid");
        lock(dir.path(), "r1", |v| v["boot_id"] = json!("another boot"));
        assert!(here("r1").is_some(), "another boot");
        lock(dir.path(), "r1", |v| v["pid"] = json!(i32::MAX));
        assert!(here("r1").is_some(), "a dead pid");
        lock(dir.path(), "r1", |v| {
            v.as_object_mut()
                .unwrap()
                .retain(|k, _| k != "start" && k != "pidns");
        });
        assert_eq!(here("r1"), None, "a lock written before start and pidns");
        std::fs::write(path(dir.path(), "d"), "").unwrap();
        assert!(here("r1").is_some(), "released");
        assert!(died(Some(dir.path()), "../x", "r1", &host, "").is_some());
    }

    #[test]
    fn another_hosts_run_is_running_until_too_old() {
        let ago = |h: i64| {
            let t = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(h);
            died(None, "d", "r", "elsewhere", &t.to_string())
        };
        assert_eq!(ago(1), None);
        let why = ago(49).unwrap();
        assert!(
            why.contains("more than 48h ago on host `elsewhere`"),
            "{why}"
        );
        assert_eq!(died(None, "d", "r", "elsewhere", "not a time"), None);
    }
}
