//! PostgreSQL drills end to end: each test starts its own throwaway source server (see
//! `server.rs`), loads pgbench's schema plus a `shop` schema with foreign keys and
//! indexes, runs the real binary against it, and stops and removes the server when
//! dropped.

use super::*;

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

/// The source server of a test: PostgreSQL with an `app` database holding pgbench's
/// tables and `shop`. (`PgServer::start(suite)` is the name other test files use.)
pub struct PgServer;

impl PgServer {
    /// A started source server, or None after a loud skip (see [`Server::start`]).
    pub fn start(suite: &str) -> Option<Server> {
        let server = Server::start(Engine::Postgres, suite)?;
        server.sql("postgres", "CREATE DATABASE app");
        let socket_dir = server.dir().display().to_string();
        let port = server.port.to_string();
        let out = Command::new(server.program("pgbench"))
            .args(["-i", "-I", "dtgvpf", "-s", "1", "-q", "-U", "postgres"])
            .args(["-h", &socket_dir, "-p", &port, "app"])
            .output()
            .expect("pgbench");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "pgbench -i: {stderr}");
        server.sql("app", SHOP);
        Some(server)
    }
}

fn source() -> Option<Server> {
    PgServer::start("postgres")
}

fn password() -> &'static str {
    Engine::Postgres.login().1
}

/// The `os_user` a drill needs here: postgres as root, none otherwise.
fn os_user() -> &'static str {
    if is_root() { "postgres" } else { "" }
}

pub use super::expect::processes_mentioning;

/// The drill of the `app` database: a custom-format backup, its manifest,
/// `verify_backup`, `restore` (its target is the caller's), and `verify` (the customers
/// and the schema checks against the backup).
fn app_drill(server: &Server) -> Playbook {
    let backup = backup("postgres", "{{ drill.workdir }}/b/app.dump").set("url", server.url("app"));
    let customers = query("customers", "SELECT count(*) FROM shop.customers", 2000);
    pb("pg")
        .var("os_user", "")
        .step(backup.set("format", "custom"))
        .step(manifest_steps())
        .step(restore("postgres", "{{ steps.backup.path }}"))
        .step(
            sql("verify", "postgres", "{{ steps.restore.target }}")
                .checks(customers)
                .checks(compare_checks()),
        )
}

/// The fields of a restore into a throwaway cluster.
pub const EPHEMERAL: &str = "isolation = \"ephemeral\"\njobs = 2\nos_user = \"{{ vars.os_user }}\"";

/// [`app_drill`] restoring into a throwaway cluster.
fn ephemeral(server: &Server) -> Playbook {
    app_drill(server).edit("restore", |s| s.fields(EPHEMERAL))
}

/// A drill of `playbook` on `server`, with the `os_user` this machine needs.
fn drill_on(server: &Server, playbook: Playbook) -> Drill {
    let os_user = format!("os_user={}", os_user());
    server.drill(playbook).arg("--var").arg(&os_user)
}

/// [`app_drill`] with `target` (fields of the restore) and raw steps at the splice points
/// `#BACKUP#` (fields of the backup), `#BEFORE_VERIFY#`, `#BEFORE_RESTORE#` and
/// `#AFTER_RESTORE#`: the name other test files use.
#[allow(dead_code)] // for other test files (orphans.rs)
pub fn custom_drill(server: &Server, target: &str, splices: &[(&str, &str)]) -> Drill {
    let mut playbook = app_drill(server).edit("restore", |s| s.fields(target));
    for (point, text) in splices {
        playbook = match *point {
            "#BACKUP#" => playbook.edit("backup", |s| s.fields(text)),
            "#BEFORE_VERIFY#" => playbook.before("verify_backup", raw_steps(text)),
            "#BEFORE_RESTORE#" => playbook.before("restore", raw_steps(text)),
            "#AFTER_RESTORE#" => playbook.after("restore", raw_steps(text)),
            other => panic!("no splice point {other}"),
        };
    }
    drill_on(server, playbook)
}

