//! MariaDB physical backups with `mariabackup` (`method = "mariabackup"`) and their
//! restore into a throwaway `mariadbd` (`isolation = "ephemeral"`, see `server`).
//!
//! The backup is of the whole server (as `pg_basebackup` is), prepared in place
//! (`--prepare`: it is the drill's own output). The url's database is counted in a
//! consistent snapshot taken just before mariabackup starts: a mariabackup holds every
//! commit up to its *end*, so rows written while it runs are restored but not counted,
//! and `snapshot_at` is the backup's start (never flattering the RPO).
//!
//! The restore never writes into the backup: it copies it into the throwaway server's
//! directory and prepares the copy when the backup is not prepared yet. The password
//! reaches mariabackup through an option file (`--defaults-extra-file`, 0600), never argv.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};
use mysql::prelude::Queryable as _;

use super::server::{self, Mariadbd, error_lines};
use super::{MysqlConn, OptionFile, Target};
use crate::engines::throwaway::{self, MARIADB_PREFIX, chown_tree, size_of};
use crate::engines::{Ctx, Restored, SchemaFacts};
use crate::guard::Sources;
use crate::outputs;
use crate::proc::{Cancel, OsUser, Tool};

/// Databases of the server itself, never "the" restored database.
const SYSTEM_DATABASES: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

/// Whether `dir` is a mariabackup (or xtrabackup) backup.
pub fn is_mariabackup(dir: &Path) -> bool {
    dir.join("xtrabackup_checkpoints").is_file()
}

/// Whether mariabackup already prepared it (`backup_type` of `xtrabackup_checkpoints`:
/// `log-applied` since MariaDB 10.5, `full-prepared` before).
pub fn is_prepared(dir: &Path) -> bool {
    let text = std::fs::read_to_string(dir.join("xtrabackup_checkpoints")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .any(|(k, v)| {
            k.trim() == "backup_type" && matches!(v.trim(), "log-applied" | "full-prepared")
        })
}

fn mariabackup() -> anyhow::Result<String> {
    super::program(&["mariadb-backup", "mariabackup"])
        .context("mariabackup not found (install mariadb-backup)")
}

/// `mariabackup` with `args`, its messages in `log`; a failure says `what` failed and
/// quotes the tool's `[ERROR]` lines.
fn run(args: &[String], log: &Path, what: &str, cancel: &Cancel) -> anyhow::Result<()> {
    let program = mariabackup()?;
    Tool::new(duct::cmd(&program, args), program.clone())
        .logged(log)
        .run(cancel)
        .map_err(|e| explained(e, log, what, cancel))
}

/// A failure of `what` explained by the `[ERROR]` lines of its `log` (unless cancelled).
fn explained(e: anyhow::Error, log: &Path, what: &str, cancel: &Cancel) -> anyhow::Error {
    match cancel.is_cancelled() {
        true => e,
        false => anyhow::anyhow!("{what} failed: {}", error_lines(log)),
    }
}

/// `mariabackup --prepare` of `dir`.
fn prepare(dir: &Path, log: &Path, what: &str, cancel: &Cancel) -> anyhow::Result<()> {
    let args = [
        "--prepare".into(),
        format!("--target-dir={}", dir.display()),
    ];
    run(&args, log, what, cancel)
}

pub struct Taken {
    pub database: String,
    pub bytes: u64,
    pub schema: SchemaFacts,
    pub taken_at: jiff::Timestamp,
    /// The source server's data directory, which mariabackup read.
    pub datadir: String,
}

/// Backs up the server of `target` into `output` (checked by the guard, and again
/// against the server's own data directory), then prepares it.
pub fn backup(
    target: &Target,
    output: &Path,
    sources: &Sources,
    scratch: &Path,
    cancel: &Cancel,
) -> anyhow::Result<Taken> {
    let database = super::fresh_backup(target, output)?;
    let mut conn = MysqlConn::connect(target)?;
    let datadir: Option<String> = conn.inner().query_first("SELECT @@datadir")?;
    let datadir = datadir.context("the server did not say its datadir")?;
    ensure!(
        Path::new(&datadir).is_dir(),
        "the server's datadir {datadir} is not a directory on this machine: mariabackup runs on the database host and reads it"
    );
    let why = "the source server's datadir, which mariabackup reads".to_string();
    sources
        .with([(PathBuf::from(&datadir), why)])
        .check("output", output)?;
    if let Some(parent) = output.parent() {
        crate::guard::create_dirs(parent)?;
    }
    std::fs::create_dir_all(scratch)?;
    let option_file = OptionFile::create(scratch, "mariabackup", target)?;
    let args = [
        option_file.arg(),
        "--backup".into(),
        format!("--target-dir={}", output.display()),
        format!("--datadir={datadir}"),
    ];
    // The snapshot first, then the backup, counted meanwhile: InnoDB's consistent reads
    // block no BACKUP STAGE of mariabackup's, and a commit blocked by BLOCK_COMMIT waits
    // at most for the backup's end, which does not wait for it.
    let taken_at = super::begin_snapshot(&mut conn)?;
    let log = scratch.join("mariabackup.log");
    let made = (|| {
        let expr = option_file.command(duct::cmd(mariabackup()?, &args));
        let running = Tool::new(expr, "mariabackup").logged(&log).start(cancel)?;
        let schema = super::facts_in_snapshot(&mut conn, None)
            .context("counting rows at the backup's start")?;
        running
            .wait()
            .map_err(|e| explained(e, &log, "mariabackup --backup", cancel))?;
        let what = "mariabackup --prepare";
        prepare(output, &scratch.join("prepare.log"), what, cancel)?;
        Ok(schema)
    })();
    let schema = match made {
        Ok(schema) => schema,
        Err(e) => {
            crate::guard::remove_failed_output(output);
            return Err(e);
        }
    };
    Ok(Taken {
        database,
        bytes: size_of(output),
        schema,
        taken_at,
        datadir,
    })
}

pub struct RestoreRequest<'a> {
    pub from: &'a Path,
    pub os_user: Option<&'a str>,
    pub listen: Option<&'a str>,
    pub database: Option<&'a str>,
}

