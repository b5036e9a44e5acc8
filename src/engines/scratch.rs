//! A scratch database on an existing server (PostgreSQL, MySQL): the drill restores only
//! into one it creates, marked with the run that made it (`proc::Owner`), and drops it
//! at teardown. A run killed outright (SIGKILL, a reboot) cannot drop it; the next run
//! that finds it drops it when the mark proves its run is over, and refuses otherwise:
//! a database without the mark is a person's, one whose run may be alive is that run's.

use crate::proc::{Liveness, Owner};

/// This run's mark for the scratch database of its step `step`, as a quoted SQL string
/// literal with backslash escapes (MySQL's default; PostgreSQL's `E'...'`).
pub fn mark_literal(step: &str) -> String {
    let mark = Owner::this_run(step).mark();
    format!("'{}'", mark.replace('\\', "\\\\").replace('\'', "''"))
}

/// What to do with the scratch database `db` on `server`, found existing before the
/// drill creates it, from the text found on it (`mark`): Ok(the warning to give) when
/// it is to be dropped and created afresh, Err(why not) when the drill must refuse it.
/// `drop_sql` is how a person drops it by hand; `step`: the restore step, whose earlier
/// attempt may have made it.
pub fn existing(
    step: &str,
    db: &str,
    server: &str,
    mark: Option<&str>,
    drop_sql: &str,
) -> anyhow::Result<String> {
    let refused = format!(
        "refusing to restore into `{db}` on {server}: the database already exists, and a drill only restores into a scratch database it creates (and drops afterwards)"
    );
    let Some(owner) = mark.and_then(Owner::from_mark) else {
        anyhow::bail!(
            "{refused}; it does not carry a drill's mark, so it is not the drill's to drop. If a drill killed outright left it (on MySQL, which has no schema comments, or from a version that did not mark them), drop it by hand ({drop_sql})"
        );
    };
    match owner.liveness(step) {
        Liveness::ThisRun => Ok(format!(
            "dropped `{db}` on {server}, which an earlier attempt of this step created, to restore into it afresh"
        )),
        Liveness::Gone(why) => Ok(format!(
            "dropped `{db}` on {server}, the scratch database of a drill killed before its teardown ({why}), to restore into it afresh"
        )),
        Liveness::MayBeInUse(why) => anyhow::bail!(
            "{refused}; it is a drill's scratch database, and {why}. If no drill is using it, drop it by hand ({drop_sql})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mark naming `run` in process `pid` of this host and boot.
    fn mark(run: &str, pid: u32, start: Option<u64>) -> String {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let boot = crate::proc::stat::boot_id();
        let pidns = std::fs::read_link("/proc/self/ns/pid").unwrap();
        let owner = serde_json::json!({
            "run": run, "step": "restore", "host": host, "boot": boot, "pidns": pidns, "pid": pid, "start": start,
        });
        format!("restore-drill scratch database, made by {owner}")
    }

    /// Only a database whose mark proves its run over (or this very run) is dropped; the
    /// refusal says why and how to drop it by hand.
    #[test]
    fn only_a_database_a_finished_run_marked_is_dropped() {
        let drop_sql = "DROP DATABASE `x`";
        let decide = |m: Option<&str>| existing("restore", "x", "db:3306", m, drop_sql);
        let me = std::process::id();
        // As the runner does at its start (the kernel's tests use the same id).
        crate::proc::kernel::set_run_id("unit-run");
        let mine = Owner::this_run("restore").mark();
        let ok = decide(Some(&mine)).unwrap();
        assert!(ok.contains("an earlier attempt of this step"), "{ok}");
        // A pid no process has (above the kernel's pid_max).
        let dead = decide(Some(&mark("run-1", 1 << 23, Some(1)))).unwrap();
        assert!(
            dead.starts_with("dropped `x` on db:3306, the scratch database of a drill killed"),
            "{dead}"
        );
        assert!(dead.contains("its process 8388608 is gone"), "{dead}");
        let start = crate::proc::stat::start_time(me as i32);
        for (text, why) in [
            (None, "does not carry a drill's mark"),
            (
                Some("a person's comment".to_string()),
                "does not carry a drill's mark",
            ),
            (Some(mark("run-1", me, start)), "is still running"),
        ] {
            let refused = decide(text.as_deref()).unwrap_err().to_string();
            assert!(
                refused.starts_with(
                    "refusing to restore into `x` on db:3306: the database already exists"
                ),
                "{refused}"
            );
            assert!(refused.contains(why), "{refused}");
            assert!(
                refused.ends_with(&format!("drop it by hand ({drop_sql})")),
                "{refused}"
            );
        }
    }
}
