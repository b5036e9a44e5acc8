//! PostgreSQL drills end to end: each test starts its own throwaway source server (initdb
//! on a free port, as the `postgres` OS user when running as root), loads pgbench's
//! schema plus a `shop` schema with foreign keys and indexes, runs the real binary
//! against it, and stops and removes the server when dropped.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::*;

const PASSWORD: &str = "Drill-Test-pw-7f3a9c";

const SHOP: &str = "
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id int PRIMARY KEY, email text NOT NULL UNIQUE, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE shop.orders (id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES shop.customers(id),
                          placed_at timestamptz NOT NULL, total numeric(12,2) NOT NULL);
CREATE INDEX orders_customer_idx ON shop.orders (customer_id);
CREATE INDEX orders_placed_idx ON shop.orders (placed_at);
CREATE TABLE shop.order_items (order_id bigint NOT NULL REFERENCES shop.orders(id) ON DELETE CASCADE, line int NOT NULL,
                               sku text NOT NULL, qty int NOT NULL CHECK (qty > 0), PRIMARY KEY (order_id, line));
CREATE INDEX order_items_sku_idx ON shop.order_items (sku);
INSERT INTO shop.customers SELECT i, 'c' || i || '@example.com', now() FROM generate_series(1, 2000) i;
INSERT INTO shop.orders SELECT i, 1 + i % 2000, now() - i * interval '1 minute', (i % 500) + 0.99 FROM generate_series(1, 10000) i;
INSERT INTO shop.order_items SELECT o, l, 'sku-' || (o * l % 300), l FROM generate_series(1, 10000) o, generate_series(1, 3) l;
";

/// A source server of the tests' own; stopped and removed on drop.
pub struct PgServer {
    dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    user: Option<(u32, u32)>,
    child: Child,
}

fn server_bin() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            Some((
                e.file_name().to_string_lossy().parse().ok()?,
                e.path().join("bin"),
            ))
        })
        .filter(|(_, b): &(u32, PathBuf)| b.join("initdb").is_file())
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, b)| b).or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).find(|d| d.join("initdb").is_file())
    })
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// uid and gid of the `postgres` OS user.
fn postgres_user() -> Option<(u32, u32)> {
    let name = std::ffi::CString::new("postgres").unwrap();
    // SAFETY: read at once; null checked.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    // SAFETY: non-null.
    (!pw.is_null()).then(|| unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgServer {
    /// Starts a server, or returns None after `skip_or_fail` when PostgreSQL is missing.
    pub fn start(suite: &str) -> Option<Self> {
        let Some(bin) = server_bin() else {
            skip_or_fail(suite, "PostgreSQL server programs (initdb) not found");
            return None;
        };
        let user = if is_root() {
            match postgres_user() {
                Some(u) => Some(u),
                None => {
                    skip_or_fail(
                        suite,
                        "running as root and there is no `postgres` OS user to run the server as",
                    );
                    return None;
                }
            }
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("rd-pgsrc-")
            .tempdir()
            .unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-N",
                "--no-instructions",
            ])
            .arg("-D")
            .arg(&data)
            .current_dir(dir.path());
        let out = as_user(&mut initdb, user).output().expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut postgres = Command::new(bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let child = as_user(&mut postgres, user).spawn().expect("postgres");
        let server = Self {
            dir,
            port,
            bin,
            user,
            child,
        };
        server.wait_ready();
        server.psql(
            "postgres",
            &format!("ALTER ROLE postgres PASSWORD '{PASSWORD}'"),
        );
        server.psql("postgres", "CREATE DATABASE app");
        server.pgbench_init("app");
        server.psql("app", SHOP);
        Some(server)
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h"])
                .arg(self.dir.path())
                .args(["-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("test server did not start");
    }

    fn pgbench_init(&self, db: &str) {
        let out = Command::new(self.bin.join("pgbench"))
            .args([
                "-i", "-I", "dtgvpf", "-s", "1", "-q", "-U", "postgres", "-h",
            ])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), db])
            .output()
            .expect("pgbench");
        assert!(
            out.status.success(),
            "pgbench -i: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs SQL over the unix socket (trusted) and returns psql's unaligned output. The
    /// SQL goes through stdin: it may hold the password, which must not show in `ps`.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        use std::io::Write as _;
        let mut child = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
                "-h",
            ])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-d", db, "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("psql");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A url with the password as a template of the `pg_password` secret.
    pub fn secret_url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{{{{ secrets.pg_password }}}}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    pub fn plain_url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

fn as_user(cmd: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SAFETY: signals our own child's group; immediate shutdown.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGQUIT) };
        let _ = self.child.wait();
        // SAFETY: as above; any straggler of the group goes too.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.user;
    }
}

/// The `os_user` a drill needs here: postgres as root, none otherwise.
fn os_user() -> &'static str {
    if is_root() { "postgres" } else { "" }
}

