//! MySQL/MariaDB drills end to end against a real `mariadbd` that the tests start once
//! (see `server.rs`) on a free loopback port with its data and socket in a temporary
//! directory, and stop at the end (never a system service).

use super::*;

/// The server the tests share, or None after a loud skip.
pub fn mariadb() -> Option<&'static Server> {
    Server::shared(Engine::MariaDb, "mysql")
}

fn password() -> &'static str {
    Engine::MariaDb.login().1
}

/// A source database `db` with foreign keys, indexes, a trigger and a routine.
fn make_source(server: &Server, db: &str) {
    server.sql("", &format!(
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

static NEXT_DB: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A fresh source database and a scratch name, and the drill using them: a zstd dump,
/// its restore into the scratch database, and `verify` (the schema checks against the
/// backup and the routine).
pub fn shop(server: &Server) -> (Playbook, String, String) {
    let n = NEXT_DB.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let source = format!("shop_{}_{n}", std::process::id());
    let scratch = format!("drill_scratch_{}_{n}", std::process::id());
    make_source(server, &source);
    let backup =
        backup("mysql", "{{ drill.workdir }}/b/dump.sql.zst").set("url", "{{ vars.source }}");
    let orders = "{{ steps.backup.table_counts.orders }}";
    let routine = query("routine restored", "SELECT order_count()", orders);
    let playbook = pb("t")
        .var("source", server.url(&source))
        .var("scratch", server.url(&scratch))
        .step(backup.set("compression", "zstd"))
        .step(restore("mysql", "{{ steps.backup.path }}").set("target_url", "{{ vars.scratch }}"))
        .step(
            sql("verify", "mysql", "{{ vars.scratch }}")
                .checks(compare_checks())
                .checks(routine),
        );
    (playbook, source, scratch)
}

/// Exactly these checks of `verify` failed, each saying its text.
fn failing(out: &Outcome, checks: &[(&str, &str)]) {
    let verify = out.step("verify");
    let names: Vec<&str> = checks.iter().map(|(name, _)| *name).collect();
    assert_eq!(verify.failed_checks(), names);
    for (name, says) in checks {
        verify.check(name).says(says);
    }
}

/// The scratch database is gone (`when`: after what).
fn dropped(server: &Server, scratch: &str, when: &str) {
    let dbs = server.databases();
    let left = dbs.iter().any(|d| d == scratch);
    assert!(
        !left,
        "scratch database {scratch} left behind {when}: {dbs:?}"
    );
}

/// A `sql` step that runs `statements` on the scratch database after the restore.
fn tamper_scratch(statements: &str) -> Step {
    tamper("mysql", "{{ vars.scratch }}", statements)
}

#[test]
fn a_mysql_drill_passes_and_drops_its_scratch_database() {
    let Some(server) = mariadb() else { return };
    let (playbook, source, scratch) = shop(server);
    let out = server.drill(playbook).run().expect_code(0);
    assert_eq!(
        out.output("backup", "table_counts"),
        serde_json::json!({"audit": 400, "customers": 50, "legacy": 20, "orders": 400})
    );
    assert_eq!(out.output("restore", "table_counts")["orders"], 400);
    out.step("verify").all_checks_passed();
    let dbs = server.databases();
    assert!(dbs.contains(&source), "the source must stay");
    assert!(
        !dbs.contains(&scratch),
        "scratch database {scratch} left behind: {dbs:?}"
    );
    let resources = out.record()["resources"].to_string();
    assert!(resources.contains(&scratch), "{resources}");
}

/// A connection opened only for checks is read-only: a check whose query writes (pointed
/// at a source, InnoDB and MyISAM alike) fails, and the tables keep their rows.
#[test]
fn a_checks_only_connection_never_writes() {
    let Some(server) = mariadb() else { return };
    let (_, source, _) = shop(server);
    let count = format!(
        "SELECT (SELECT COUNT(*) FROM `{source}`.customers) + (SELECT COUNT(*) FROM `{source}`.legacy)"
    );
    let before = server.sql("", &count);
    let verify = sql("verify", "mysql", &server.url(&source)).checks([
        query("innodb", "DELETE FROM customers WHERE id <= 20", 0),
        query("myisam", "DELETE FROM legacy WHERE id <= 5", 0),
    ]);
    let out = server.drill(pb("t").step(verify)).run().expect_code(1);
    out.check("innodb").failed_with("READ ONLY");
    out.check("myisam").failed_with("READ ONLY");
    assert_eq!(
        server.sql("", &count),
        before,
        "a check wrote to the database"
    );
}

#[test]
fn a_missing_table_fails_tables_exist_and_table_counts() {
    let Some(server) = mariadb() else { return };
    let (playbook, _, scratch) = shop(server);
    let playbook = playbook.after("restore", tamper_scratch("DROP TABLE audit"));
    let out = server.drill(playbook).run().expect_code(1);
    failing(
        &out,
        &[
            ("tables", "missing table: audit"),
            ("counts", "audit: missing (source had 400 rows)"),
        ],
    );
    dropped(server, &scratch, "after a failed drill");
}

/// A restore's `target` (shown without its password) serves a later `sql` step as is:
/// the password is reattached in memory and written nowhere. Table names resolve as the
/// mysql client reads them: in the current database, or qualified with it.
#[test]
fn a_restores_target_serves_a_later_sql_step_and_names_resolve_in_its_database() {
    let Some(server) = mariadb() else { return };
    let (playbook, _, scratch) = shop(server);
    let qualified = format!("{scratch}.customers");
    let present = ["orders", &qualified, "`legacy`"];
    let checks = listed_table_checks(&present, "orders", "nope");
    let playbook = playbook.edit("verify", |s| {
        s.set("database", "{{ steps.restore.target }}")
            .checks(checks)
    });
    let out = server.drill(playbook).run().expect_code(1);
    let target = out.output("restore", "target");
    assert!(!target.to_string().contains(password()), "{target}");
    failing(&out, &[("not there", "missing table: nope")]);
    out.step("verify")
        .check("one count")
        .says("1 tables match the source");
    for (what, text) in [("record", out.record().to_string()), ("log", out.log())] {
        assert!(!text.contains(password()), "password in the {what}");
    }
    dropped(server, &scratch, "after the drill");
    super::names::outputs_are_declared(&out);
}

#[test]
fn an_orphan_row_fails_foreign_keys() {
    let Some(server) = mariadb() else { return };
    let (playbook, source, scratch) = shop(server);
    // The orphan is in the source (written with the checks off), so the backup carries
    // it faithfully: only the foreign key check can tell.
    server.sql("", &format!(
        "SET FOREIGN_KEY_CHECKS = 0; INSERT INTO `{source}`.orders VALUES (9999, 777, 1.00, '2026-02-01 00:00:00');"
    ));
    let out = server.drill(playbook).run().expect_code(1);
    let says = "orders.fk_orders_customer: 1 row(s) reference missing customers(id)";
    failing(&out, &[("fks", says)]);
    dropped(server, &scratch, "");
}

#[test]
fn a_dropped_index_or_constraint_fails_its_check() {
    let Some(server) = mariadb() else { return };
    for (statement, check, says) in [
        (
            "DROP INDEX idx_orders_created ON orders",
            "indexes",
            "missing index: idx_orders_created",
        ),
        (
            "ALTER TABLE orders DROP FOREIGN KEY fk_orders_customer",
            "fks",
            "orders.fk_orders_customer is missing",
        ),
    ] {
        let (playbook, _, _) = shop(server);
        let playbook = playbook.after("restore", tamper_scratch(statement));
        failing(
            &server.drill(playbook).run().expect_code(1),
            &[(check, says)],
        );
    }
}

#[test]
fn a_damaged_table_fails_integrity() {
    let Some(server) = mariadb() else { return };
    // Overwrite the head of a restored MyISAM table's index file (after FLUSH TABLES
    // closed it): CHECK TABLE must report the table as corrupt.
    let (playbook, _, scratch) = shop(server);
    let index_file = server.data_dir().join(&scratch).join("legacy.MYI");
    let damage = exec(
        "damage",
        &format!(
            "printf 'CORRUPTCORRUPTCORRUPT' | dd of={} bs=1 seek=0 conv=notrunc 2>/dev/null",
            index_file.display()
        ),
    );
    let playbook = playbook.after("restore", [tamper_scratch("FLUSH TABLES"), damage]);
    let verify = server.drill(playbook).run().expect_code(1).step("verify");
    assert!(
        verify.failed_checks().contains(&"integrity".to_string()),
        "{verify:#}"
    );
    eprintln!("integrity: {}", verify.check("integrity").message());
    dropped(server, &scratch, "");
}

#[test]
fn a_corrupted_or_truncated_dump_fails_its_restore() {
    let Some(server) = mariadb() else { return };
    let bad_sql =
        "sed -i 's/^INSERT INTO `orders`/INSERT INTO `orders` GARBAGE/' '{{ steps.backup.path }}'";
    let cases = [
        ("zstd", "zstd", corrupt_backup()),
        ("bad SQL", "none", exec("corrupt", bad_sql)),
        ("truncated", "none", truncate_backup("n - 200")),
    ];
    for (what, compression, damage) in cases {
        let (playbook, _, scratch) = shop(server);
        let damage_id = damage.id();
        let playbook = playbook
            .edit("backup", |s| s.set("compression", compression))
            .after("backup", damage);
        let out = server.drill(playbook).run().expect_code(1);
        out.step(&damage_id).passed();
        let restore = out.step("restore");
        restore.failed();
        eprintln!("{what}: {}", restore["error"]);
        out.step("verify").status("not_run");
        dropped(server, &scratch, what);
    }
}

/// A drill killed outright after its restore leaves its scratch database, marked (the
/// schema's comment) with its run: the next run drops it and passes, saying so. One
/// marked by a run still running is refused, and kept.
#[test]
fn a_killed_drills_scratch_database_is_dropped_by_the_next_run_and_only_that() {
    use super::orphans::{hold_while, killed_while_held_then_again, live_mark, warnings_saying};
    let Some(server) = mariadb() else { return };
    let (playbook, _, scratch) = shop(server);
    let hold = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let drill = server.drill(playbook.clone().after("restore", [hold_while(&hold)]));
    let (ran, record) = killed_while_held_then_again(&drill, hold);
    let ran = ran.expect_code(0);
    let dropped = warnings_saying(&record, &format!("dropped `{scratch}`"));
    assert_eq!(dropped.len(), 1, "{}\n{}", record["warnings"], ran.stderr);
    assert!(dropped[0].contains("is gone"), "{dropped:?}");
    assert!(!server.databases().contains(&scratch));

    let mark = live_mark();
    server.sql("", &format!("CREATE DATABASE `{scratch}` COMMENT '{mark}'"));
    let out = server.drill(playbook).run().expect_code(1);
    out.step("restore").says("already exists");
    out.step("restore").says("is still running");
    assert!(server.databases().contains(&scratch));
    server.sql("", &format!("DROP DATABASE `{scratch}`"));
}

/// A retried restore meets the scratch database its failed attempt created: it is this
/// run's, so it is dropped and made afresh, and the retry fails for the dump's own fault
/// (not for "already exists"); the warning says so, and teardown drops it.
#[test]
fn a_retried_restore_makes_its_scratch_database_afresh() {
    let Some(server) = mariadb() else { return };
    let (playbook, _, scratch) = shop(server);
    let bad_sql =
        "sed -i 's/^INSERT INTO `orders`/INSERT INTO `orders` GARBAGE/' '{{ steps.backup.path }}'";
    let playbook = playbook
        .edit("backup", |s| s.set("compression", "none"))
        .after("backup", [exec("corrupt", bad_sql)])
        .edit("restore", |s| {
            s.set("retries", 1).set("retry_delay", "10ms")
        });
    let out = server.drill(playbook).run().expect_code(1);
    let restore = out.step("restore");
    restore.failed();
    assert_eq!(restore["attempts"], 2, "{restore:#}");
    let error = restore["error"].as_str().unwrap();
    assert!(!error.contains("already exists"), "{error}");
    let warnings = out.record()["warnings"].to_string();
    assert!(
        warnings.contains("which an earlier attempt of this step created"),
        "{warnings}"
    );
    dropped(server, &scratch, "retried");
}

/// A second restore of the run into the scratch database the first one made is refused:
/// the first restore's database is what later steps check.
#[test]
fn a_second_restore_into_the_same_scratch_database_is_refused() {
    let Some(server) = mariadb() else { return };
    let (playbook, _, scratch) = shop(server);
    let again = restore("mysql", "{{ steps.backup.path }}")
        .set("id", "restore_again")
        .set("target_url", "{{ vars.scratch }}");
    let out = server
        .drill(playbook.after("restore", [again]))
        .run()
        .expect_code(1);
    out.step("restore").passed();
    out.step("restore_again").says(
        "step `restore` of this run made it (each restore needs a scratch database of its own)",
    );
    dropped(server, &scratch, "second restore");
}

#[test]
fn an_existing_database_or_the_source_is_refused_as_target() {
    let Some(server) = mariadb() else { return };
    let (playbook, _, scratch) = shop(server);
    server.sql(
        "",
        &format!("CREATE DATABASE `{scratch}`; CREATE TABLE `{scratch}`.keep (id INT);"),
    );
    let out = server.drill(playbook).run().expect_code(1);
    out.step("restore").says("already exists");
    // Not created by the drill: not dropped by it either.
    assert!(server.databases().contains(&scratch));
    server.sql("", &format!("DROP DATABASE `{scratch}`"));

    let (playbook, source, _) = shop(server);
    let into_source = playbook.edit("restore", |s| s.set("target_url", "{{ vars.source }}"));
    let out = server.drill(into_source).run().expect_code(1);
    out.step("restore")
        .says("the database this backup was taken from");
    assert!(server.databases().contains(&source));
}

#[test]
fn an_interrupted_drill_drops_its_scratch_database() {
    let Some(server) = mariadb() else { return };
    let (playbook, _, scratch) = shop(server);
    let playbook = playbook.after("restore", wait("pause", "60s"));
    let mut run = server.drill(playbook).start();
    run.wait_step("restore", "passed");
    assert!(server.databases().contains(&scratch));
    run.interrupt();
    dropped(server, &scratch, "after an interrupt");
}

#[test]
fn the_password_never_appears_in_artifacts_logs_reports_or_process_arguments() {
    let Some(server) = mariadb() else { return };
    let (playbook, _, _) = shop(server);
    // Watch every process's arguments while the drill runs.
    let run = server.drill(playbook).arg("--keep-workdir").start();
    let (out, seen) = run.watch_processes(password(), "--defaults-extra-file");
    let out = out.expect_code(0);
    eprintln!("client command lines seen: {seen:?}");
    for (what, text) in [
        ("record", out.record().to_string()),
        ("log", out.log()),
        ("report", out.report()),
        ("stderr", out.stderr.clone()),
    ] {
        assert!(!text.contains(password()), "password in the {what}");
    }
    let kept = out.kept_workdir();
    let workdir = &kept.0;
    for (path, text) in all_files(workdir) {
        assert!(!text.contains(password()), "password in {}", path.display());
    }
    let files = listing(workdir);
    assert!(
        !files.iter().any(|p| p.contains(".my.cnf")),
        "option file left behind: {files:?}"
    );
}

#[test]
fn the_shipped_mysql_playbook_passes() {
    let Some(server) = mariadb() else { return };
    let source = format!("shop_pb_{}", std::process::id());
    make_source(server, &source);
    let text = include_str!("../../playbooks/mysql.toml");
    Drill::new(text).validate().expect_code(0);
    let url = format!("mysql_url={}", server.plain_url(&source));
    let d = Drill::new(text).arg("--var").arg(&url);
    let out = d.env("MYSQL_PWD", password()).run().expect_code(0);
    out.status("passed");
    assert!(!out.log().contains(password()));
    let dbs = server.databases();
    assert!(
        dbs.iter()
            .all(|d| !d.starts_with(&format!("{source}_drill"))),
        "{dbs:?}"
    );
}

#[test]
fn tidb_style_options_and_gzip_reach_mysqldump() {
    let Some(server) = mariadb() else { return };
    let (playbook, _, scratch) = shop(server);
    let tidb = playbook.edit("backup", |s| {
        s.set("compression", "gzip")
            .set("single_transaction", false)
            .set("skip_lock_tables", true)
    });
    let out = server.drill(tidb).run().expect_code(0);
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
    let backup = out.step("backup");
    let path = backup.output("path").as_str().unwrap().to_string();
    assert_eq!(backup.output("compression"), "gzip", "{path}");
    dropped(server, &scratch, "");
}
