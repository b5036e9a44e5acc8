//! MySQL/MariaDB drills end to end against a real `mariadbd` that the tests start on a
//! free loopback port with its data and socket in a temporary directory, and stop at
//! the end (never a system service).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ::mysql::prelude::Queryable as _;

use super::*;

const USER: &str = "drill";
const PASSWORD: &str = "Pw-7x!q9Zr2kLm";

/// The test server: started once for the whole binary, stopped at exit.
pub struct Server {
    dir: PathBuf,
    port: u16,
    child: Mutex<Option<Child>>,
}

static SERVER: OnceLock<Option<Server>> = OnceLock::new();

fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            "/usr/sbin".into(),
            "/usr/bin".into(),
            "/usr/local/sbin".into(),
        ])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The shared server, or None (after a loud skip) when MariaDB is not installed.
pub fn server() -> Option<&'static Server> {
    SERVER
        .get_or_init(|| {
            match (
                find("mariadbd"),
                find("mariadb-install-db"),
                find("mariadb-dump").or_else(|| find("mysqldump")),
            ) {
                (Some(daemon), Some(install), Some(_)) => Some(Server::start(&daemon, &install)),
                _ => {
                    skip_or_fail(
                        "mysql",
                        "mariadbd, mariadb-install-db or mariadb-dump not found",
                    );
                    None
                }
            }
        })
        .as_ref()
}

extern "C" fn stop_server_at_exit() {
    if let Some(Some(server)) = SERVER.get() {
        server.stop();
    }
}