/// No artifact the drill wrote holds the password.
fn no_password_in_artifacts(out: &Outcome) {
    for (path, text) in all_files(&out.path().join("artifacts")) {
        assert!(!text.contains(password()), "password in {}", path.display());
    }
}

/// The run's throwaway cluster is removed: its resource, its directory, its processes.
pub fn cluster_gone(out: &Outcome) {
    let cluster = out.resource("cluster");
    assert_eq!(cluster["removed"], true, "{cluster}");
    let dir = cluster["id"].as_str().unwrap();
    assert!(
        !Path::new(dir).exists(),
        "cluster directory {dir} left behind"
    );
    let left = processes_mentioning(dir);
    assert!(left.is_empty(), "processes left: {left:?}");
}

/// The shipped playbook against a real server: passes, its cluster is gone, and the
/// password shows nowhere (artifacts, log, report, the process list while it runs).
#[test]
fn shipped_playbook_passes_cleans_up_and_hides_the_password() {
    let Some(server) = source() else { return };
    let playbook = include_str!("../../playbooks/postgres.toml");
    let d = Drill::new(playbook).env("PGPASSWORD", password());
    let d = d
        .arg("--var")
        .arg(&format!("pg_url={}", server.plain_url("app")));
    let d = d.arg("--var").arg(&format!("os_user={}", os_user()));
    let (out, seen) = d.start().watch_processes(password(), "restore-drill-pg-");
    let out = out.expect_code(0);
    assert!(
        !seen.is_empty(),
        "never saw the throwaway cluster's processes while sampling"
    );
    let backup = out.step("backup");
    assert_eq!(backup.output("counts_in_dump_snapshot"), true);
    let counts = backup.output("table_counts");
    assert_eq!(counts["public.pgbench_accounts"], 100000);
    assert_eq!(counts["shop.order_items"], 30000);
    let verify = out.step("verify");
    assert_eq!(verify["checks"].as_array().unwrap().len(), 5);
    verify.all_checks_passed();
    verify
        .check("btree indexes and heaps pass amcheck")
        .says("passed");
    assert_eq!(out.output("restore", "table_counts")["shop.orders"], 10000);
    cluster_gone(&out);
    no_password_in_artifacts(&out);
}

