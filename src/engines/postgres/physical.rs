//! Restoring a physical backup (a `pg_basebackup` directory, plain or tar) into the
//! throwaway cluster: `pg_verifybackup` against its manifest, running while the data
//! directory is copied into the cluster's (a tar backup: extracted, then verified);
//! once both succeeded, the server started in archive recovery with a `restore_command`
//! that only reads `wal_archive`, paused at the target, promoted only once the target is
//! reached (see `recovery`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};

use super::bin::server_tool;
use super::cluster::{self, Cluster, ClusterSpec, FAST_SETTINGS, Postmaster};
use super::confine;
use super::pgbackrest;
use super::recovery::{self, Target};
use crate::engines::Ctx;
use crate::engines::throwaway::{self, chown_tree};
use crate::playbook::PgBackRest;
use crate::proc::{Cancel, OsUser, Running, Tool};

/// Whether `from` is a physical backup: a data directory or pg_basebackup's tar files.
pub fn is_physical(from: &Path) -> bool {
    from.join("PG_VERSION").is_file() || tar_of(from, "base").is_some()
}

/// `<stem>.tar` (or `.tar.gz`, ...) in `dir`.
fn tar_of(dir: &Path, stem: &str) -> Option<PathBuf> {
    let prefix = format!("{stem}.tar");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
}

pub struct Physical<'a> {
    /// The backup directory (or, for a pgBackRest stanza, its configuration file).
    pub from: &'a Path,
    /// A pgBackRest stanza restored instead of a backup directory.
    pub pgbackrest: Option<&'a PgBackRest>,
    pub archive: Option<&'a Path>,
    pub target: &'a Target,
    pub server_bin: &'a Path,
    pub user: Option<OsUser>,
    pub cancel: &'a Cancel,
    /// The step's private directory, for the tools' messages.
    pub scratch: &'a Path,
}

/// What recovery reached.
pub struct Recovered {
    /// The commit time of the last transaction replayed (UTC, RFC 3339), if any was.
    pub recovered_to: Option<String>,
    pub lsn: String,
    /// Whether the backup was checked against its manifest.
    pub verified: bool,
}

/// A verification of the backup: done (whether it was verified), or `pg_verifybackup`
/// still running beside the copy.
enum Verifying<'c> {
    Done(bool),
    Running(Box<Running<'c>>),
}

impl Verifying<'_> {
    /// Waits for a running `pg_verifybackup`; fails, naming the damage, when the backup
    /// does not verify. Whether it was verified.
    fn finish(self, p: &Physical<'_>, ctx: &Ctx<'_>) -> anyhow::Result<bool> {
        let running = match self {
            Verifying::Done(verified) => return Ok(verified),
            Verifying::Running(running) => running,
        };
        running.wait().with_context(|| {
            format!(
                "the base backup {} does not verify against its manifest",
                p.from.display()
            )
        })?;
        ctx.log(&format!("pg_verifybackup: {} verified", p.from.display()));
        Ok(true)
    }
}

/// Verifies the backup in place before anything is made: a pgBackRest stanza here; a
/// plain backup's `pg_verifybackup` is started and left running beside the copy (both
/// read the same files, the second from the page cache), to be finished before recovery
/// starts. A tar backup is verified once extracted, by `prepare`.
fn verify_first<'c>(p: &Physical<'c>, ctx: &Ctx<'_>) -> anyhow::Result<Verifying<'c>> {
    if let Some(src) = p.pgbackrest {
        if src.verify != Some(true) {
            return Ok(Verifying::Done(false));
        }
        // As the drill's user, its lock files in the step's private directory.
        let run = pgbackrest::Run {
            src,
            base: p.scratch,
            user: None,
            cancel: p.cancel,
        };
        run.verify()?;
        ctx.log(&format!(
            "pgbackrest verify: stanza `{}` verified",
            src.stanza
        ));
        return Ok(Verifying::Done(true));
    }
    if tar_of(p.from, "base").is_some() {
        return Ok(Verifying::Done(p.from.join("backup_manifest").is_file()));
    }
    start_verify(p, p.from, ctx)
}

/// `pg_verifybackup` of `data` against the backup's manifest, to completion.
fn verify(p: &Physical<'_>, data: &Path, ctx: &Ctx<'_>) -> anyhow::Result<bool> {
    start_verify(p, data, ctx)?.finish(p, ctx)
}