impl Server {
    fn start(daemon: &Path, install: &Path) -> Server {
        let dir =
            std::env::temp_dir().join(format!("restore-drill-mariadb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let as_root = unsafe { libc::geteuid() } == 0;
        let user_arg: Vec<String> = if as_root {
            // mariadbd refuses to run as root: the data directory belongs to `mysql`.
            let ok = Command::new("chown")
                .args(["mysql:mysql", dir.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(ok.success(), "chown {} to mysql failed", dir.display());
            vec!["--user=mysql".into()]
        } else {
            Vec::new()
        };
        let data = dir.join("data");
        let out = Command::new(install)
            .args([
                "--no-defaults",
                &format!("--datadir={}", data.display()),
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .args(&user_arg)
            .output()
            .expect("run mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(daemon)
            .args([
                "--no-defaults".to_string(),
                format!("--datadir={}", data.display()),
                format!("--socket={}", dir.join("sock").display()),
                format!("--pid-file={}", dir.join("pid").display()),
                format!("--log-error={}", dir.join("error.log").display()),
                format!("--port={port}"),
                "--bind-address=127.0.0.1".into(),
                "--innodb-buffer-pool-size=32M".into(),
                "--skip-log-bin".into(),
            ])
            .args(&user_arg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let server = Server {
            dir,
            port,
            child: Mutex::new(Some(child)),
        };
        unsafe { libc::atexit(stop_server_at_exit) };
        server.wait_ready();
        server.root(&format!(
            "CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';
             CREATE USER '{USER}'@'localhost' IDENTIFIED BY '{PASSWORD}';
             GRANT ALL ON *.* TO '{USER}'@'127.0.0.1';
             GRANT ALL ON *.* TO '{USER}'@'localhost';"
        ));
        server
    }

    fn root_opts(&self) -> ::mysql::Opts {
        ::mysql::OptsBuilder::new()
            .user(Some("root"))
            .socket(Some(self.dir.join("sock").display().to_string()))
            .into()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if ::mysql::Conn::new(self.root_opts()).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
                panic!("mariadbd did not start within 60s:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs statements as root.
    pub fn root(&self, sql: &str) {
        let mut conn = ::mysql::Conn::new(self.root_opts()).expect("root connection");
        conn.query_drop(sql)
            .unwrap_or_else(|e| panic!("{e}\n{sql}"));
    }

    pub fn databases(&self) -> Vec<String> {
        let mut conn = ::mysql::Conn::new(self.root_opts()).expect("root connection");
        conn.query("SHOW DATABASES").unwrap()
    }

    /// The url of `db` with the password as a template reading the secret.
    pub fn url(&self, db: &str) -> String {
        format!(
            "mysql://{USER}:{{{{ secrets.my_password }}}}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A source database `db` with foreign keys, indexes, a trigger and a routine.
fn make_source(server: &Server, db: &str) {
    server.root(&format!(
        "CREATE DATABASE `{db}`;
         USE `{db}`;
         CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(100) NOT NULL, UNIQUE KEY uq_customers_email (email)) ENGINE=InnoDB;
         CREATE TABLE orders (
           id INT PRIMARY KEY,
           customer_id INT NOT NULL,
           total DECIMAL(10,2) NOT NULL,
           created_at DATETIME NOT NULL,
           KEY idx_orders_created (created_at),
           CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers(id)
         ) ENGINE=InnoDB;
         CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(100)) ENGINE=InnoDB;
         CREATE TRIGGER trg_orders_audit AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit (note) VALUES (CONCAT('order ', NEW.id));
         CREATE FUNCTION order_count() RETURNS INT READS SQL DATA RETURN (SELECT COUNT(*) FROM orders);
         INSERT INTO customers SELECT seq, CONCAT('c', seq, '@example.com') FROM seq_1_to_50;
         INSERT INTO orders SELECT seq, 1 + seq % 50, seq * 1.5, '2026-01-01 00:00:00' + INTERVAL seq MINUTE FROM seq_1_to_400;"
    ));
}

const DRILL: &str = r##"
version = 1
[drill]
name = "t"
[secrets]
my_password = { env = "DRILL_MYSQL_PWD" }
[vars]
source = "#SOURCE#"
scratch = "#SCRATCH#"
[[steps]]
id = "backup"
kind = "backup"
engine = "mysql"
url = "{{ vars.source }}"
output = "{{ drill.workdir }}/b/dump.sql.zst"
compression = "zstd"
#AFTER_BACKUP#
[[steps]]
id = "restore"
kind = "restore"
engine = "mysql"
from = "{{ steps.backup.path }}"
target_url = "{{ vars.scratch }}"
#AFTER_RESTORE#
[[steps]]
id = "verify"
kind = "sql"
engine = "mysql"
database = "{{ vars.scratch }}"
[[steps.checks]]
name = "tables"
builtin = "tables_exist"
compare_to = "{{ steps.backup.tables }}"
[[steps.checks]]
name = "indexes"
builtin = "indexes_exist"
compare_to = "{{ steps.backup.indexes }}"
[[steps.checks]]
name = "fks"
builtin = "foreign_keys"
compare_to = "{{ steps.backup.foreign_keys }}"
[[steps.checks]]
name = "counts"
builtin = "table_counts"
compare_to = "{{ steps.backup.table_counts }}"
[[steps.checks]]
name = "integrity"
builtin = "integrity"
[[steps.checks]]
name = "routine restored"
query = "SELECT order_count()"
expect = 400
#AFTER_VERIFY#
"##;

static NEXT_DB: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A fresh source database and a scratch name, and the drill using them.
fn mysql_drill(
    server: &Server,
    after_backup: &str,
    after_restore: &str,
    after_verify: &str,
) -> (Drill, String, String) {
    let n = NEXT_DB.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let source = format!("shop_{}_{n}", std::process::id());
    let scratch = format!("drill_scratch_{}_{n}", std::process::id());
    make_source(server, &source);
    let toml = DRILL
        .replace("#SOURCE#", &server.url(&source))
        .replace("#SCRATCH#", &server.url(&scratch))
        .replace("#AFTER_BACKUP#", after_backup)
        .replace("#AFTER_RESTORE#", after_restore)
        .replace("#AFTER_VERIFY#", after_verify);
    (
        Drill::new(&toml).env("DRILL_MYSQL_PWD", PASSWORD),
        source,
        scratch,
    )
}

fn checks_of(out: &Outcome, step: &str) -> Vec<(String, bool, String)> {
    out.step(step)["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["passed"].as_bool().unwrap(),
                c["detail"].to_string(),
            )
        })
        .collect()
}

#[test]
fn a_mysql_drill_passes_and_drops_its_scratch_database() {
    let Some(server) = server() else { return };
    let (drill, source, scratch) = mysql_drill(server, "", "", "");
    let out = drill.run().expect_code(0);
    let backup = out.step("backup");
    assert_eq!(
        backup["outputs"]["table_counts"],
        serde_json::json!({"audit": 400, "customers": 50, "orders": 400})
    );
    assert_eq!(
        out.step("restore")["outputs"]["table_counts"]["orders"],
        400
    );
    for (name, passed, detail) in checks_of(&out, "verify") {
        assert!(passed, "{name}: {detail}");
    }
    let dbs = server.databases();
    assert!(dbs.contains(&source), "the source must stay");
    assert!(
        !dbs.contains(&scratch),
        "scratch database {scratch} left behind: {dbs:?}"
    );
    let resources = out.record()["resources"].to_string();
    assert!(resources.contains(&scratch), "{resources}");
}
