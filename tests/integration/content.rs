//! What row counts cannot see (issue 14): a value changed in one row, a sequence behind
//! its key, a view and a trigger dropped, a role missing and a grant revoked. On each
//! engine a clean restore passes `table_digests`, `sequences`, `objects_exist` (and
//! `roles_exist`), and a restore with every fault fails each check naming its fault,
//! while the row counts stay equal.

use serde_json::json;

use super::*;

/// The checks of a restore against the backup's outputs; `counts` passes in every test.
fn content_checks() -> Vec<Table> {
    vec![
        builtin("counts", "table_counts").set("compare_to", "{{ steps.backup.table_counts }}"),
        builtin("digests", "table_digests").set("compare_to", "{{ steps.backup.table_digests }}"),
        builtin("sequences", "sequences"),
        builtin("objects", "objects_exist").set("compare_to", "{{ steps.backup.objects }}"),
    ]
}

/// `roles_exist` for `roles`, with `grants` (an inline TOML table).
fn roles_check(roles: &[&str], grants: &str) -> Table {
    builtin("roles", "roles_exist")
        .set("roles", list(roles))
        .set("grants", raw(grants))
}

/// The checks that failed in `verify`, each saying each of its texts.
fn failing(out: &Outcome, checks: &[(&str, &[&str])]) {
    let verify = out.step("verify");
    let names: Vec<&str> = checks.iter().map(|(name, _)| *name).collect();
    assert_eq!(verify.failed_checks(), names);
    for (name, texts) in checks {
        for text in *texts {
            verify.check(name).says(text);
        }
    }
}

// ---------------------------------------------------------------------------------------
// SQLite

/// Besides `make_db`'s tables: a view, a trigger, and an AUTOINCREMENT table whose rows
/// hold NULL, an empty text, -0.0 and blobs.
const SQLITE_EXTRA: &str = "
CREATE VIEW v_api AS SELECT * FROM dispatches WHERE service_id = 1;
CREATE TRIGGER trg_services AFTER INSERT ON services BEGIN SELECT 1; END;
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, note TEXT, weight REAL, payload BLOB);
INSERT INTO events (note, weight, payload) VALUES ('a', 1.5, x'00'), (NULL, -0.0, x''), ('', NULL, NULL);";

/// The source `src.db` of 500 rows with [`SQLITE_EXTRA`], made before the drill (a drill
/// never writes to its source).
fn with_source(d: Drill) -> Drill {
    let d = d.db("src.db", 500);
    let conn = rusqlite::Connection::open(d.path().join("src.db")).unwrap();
    conn.execute_batch(SQLITE_EXTRA).unwrap();
    d
}

/// A SQLite drill: backup with `digests` (and `backup_fields`), restore, `tampering` of
/// the restored copy, and `verify`.
fn sqlite_drill(backup_fields: &str, tampering: Option<&str>) -> Outcome {
    let backup = sqlite_backup("{{ vars.source }}", "{{ drill.workdir }}/b/backup.db");
    let restored = "{{ drill.workdir }}/r/restored.db";
    let mut book = pb("t")
        .var("source", "src.db")
        .step(backup.set("digests", true).fields(backup_fields))
        .step(sqlite_restore("{{ steps.backup.path }}", restored));
    if let Some(statements) = tampering {
        book = book.step(tamper("sqlite", "{{ steps.restore.target }}", statements));
    }
    let verify = sql("verify", "sqlite", "{{ steps.restore.target }}").checks(content_checks());
    with_source(book.step(verify).drill()).run()
}

#[test]
fn sqlite_content_checks_pass_on_a_clean_restore() {
    let out = sqlite_drill("", None).expect_code(0);
    out.step("verify").all_checks_passed();
    let hashed = "3 tables match the source's digests (505 rows hashed)";
    out.step("verify").check("digests").says(hashed);
    let digests = out.output("backup", "table_digests");
    assert_eq!(digests["dispatches"]["rows"], 500, "{digests}");
    assert_eq!(digests["dispatches"]["key"], "id");
    assert_eq!(
        digests["dispatches"]["ranges"].as_array().unwrap().len(),
        16
    );
    assert_eq!(
        out.output("backup", "objects"),
        json!(["trigger trg_services", "view v_api"])
    );
    assert_eq!(
        out.output("backup", "objects"),
        out.output("restore", "objects")
    );
}

