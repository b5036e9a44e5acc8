//! Throwaway database servers for the tests: PostgreSQL and MariaDB started the same way,
//! on a free loopback port with data and socket in a temporary directory, as the engine's
//! own OS user when the tests run as root, and stopped (and removed) at the end. Never a
//! system service. Where the server programs are missing, a suite is skipped loudly, or
//! fails when `RESTORE_DRILL_REQUIRE_SERVERS=1` (CI).

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::expect::{free_port, is_root};
use super::kit::Playbook;
use super::{Drill, skip_or_fail};

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Engine {
    Postgres,
    MariaDb,
}

/// The secret every drill against a test server reads its password from.
const SECRET_ENV: &str = "DRILL_TEST_DB_PASSWORD";

impl Engine {
    /// The folder holding the server's programs, or why there is none.
    fn programs(self) -> Result<PathBuf, String> {
        let found = match self {
            Engine::Postgres => postgres_bin(),
            // Found by name on PATH (and in the sbin folders) when they are run.
            Engine::MariaDb => ["mariadbd", "mariadb-install-db", "mariadb"]
                .iter()
                .all(|p| on_path(p).is_some())
                .then(PathBuf::new)
                .filter(|_| on_path("mariadb-dump").or(on_path("mysqldump")).is_some()),
        };
        found.ok_or_else(|| match self {
            Engine::Postgres => "PostgreSQL server programs (initdb) not found".into(),
            Engine::MariaDb => {
                "mariadbd, mariadb-install-db, mariadb or mariadb-dump not found".into()
            }
        })
    }

    /// The OS user the server runs as when the tests run as root.
    fn os_user(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::MariaDb => "mysql",
        }
    }

    /// The user drills log in as, and its password.
    pub fn login(self) -> (&'static str, &'static str) {
        match self {
            Engine::Postgres => ("postgres", "Drill-Test-pw-7f3a9c"),
            Engine::MariaDb => ("drill", "Pw-7x!q9Zr2kLm"),
        }
    }

    fn scheme(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::MariaDb => "mysql",
        }
    }
}

pub fn postgres_bin() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, b): &(u32, PathBuf)| b.join("initdb").is_file())
        .collect();
    dirs.sort();
    let newest = dirs.pop().map(|(_, b)| b);
    newest.or_else(|| Some(on_path("initdb")?.parent()?.to_path_buf()))
}

/// Where the program `name` is: on PATH, or in an sbin directory not on it.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// uid and gid of the OS user `name`.
fn uid_gid(name: &str) -> Option<(u32, u32)> {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: read at once; null checked.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    // SAFETY: non-null.
    (!pw.is_null()).then(|| unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// Gives `path` to the `postgres` OS user when the tests run as root.
pub fn give_to_postgres(path: &Path) {
    if is_root()
        && let Some((uid, gid)) = uid_gid(Engine::Postgres.os_user())
    {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

/// What runs at exit: the fixtures kept in statics, which are never dropped.
static AT_EXIT: Mutex<Vec<Box<dyn Fn() + Send>>> = Mutex::new(Vec::new());

extern "C" fn run_at_exit() {
    for stop in AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        stop();
    }
}

/// A suite's fixture (a server of its own, its files), built once for the test binary
/// by `build` (None after a loud skip) and handed to `stop` at exit.
pub fn fixture_once<F: Send + Sync + 'static>(
    cell: &'static OnceLock<Option<F>>,
    build: impl FnOnce() -> Option<F>,
    stop: fn(&F),
) -> Option<&'static F> {
    cell.get_or_init(|| {
        static REGISTERED: std::sync::Once = std::sync::Once::new();
        // SAFETY: registers a plain function, once.
        REGISTERED.call_once(|| unsafe {
            libc::atexit(run_at_exit);
        });
        let at_exit = move || {
            if let Some(Some(f)) = cell.get() {
                stop(f);
            }
        };
        AT_EXIT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(at_exit));
        build()
    })
    .as_ref()
}

/// A running throwaway server.
pub struct Server {
    pub engine: Engine,
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    user: Option<(u32, u32)>,
    child: Mutex<Option<Child>>,
    /// Settings passed on the command line (`-c`, PostgreSQL).
    settings: Vec<String>,
}

static SHARED: [OnceLock<Result<Server, String>>; 2] = [OnceLock::new(), OnceLock::new()];

extern "C" fn stop_shared_at_exit() {
    for server in SHARED.iter().filter_map(|s| s.get()?.as_ref().ok()) {
        server.stop();
    }
}