/// Copies the backup into a throwaway server's directory (registered before it
/// exists), prepares the copy if need be, starts `mariadbd` on it and reads the
/// restored database's counts.
pub fn restore(req: &RestoreRequest<'_>, ctx: &Ctx<'_>) -> anyhow::Result<Restored> {
    let from = req.from;
    ensure!(from.is_dir(), "backup {} not found", from.display());
    ensure!(
        is_mariabackup(from),
        "{} is not a mariabackup backup (it has no xtrabackup_checkpoints)",
        from.display()
    );
    let user = throwaway::resolve_user(
        req.os_user,
        "running as root: mariadbd refuses to run as root, so set `os_user = \"mysql\"` (or another unprivileged OS user) on this restore step; the throwaway server then runs as that user",
    )?;
    let started = std::time::Instant::now();
    let (base, srv) = throwaway::register(ctx, "cluster", MARIADB_PREFIX, user, libc::SIGKILL)?;
    let prepared_here = copy_and_prepare(from, &base, user, ctx.cancel)?;
    let copied_s = started.elapsed().as_secs_f64();
    let db = server::start(&base, &srv, user, req.listen, ctx.cancel)?;
    let up_s = started.elapsed().as_secs_f64();
    let database = match req.database.filter(|d| !d.is_empty()) {
        Some(d) => d.to_string(),
        None => only_database(&db)?,
    };
    let target = db.target(Some(&database));
    let schema = MysqlConn::connect(&target)
        .and_then(|mut c| SchemaFacts::read(&mut c))
        .map_err(|e| {
            anyhow::anyhow!(
                "the restored database `{database}` cannot be read ({e:#}): {}",
                db.errors()
            )
        })?;
    target.remember();
    let shown = target.display();
    ctx.log(&format!(
        "{} restored into a throwaway mariadbd in {} ({}; {copied_s:.1}s to copy and prepare, up in {up_s:.1}s), socket {}, port {}: {} tables in `{database}`",
        from.display(),
        base.display(),
        if prepared_here {
            "prepared here, on the copy"
        } else {
            "already prepared"
        },
        db.socket.display(),
        db.port,
        schema.table_counts.len()
    ));
    let bytes = size_of(from);
    Ok(Restored {
        target: shown,
        from: from.to_path_buf(),
        bytes,
        schema: Some(schema),
        outputs: outputs! {
            "database" => &database,
            "prepared_here" => prepared_here,
            "cluster_dir" => base.display().to_string(),
            "socket" => db.socket.display().to_string(),
            "port" => db.port,
        },
        metrics: outputs! {
            "restore_s" => up_s,
            "copy_s" => copied_s,
            "bytes_per_s" => bytes as f64 / up_s.max(1e-9),
        },
    })
}

/// Copies `from` into `base/data` and prepares the copy unless the backup was prepared;
/// true when it prepared it. The backup itself is only read.
fn copy_and_prepare(
    from: &Path,
    base: &Path,
    user: Option<OsUser>,
    cancel: &Cancel,
) -> anyhow::Result<bool> {
    let data = base.join("data");
    let log = base.join("copy.log");
    let source = format!("{}/.", from.display());
    Tool::new(
        duct::cmd!("cp", "-a", "--reflink=auto", source, &data),
        "cp",
    )
    .logged(&log)
    .run(cancel)
    .with_context(|| format!("cannot copy {}", from.display()))?;
    let prepare_here = !is_prepared(&data);
    if prepare_here {
        let what = format!(
            "mariabackup --prepare of a copy of the backup {}",
            from.display()
        );
        prepare(&data, &base.join("prepare.log"), &what, cancel)?;
    }
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
    }
    if let Some(u) = user {
        chown_tree(&data, u)?;
    }
    Ok(prepare_here)
}

/// The restored server's one database besides the system ones.
fn only_database(db: &Mariadbd) -> anyhow::Result<String> {
    let names: Vec<String> = db.target(None).connect()?.query("SHOW DATABASES")?;
    let user: Vec<String> = names
        .into_iter()
        .filter(|n| !SYSTEM_DATABASES.contains(&n.as_str()))
        .collect();
    match user.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("the restored server holds no database besides the system ones"),
        many => bail!(
            "the restored server holds several databases ({}): set `database` on the restore step",
            many.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_is_prepared_once_its_log_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mariabackup(dir.path()) && !is_prepared(dir.path()));
        let checkpoints = dir.path().join("xtrabackup_checkpoints");
        for (kind, prepared) in [
            ("full-backuped", false),
            ("log-applied", true),
            ("full-prepared", true),
        ] {
            let text = format!("backup_type = {kind}\nfrom_lsn = 0\nto_lsn = 44878\n");
            std::fs::write(&checkpoints, text).unwrap();
            assert!(is_mariabackup(dir.path()));
            assert_eq!(is_prepared(dir.path()), prepared, "{kind}");
        }
    }
}