#[test]
fn sqlite_content_faults_fail_each_check_naming_them() {
    let faults = "UPDATE dispatches SET created_at = '2026-01-01T00:00:01Z' WHERE id = 250;
        UPDATE events SET note = NULL WHERE id = 3;
        UPDATE sqlite_sequence SET seq = 1 WHERE name = 'events';
        DROP VIEW v_api; DROP TRIGGER trg_services;";
    let out = sqlite_drill("", Some(faults)).expect_code(1);
    failing(
        &out,
        &[
            (
                "digests",
                &[
                    "dispatches: content differs: 500 rows hashed, source had 500; first differing range: id 225..256",
                    // An empty text became NULL.
                    "events: content differs: 3 rows hashed, source had 3; first differing range: id 3..3",
                ],
            ),
            (
                "sequences",
                &["sqlite_sequence `events` is at 1, behind the largest rowid of events, 3"],
            ),
            (
                "objects",
                &["missing objects: trigger trg_services, view v_api"],
            ),
        ],
    );
}

/// `sequences` over a database where no sequence feeds a key checks nothing: it fails
/// saying so, rather than passing as if every sequence were ahead.
#[test]
fn sequences_over_a_database_without_any_fail_as_nothing_checked() {
    let check = sql("verify", "sqlite", "src.db").checks(builtin("sequences", "sequences"));
    let out = pb("t")
        .step(check)
        .drill()
        .db("src.db", 10)
        .run()
        .expect_code(1);
    out.step("verify").check("sequences").failed_with(
        "nothing to check: no sequence (AUTO_INCREMENT, sqlite_sequence entry, SEQUENCE) feeds a key",
    );
}

/// `tables` narrows `table_digests` to the tables listed (a change elsewhere is not
/// seen), says how many rows it hashed, and a listed table the backup did not digest is
/// an error naming it.
#[test]
fn sqlite_table_digests_of_listed_tables_only() {
    let changed = "UPDATE dispatches SET created_at = 'x' WHERE id = 250; CREATE TABLE extra (x);";
    let backup = sqlite_backup("src.db", "{{ drill.workdir }}/b/backup.db").set("digests", true);
    let digests = |name: &str, tables: &[&str]| {
        builtin(name, "table_digests")
            .set("compare_to", "{{ steps.backup.table_digests }}")
            .set("tables", list(tables))
    };
    let verify = sql("verify", "sqlite", "{{ steps.restore.target }}")
        .checks([digests("events", &["events"]), digests("extra", &["extra"])]);
    let drill = pb("t")
        .step([backup])
        .step(sqlite_restore(
            "{{ steps.backup.path }}",
            "{{ drill.workdir }}/r.db",
        ))
        .step(tamper("sqlite", "{{ steps.restore.target }}", changed))
        .step(verify)
        .drill();
    let out = with_source(drill).run().expect_code(1);
    let verify = out.step("verify");
    verify
        .check("events")
        .passed()
        .says("1 table matches the source's digests (3 rows hashed)");
    verify
        .check("extra")
        .failed()
        .says("extra: not among the tables of `compare_to`");
}

/// A sample hashes some rows, the same on both sides.
#[test]
fn sqlite_digests_of_a_sample_hash_some_rows_and_pass() {
    let out = sqlite_drill("sample = 0.25", None).expect_code(0);
    out.step("verify").check("digests").passed();
    let dispatches = &out.output("backup", "table_digests")["dispatches"];
    assert_eq!(dispatches["sample"], 0.25);
    let rows = dispatches["rows"].as_u64().unwrap();
    assert!(
        rows > 50 && rows < 250,
        "{rows} of 500 rows in a 25% sample"
    );
}

#[test]
fn validate_refuses_table_digests_of_a_backup_without_digests() {
    let backup = sqlite_backup("src.db", "copy.db");
    let check =
        builtin("digests", "table_digests").set("compare_to", "{{ steps.backup.table_digests }}");
    let book = pb("t")
        .step(backup)
        .step(sql("verify", "sqlite", "copy.db").checks(check));
    book.drill()
        .validate()
        .expect_code(2)
        .stderr_has("step `backup` has no output `table_digests`")
        .stderr_has("a backup outputs `table_digests` with `digests = true`");
}

