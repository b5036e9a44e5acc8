//! A scratch database on an existing server (PostgreSQL, MySQL): the drill restores only
//! into one it creates, marked with the run that made it (`proc::Owner`), and drops it
//! at teardown. A run killed outright (SIGKILL, a reboot) cannot drop it; the next run
//! that finds it drops it when the mark proves its run is over, and refuses otherwise:
//! a database without the mark is a person's, one whose run may be alive is that run's.

use crate::proc::{Liveness, Owner};

/// What to do with the scratch database `db` on `server`, found existing before the
/// drill creates it, from the text found on it (`mark`): Ok(the warning to give) when
/// it is to be dropped and created afresh, Err(why not) when the drill must refuse it.
/// `drop_sql` is how a person drops it by hand.
pub fn existing(
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
            "{refused}; it does not carry a drill's mark, so it is not the drill's to drop. If a drill killed outright left it before drills marked their databases, drop it by hand ({drop_sql})"
        );
    };
    match owner.liveness() {
        Liveness::ThisRun => Ok(format!(
            "dropped `{db}` on {server}, which an earlier attempt of this step created, to restore into it afresh"
        )),
        Liveness::Gone(why) => Ok(format!(
            "dropped `{db}` on {server}, the scratch database of a drill killed before its teardown ({why}), to restore into it afresh"
        )),
        Liveness::MaybeAlive(why) => anyhow::bail!(
            "{refused}; it is a drill's scratch database, and {why}. If that run is over, drop it by hand ({drop_sql})"
        ),
    }
}