/// Starts `pg_verifybackup` of `data` against the backup's manifest (a child of the
/// step's, killed on cancel); done and false when there is no manifest.
fn start_verify<'c>(p: &Physical<'c>, data: &Path, ctx: &Ctx<'_>) -> anyhow::Result<Verifying<'c>> {
    let manifest = p.from.join("backup_manifest");
    if !manifest.is_file() {
        ctx.log(&format!(
            "{} has no backup_manifest: not verified before the restore",
            p.from.display()
        ));
        return Ok(Verifying::Done(false));
    }
    let has_wal = std::fs::read_dir(data.join("pg_wal"))
        .map(|d| d.filter_map(|e| e.ok()).any(|e| e.path().is_file()))
        .unwrap_or(false);
    let mut args = vec![format!("--manifest-path={}", manifest.display())];
    match (has_wal, p.archive) {
        (true, _) => {}
        (false, Some(a)) => args.push(format!("--wal-directory={}", a.display())),
        (false, None) => args.push("--no-parse-wal".into()),
    }
    args.push(data.display().to_string());
    let log = p.scratch.join("pg_verifybackup.log");
    let running = Tool::new(
        duct::cmd(server_tool(p.server_bin, "pg_verifybackup"), &args),
        "pg_verifybackup",
    )
    .logged(&log)
    .start(p.cancel)?;
    Ok(Verifying::Running(Box::new(running)))
}

/// Verifies the backup and copies it into a new throwaway cluster directory, ready for
/// recovery: its directory, its server-to-be, and whether the backup was verified. A
/// plain backup is verified while it is copied, into a staging directory: a damaged
/// backup fails before any cluster is made, naming the damage even if the copy failed
/// too; the directory becomes the cluster's once the backup verified.
pub fn copy_verified(
    p: &Physical<'_>,
    ctx: &Ctx<'_>,
) -> anyhow::Result<(PathBuf, Postmaster, bool)> {
    let prefix = throwaway::POSTGRES_PREFIX;
    // Immediate shutdown (SIGQUIT: no checkpoint, the data is thrown away).
    let stop = libc::SIGQUIT;
    if p.pgbackrest.is_none() {
        confine::refuse_tablespaces(p.from, p.from)?;
    }
    match verify_first(p, ctx)? {
        verifying @ Verifying::Running(_) => {
            let staging = throwaway::staging(ctx, prefix, p.user)?;
            let prepared = prepare(p, &staging.base, ctx);
            let verified = verifying.finish(p, ctx)?;
            let (base, postmaster) = staging.serve(ctx, "cluster", stop);
            prepared?;
            Ok((base, postmaster, verified))
        }
        Verifying::Done(verified) => {
            let (base, postmaster) = throwaway::register(ctx, "cluster", prefix, p.user, stop)?;
            let extracted = prepare(p, &base, ctx)?;
            Ok((base, postmaster, verified | extracted))
        }
    }
}

/// Copies or extracts the backup into `base/data`, verifies a tar backup, checks that
/// the archive can carry it to `latest`, and readies the directory for archive recovery.
fn prepare(p: &Physical<'_>, base: &Path, ctx: &Ctx<'_>) -> anyhow::Result<bool> {
    let data = base.join("data");
    std::fs::create_dir(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let private = || {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))
    };
    let log = base.join("copy.log");
    let run = |expr: duct::Expression, what: &str| {
        Tool::new(expr, what.to_string()).logged(&log).run(p.cancel)
    };
    let mut verified = false;
    if let Some(src) = p.pgbackrest {
        private()?;
        if let Some(u) = p.user {
            u.chown(&data)?;
        }
        let run = pgbackrest::Run {
            src,
            base,
            user: p.user,
            cancel: p.cancel,
        };
        run.restore(&data, p.target)?;
    } else if let Some(tar) = tar_of(p.from, "base") {
        run(duct::cmd!("tar", "-xf", &tar, "-C", &data), "tar")
            .with_context(|| format!("cannot extract {}", tar.display()))?;
        if let Some(wal) = tar_of(p.from, "pg_wal") {
            run(
                duct::cmd!("tar", "-xf", &wal, "-C", data.join("pg_wal")),
                "tar",
            )
            .with_context(|| format!("cannot extract {}", wal.display()))?;
        }
        // Its `tablespace_map` names them; the tablespaces' tars are not extracted.
        confine::refuse_tablespaces(&data, p.from)?;
        verified = verify(p, &data, ctx)?;
    } else {
        let from = format!("{}/.", p.from.display());
        run(duct::cmd!("cp", "-a", "--reflink=auto", from, &data), "cp")
            .with_context(|| format!("cannot copy {}", p.from.display()))?;
    }
    // Before any server starts: a tar's `tablespace_map`, a stanza's tablespaces.
    confine::refuse_tablespaces(&data, p.from)?;
    let label = std::fs::read_to_string(data.join("backup_label"))
        .with_context(|| format!("{} restored no backup_label", p.from.display()))?;
    if let (Target::Latest, Some(archive), Some(start)) =
        (p.target, p.archive, recovery::start_segment(&label))
        && let Some((missing, last)) = recovery::first_gap(archive, &start)
    {
        bail!(
            "WAL segment {missing} is missing from wal_archive {} (later segments up to {last} are there): recovery cannot reach {} past it; not restored",
            archive.display(),
            p.target.describe()
        );
    }
    for stale in ["postmaster.pid", "standby.signal", "backup_manifest"] {
        let _ = std::fs::remove_file(data.join(stale));
    }
    std::fs::write(data.join("recovery.signal"), "")?;
    // The server refuses a data directory others may read.
    private()?;
    let conf = data.join("postgresql.conf");
    if !conf.exists() {
        // Debian keeps it in /etc: the settings the drill needs are on the command line.
        std::fs::write(&conf, "")?;
    }
    // The cluster's own access rules: trust on its private socket, a password over TCP.
    std::fs::write(
        base.join("pg_hba.conf"),
        "local all all trust\nhost all all all scram-sha-256\n",
    )?;
    std::fs::write(base.join("pg_ident.conf"), "")?;
    if let Some(u) = p.user {
        chown_tree(&data, u)?;
        for f in ["pg_hba.conf", "pg_ident.conf"] {
            u.chown(&base.join(f))?;
        }
    }
    confine::seal_tablespaces(&data)?;
    Ok(verified)
}