#[test]
fn sqlite_roles_exist_is_refused_at_validate() {
    let check = roles_check(&["app"], "{ app = [\"SELECT:dispatches\"] }");
    let book = pb("t").step(sql("verify", "sqlite", "db.sqlite").checks(check));
    book.drill().validate().expect_code(2).stderr_has(
        "check `roles` of step `verify` cannot run on engine `sqlite`: SQLite has no roles",
    );
}

// ---------------------------------------------------------------------------------------
// PostgreSQL

/// Besides pgbench's tables and `shop`: a serial key, a view, a trigger and its function.
const PG_EXTRA: &str = r"
CREATE TABLE shop.notes (id serial PRIMARY KEY, body text, weight float8, blob bytea);
INSERT INTO shop.notes (body, weight, blob) SELECT 'n' || i, i / 3.0, '\x00ff' FROM generate_series(1, 100) i;
INSERT INTO shop.notes (body, weight) VALUES ('', NULL), (NULL, -0.0);
CREATE VIEW shop.big_orders AS SELECT * FROM shop.orders WHERE total > 400;
CREATE FUNCTION shop.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON shop.orders FOR EACH ROW EXECUTE FUNCTION shop.touch();
";

/// The app drill (with `PG_EXTRA` and `setup`) restoring into a throwaway cluster, with
/// digests, where `app` is created and granted SELECT on shop.orders, then `tampering`,
/// then `content`.
fn pg_drill(setup: &str, tampering: &str, roles: Table) -> Option<Outcome> {
    pg_drill_with(setup, tampering, roles, "digests = true", |d| d)
}

/// `pg_drill` with `backup` as the backup step's own fields, its run edited by `edit`
/// (its environment).
fn pg_drill_with(
    setup: &str,
    tampering: &str,
    roles: Table,
    backup: &str,
    edit: impl FnOnce(Drill) -> Drill,
) -> Option<Outcome> {
    use super::postgres::{EPHEMERAL, PgServer, custom_drill};
    let server = PgServer::start("content (postgres)")?;
    server.sql("app", &format!("{PG_EXTRA}{setup}"));
    let app = "CREATE ROLE app LOGIN; GRANT USAGE ON SCHEMA shop TO app; GRANT SELECT ON shop.orders TO app;";
    let target = "{{ steps.restore.target }}";
    let mut steps = tamper("postgres", target, &format!("{app}\n{tampering}")).to_string();
    let content = sql("verify_content", "postgres", target)
        .checks(content_checks())
        .checks(roles);
    steps.push_str(&content.to_string());
    let drill = custom_drill(
        &server,
        EPHEMERAL,
        &[("#BACKUP#", backup), ("#AFTER_RESTORE#", &steps)],
    );
    Some(edit(drill).run())
}

#[test]
fn postgres_content_checks_pass_on_a_clean_restore() {
    let roles = roles_check(&["app"], "{ app = [\"SELECT:shop.orders\"] }");
    let Some(out) = pg_drill("", "", roles) else {
        return;
    };
    let out = out.expect_code(0);
    out.step("verify_content").all_checks_passed();
    let objects = out.output("backup", "objects");
    for object in [
        "view shop.big_orders",
        "trigger shop.orders.orders_touch",
        "function shop.touch()",
        "sequence shop.notes_id_seq",
        "extension plpgsql",
    ] {
        assert!(
            objects.as_array().unwrap().contains(&json!(object)),
            "{object}: {objects}"
        );
    }
    let digests = out.output("backup", "table_digests");
    assert_eq!(digests["shop.orders"]["rows"], 10000, "{digests}");
}