/// Processes whose command line contains `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmdline.contains(needle) && !cmdline.is_empty() {
                found.push(format!(
                    "{}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    found
}

/// Runs a drill while sampling the process list every 10 ms: the password must never
/// be in a command line. Returns the outcome and whether a process mentioning `seen`
/// was ever running.
fn run_watching_ps(drill: Drill, seen: &str) -> (Outcome, bool) {
    let mut child = drill
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut saw = false;
    while child.try_wait().unwrap().is_none() {
        let leaks = processes_mentioning(PASSWORD);
        assert!(leaks.is_empty(), "password in the process list: {leaks:?}");
        saw |= !processes_mentioning(seen).is_empty();
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    let out = Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        dir: drill.dir,
    };
    (out, saw)
}

/// Every artifact the drill wrote, concatenated.
fn all_artifacts(out: &Outcome) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(out.path().join("artifacts")).unwrap() {
        text.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default());
    }
    text
}

fn check<'a>(step: &'a Value, name: &str) -> &'a Value {
    step["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {step}"))
}

fn cluster_gone(out: &Outcome) {
    let r = out.record();
    let cluster = r["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "cluster")
        .unwrap_or_else(|| panic!("no cluster resource: {}", r["resources"]));
    assert_eq!(cluster["removed"], true, "{cluster}");
    let dir = cluster["id"].as_str().unwrap();
    assert!(
        !Path::new(dir).exists(),
        "cluster directory {dir} left behind"
    );
    assert!(
        processes_mentioning(dir).is_empty(),
        "processes left: {:?}",
        processes_mentioning(dir)
    );
}

/// The shipped playbook against a real server: passes, its cluster is gone, and the
/// password shows nowhere (artifacts, log, report, the process list while it runs).
#[test]
fn shipped_playbook_passes_cleans_up_and_hides_the_password() {
    let Some(server) = PgServer::start("postgres") else {
        return;
    };
    let playbook = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/playbooks/postgres.toml"
    ))
    .unwrap();
    let drill = Drill::new(&playbook)
        .env("PGPASSWORD", PASSWORD)
        .arg("--var")
        .arg(&format!("pg_url={}", server.plain_url("app")))
        .arg("--var")
        .arg(&format!("os_user={}", os_user()));
    let (out, seen_tools) = run_watching_ps(drill, "restore-drill-pg-");
    let out = out.expect_code(0);
    assert!(
        seen_tools,
        "never saw the throwaway cluster's processes while sampling"
    );
    let backup = out.step("backup");
    assert_eq!(backup["outputs"]["counts_in_dump_snapshot"], true);
    assert_eq!(
        backup["outputs"]["table_counts"]["public.pgbench_accounts"],
        100000
    );
    assert_eq!(backup["outputs"]["table_counts"]["shop.order_items"], 30000);
    let verify = out.step("verify");
    assert_eq!(verify["checks"].as_array().unwrap().len(), 5);
    assert!(
        verify["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == true),
        "{verify}"
    );
    assert!(
        check(&verify, "btree indexes and heaps pass amcheck")["detail"]
            .as_str()
            .unwrap()
            .contains("passed")
    );
    assert_eq!(
        out.step("restore")["outputs"]["table_counts"]["shop.orders"],
        10000
    );
    cluster_gone(&out);
    assert!(
        !all_artifacts(&out).contains(PASSWORD),
        "password in the artifacts"
    );
}

const CUSTOM: &str = r#"
version = 1
[drill]
name = "pg"
[vars]
os_user = ""
[secrets]
pg_password = { env = "DRILL_TEST_PG_PASSWORD" }
[[steps]]
id = "backup"
kind = "backup"
engine = "postgres"
url = "@URL@"
format = "custom"
output = "{{ drill.workdir }}/b/app.dump"
#BACKUP#
[[steps]]
id = "manifest"
kind = "checksum"
files = ["{{ steps.backup.path }}"]
manifest = "{{ drill.workdir }}/b/SHA256SUMS"
#BEFORE_VERIFY#
[[steps]]
id = "verify_backup"
kind = "checksum"
verify = "{{ steps.manifest.manifest }}"
#BEFORE_RESTORE#
[[steps]]
id = "restore"
kind = "restore"
engine = "postgres"
from = "{{ steps.backup.path }}"
#TARGET#
#AFTER_RESTORE#
[[steps]]
id = "verify"
kind = "sql"
engine = "postgres"
database = "{{ steps.restore.target }}"
[[steps.checks]]
name = "customers"
query = "SELECT count(*) FROM shop.customers"
expect = 2000
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
name = "integrity"
builtin = "integrity"
[[steps.checks]]
name = "counts"
builtin = "table_counts"
compare_to = "{{ steps.backup.table_counts }}"
"#;