/// The server's settings for the recovery: fast, no archiving, hot standby (to watch
/// it), confined to the cluster's directory (its own access rules, none of the source's
/// commands: see `confine`), and the restore command and target.
pub fn settings(p: &Physical<'_>, base: &Path) -> Vec<String> {
    let misses = base.join("wal-misses");
    let restore = match (p.pgbackrest, p.archive) {
        (Some(src), _) => pgbackrest::restore_command(src, base, &misses),
        (None, Some(a)) => recovery::restore_command(a, &misses),
        (None, None) => "false".into(),
    };
    let mut s: Vec<String> = FAST_SETTINGS.iter().map(|s| s.to_string()).collect();
    s.extend(confine::settings(
        base,
        confine::version(&base.join("data")),
    ));
    s.extend([
        "hot_standby=on".into(),
        format!("restore_command={restore}"),
    ]);
    s.extend(p.target.settings());
    s
}

/// Starts the server, waits for recovery to reach the target (paused there), promotes
/// it, and waits for the promotion. Fails, naming why, when the server ends recovery
/// short of the target; it is then never promoted.
pub fn recover(
    p: &Physical<'_>,
    spec: &ClusterSpec<'_>,
    base: &Path,
    postmaster: &Postmaster,
) -> anyhow::Result<(Cluster, Recovered)> {
    let settings = settings(p, base);
    let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
    let cl = cluster::launch(spec, base, postmaster, &refs)?;
    let mut conn: Option<postgres::Client> = None;
    let mut resumed = false;
    loop {
        p.cancel.check()?;
        if let Some(status) = postmaster.exited() {
            bail!(exited(p, &cl, base, status));
        }
        if conn.as_mut().is_none_or(|c| c.is_closed()) {
            conn = cl.connect("postgres").ok();
        }
        let Some(c) = conn.as_mut() else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        // Paused is asked only during recovery (it fails after); a failure is retried.
        let state = c
            .query_one("SELECT pg_is_in_recovery()", &[])
            .and_then(|r| match r.get::<_, bool>(0) {
                false => Ok(None),
                true => c
                    .query_one("SELECT pg_is_wal_replay_paused()", &[])
                    .map(|r| Some(r.get::<_, bool>(0))),
            });
        match state {
            Ok(None) => break,
            Ok(Some(true)) if !resumed => {
                let log = recovery::read_log(&cl.log());
                ensure!(
                    log.contains("pausing at the end of recovery"),
                    "recovery paused before reaching {}: {}",
                    p.target.describe(),
                    crate::log::tail_file(&cl.log(), 10, 4096)
                );
                if c.batch_execute("SELECT pg_wal_replay_resume()").is_ok() {
                    resumed = true;
                }
            }
            Ok(_) => {}
            Err(_) => conn = None,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let row = conn
        .as_mut()
        .context("lost the connection to the restored cluster")?
        .query_one(
            "SELECT to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), coalesce(pg_last_wal_replay_lsn(), pg_current_wal_lsn())::text",
            &[],
        )?;
    Ok((
        cl,
        Recovered {
            recovered_to: row.get(0),
            lsn: row.get(1),
            verified: false,
        },
    ))
}

/// Why the server stopped during recovery.
fn exited(p: &Physical<'_>, cl: &Cluster, base: &Path, status: std::process::ExitStatus) -> String {
    let log = recovery::read_log(&cl.log());
    if let Some(why) = confine::replayed_tablespace(&log) {
        return why;
    }
    if log.contains("recovery ended before configured recovery target was reached") {
        return recovery::unreachable(p.target, &log, &base.join("wal-misses"), p.archive);
    }
    format!(
        "postgres exited ({status}) while recovering {}: {}",
        p.from.display(),
        crate::log::tail_file(&cl.log(), 10, 4096)
    )
}
