//! A throwaway `mariadbd` on a restored (prepared) data directory: in the private
//! directory of `engines::throwaway` (data in `data`, socket and option file beside it),
//! on a free port of 127.0.0.1, started with the backup's own grant tables (never
//! `--skip-grant-tables`: the users and roles restored are the ones checked). The drill
//! logs in as an account of its own, `restore_drill`, created at startup by an
//! `--init-file` (0600, removed once the server is up) with a random password that is
//! kept in memory only. Events and replication stay off on the copy. Torn down with
//! SIGKILL to its group: nothing in it must survive.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, ensure};

use super::Target;
use crate::engines::throwaway::Server;
use crate::proc::{Cancel, OsUser, SecretFile, Tool, free_port};

/// The account the drill logs in as.
pub const DRILL_USER: &str = "restore_drill";
const READY_DEADLINE: Duration = Duration::from_secs(120);

/// A running throwaway `mariadbd`.
pub struct Mariadbd {
    pub base: PathBuf,
    pub socket: PathBuf,
    pub port: u16,
    password: String,
}

/// The settings the copy runs with: fast and crash-unsafe (it is thrown away), no
/// binary log, no replication, no events firing on restored data.
const FAST_SETTINGS: &[&str] = &[
    "skip-log-bin",
    "skip-slave-start",
    "event-scheduler=OFF",
    "innodb-flush-log-at-trx-commit=0",
    "innodb-doublewrite=0",
    "innodb-buffer-pool-size=128M",
    "skip-name-resolve",
];

/// `mariadbd` (or `mysqld`): PATH, then the sbin folders where Debian keeps it.
fn server_program() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .collect();
    ["mariadbd", "mysqld"]
        .iter()
        .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
        .find(|p| p.is_file())
        .context("mariadbd not found on PATH nor in /usr/sbin (install mariadb-server)")
}

/// The backup's own InnoDB settings (page size, undo tablespaces, data file path...):
/// the `innodb_*` lines of the `backup-my.cnf` mariabackup wrote, nothing else, and none
/// naming an absolute path (`innodb_data_home_dir=/var/lib/mysql`, an undo directory or
/// data file elsewhere): the throwaway server would open the source's files there. Such
/// a backup then fails to start, red, rather than touch them.
fn backup_settings(data: &Path) -> Vec<String> {
    let elsewhere = |line: &str| {
        let value = line.split_once('=').map_or("", |(_, v)| v.trim());
        value.split(';').any(|part| part.trim().starts_with('/'))
    };
    std::fs::read_to_string(data.join("backup-my.cnf"))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("innodb_") && !elsewhere(l))
        .map(str::to_string)
        .collect()
}

/// Starts `mariadbd` on `base/data` and waits until the drill's account can log in.
pub fn start(
    base: &Path,
    server: &Server,
    user: Option<OsUser>,
    listen: Option<&str>,
    cancel: &Cancel,
) -> anyhow::Result<Mariadbd> {
    let program = server_program()?;
    let data = base.join("data");
    let socket = base.join("mysqld.sock");
    ensure!(
        socket.as_os_str().len() < 100,
        "the socket path {} would be too long for a unix socket; set TMPDIR to a shorter directory",
        socket.display()
    );
    let port = free_port().context("cannot find a free port")?;
    let password = crate::engines::throwaway::random_password()?;
    let hosts = ["localhost", "127.0.0.1"];
    let init: String = hosts
        .iter()
        .map(|h| {
            format!(
                "CREATE OR REPLACE USER '{DRILL_USER}'@'{h}' IDENTIFIED BY '{password}';\nGRANT ALL ON *.* TO '{DRILL_USER}'@'{h}' WITH GRANT OPTION;\n"
            )
        })
        .collect();
    let init_file = SecretFile::create(&base.join("init.sql"), &init)?;
    let mut conf = String::from("[mysqld]\n");
    let ours = [
        format!("datadir={}", data.display()),
        format!("socket={}", socket.display()),
        format!("pid-file={}", data.join("mariadbd.pid").display()),
        format!("port={port}"),
        format!("bind-address={}", listen.unwrap_or("127.0.0.1")),
        format!("init-file={}", init_file.path().display()),
        format!("tmpdir={}", base.display()),
    ];
    for line in backup_settings(&data)
        .into_iter()
        .chain(ours)
        .chain(FAST_SETTINGS.iter().map(|s| s.to_string()))
    {
        conf.push_str(&line);
        conf.push('\n');
    }
    let conf_file = base.join("my.cnf");
    std::fs::write(&conf_file, conf)?;
    if let Some(u) = user {
        u.chown(&conf_file)?;
        u.chown(init_file.path())?;
    }
    let log = base.join("server.log");
    let leader = Tool::new(
        duct::cmd(
            &program,
            [format!("--defaults-file={}", conf_file.display())],
        )
        .dir(base),
        "mariadbd",
    )
    .as_user(user)
    .logged(&log)
    .spawn()?;
    server.started(leader);
    let started = Mariadbd {
        base: base.to_path_buf(),
        socket,
        port,
        password,
    };
    started.wait_ready(server, cancel)?;
    // The password is in memory only from now on.
    drop(init_file);
    Ok(started)
}

impl Mariadbd {
    /// The drill's account on `database`, over the socket.
    pub fn target(&self, database: Option<&str>) -> Target {
        let opts = mysql::OptsBuilder::new()
            .user(Some(DRILL_USER))
            .pass(Some(self.password.clone()))
            .socket(Some(self.socket.display().to_string()))
            .db_name(database);
        Target { opts: opts.into() }
    }

    /// The server's log (its stderr).
    pub fn log(&self) -> PathBuf {
        self.base.join("server.log")
    }

    /// The `[ERROR]` lines of the server's log (InnoDB names the damaged file there).
    pub fn errors(&self) -> String {
        error_lines(&self.log())
    }

    fn wait_ready(&self, server: &Server, cancel: &Cancel) -> anyhow::Result<()> {
        server.wait_ready(
            "mariadbd",
            READY_DEADLINE,
            cancel,
            || self.target(None).connect().is_ok(),
            || self.errors(),
        )
    }
}

/// The `[ERROR]` lines of a MariaDB tool's log (the last 10), or its last lines when it
/// has none.
pub fn error_lines(log: &Path) -> String {
    let tail = crate::log::tail_file(log, 400, 64 * 1024);
    let errors: Vec<&str> = tail.lines().filter(|l| l.contains("[ERROR]")).collect();
    match errors.len() {
        0 => crate::log::tail_file(log, 10, 4096),
        n => errors[n.saturating_sub(10)..].join("\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_backups_innodb_settings_reach_the_server() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("backup-my.cnf"),
            "# This MySQL options file was generated by innobackupex.\n[mysqld]\ninnodb_page_size=16384\ninnodb_undo_tablespaces=0\nplugin-load-add=evil.so\ninit-file=/tmp/x.sql\ninnodb_undo_directory=./\ninnodb_data_home_dir=/var/lib/mysql\ninnodb_data_file_path = /srv/ibdata1:12M;ibdata2:12M\n",
        )
        .unwrap();
        assert_eq!(
            backup_settings(dir.path()),
            [
                "innodb_page_size=16384",
                "innodb_undo_tablespaces=0",
                "innodb_undo_directory=./"
            ]
        );
        assert!(backup_settings(&dir.path().join("none")).is_empty());
    }
}