pub const EPHEMERAL: &str = "isolation = \"ephemeral\"\njobs = 2\nos_user = \"{{ vars.os_user }}\"";

pub fn custom_drill(server: &PgServer, target: &str, splices: &[(&str, &str)]) -> Drill {
    let mut toml = CUSTOM
        .replace("@URL@", &server.secret_url("app"))
        .replace("#TARGET#", target);
    for (marker, text) in splices {
        toml = toml.replace(marker, text);
    }
    Drill::new(&toml)
        .env("DRILL_TEST_PG_PASSWORD", PASSWORD)
        .arg("--var")
        .arg(&format!("os_user={}", os_user()))
}

/// Damage done to the restored database: each builtin check must catch its part.
const TAMPER: &str = r#"
[[steps]]
id = "tamper"
kind = "sql"
engine = "postgres"
database = "{{ steps.restore.target }}"
execute = """
DROP TABLE shop.order_items;
INSERT INTO shop.customers VALUES (5000, 'late@example.com', now());
DROP INDEX shop.orders_placed_idx;
SET session_replication_role = replica;
INSERT INTO shop.orders VALUES (999999, 424242, now(), 1);
SET session_replication_role = origin;
ALTER TABLE shop.orders ADD CONSTRAINT orders_total_fk FOREIGN KEY (customer_id) REFERENCES shop.customers(id) NOT VALID;
CREATE FUNCTION public.key_of(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1';
CREATE INDEX customers_key_idx ON shop.customers (public.key_of(id));
CREATE OR REPLACE FUNCTION public.key_of(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT -$1';
"""
"#;

#[test]
fn tampered_restore_fails_every_check_and_still_cleans_up() {
    let Some(server) = PgServer::start("postgres") else {
        return;
    };
    let out = custom_drill(&server, EPHEMERAL, &[("#AFTER_RESTORE#", TAMPER)])
        .run()
        .expect_code(1);
    let verify = out.step("verify");
    assert_eq!(verify["status"], "failed");
    let detail = |name: &str| {
        let c = check(&verify, name);
        assert_eq!(c["passed"], false, "{name} should fail: {c}");
        c["detail"].as_str().unwrap().to_string()
    };
    assert!(
        detail("customers").contains("expected 2000"),
        "{}",
        detail("customers")
    );
    assert!(
        detail("tables").contains("shop.order_items"),
        "{}",
        detail("tables")
    );
    assert!(
        detail("indexes").contains("shop.orders_placed_idx"),
        "{}",
        detail("indexes")
    );
    let fks = detail("fks");
    assert!(fks.contains("orders_total_fk is NOT VALID"), "{fks}");
    assert!(
        fks.contains("shop.order_items.order_items_order_id_fkey is missing"),
        "{fks}"
    );
    assert!(
        fks.contains("shop.orders.orders_customer_id_fkey")
            && fks.contains("reference missing rows"),
        "{fks}"
    );
    let integrity = detail("integrity");
    assert!(integrity.contains("customers_key_idx"), "{integrity}");
    let counts = detail("counts");
    assert!(
        counts.contains("shop.order_items: missing (source had 30000 rows)"),
        "{counts}"
    );
    assert!(
        counts.contains("shop.orders: 10001 rows, source had 10000"),
        "{counts}"
    );
    cluster_gone(&out);
    assert!(!all_artifacts(&out).contains(PASSWORD));
}

const CORRUPT: &str = r#"
[[steps]]
id = "corrupt"
kind = "exec"
run = "printf 'not a dump at all, garbage garbage garbage' | dd of='{{ steps.backup.path }}' bs=1 seek=$(( $(stat -c %s '{{ steps.backup.path }}') / 2 )) conv=notrunc status=none"
"#;

#[test]
fn corrupted_dump_fails_at_checksum() {
    let Some(server) = PgServer::start("postgres") else {
        return;
    };
    let out = custom_drill(&server, EPHEMERAL, &[("#BEFORE_VERIFY#", CORRUPT)])
        .run()
        .expect_code(1);
    let verify = out.step("verify_backup");
    assert_eq!(verify["status"], "failed", "{verify}");
    assert_eq!(out.step("restore")["status"], "not_run");
}