#[test]
fn postgres_content_faults_fail_each_check_naming_them() {
    let faults = "UPDATE shop.orders SET total = total + 1 WHERE id = 5000;
        UPDATE shop.notes SET body = NULL WHERE body = '';
        SELECT setval('shop.notes_id_seq', 50);
        DROP VIEW shop.big_orders; DROP TRIGGER orders_touch ON shop.orders;
        REVOKE SELECT ON shop.orders FROM app;";
    let roles = roles_check(&["app", "auditor"], "{ app = [\"SELECT:shop.orders\"] }");
    let Some(out) = pg_drill("", faults, roles) else {
        return;
    };
    let out = out.expect_code(1);
    let content = out.step("verify_content");
    assert_eq!(
        content.failed_checks(),
        ["digests", "sequences", "objects", "roles"]
    );
    content
        .check("digests")
        .says("shop.orders: content differs: 10000 rows hashed, source had 10000; first differing range: id 4376..5000")
        .says("shop.notes: content differs");
    content.check("sequences").says(
        "sequence shop.notes_id_seq is at 50, next value 51, not past max(shop.notes.id) = 102",
    );
    content
        .check("objects")
        .says("missing objects: trigger shop.orders.orders_touch, view shop.big_orders");
    content
        .check("roles")
        .says("role auditor does not exist")
        .says("role app lacks SELECT on shop.orders");
}

/// A table of about 22 MB, more than two pieces of 1024 pages: the backup (in the dump's
/// exported snapshot) and the check each split it among their connections by heap pages.
/// Each side hashes every row once (160000 rows each), and a change to its last row is
/// found in the last range while the other ranges, added up from both pieces, match.
#[test]
fn postgres_digests_split_a_large_table_among_connections() {
    let big = "CREATE TABLE shop.big (id int8 PRIMARY KEY, body text);
        INSERT INTO shop.big SELECT i, repeat(md5(i::text), 3) FROM generate_series(1, 160000) i;";
    let tampering = "UPDATE shop.big SET body = 'changed' WHERE id = 160000;";
    let roles = roles_check(&["app"], "{ app = [\"SELECT:shop.orders\"] }");
    let Some(out) = pg_drill(big, tampering, roles) else {
        return;
    };
    only_digests_differ(out, "shop.big", 160000, "id 150001..160000");
}

/// Only `digests` failed, on `table` of `rows` rows (at backup and at the check), its
/// first differing range `range`.
fn only_digests_differ(out: Outcome, table: &str, rows: u64, range: &str) {
    let out = out.expect_code(1);
    assert_eq!(out.output("backup", "table_digests")[table]["rows"], rows);
    let content = out.step("verify_content");
    assert_eq!(content.failed_checks(), ["digests"]);
    content.check("digests").says(&format!(
        "{table}: content differs: {rows} rows hashed, source had {rows}; first differing range: {range}"
    ));
}

/// Rows are hashed as the lines of `COPY ... TO STDOUT` (through psql): a value holding a
/// tab, a newline or a backslash is still one row (COPY escapes them), a literal `\t` is
/// not a tab, and NULL is not an empty string.
#[test]
fn postgres_digests_tell_escaped_characters_apart() {
    let odd = r"CREATE TABLE shop.odd (id int PRIMARY KEY, body text);
        INSERT INTO shop.odd VALUES (1, E'a\tb'), (2, E'x\ny\r'), (3, E'back\\slash'), (4, ''), (5, NULL);";
    let tampering = r"UPDATE shop.odd SET body = E'a\\tb' WHERE id = 1;";
    let roles = roles_check(&["app"], "{ app = [\"SELECT:shop.orders\"] }");
    let Some(out) = pg_drill(odd, tampering, roles) else {
        return;
    };
    only_digests_differ(out, "shop.odd", 5, "id 1..1");
}

/// psql failing while it copies a table out fails the backup with psql's message and
/// the table's name (here a psql that only complains, first on PATH).
#[test]
fn postgres_digests_fail_naming_the_table_when_psql_fails() {
    let fake = tempfile::tempdir().unwrap();
    let psql = fake.path().join("psql");
    std::fs::write(&psql, "#!/bin/sh\necho 'psql: out of luck' >&2\nexit 2\n").unwrap();
    std::fs::set_permissions(&psql, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        fake.path().display(),
        std::env::var("PATH").unwrap()
    );
    let roles = roles_check(&["app"], "{ app = [\"SELECT:shop.orders\"] }");
    let Some(out) = pg_drill_with("", "", roles, "digests = true", |d| d.env("PATH", &path)) else {
        return;
    };
    out.expect_code(1)
        .step("backup")
        .failed_with("digesting public.pgbench_accounts: public.pgbench_accounts: psql exited with 2: psql: out of luck");
}

