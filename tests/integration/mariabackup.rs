//! MariaDB physical backups end to end: `method = "mariabackup"` against a real
//! `mariadbd` of the tests' own, and restores into the throwaway `mariadbd`
//! (`isolation = "ephemeral"`) that must bring the rows back, fail naming a damaged
//! file, never write into the backup it restores (hashed before and after), and leave
//! no server process nor directory behind after a pass, a failure or Ctrl-C.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::pitr::hash_tree;
use super::postgres::cluster_gone;
use super::*;

/// The source server, a database `app`, and a backup taken by hand (not prepared)
/// outside any drill's work directory.
struct Fixture {
    server: Server,
    dir: tempfile::TempDir,
}

static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();

fn fixture() -> Option<&'static Fixture> {
    server::fixture_once(&FIXTURE, build, |f| {
        f.server.stop();
        let _ = std::fs::remove_dir_all(f.dir.path());
    })
}

/// The OS user the throwaway mariadbd runs as when the tests run as root.
pub fn os_user() -> &'static str {
    if is_root() { "mysql" } else { "" }
}

fn build() -> Option<Fixture> {
    if Command::new("mariabackup")
        .arg("--version")
        .output()
        .is_err()
    {
        skip_or_fail("mariabackup", "mariabackup not found (mariadb-backup)");
        return None;
    }
    let server = Server::start(Engine::MariaDb, "mariabackup")?;
    server.sql(
        "",
        "CREATE DATABASE app;
         USE app;
         CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(100) NOT NULL, UNIQUE KEY uq_email (email)) ENGINE=InnoDB;
         CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, note VARCHAR(50),
           KEY idx_orders_customer (customer_id),
           CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers(id)) ENGINE=InnoDB;
         INSERT INTO customers SELECT seq, CONCAT('c', seq, '@example.com') FROM seq_1_to_50;
         INSERT INTO orders SELECT seq, 1 + seq % 50, REPEAT('x', 40) FROM seq_1_to_3000;",
    );
    let dir = tempfile::Builder::new()
        .prefix("rd-mariabackup-")
        .tempdir()
        .unwrap();
    // A backup as an operator takes it: not prepared.
    let cnf = dir.path().join("client.cnf");
    let (user, password) = Engine::MariaDb.login();
    std::fs::write(
        &cnf,
        format!(
            "[client]\nuser={user}\npassword={password}\nhost=127.0.0.1\nport={}\nprotocol=TCP\n",
            server.port
        ),
    )
    .unwrap();
    let out = Command::new("mariabackup")
        .arg(format!("--defaults-extra-file={}", cnf.display()))
        .arg("--backup")
        .arg(format!(
            "--target-dir={}",
            dir.path().join("external").display()
        ))
        .arg(format!("--datadir={}", server.data_dir().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mariabackup --backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And a prepared copy of it.
    let prepared = dir.path().join("prepared");
    let status = Command::new("cp")
        .arg("-a")
        .arg(dir.path().join("external"))
        .arg(&prepared)
        .status()
        .unwrap();
    assert!(status.success());
    let out = Command::new("mariabackup")
        .arg("--prepare")
        .arg(format!("--target-dir={}", prepared.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "mariabackup --prepare");
    Some(Fixture { server, dir })
}

impl Fixture {
    /// The unprepared backup taken by hand.
    fn external(&self) -> PathBuf {
        self.dir.path().join("external")
    }

    /// A copy of the external backup (`prepared` or not), with `damage` done to it.
    fn damaged(&self, name: &str, prepared: bool, damage: impl FnOnce(&Path)) -> PathBuf {
        let copy = self.dir.path().join(name);
        let from = match prepared {
            true => self.dir.path().join("prepared"),
            false => self.external(),
        };
        let status = Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(&copy)
            .status()
            .unwrap();
        assert!(status.success());
        damage(&copy);
        copy
    }
}

/// A restore of `from` into a throwaway mariadbd, then `verify` (its `checks`) on it.
fn restore_drill(f: &Fixture, before: Vec<Step>, from: &str, checks: Vec<Table>) -> Drill {
    let restore = restore("mysql", from)
        .set("isolation", "ephemeral")
        .set("os_user", os_user())
        .set("database", "app");
    let verify = sql("verify", "mysql", "{{ steps.restore.target }}").checks(checks);
    f.server
        .drill(pb("maria").step(before).step([restore, verify]))
}

fn rows(n: i64) -> Vec<Table> {
    vec![query("orders back", "SELECT COUNT(*) FROM orders", n)]
}

/// A drill's own mariabackup (prepared), restored: the rows, tables, indexes and foreign
/// keys the backup counted come back, and the server and its directory are gone.
#[test]
fn mariabackup_backup_restores_into_a_throwaway_mariadbd() {
    let Some(f) = fixture() else { return };
    let backup = backup("mysql", "{{ drill.workdir }}/phys")
        .set("method", "mariabackup")
        .set("url", f.server.url("app"));
    let checks = [compare_checks(), rows(3000)].concat();
    let out = restore_drill(f, vec![backup], "{{ steps.backup.path }}", checks)
        .run()
        .expect_code(0);
    out.step("verify").all_checks_passed();
    let b = out.step("backup");
    assert_eq!(b.output("table_counts")["orders"], 3000);
    assert_eq!(b.output("prepared"), true);
    assert!(b.output("snapshot_at").as_str().unwrap().ends_with('Z'));
    let r = out.step("restore");
    assert_eq!(r.output("prepared_here"), false);
    assert_eq!(r.output("table_counts")["customers"], 50);
    assert!(
        r.output("target").as_str().unwrap().contains("socket="),
        "{}",
        r.output("target")
    );
    cluster_gone(&out);
}

/// An unprepared backup made elsewhere is prepared on a copy: not a byte of it changes.
#[test]
fn an_external_backup_is_prepared_on_a_copy_and_never_written() {
    let Some(f) = fixture() else { return };
    let before = hash_tree(&f.external());
    let from = f.external().display().to_string();
    let out = restore_drill(f, vec![], &from, rows(3000))
        .run()
        .expect_code(0);
    out.step("verify").all_checks_passed();
    assert_eq!(out.step("restore").output("prepared_here"), true);
    cluster_gone(&out);
    assert_eq!(hash_tree(&f.external()), before, "the backup changed");
}

/// A corrupt page in a table's `.ibd` (of a prepared backup) and a truncated `ibdata1`
/// (of one to prepare) fail the restore, each naming the file; the server and its directory are gone after the failure.
#[test]
fn a_damaged_backup_fails_the_restore_naming_the_file() {
    let Some(f) = fixture() else { return };
    let page = f.damaged("bad-page", true, |b| {
        let ibd = b.join("app/orders.ibd");
        let mut bytes = std::fs::read(&ibd).unwrap();
        // The clustered index's root page (page 3), past its header.
        for byte in &mut bytes[3 * 16384 + 200..3 * 16384 + 264] {
            *byte = 0xff;
        }
        std::fs::write(&ibd, bytes).unwrap();
    });
    let out = restore_drill(f, vec![], &page.display().to_string(), rows(3000))
        .run()
        .expect_code(1);
    out.step("restore")
        .failed_with("the restored database `app` cannot be read")
        .says("app/orders.ibd");
    out.step("verify").status("not_run");
    cluster_gone(&out);

    let truncated = f.damaged("bad-ibdata", false, |b| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(b.join("ibdata1"))
            .unwrap();
        file.set_len(16384).unwrap();
    });
    let out = restore_drill(f, vec![], &truncated.display().to_string(), rows(3000))
        .run()
        .expect_code(1);
    out.step("restore")
        .failed_with("mariabackup --prepare of a copy of the backup")
        .says("ibdata1");
    cluster_gone(&out);
}

/// Ctrl-C while a check runs on the throwaway mariadbd: it goes, with its directory.
#[test]
fn ctrl_c_while_the_throwaway_mariadbd_runs_removes_it() {
    let Some(f) = fixture() else { return };
    let from = f.external().display().to_string();
    let hold = vec![query("hold", "SELECT SLEEP(60)", 0)];
    let mut run = restore_drill(f, vec![], &from, hold).start();
    run.wait_running("verify");
    let deadline = Instant::now() + Duration::from_secs(30);
    while processes_mentioning("restore-drill-mariadb-").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the throwaway mariadbd never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster_gone(&run.interrupt());
}

/// mariabackup reads the source's datadir: a backup output inside it is refused before
/// anything is written.
#[test]
fn a_mariabackup_output_inside_the_source_datadir_is_refused() {
    let Some(f) = fixture() else { return };
    let inside = f.server.data_dir().join("evil/b").display().to_string();
    let backup = backup("mysql", &inside)
        .set("method", "mariabackup")
        .set("url", f.server.url("app"));
    let out = f
        .server
        .drill(pb("maria_guard").step(backup))
        .run()
        .expect_code(1);
    out.step("backup")
        .failed_with(&format!("refusing to write output {inside}"))
        .says("the source server's datadir");
    assert!(!f.server.data_dir().join("evil").exists());
}

/// The shipped `playbooks/mariadb-physical.toml`: the rows before its backup come back,
/// the ones after do not, the server is gone, the marker table is dropped from the
/// source at cleanup, and the password is in no process's command line meanwhile.
#[test]
fn shipped_mariadb_physical_playbook_passes_and_cleans_up() {
    let Some(f) = fixture() else { return };
    let playbook = include_str!("../../playbooks/mariadb-physical.toml");
    let out = Drill::new(playbook)
        .env("MYSQL_PWD", f.server.password())
        .arg("--var")
        .arg(&format!("mysql_url={}", f.server.plain_url("app")))
        .arg("--var")
        .arg(&format!("os_user={}", os_user()));
    // The password never in a command line: mariabackup reads it from an option file.
    let (out, seen) = out
        .start()
        .watch_processes(f.server.password(), "--backup --target-dir=");
    let out = out.expect_code(0);
    assert!(!seen.is_empty(), "never saw mariabackup while sampling");
    out.step("verify").all_checks_passed();
    cluster_gone(&out);
    let left = f
        .server
        .sql("app", "SHOW TABLES LIKE 'restore_drill_marker'");
    assert_eq!(left, "", "the marker table was left on the source");
}