const TRUNCATE: &str = r#"
[[steps]]
id = "truncate"
kind = "exec"
run = "truncate -s $(( $(stat -c %s '{{ steps.backup.path }}') / 2 )) '{{ steps.backup.path }}'"
"#;

#[test]
fn truncated_dump_fails_at_restore_with_pg_restores_message() {
    let Some(server) = PgServer::start("postgres") else {
        return;
    };
    // The damage comes after the checksum was verified: only the restore can notice.
    let out = custom_drill(&server, EPHEMERAL, &[("#BEFORE_RESTORE#", TRUNCATE)])
        .run()
        .expect_code(1);
    let restore = out.step("restore");
    assert_eq!(restore["status"], "failed");
    let error = restore["error"].as_str().unwrap();
    assert!(error.contains("pg_restore"), "{error}");
    assert!(
        error.contains("corrupt") || error.contains("end of file"),
        "{error}"
    );
    cluster_gone(&out);
}

#[test]
fn interrupted_drill_removes_the_cluster() {
    let Some(server) = PgServer::start("postgres") else {
        return;
    };
    let wait = "[[steps]]\nid = \"hold\"\nkind = \"wait\"\nduration = \"60s\"\n";
    let drill = custom_drill(&server, EPHEMERAL, &[("#AFTER_RESTORE#", wait)]);
    let mut child = drill
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let artifacts = drill.path().join("artifacts");
    let started = Instant::now();
    let cluster_dir = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "restore never passed"
        );
        assert!(child.try_wait().unwrap().is_none(), "drill ended early");
        let record = std::fs::read_dir(&artifacts)
            .ok()
            .and_then(|mut d| {
                d.find(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "json")
                })
            })
            .and_then(|e| std::fs::read_to_string(e.unwrap().path()).ok())
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        let dir = record.as_ref().and_then(|r| {
            let step = r["steps"]
                .as_array()?
                .iter()
                .find(|s| s["id"] == "restore")?;
            (step["status"] == "passed")
                .then(|| step["outputs"]["cluster_dir"].as_str().map(str::to_string))?
        });
        if let Some(dir) = dir {
            break dir;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(Path::new(&cluster_dir).exists());
    assert!(
        !processes_mentioning(&cluster_dir).is_empty(),
        "the cluster should be running"
    );
    // SAFETY: signals our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    let out = Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        dir: drill.dir,
    }
    .expect_code(130);
    assert_eq!(out.record()["status"], "aborted");
    cluster_gone(&out);
}

#[test]
fn scratch_database_is_created_dropped_and_never_an_existing_one() {
    let Some(server) = PgServer::start("postgres") else {
        return;
    };
    let target = |db: &str| format!("target_url = \"{}\"", server.secret_url(db));
    // The password is in the urls of the steps (a template of the secret) this time.
    let (out, _) = run_watching_ps(
        custom_drill(&server, &target("drill_scratch"), &[]),
        "pg_restore",
    );
    let out = out.expect_code(0);
    assert!(
        out.step("verify")["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == true)
    );
    let dbs = server.psql(
        "postgres",
        "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database",
    );
    assert!(
        !dbs.contains("drill_scratch"),
        "scratch database left behind: {dbs}"
    );
    assert!(
        !all_artifacts(&out).contains(PASSWORD),
        "password in the artifacts"
    );

    // The source itself: refused, and untouched.
    let out = custom_drill(&server, &target("app"), &[])
        .run()
        .expect_code(1);
    let error = out.step("restore")["error"].as_str().unwrap().to_string();
    assert!(error.contains("refusing to restore into `app`"), "{error}");
    assert_eq!(
        server.psql("app", "SELECT count(*) FROM pgbench_accounts"),
        "100000"
    );

    // An existing database: refused, and not dropped at teardown.
    server.psql("postgres", "CREATE DATABASE keep_me");
    let out = custom_drill(&server, &target("keep_me"), &[])
        .run()
        .expect_code(1);
    let error = out.step("restore")["error"].as_str().unwrap().to_string();
    assert!(error.contains("already exists"), "{error}");
    assert_eq!(
        server.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'keep_me'"
        ),
        "1"
    );
}