/// Where the backup finds no psql (its `pg_bin_dir` holds pg_dump and pg_restore only),
/// it copies the rows out on its own connections: the same lines, so the same digests
/// as the check's, made through psql, on values COPY escapes; and a change is found.
#[test]
fn postgres_digests_without_psql_at_backup_equal_those_made_through_it() {
    let Some(bin) = super::server::postgres_bin() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for tool in ["pg_dump", "pg_restore"] {
        std::os::unix::fs::symlink(bin.join(tool), dir.path().join(tool)).unwrap();
    }
    let backup = format!("digests = true\npg_bin_dir = \"{}\"", dir.path().display());
    let odd = r"CREATE TABLE shop.odd (id int PRIMARY KEY, body text);
        INSERT INTO shop.odd VALUES (1, E'a\tb'), (2, E'x\ny\r'), (3, E'back\\slash'), (4, ''), (5, NULL);";
    let roles = || roles_check(&["app"], "{ app = [\"SELECT:shop.orders\"] }");
    let Some(out) = pg_drill_with(odd, "", roles(), &backup, |d| d) else {
        return;
    };
    out.expect_code(0)
        .step("verify_content")
        .all_checks_passed();
    let tampering = "UPDATE shop.odd SET body = 'changed' WHERE id = 4;";
    let Some(out) = pg_drill_with(odd, tampering, roles(), &backup, |d| d) else {
        return;
    };
    only_digests_differ(out, "shop.odd", 5, "id 4..4");
}

// ---------------------------------------------------------------------------------------
// MySQL / MariaDB

/// Besides the shop: a view, and a table with an empty text and a NULL.
const MYSQL_EXTRA: &str = "CREATE VIEW v_orders AS SELECT id, total FROM orders;
CREATE TABLE notes (id INT PRIMARY KEY, body TEXT);
INSERT INTO notes VALUES (1, 'a'), (2, ''), (3, NULL);";

/// The shop drill with `MYSQL_EXTRA` in the source and digests at backup, then
/// `tampering` of the scratch database, then `verify` with the content checks and
/// `roles` of a user `app_N` (made here, as root, with SELECT on the scratch database,
/// `revoked` or not; the drill's own user may not grant).
fn mysql_drill(tampering: &str, revoked: bool, roles: impl Fn(&str) -> Table) -> Option<Outcome> {
    let server = super::mysql::mariadb()?;
    let (playbook, source, scratch) = super::mysql::shop(server);
    server.sql(&source, MYSQL_EXTRA);
    let user = format!("app_{}", source.trim_start_matches("shop_"));
    server.sql(
        "",
        &format!("CREATE USER '{user}'@'%'; GRANT SELECT ON `{scratch}`.* TO '{user}'@'%'"),
    );
    if revoked {
        server.sql(
            "",
            &format!("REVOKE SELECT ON `{scratch}`.* FROM '{user}'@'%'"),
        );
    }
    let verify = sql("verify", "mysql", "{{ vars.scratch }}")
        .checks(content_checks())
        .checks(roles(&user));
    let playbook = playbook
        .edit("backup", |s| s.set("digests", true))
        .edit("verify", |_| verify)
        .after("restore", tamper("mysql", "{{ vars.scratch }}", tampering));
    let out = server.drill(playbook).run();
    server.sql("", &format!("DROP USER '{user}'@'%'"));
    Some(out)
}

/// `roles_exist` of `user` and `more`, with SELECT on orders.
fn select_orders(user: &str, more: &[&str]) -> Table {
    let roles: Vec<&str> = std::iter::once(user).chain(more.iter().copied()).collect();
    roles_check(&roles, &format!("{{ {user} = [\"SELECT:orders\"] }}"))
}

#[test]
fn mysql_content_checks_pass_on_a_clean_restore() {
    let Some(out) = mysql_drill("DO 0", false, |u| select_orders(u, &[])) else {
        return;
    };
    let out = out.expect_code(0);
    out.step("verify").all_checks_passed();
    assert_eq!(
        out.output("backup", "objects"),
        json!([
            "function order_count",
            "trigger trg_orders_audit",
            "view v_orders"
        ])
    );
    assert_eq!(out.output("backup", "table_digests")["orders"]["rows"], 400);
}

