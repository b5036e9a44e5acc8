//! Processes a run started that left the process groups it started (`setsid`, a
//! daemon's double fork), so that stopping those groups missed them: found at teardown
//! by the run id every process a run starts carries in its environment (`RUN_ID_VAR`),
//! and stopped group by group, as any group is.

use std::time::Duration;

use super::group::{self, NotStopped, Stopped};
use super::kernel::RUN_ID_VAR;
use super::stat::{self, Stat};

/// A process group of strays, and how stopping it went.
#[derive(Debug)]
pub struct Strays {
    pub pgid: i32,
    /// `pid (program)` of each stray found in it.
    pub found: Vec<String>,
    /// Err: why it was left running (the group is led by a process not of this run, or
    /// could not be stopped).
    pub stopped: Result<Stopped, String>,
}

/// The live processes but this one whose environment says they are the run `run`'s.
fn marked(run: &str) -> Vec<Stat> {
    let me = std::process::id() as i32;
    stat::all()
        .into_iter()
        .filter(|s| s.pid != me && !s.is_zombie())
        .filter(|s| stat::environ_has(s.pid, RUN_ID_VAR, run))
        .collect()
}

/// Stops every group holding a process of the run `run` still alive (call it once the
/// run's own groups are stopped): SIGTERM, `grace`, SIGKILL. A group led by a process
/// that is not the run's (a stray that joined another's group) is left alone.
pub fn stop(run: &str, grace: Duration) -> Vec<Strays> {
    let found = marked(run);
    let mut groups: Vec<i32> = found.iter().map(|s| s.pgrp).collect();
    groups.sort_unstable();
    groups.dedup();
    groups
        .into_iter()
        .map(|pgid| {
            let names = found
                .iter()
                .filter(|s| s.pgrp == pgid)
                .map(|s| format!("{} ({})", s.pid, stat::comm(s.pid).unwrap_or_default()))
                .collect();
            // The group's leader is the run's; or, gone (a daemon's session leader
            // exits after its fork), every member left is.
            let leader = stat::stat(pgid).filter(|s| !s.is_zombie());
            let ours = pgid > 1
                && match leader {
                    Some(_) => stat::environ_has(pgid, RUN_ID_VAR, run),
                    None => stat::group_members(pgid)
                        .iter()
                        .all(|m| stat::environ_has(m.pid, RUN_ID_VAR, run)),
                };
            let alive = || {
                stat::group_members(pgid)
                    .iter()
                    .any(|s| stat::environ_has(s.pid, RUN_ID_VAR, run))
            };
            let stopped = match ours {
                true => group::stop_group(pgid, libc::SIGTERM, grace, &alive)
                    .map_err(|e: NotStopped| e.to_string()),
                false => Err(format!(
                    "its process group {pgid} is led by a process not of this run: left alone"
                )),
            };
            Strays {
                pgid,
                found: names,
                stopped,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn a_process_that_left_its_group_is_stopped_and_others_are_left_alone() {
        // A shell of the run starts a `setsid` sleeper and ends: the sleeper is in a
        // group and session of its own, marked with the run id.
        let run = format!("strays-test-{}", std::process::id());
        // And a daemon whose session leader exits after its fork: its group has no
        // leader left.
        let status = Command::new("sh")
            .args([
                "-c",
                "setsid sleep 300 >/dev/null 2>&1 </dev/null &
                 setsid sh -c 'sleep 301 & exit 0' >/dev/null 2>&1 </dev/null &",
            ])
            .env(RUN_ID_VAR, &run)
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let mut other = Command::new("sleep")
            .arg("300")
            .env(RUN_ID_VAR, "another-run")
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let sleepers = || {
            let found = marked(&run);
            found.len() == 2
                && found
                    .iter()
                    .all(|s| stat::comm(s.pid).as_deref() == Some("sleep"))
        };
        while !sleepers() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let stopped = stop(&run, Duration::from_secs(5));
        assert_eq!(stopped.len(), 2, "{stopped:?}");
        for group in &stopped {
            assert!(group.found[0].contains("(sleep)"), "{stopped:?}");
            assert_eq!(group.stopped, Ok(Stopped::Term), "{stopped:?}");
        }
        assert!(marked(&run).is_empty(), "the stray is gone");
        assert!(
            other.try_wait().unwrap().is_none(),
            "another run's process was stopped"
        );
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
