//! A throwaway PostgreSQL cluster for an isolated restore: `initdb` into a private
//! directory, the server on a free port with its unix socket in that directory (TCP
//! only when asked), tuned for speed because nothing in it must survive a crash
//! (fsync off, no WAL archiving, minimal WAL). Stopped with an immediate shutdown
//! and removed at teardown.
//!
//! The directory is a fresh 0700 temp directory rather than a folder of the drill's
//! work directory: as root the server runs as another OS user (initdb refuses root),
//! which could not enter the work directory without opening it, and the backups in it,
//! to every local user.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, ensure};

use super::url::percent_encode;
use crate::engines::throwaway;
use crate::proc::{Cancel, OsUser, SecretFile, Tool, free_port};

/// The superuser of the throwaway cluster.
pub const SUPERUSER: &str = "postgres";
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// Settings of the throwaway cluster: fast and crash-unsafe, which is fine for data
/// that is thrown away.
pub const FAST_SETTINGS: &[&str] = &[
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "archive_mode=off",
    "max_wal_size=8GB",
    "checkpoint_timeout=1h",
    "autovacuum=off",
    "maintenance_work_mem=512MB",
    "logging_collector=off",
];

/// The least WAL a fresh cluster can write (a restored physical backup keeps its own
/// `wal_level`: hot standby during its recovery needs `replica`).
const MINIMAL_WAL: &[&str] = &["wal_level=minimal", "max_wal_senders=0"];

pub struct ClusterSpec<'a> {
    pub server_bin: &'a Path,
    /// The OS user the server programs run as (see `resolve_user`).
    pub user: Option<OsUser>,
    /// Also listen on this TCP address (e.g. 127.0.0.1); unix socket only otherwise.
    pub listen: Option<&'a str>,
    pub cancel: &'a Cancel,
}

/// A running throwaway cluster. Whoever registered its teardown (`Teardown`) stops it.
pub struct Cluster {
    pub base: PathBuf,
    pub socket_dir: PathBuf,
    pub port: u16,
    pub listen: Option<String>,
}

/// The postmaster: the throwaway directory's server (see `throwaway::Server`).
pub type Postmaster = throwaway::Server;

/// Resolves `os_user`: required as root (initdb refuses to run as root).
pub fn resolve_user(os_user: Option<&str>) -> anyhow::Result<Option<OsUser>> {
    throwaway::resolve_user(
        os_user,
        "running as root: initdb and postgres refuse to run as root, so set `os_user = \"postgres\"` (or another unprivileged OS user) on this restore step; the throwaway cluster's server commands then run as that user",
    )
}

pub fn start(
    spec: &ClusterSpec<'_>,
    base: &Path,
    postmaster: &Postmaster,
) -> anyhow::Result<Cluster> {
    initdb(spec, base)?;
    let settings: Vec<&str> = FAST_SETTINGS.iter().chain(MINIMAL_WAL).copied().collect();
    let cluster = launch(spec, base, postmaster, &settings)?;
    wait_ready(&cluster, postmaster, spec.cancel)?;
    if let Some(host) = spec.listen {
        set_tcp_password(&cluster, host)?;
    }
    Ok(cluster)
}

fn initdb(spec: &ClusterSpec<'_>, base: &Path) -> anyhow::Result<()> {
    let datadir = base.join("data");
    let initdb = duct::cmd(
        spec.server_bin.join("initdb"),
        [
            "-D".as_ref(),
            datadir.as_os_str(),
            "-U".as_ref(),
            SUPERUSER.as_ref(),
            // The socket sits in a 0700 directory: only the cluster's user (and root)
            // reach it. TCP, when asked for, needs the generated password.
            "--auth-local=trust".as_ref(),
            "--auth-host=scram-sha-256".as_ref(),
            "--encoding=UTF8".as_ref(),
            "--no-locale".as_ref(),
            "--no-sync".as_ref(),
            "--no-instructions".as_ref(),
        ],
    )
    .dir(base);
    Tool::new(initdb, "initdb")
        .as_user(spec.user)
        .logged(&base.join("initdb.log"))
        .run(spec.cancel)
}

