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
         CREATE TABLE legacy (id INT PRIMARY KEY, label VARCHAR(20)) ENGINE=MyISAM;
         INSERT INTO legacy SELECT seq, CONCAT('l', seq) FROM seq_1_to_20;
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
expect = "{{ steps.backup.table_counts.orders }}"
#AFTER_VERIFY#
"##;

static NEXT_DB: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A fresh source database and a scratch name, and the drill using them.
pub fn mysql_drill(
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
        serde_json::json!({"audit": 400, "customers": 50, "legacy": 20, "orders": 400})
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

/// The checks of `verify` that failed, by name.
fn failed_checks(out: &Outcome) -> Vec<String> {
    checks_of(out, "verify")
        .into_iter()
        .filter(|(_, passed, _)| !passed)
        .map(|(n, _, _)| n)
        .collect()
}

fn detail_of(out: &Outcome, name: &str) -> String {
    checks_of(out, "verify")
        .into_iter()
        .find(|(n, _, _)| n == name)
        .unwrap()
        .2
}

/// A `sql` step that runs `sql` on the scratch database after the restore.
fn tamper(sql: &str) -> String {
    format!(
        "[[steps]]\nid = \"tamper\"\nkind = \"sql\"\nengine = \"mysql\"\ndatabase = \"{{{{ vars.scratch }}}}\"\nexecute = \"{sql}\"\n"
    )
}

/// Rewrites the drill's playbook.
fn edit_playbook(drill: &Drill, edit: impl Fn(String) -> String) {
    let path = drill.path().join("playbook.toml");
    let toml = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(toml)).unwrap();
}

#[test]
fn a_missing_table_fails_tables_exist_and_table_counts() {
    let Some(server) = server() else { return };
    let (drill, _, scratch) = mysql_drill(server, "", &tamper("DROP TABLE audit"), "");
    let out = drill.run().expect_code(1);
    assert_eq!(failed_checks(&out), ["tables", "counts"]);
    assert!(
        detail_of(&out, "tables").contains("missing table: audit"),
        "{}",
        detail_of(&out, "tables")
    );
    assert!(detail_of(&out, "counts").contains("audit: missing (source had 400 rows)"));
    assert!(
        !server.databases().contains(&scratch),
        "scratch database left behind after a failed drill"
    );
}

#[test]
fn an_orphan_row_fails_foreign_keys() {
    let Some(server) = server() else { return };
    let (drill, source, scratch) = mysql_drill(server, "", "", "");
    // The orphan is in the source (written with the checks off), so the backup carries
    // it faithfully: only the foreign key check can tell.
    server.root(&format!(
        "SET FOREIGN_KEY_CHECKS = 0; INSERT INTO `{source}`.orders VALUES (9999, 777, 1.00, '2026-02-01 00:00:00');"
    ));
    let out = drill.run().expect_code(1);
    assert_eq!(failed_checks(&out), ["fks"]);
    let detail = detail_of(&out, "fks");
    assert!(
        detail.contains("orders.fk_orders_customer: 1 row(s) reference missing customers(id)"),
        "{detail}"
    );
    assert!(!server.databases().contains(&scratch));
}

#[test]
fn a_dropped_index_or_constraint_fails_its_check() {
    let Some(server) = server() else { return };
    let (drill, _, _) = mysql_drill(
        server,
        "",
        &tamper("DROP INDEX idx_orders_created ON orders"),
        "",
    );
    let out = drill.run().expect_code(1);
    assert_eq!(failed_checks(&out), ["indexes"]);
    assert!(detail_of(&out, "indexes").contains("missing index: idx_orders_created"));

    let (drill, _, _) = mysql_drill(
        server,
        "",
        &tamper("ALTER TABLE orders DROP FOREIGN KEY fk_orders_customer"),
        "",
    );
    let out = drill.run().expect_code(1);
    assert_eq!(failed_checks(&out), ["fks"]);
    assert!(detail_of(&out, "fks").contains("orders.fk_orders_customer is missing"));
}

