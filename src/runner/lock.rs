//! One run of a drill at a time per artifacts directory: two runs of the same drill would
//! race for its ports, scratch databases and record names.
//!
//! The lock is `flock(2)` on `<artifacts>/.restore-drill-<name>.lock`, so the kernel
//! releases it when its holder dies, however it dies: a lock left by a dead run is simply
//! free, and is taken over. The file names the holder (pid, host, start time) for the
//! message the second run prints, and is emptied on a clean release, so leftover content
//! tells that the previous holder died without releasing it.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::RunError;

pub struct DrillLock {
    file: File,
    pub path: PathBuf,
    /// Who held the lock last without releasing it (a run that died), when someone did.
    pub took_over: Option<String>,
}

impl DrillLock {
    /// Takes the drill's lock, or says who holds it (a usage error: nothing was run).
    /// A lock that cannot be opened, locked or written is the tool breaking (exit 3),
    /// named by its path: a read-only or full artifacts directory, say.
    pub fn acquire(artifacts_dir: &Path, drill: &str, run_id: &str) -> Result<Self, RunError> {
        let path = artifacts_dir.join(format!(".restore-drill-{drill}.lock"));
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
        let me = json!({
            "pid": std::process::id(),
            "host": gethostname::gethostname().to_string_lossy(),
            "started_at": jiff::Timestamp::now().to_string(),
            "run_id": run_id,
        });
        let written = file
            .set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(format!("{me}\n").as_bytes()));
        written.map_err(|e| broken("write", &path, e))?;
        Ok(Self {
            file,
            path,
            took_over,
        })
    }
}

impl Drop for DrillLock {
    /// Empties the file; closing it releases the lock.
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

fn broken(doing: &str, path: &Path, e: std::io::Error) -> RunError {
    RunError::Broken(format!("cannot {doing} the lock {}: {e}", path.display()))
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