/// Starts the server on the data directory `base/data` with `settings` (`-c`), on a free
/// port, its socket in `base`: it is not waited for (see `wait_ready`).
pub fn launch(
    spec: &ClusterSpec<'_>,
    base: &Path,
    postmaster: &Postmaster,
    settings: &[&str],
) -> anyhow::Result<Cluster> {
    let datadir = base.join("data");
    let socket_dir = base.to_path_buf();
    ensure!(
        socket_dir.as_os_str().len() < 90,
        "the socket path under {} would be too long for a unix socket; set TMPDIR to a shorter directory",
        socket_dir.display()
    );
    let port = free_port().context("cannot find a free port")?;
    let mut args: Vec<String> = vec![
        "-D".into(),
        datadir.display().to_string(),
        "-p".into(),
        port.to_string(),
    ];
    let listen = spec.listen.unwrap_or("");
    for setting in [
        format!("listen_addresses={listen}"),
        format!("unix_socket_directories={}", socket_dir.display()),
    ]
    .iter()
    .map(String::as_str)
    .chain(settings.iter().copied())
    {
        args.push("-c".into());
        args.push(setting.to_string());
    }
    let log = base.join("server.log");
    // Its own process group: the terminal's Ctrl-C does not reach it; teardown stops it.
    // If restore-drill dies, the kernel asks it for an immediate shutdown (SIGQUIT).
    let leader = Tool::new(
        duct::cmd(spec.server_bin.join("postgres"), &args).dir(base),
        "postgres",
    )
    .as_user(spec.user)
    .logged(&log)
    .death_signal(libc::SIGQUIT)
    .spawn()?;
    postmaster.started(leader);
    Ok(Cluster {
        base: base.to_path_buf(),
        socket_dir,
        port,
        listen: spec.listen.map(str::to_string),
    })
}

impl Cluster {
    /// libpq url of `db` over the unix socket.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}@/{}?host={}&port={}",
            percent_encode(db),
            percent_encode(&self.socket_dir.display().to_string()),
            self.port
        )
    }

    /// libpq url of `db` over TCP, when the cluster listens there.
    pub fn tcp_url(&self, db: &str) -> Option<String> {
        self.listen.as_ref().map(|host| {
            format!(
                "postgresql://{SUPERUSER}@{host}:{}/{}",
                self.port,
                percent_encode(db)
            )
        })
    }

    /// The libpq password file for TCP connections (`PGPASSFILE`), when listening on TCP.
    pub fn passfile(&self) -> PathBuf {
        self.base.join("pgpass")
    }

    pub fn connect(&self, db: &str) -> anyhow::Result<postgres::Client> {
        postgres::Config::new()
            .host_path(&self.socket_dir)
            .port(self.port)
            .user(SUPERUSER)
            .dbname(db)
            .connect_timeout(Duration::from_secs(5))
            .connect(postgres::NoTls)
            .with_context(|| {
                format!(
                    "cannot connect to the throwaway cluster in {}",
                    self.base.display()
                )
            })
    }
}

impl Cluster {
    /// The server's log (its stderr).
    pub fn log(&self) -> PathBuf {
        self.base.join("server.log")
    }
}

fn wait_ready(cluster: &Cluster, postmaster: &Postmaster, cancel: &Cancel) -> anyhow::Result<()> {
    let log = &cluster.log();
    postmaster.wait_ready(
        "postgres",
        READY_DEADLINE,
        cancel,
        || cluster.connect("postgres").is_ok(),
        || crate::log::tail_file(log, 10, 4096),
    )
}

/// Gives the superuser a random password for TCP connections, in a 0600 passfile
/// (`Cluster::passfile`) for the services a drill starts: a copy of production data is
/// never open to every local user.
pub fn set_tcp_password(cluster: &Cluster, host: &str) -> anyhow::Result<()> {
    let password = throwaway::random_password()?;
    cluster
        .connect("postgres")?
        .batch_execute(&format!("ALTER ROLE {SUPERUSER} PASSWORD '{password}'"))
        .context("cannot set the TCP password")?;
    // Kept: it goes with the cluster's directory.
    SecretFile::create(
        &cluster.passfile(),
        &format!("{host}:{}:*:{SUPERUSER}:{password}\n", cluster.port),
    )?
    .keep();
    Ok(())
}