#[test]
fn a_damaged_table_fails_integrity() {
    let Some(server) = server() else { return };
    // Overwrite the head of a restored MyISAM table's index file (after FLUSH TABLES
    // closed it): CHECK TABLE must report the table as corrupt.
    let (drill, _, scratch) = mysql_drill(server, "", &tamper("FLUSH TABLES"), "");
    let damage = format!(
        "[[steps]]\nid = \"damage\"\nkind = \"exec\"\nrun = \"printf 'CORRUPTCORRUPTCORRUPT' | dd of={}/data/{scratch}/legacy.MYI bs=1 seek=0 conv=notrunc 2>/dev/null\"\n",
        server.dir.display()
    );
    edit_playbook(&drill, |t| {
        t.replace(
            "[[steps]]\nid = \"verify\"",
            &format!("{damage}[[steps]]\nid = \"verify\""),
        )
    });
    let out = drill.run().expect_code(1);
    assert!(
        failed_checks(&out).contains(&"integrity".to_string()),
        "{:?}",
        checks_of(&out, "verify")
    );
    eprintln!("integrity: {}", detail_of(&out, "integrity"));
    assert!(!server.databases().contains(&scratch));
}

fn corrupt_step(run: &str) -> String {
    format!("[[steps]]\nid = \"corrupt\"\nkind = \"exec\"\nphase = \"backup\"\nrun = '''{run}'''\n")
}

#[test]
fn a_corrupted_or_truncated_dump_fails_its_restore() {
    let Some(server) = server() else { return };
    let cases = [
        (
            "zstd",
            "zstd",
            r#"f='{{ steps.backup.path }}'; n=$(stat -c %s "$f"); printf 'XXXXXXXXXXXXXXXX' | dd of="$f" bs=1 seek=$((n / 2)) conv=notrunc 2>/dev/null"#,
        ),
        (
            "bad SQL",
            "none",
            r#"sed -i 's/^INSERT INTO `orders`/INSERT INTO `orders` GARBAGE/' '{{ steps.backup.path }}'"#,
        ),
        (
            "truncated",
            "none",
            r#"f='{{ steps.backup.path }}'; n=$(stat -c %s "$f"); truncate -s $((n - 200)) "$f""#,
        ),
    ];
    for (what, compression, run) in cases {
        let (drill, _, scratch) = mysql_drill(server, &corrupt_step(run), "", "");
        edit_playbook(&drill, |t| {
            t.replace(
                "compression = \"zstd\"",
                &format!("compression = \"{compression}\""),
            )
        });
        let out = drill.run().expect_code(1);
        assert_eq!(out.step("corrupt")["status"], "passed", "{what}");
        let restore = out.step("restore");
        assert_eq!(restore["status"], "failed", "{what}: {restore}");
        eprintln!("{what}: {}", restore["error"]);
        assert_eq!(out.step("verify")["status"], "not_run", "{what}");
        assert!(
            !server.databases().contains(&scratch),
            "{what}: scratch database left behind"
        );
    }
}

#[test]
fn an_existing_database_or_the_source_is_refused_as_target() {
    let Some(server) = server() else { return };
    let (drill, _, scratch) = mysql_drill(server, "", "", "");
    server.root(&format!(
        "CREATE DATABASE `{scratch}`; CREATE TABLE `{scratch}`.keep (id INT);"
    ));
    let out = drill.run().expect_code(1);
    let error = out.step("restore")["error"].as_str().unwrap().to_string();
    assert!(error.contains("already exists"), "{error}");
    // Not created by the drill: not dropped by it either.
    assert!(server.databases().contains(&scratch));
    server.root(&format!("DROP DATABASE `{scratch}`"));

    let (drill, source, _) = mysql_drill(server, "", "", "");
    edit_playbook(&drill, |t| {
        t.replace(
            "target_url = \"{{ vars.scratch }}\"",
            "target_url = \"{{ vars.source }}\"",
        )
    });
    let out = drill.run().expect_code(1);
    let error = out.step("restore")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("the database this backup was taken from"),
        "{error}"
    );
    assert!(server.databases().contains(&source));
}