impl Server {
    /// A server of this test's own (stopped when dropped), or None after a loud skip.
    pub fn start(engine: Engine, suite: &str) -> Option<Server> {
        Self::try_start(engine)
            .map_err(|why| skip_or_fail(suite, &why))
            .ok()
    }

    /// The server every test of the binary shares (stopped at exit), or None after a
    /// loud skip (said again by every test that asks).
    pub fn shared(engine: Engine, suite: &str) -> Option<&'static Server> {
        let slot = &SHARED[engine as usize];
        let started = slot.get_or_init(|| {
            // SAFETY: registers a plain function, once per engine.
            unsafe { libc::atexit(stop_shared_at_exit) };
            Self::try_start(engine)
        });
        started
            .as_ref()
            .map_err(|why| skip_or_fail(suite, why))
            .ok()
    }

    /// A PostgreSQL server of this test's own archiving its WAL into `archive` (made
    /// here, owned by the server's OS user), or None after a loud skip.
    pub fn archiving(suite: &str, archive: &Path) -> Option<Server> {
        std::fs::create_dir_all(archive).unwrap();
        give_to_postgres(archive);
        let command = format!("cp %p {}/%f", archive.display());
        Self::archiving_with(suite, &command)
    }

    /// A PostgreSQL server of this test's own whose `archive_command` is `command`.
    pub fn archiving_with(suite: &str, command: &str) -> Option<Server> {
        let settings = vec![
            "archive_mode=on".into(),
            format!("archive_command={command}"),
        ];
        Self::try_start_with(Engine::Postgres, settings)
            .map_err(|why| skip_or_fail(suite, &why))
            .ok()
    }

    fn try_start(engine: Engine) -> Result<Server, String> {
        Self::try_start_with(engine, Vec::new())
    }

    fn try_start_with(engine: Engine, settings: Vec<String>) -> Result<Server, String> {
        let bin = engine.programs()?;
        let user = match is_root() {
            false => None,
            true => Some(uid_gid(engine.os_user()).ok_or_else(|| {
                format!(
                    "running as root and there is no `{}` OS user to run the server as",
                    engine.os_user()
                )
            })?),
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("rd-{}-", engine.scheme()))
            .tempdir()
            .unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let server = Server {
            engine,
            port: free_port(),
            dir,
            bin,
            user,
            child: Mutex::new(None),
            settings,
        };
        server.init();
        server.launch();
        server.wait_ready();
        server.add_login();
        Ok(server)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// PostgreSQL with `archive_mode`: switches to a new WAL segment and waits (30 s at
    /// most) until the archiver has archived the one closed, so that the archive no
    /// longer changes under a test that hashes it. The closed segment's name.
    pub fn switch_wal_archived(&self) -> String {
        let seg = self.sql("", "SELECT pg_walfile_name(pg_switch_wal())");
        let deadline = Instant::now() + Duration::from_secs(30);
        let archived = "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver";
        while self.sql("", archived) < seg {
            assert!(Instant::now() < deadline, "{seg} never archived");
            std::thread::sleep(Duration::from_millis(50));
        }
        seg
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    /// The server program `name` (`pgbench`, `mariadb-dump`, ...).
    pub fn program(&self, name: &str) -> PathBuf {
        match self.engine {
            Engine::Postgres => self.bin.join(name),
            Engine::MariaDb => on_path(name).unwrap(),
        }
    }

    /// A command as the server's OS user.
    fn as_user(&self, program: &str) -> Command {
        self.as_owner(self.program(program))
    }

    /// `program` (a path, or a name on PATH) as the server's OS user, in its directory.
    pub fn as_owner(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.dir());
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn init(&self) {
        let data = format!("{}", self.data_dir().display());
        let mut cmd = match self.engine {
            Engine::Postgres => self.as_user("initdb"),
            Engine::MariaDb => self.as_user("mariadb-install-db"),
        };
        match self.engine {
            Engine::Postgres => cmd.args(["-U", "postgres", "--auth-local=trust"]).args([
                "--auth-host=scram-sha-256",
                "-N",
                "--no-instructions",
                "-D",
                &data,
            ]),
            Engine::MariaDb => cmd.args([
                "--no-defaults",
                &format!("--datadir={data}"),
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ]),
        };
        let out = cmd.output().expect("initialise the server");
        assert!(
            out.status.success(),
            "initialising {:?} failed: {}",
            self.engine,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn log_path(&self) -> PathBuf {
        self.dir().join("server.log")
    }

    fn launch(&self) {
        let dir = self.dir().display().to_string();
        let data = self.data_dir().display().to_string();
        let port = self.port.to_string();
        let mut cmd = match self.engine {
            Engine::Postgres => self.as_user("postgres"),
            Engine::MariaDb => self.as_user("mariadbd"),
        };
        match self.engine {
            Engine::Postgres => cmd
                .args(["-D", &data, "-p", &port, "-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "fsync=off", "-c"])
                .arg(format!("unix_socket_directories={dir}"))
                .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()])),
            Engine::MariaDb => cmd.args([
                "--no-defaults".to_string(),
                format!("--datadir={data}"),
                format!("--socket={dir}/sock"),
                format!("--pid-file={dir}/pid"),
                format!("--port={port}"),
                "--bind-address=127.0.0.1".into(),
                "--innodb-buffer-pool-size=32M".into(),
                "--skip-log-bin".into(),
            ]),
        };
        let log = std::fs::File::create(self.log_path()).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start the server");
        *self.child.lock().unwrap() = Some(child);
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.try_sql("", "SELECT 1").is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                panic!("{:?} did not start within 60s:\n{log}", self.engine);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn add_login(&self) {
        let (user, password) = self.engine.login();
        let sql = match self.engine {
            Engine::Postgres => format!("ALTER ROLE {user} PASSWORD '{password}'"),
            Engine::MariaDb => ["127.0.0.1", "localhost"]
                .map(|h| {
                    format!(
                        "CREATE USER '{user}'@'{h}' IDENTIFIED BY '{password}'; GRANT ALL ON *.* TO '{user}'@'{h}';"
                    )
                })
                .concat(),
        };
        self.sql("", &sql);
    }

    /// Runs SQL as the superuser over the unix socket and returns the rows, tab-separated,
    /// one a line. The SQL goes through stdin: it may hold the password, which must not
    /// show in `ps`.
    pub fn try_sql(&self, db: &str, sql: &str) -> Result<String, String> {
        let dir = self.dir().display().to_string();
        let mut cmd = match self.engine {
            Engine::Postgres => Command::new(self.program("psql")),
            Engine::MariaDb => Command::new(self.program("mariadb")),
        };
        match self.engine {
            Engine::Postgres => cmd
                .args([
                    "-X",
                    "-q",
                    "-A",
                    "-t",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-U",
                    "postgres",
                ])
                .args(["-h", &dir, "-p", &self.port.to_string(), "-f", "-"])
                .args(["-d", if db.is_empty() { "postgres" } else { db }]),
            Engine::MariaDb => cmd
                .args(["--no-defaults", "-u", "root", "-N", "-B"])
                .arg(format!("--socket={dir}/sock"))
                .args((!db.is_empty()).then_some(db)),
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut stdin = child.stdin.take().unwrap();
        let wrote = stdin.write_all(sql.as_bytes());
        drop(stdin);
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        match (wrote, out.status.success()) {
            (Ok(()), true) => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
            _ => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    /// [`Server::try_sql`], failing the test on an error.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        self.try_sql(db, sql)
            .unwrap_or_else(|e| panic!("{:?}: {sql}\n{e}", self.engine))
    }

    /// The names of the server's databases.
    pub fn databases(&self) -> Vec<String> {
        let sql = match self.engine {
            Engine::Postgres => "SELECT datname FROM pg_database",
            Engine::MariaDb => "SHOW DATABASES",
        };
        self.sql("", sql).lines().map(str::to_string).collect()
    }

    /// The url of `db` over TCP, with the password as a template of the secret
    /// `db_password` (which [`Server::drill`] provides).
    pub fn url(&self, db: &str) -> String {
        let (user, _) = self.engine.login();
        let scheme = self.engine.scheme();
        let port = self.port;
        format!("{scheme}://{user}:{{{{ secrets.db_password }}}}@127.0.0.1:{port}/{db}")
    }

    /// The url of `db` without a password.
    pub fn plain_url(&self, db: &str) -> String {
        let (user, _) = self.engine.login();
        format!(
            "{}://{user}@127.0.0.1:{}/{db}",
            self.engine.scheme(),
            self.port
        )
    }

    pub fn password(&self) -> &'static str {
        self.engine.login().1
    }

    /// A drill of `playbook` that can log in with [`Server::url`].
    pub fn drill(&self, playbook: Playbook) -> Drill {
        playbook
            .secret("db_password", SECRET_ENV)
            .drill()
            .env(SECRET_ENV, self.password())
    }

    /// Stops the server (its whole process group) and removes its files.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let signal = match self.engine {
                Engine::Postgres => libc::SIGQUIT,
                Engine::MariaDb => libc::SIGTERM,
            };
            // SAFETY: signals our own child, then the rest of its process group.
            unsafe { libc::kill(child.id() as i32, signal) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            // SAFETY: as above.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(self.dir());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