/// Damage done to the restored database: each builtin check must catch its part.
const TAMPER: &str = "DROP TABLE shop.order_items;
INSERT INTO shop.customers VALUES (5000, 'late@example.com', now());
DROP INDEX shop.orders_placed_idx;
SET session_replication_role = replica;
INSERT INTO shop.orders VALUES (999999, 424242, now(), 1);
SET session_replication_role = origin;
ALTER TABLE shop.orders ADD CONSTRAINT orders_total_fk FOREIGN KEY (customer_id) REFERENCES shop.customers(id) NOT VALID;
CREATE FUNCTION public.key_of(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1';
CREATE INDEX customers_key_idx ON shop.customers (public.key_of(id));
CREATE OR REPLACE FUNCTION public.key_of(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT -$1';
";

/// Table names as psql reads them: unqualified through the search_path (pgbench's
/// tables are in `public`), unquoted ones folded to lower case, qualified ones as they
/// are; `orders` (only in `shop`, not on the search_path) is missing, named as written.
#[test]
fn listed_tables_resolve_through_the_search_path() {
    let Some(server) = source() else { return };
    let present = [
        "pgbench_accounts",
        "PGBENCH_TELLERS",
        "shop.orders",
        "public.pgbench_branches",
    ];
    let checks = listed_table_checks(&present, "pgbench_branches", "orders");
    let playbook = ephemeral(&server).edit("verify", |s| s.checks(checks));
    let out = drill_on(&server, playbook).run().expect_code(1);
    let verify = out.step("verify");
    assert_eq!(verify.failed_checks(), ["not there"]);
    verify.check("not there").says("missing table: orders");
    verify.check("one count").says("1 tables match the source");
    cluster_gone(&out);
}

#[test]
fn tampered_restore_fails_every_check_and_still_cleans_up() {
    let Some(server) = source() else { return };
    let tampered = tamper("postgres", "{{ steps.restore.target }}", TAMPER);
    let playbook = ephemeral(&server).after("restore", tampered);
    let out = drill_on(&server, playbook).run().expect_code(1);
    let verify = out.step("verify");
    verify.failed();
    verify.check("customers").failed_with("expected 2000");
    verify.check("tables").failed_with("shop.order_items");
    verify
        .check("indexes")
        .failed_with("shop.orders_placed_idx");
    let fks = verify.check("fks");
    fks.failed_with("orders_total_fk is NOT VALID");
    fks.says("shop.order_items.order_items_order_id_fkey is missing");
    fks.says("shop.orders.orders_customer_id_fkey")
        .says("reference missing rows");
    verify.check("integrity").failed_with("customers_key_idx");
    let counts = verify.check("counts");
    counts.failed_with("shop.order_items: missing (source had 30000 rows)");
    counts.says("shop.orders: 10001 rows, source had 10000");
    cluster_gone(&out);
    no_password_in_artifacts(&out);
}

#[test]
fn corrupted_dump_fails_at_checksum() {
    let Some(server) = source() else { return };
    let playbook = ephemeral(&server).before("verify_backup", corrupt_backup());
    let out = drill_on(&server, playbook).run().expect_code(1);
    out.step("verify_backup").failed();
    out.step("restore").status("not_run");
}

#[test]
fn truncated_dump_fails_at_restore_with_pg_restores_message() {
    let Some(server) = source() else { return };
    // The damage comes after the checksum was verified: only the restore can notice.
    let playbook = ephemeral(&server).before("restore", truncate_backup("n / 2"));
    let out = drill_on(&server, playbook).run().expect_code(1);
    let restore = out.step("restore");
    let error = restore.failed_with("pg_restore").message();
    assert!(
        error.contains("corrupt") || error.contains("end of file"),
        "{error}"
    );
    cluster_gone(&out);
}

#[test]
fn interrupted_drill_removes_the_cluster() {
    let Some(server) = source() else { return };
    let playbook = ephemeral(&server).after("restore", wait("hold", "60s"));
    let mut run = drill_on(&server, playbook).start();
    let restore = run.wait_step("restore", "passed");
    let cluster_dir = restore["outputs"]["cluster_dir"].as_str().unwrap();
    assert!(Path::new(cluster_dir).exists());
    assert!(
        !processes_mentioning(cluster_dir).is_empty(),
        "the cluster should be running"
    );
    cluster_gone(&run.interrupt());
}

#[test]
fn scratch_database_is_created_dropped_and_never_an_existing_one() {
    let Some(server) = source() else { return };
    // The password is in the urls of the steps (a template of the secret) this time.
    let into = |db: &str| {
        let playbook = app_drill(&server).edit("restore", |s| s.set("target_url", server.url(db)));
        drill_on(&server, playbook)
    };
    let (out, _) = into("drill_scratch")
        .start()
        .watch_processes(password(), "pg_restore");
    let out = out.expect_code(0);
    out.step("verify").all_checks_passed();
    let dbs = server.databases();
    assert!(
        !dbs.iter().any(|d| d.contains("drill_scratch")),
        "scratch database left behind: {dbs:?}"
    );
    no_password_in_artifacts(&out);

    // The source itself: refused, and untouched.
    let out = into("app").run().expect_code(1);
    out.step("restore").says("refusing to restore into `app`");
    let accounts = server.sql("app", "SELECT count(*) FROM pgbench_accounts");
    assert_eq!(accounts, "100000");

    // An existing database: refused, and not dropped at teardown.
    server.sql("postgres", "CREATE DATABASE keep_me");
    let out = into("keep_me").run().expect_code(1);
    out.step("restore").says("already exists");
    assert!(server.databases().contains(&"keep_me".to_string()));
}

/// A drill killed outright after its restore leaves its scratch database, marked with its
/// run: the next run proves by that mark that the run is over, drops it and passes,
/// saying so. A database of that name marked by a run still running is refused, and kept.
#[test]
fn a_killed_drills_scratch_database_is_dropped_by_the_next_run_and_only_that() {
    use super::orphans::{hold_while, killed_while_held_then_again, live_mark, warnings_saying};
    let Some(server) = source() else { return };
    let into =
        |db: &str| app_drill(&server).edit("restore", |s| s.set("target_url", server.url(db)));
    let hold = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let drill = drill_on(
        &server,
        into("drill_left").after("restore", [hold_while(&hold)]),
    );
    let (ran, record) = killed_while_held_then_again(&drill, hold);
    let ran = ran.expect_code(0);
    let dropped = warnings_saying(&record, "dropped `drill_left`");
    assert_eq!(dropped.len(), 1, "{}\n{}", record["warnings"], ran.stderr);
    assert!(
        dropped[0].contains("a drill killed before its teardown"),
        "{dropped:?}"
    );
    assert!(dropped[0].contains("is gone"), "{dropped:?}");
    assert!(
        ran.stderr.contains("dropped `drill_left`"),
        "{}",
        ran.stderr
    );
    assert!(!server.databases().contains(&"drill_left".to_string()));

    server.sql("postgres", "CREATE DATABASE drill_live");
    let comment = format!("COMMENT ON DATABASE drill_live IS '{}'", live_mark());
    server.sql("postgres", &comment);
    let out = drill_on(&server, into("drill_live")).run().expect_code(1);
    out.step("restore").says("already exists");
    out.step("restore").says("its process");
    out.step("restore").says("is still running");
    assert!(server.databases().contains(&"drill_live".to_string()));
}

/// A connection opened only for checks is read-only: a check whose query would write (a
/// DELETE in a CTE, pointed at a source) fails, and the database keeps its rows.
#[test]
fn a_checks_only_connection_never_writes() {
    let Some(server) = source() else { return };
    let count = "SELECT count(*) FROM shop.customers";
    let before = server.sql("app", count);
    let delete =
        "WITH d AS (DELETE FROM shop.customers WHERE id <= 20 RETURNING 1) SELECT count(*) FROM d";
    let verify = sql("verify", "postgres", &server.url("app")).checks([query("sneaky", delete, 0)]);
    let out = server.drill(pb("pg").step(verify)).run().expect_code(1);
    out.check("sneaky").failed_with("read-only transaction");
    assert_eq!(
        server.sql("app", count),
        before,
        "a check wrote to the database"
    );
}

#[test]
fn integrity_without_amcheck_fails_saying_not_available() {
    let Some(server) = source() else { return };
    let verify = sql("verify", "postgres", &server.url("app")).checks([
        builtin("integrity", "integrity"),
        builtin("fks", "foreign_keys"),
    ]);
    let out = server.drill(pb("pg").step(verify)).run().expect_code(1);
    out.check("integrity")
        .failed_with("amcheck is not available");
    out.check("fks").passed();
}

/// The throwaway cluster's `os_user`: required as root (initdb refuses root); as anyone
/// else, one naming another user is refused (switching users needs root). Each user
/// checks its own side: this was a skip for every run but root's.
#[test]
fn os_user_is_required_as_root_and_must_be_the_runner_otherwise() {
    let Some(server) = source() else { return };
    let (os_user, says) = match is_root() {
        true => ("", "os_user = \"postgres\""),
        false => (
            "root",
            "os_user `root` differs from the user running the drill: switching users needs root",
        ),
    };
    let playbook = app_drill(&server).edit("restore", |s| {
        s.set("isolation", "ephemeral").set("os_user", os_user)
    });
    let out = drill_on(&server, playbook).run().expect_code(1);
    out.step("restore").says(says);
}

/// `init --engine postgres` prints the command that runs its starter; run as printed
/// (with this server's url and password), it passes for whoever ran `init`: as root the
/// hint names `--var os_user=postgres` (initdb refuses root; it did not, and the run
/// failed), as anyone else it names no OS user (switching users needs root).
#[test]
fn the_postgres_starter_passes_run_as_its_init_hint_says() {
    let Some(server) = source() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = restore_drill(dir.path(), &["init", "--engine", "postgres"]).expect_code(0);
    let hint = out.stderr.lines().last().unwrap().trim();
    assert_eq!(hint.contains("--var os_user=postgres"), is_root(), "{hint}");
    let starter = std::fs::read_to_string(dir.path().join("postgres-drill.toml")).unwrap();
    let (_, args) = hint.split_once("postgres-drill.toml").unwrap();
    let url = format!("pg_url={}", server.plain_url("app"));
    let drill = args.split_whitespace().fold(Drill::new(&starter), |d, a| {
        d.arg(if a.starts_with("pg_url=") { &url } else { a })
    });
    drill.env("PGPASSWORD", password()).run().expect_code(0);
}

/// zstd: a real zstd frame on disk, restored in parallel (decompressed first) and
/// streamed (decompressed on the fly into pg_restore), both complete.
#[test]
fn zstd_backup_restores_in_parallel_and_streamed() {
    let Some(server) = source() else { return };
    let is_zstd = exec(
        "is_zstd",
        r#"test "$(head -c4 '{{ steps.backup.path }}' | od -An -tx1 | tr -d ' \n')" = 28b52ffd"#,
    );
    let streamed = restore("postgres", "{{ steps.backup.path }}")
        .set("id", "restore_streamed")
        .set("isolation", "ephemeral")
        .set("os_user", "{{ vars.os_user }}");
    let counts =
        builtin("counts", "table_counts").set("compare_to", "{{ steps.backup.table_counts }}");
    let verify = sql(
        "verify_streamed",
        "postgres",
        "{{ steps.restore_streamed.target }}",
    );
    let playbook = ephemeral(&server)
        .edit("backup", |s| s.set("compression", "zstd"))
        .after("restore", [is_zstd, streamed, verify.checks(counts)]);
    let out = drill_on(&server, playbook).run().expect_code(0);
    assert_eq!(
        out.output("backup", "table_counts")["shop.order_items"],
        30000
    );
    for id in ["verify", "verify_streamed"] {
        out.step(id).all_checks_passed();
    }
    out.log_has("app.dump into postgresql://");
    cluster_gone(&out);
}

/// `listen`: TCP on 127.0.0.1 for a service, with the generated password from the
/// passfile; without it the connection is refused.
#[test]
fn ephemeral_cluster_listens_on_tcp_only_with_a_password() {
    let Some(server) = source() else { return };
    let with = exec(
        "tcp_with_passfile",
        "PGPASSFILE='{{ steps.restore.passfile }}' psql -X -A -t -w '{{ steps.restore.target_tcp }}' -c 'SELECT count(*) FROM shop.orders'",
    );
    let without = exec(
        "tcp_without_password",
        "PGPASSFILE=/dev/null PGPASSWORD= psql -X -A -t -w '{{ steps.restore.target_tcp }}' -c 'SELECT 1'",
    );
    let playbook = ephemeral(&server)
        .edit("restore", |s| s.set("listen", "127.0.0.1"))
        .after("restore", [with, without.set("expect_exit", 2)]);
    let out = drill_on(&server, playbook).run().expect_code(0);
    let with = out.step("tcp_with_passfile");
    assert_eq!(
        with.output("stdout").as_str().unwrap().trim(),
        "10000",
        "{with}"
    );
    out.step("tcp_without_password")
        .output_has("stderr", "password");
    cluster_gone(&out);
    super::names::outputs_are_declared(&out);
}