/// `roles_exist` with roles alone, or with grants alone, checks what it is given (it
/// is "nothing to check" only with neither, which `validate` refuses).
#[test]
fn roles_exist_checks_roles_alone_or_grants_alone() {
    let roles_only = |u: &str| roles_check(&[u], "{}");
    let grants_only = |u: &str| roles_check(&[], &format!("{{ {u} = [\"SELECT:orders\"] }}"));
    let kinds: [&dyn Fn(&str) -> Table; 2] = [&roles_only, &grants_only];
    for (kind, roles) in ["roles", "grants"].into_iter().zip(kinds) {
        let Some(out) = mysql_drill("DO 0", false, roles) else {
            return;
        };
        let out = out.expect_code(0);
        let held = match kind {
            "roles" => "1 role exist and can log in; 0 grants hold",
            _ => "0 roles exist and can log in; 1 grant hold",
        };
        out.step("verify").check("roles").passed().says(held);
    }
}

#[test]
fn mysql_content_faults_fail_each_check_naming_them() {
    let faults = "UPDATE orders SET total = total + 1 WHERE id = 200;
        UPDATE notes SET body = NULL WHERE body = '';
        DROP VIEW v_orders; DROP TRIGGER trg_orders_audit;";
    let roles = |u: &str| select_orders(u, &["auditor_nobody"]);
    let Some(out) = mysql_drill(faults, true, roles) else {
        return;
    };
    let out = out.expect_code(1);
    failing(
        &out,
        &[
            (
                "digests",
                &[
                    "orders: content differs: 400 rows hashed, source had 400; first differing range: id 176..200",
                    "notes: content differs: 3 rows hashed, source had 3; first differing range: id 2..2",
                ],
            ),
            (
                "objects",
                &["missing objects: trigger trg_orders_audit, view v_orders"],
            ),
            (
                "roles",
                &[
                    "user auditor_nobody does not exist",
                    "lacks SELECT on orders",
                ],
            ),
        ],
    );
}

/// InnoDB moves AUTO_INCREMENT past any key written (and a table whose key a MariaDB
/// sequence feeds does not restore from mariadb-dump: its LOCK TABLES leaves the sequence
/// out), so a key falls behind through a sequence restarted in place: checked on a
/// database as it is, without a restore.
#[test]
fn mysql_sequences_name_a_sequence_behind_the_key_it_feeds() {
    let Some(server) = super::mysql::mariadb() else {
        return;
    };
    let db = format!("seqs_{}", std::process::id());
    server.sql("", &format!("CREATE DATABASE `{db}`"));
    server.sql(
        &db,
        "CREATE SEQUENCE note_seq;
        CREATE TABLE notes (id BIGINT PRIMARY KEY DEFAULT NEXTVAL(note_seq), body TEXT);
        CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY);
        INSERT INTO notes (body) VALUES ('a'), ('b'), ('c'); INSERT INTO audit VALUES (), ();
        ALTER SEQUENCE note_seq RESTART WITH 2;",
    );
    let check = sql("verify", "mysql", "{{ vars.db }}").checks(builtin("sequences", "sequences"));
    let out = server
        .drill(pb("t").var("db", server.url(&db)).step(check))
        .run();
    server.sql("", &format!("DROP DATABASE `{db}`"));
    let out = out.expect_code(1);
    let sequences = out.step("verify").check("sequences");
    sequences.failed_with("sequence note_seq (feeding notes.id) is at 2, not above max(id) = 3");
    assert!(
        !sequences.message().contains("audit"),
        "AUTO_INCREMENT is ahead"
    );
}

/// A statement that fails after others in `execute` fails the step (the crate's
/// `query_drop` dropped the error and stopped there silently).
#[test]
fn mysql_execute_fails_on_an_error_after_the_first_statement() {
    let Some(server) = super::mysql::mariadb() else {
        return;
    };
    let (playbook, _, _) = super::mysql::shop(server);
    let broken = tamper(
        "mysql",
        "{{ vars.scratch }}",
        "DO 0; SELECT * FROM no_such_table",
    );
    let out = server
        .drill(playbook.after("restore", broken))
        .run()
        .expect_code(1);
    out.step("tamper").failed_with("no_such_table");
}