#[test]
fn an_interrupted_drill_drops_its_scratch_database() {
    let Some(server) = server() else { return };
    let pause = "[[steps]]\nid = \"pause\"\nkind = \"wait\"\nduration = \"60s\"\n";
    let (drill, _, scratch) = mysql_drill(server, "", pause, "");
    let mut child = drill
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !restore_finished(drill.path()) {
        assert!(Instant::now() < deadline, "the restore never finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.databases().contains(&scratch));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        !server.databases().contains(&scratch),
        "scratch database left behind after an interrupt"
    );
    let record = latest_record(drill.path()).unwrap();
    assert_eq!(record["status"], "aborted");
}

fn latest_record(dir: &Path) -> Option<Value> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("artifacts"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    found.sort();
    serde_json::from_str(&std::fs::read_to_string(found.pop()?).ok()?).ok()
}

/// Whether the record (rewritten after every step) shows the restore passed.
fn restore_finished(dir: &Path) -> bool {
    latest_record(dir).is_some_and(|r| {
        r["steps"].as_array().is_some_and(|s| {
            s.iter()
                .any(|s| s["id"] == "restore" && s["status"] == "passed")
        })
    })
}

#[test]
fn the_password_never_appears_in_artifacts_logs_reports_or_process_arguments() {
    let Some(server) = server() else { return };
    let (drill, _, _) = mysql_drill(server, "", "", "");
    let drill = drill.arg("--keep-workdir");
    // Watch every process's arguments while the drill runs.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                    let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                        continue;
                    };
                    let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                    if text.contains("--defaults-extra-file") && !seen.contains(&text) {
                        seen.push(text.clone());
                    }
                    assert!(
                        !text.contains(PASSWORD),
                        "password in a process's arguments: {text}"
                    );
                }
            }
            seen
        })
    };
    let out = drill.run().expect_code(0);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = watcher
        .join()
        .expect("the password leaked into a command line");
    eprintln!("client command lines seen: {seen:?}");
    for (what, text) in [
        ("record", out.record().to_string()),
        ("log", out.log()),
        ("report", out.report()),
        ("stderr", out.stderr.clone()),
    ] {
        assert!(!text.contains(PASSWORD), "password in the {what}");
    }
    let workdir = PathBuf::from(out.record()["workdir"].as_str().unwrap());
    let files = listing(&workdir);
    for path in &files {
        let full = workdir.join(path);
        if full.is_file() {
            let bytes = std::fs::read(&full).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(PASSWORD),
                "password in {path}"
            );
        }
    }
    assert!(
        !files.iter().any(|p| p.contains(".my.cnf")),
        "option file left behind: {files:?}"
    );
    let _ = std::fs::remove_dir_all(workdir);
}

/// Everything under `dir`, as relative paths.
fn listing(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            found.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            }
        }
    }
    found
}

#[test]
fn the_shipped_mysql_playbook_passes() {
    let Some(server) = server() else { return };
    let source = format!("shop_pb_{}", std::process::id());
    make_source(server, &source);
    let playbook = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/mysql.toml");
    let text = std::fs::read_to_string(&playbook).unwrap();
    Drill::new(&text)
        .subcommand("validate")
        .run()
        .expect_code(0);
    let url = format!("mysql://{USER}@127.0.0.1:{}/{source}", server.port);
    let out = Drill::new(&text)
        .arg("--var")
        .arg(&format!("mysql_url={url}"))
        .env("MYSQL_PWD", PASSWORD)
        .run()
        .expect_code(0);
    assert_eq!(out.record()["status"], "passed");
    assert!(!out.log().contains(PASSWORD));
    let dbs = server.databases();
    assert!(
        dbs.iter()
            .all(|d| !d.starts_with(&format!("{source}_drill"))),
        "{dbs:?}"
    );
}

#[test]
fn tidb_style_options_and_gzip_reach_mysqldump() {
    let Some(server) = server() else { return };
    let (drill, _, scratch) = mysql_drill(server, "", "", "");
    edit_playbook(&drill, |t| {
        t.replace(
            "compression = \"zstd\"",
            "compression = \"gzip\"\nsingle_transaction = false\nskip_lock_tables = true",
        )
    });
    let out = drill.run().expect_code(0);
    let log = out.log();
    let dump_line = log
        .lines()
        .find(|l| l.contains("dump --routines"))
        .expect("the dump command is logged");
    assert!(dump_line.contains("--skip-lock-tables"), "{dump_line}");
    assert!(!dump_line.contains("--single-transaction"), "{dump_line}");
    assert!(
        dump_line.contains("--routines") && dump_line.contains("--triggers"),
        "{dump_line}"
    );
    let path = out.step("backup")["outputs"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        out.step("backup")["outputs"]["compression"],
        "gzip",
        "{path}"
    );
    assert!(!server.databases().contains(&scratch));
}