#[test]
fn integrity_without_amcheck_fails_saying_not_available() {
    let Some(server) = PgServer::start("postgres") else {
        return;
    };
    let toml = format!(
        r#"
version = 1
[drill]
name = "pg"
[secrets]
pg_password = {{ env = "DRILL_TEST_PG_PASSWORD" }}
[[steps]]
id = "verify"
kind = "sql"
engine = "postgres"
database = "{}"
[[steps.checks]]
name = "integrity"
builtin = "integrity"
[[steps.checks]]
name = "fks"
builtin = "foreign_keys"
"#,
        server.secret_url("app")
    );
    let out = Drill::new(&toml)
        .env("DRILL_TEST_PG_PASSWORD", PASSWORD)
        .run()
        .expect_code(1);
    let verify = out.step("verify");
    let integrity = check(&verify, "integrity");
    assert_eq!(integrity["passed"], false);
    assert!(
        integrity["detail"]
            .as_str()
            .unwrap()
            .contains("amcheck is not available"),
        "{integrity}"
    );
    assert_eq!(check(&verify, "fks")["passed"], true);
}

#[test]
fn as_root_the_ephemeral_restore_demands_os_user() {
    if !is_root() {
        return;
    }
    let Some(server) = PgServer::start("postgres") else {
        return;
    };
    let out = custom_drill(&server, "isolation = \"ephemeral\"", &[])
        .run()
        .expect_code(1);
    let error = out.step("restore")["error"].as_str().unwrap().to_string();
    assert!(error.contains("os_user = \"postgres\""), "{error}");
}

const STREAMED: &str = r#"
[[steps]]
id = "is_zstd"
kind = "exec"
run = "test \"$(head -c4 '{{ steps.backup.path }}' | od -An -tx1 | tr -d ' \\n')\" = 28b52ffd"
[[steps]]
id = "restore_streamed"
kind = "restore"
engine = "postgres"
from = "{{ steps.backup.path }}"
isolation = "ephemeral"
os_user = "{{ vars.os_user }}"
[[steps]]
id = "verify_streamed"
kind = "sql"
engine = "postgres"
database = "{{ steps.restore_streamed.target }}"
[[steps.checks]]
name = "counts"
builtin = "table_counts"
compare_to = "{{ steps.backup.table_counts }}"
"#;

/// zstd: a real zstd frame on disk, restored in parallel (decompressed first) and
/// streamed (decompressed on the fly into pg_restore), both complete.
#[test]
fn zstd_backup_restores_in_parallel_and_streamed() {
    let Some(server) = PgServer::start("postgres") else {
        return;
    };
    let splices = [
        ("#BACKUP#", "compression = \"zstd\""),
        ("#AFTER_RESTORE#", STREAMED),
    ];
    let out = custom_drill(&server, EPHEMERAL, &splices)
        .run()
        .expect_code(0);
    let backup = out.step("backup");
    assert_eq!(backup["outputs"]["table_counts"]["shop.order_items"], 30000);
    for id in ["verify", "verify_streamed"] {
        let step = out.step(id);
        assert!(
            step["checks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["passed"] == true),
            "{step}"
        );
    }
    let log = out.log();
    assert!(log.contains("app.dump into postgresql://"), "{log}");
    cluster_gone(&out);
}

const TCP_PROBE: &str = r#"
[[steps]]
id = "tcp_with_passfile"
kind = "exec"
run = "PGPASSFILE='{{ steps.restore.passfile }}' psql -X -A -t -w '{{ steps.restore.target_tcp }}' -c 'SELECT count(*) FROM shop.orders'"
[[steps]]
id = "tcp_without_password"
kind = "exec"
run = "PGPASSFILE=/dev/null PGPASSWORD= psql -X -A -t -w '{{ steps.restore.target_tcp }}' -c 'SELECT 1'"
expect_exit = 2
"#;

/// `listen`: TCP on 127.0.0.1 for a service, with the generated password from the
/// passfile; without it the connection is refused.
#[test]
fn ephemeral_cluster_listens_on_tcp_only_with_a_password() {
    let Some(server) = PgServer::start("postgres") else {
        return;
    };
    let target = format!("{EPHEMERAL}\nlisten = \"127.0.0.1\"");
    let out = custom_drill(&server, &target, &[("#AFTER_RESTORE#", TCP_PROBE)])
        .run()
        .expect_code(0);
    let with = out.step("tcp_with_passfile");
    assert_eq!(
        with["outputs"]["stdout"].as_str().unwrap().trim(),
        "10000",
        "{with}"
    );
    let without = out.step("tcp_without_password");
    assert!(
        without["outputs"]["stderr"]
            .as_str()
            .unwrap()
            .contains("password"),
        "{without}"
    );
    cluster_gone(&out);
}
