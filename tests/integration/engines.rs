//! Every engine reports what it did under the same output names: a backup's `path`,
//! `bytes`, `snapshot_at`; a restore's `target`, `from`, `bytes`; and every SQL engine
//! the same schema facts (`table_counts`, `tables`, `indexes`, `foreign_keys`, `objects`)
//! at backup and at restore, equal when nothing changed in between.

use super::*;

const BACKUP_OUTPUTS: [&str; 3] = ["path", "bytes", "snapshot_at"];
const RESTORE_OUTPUTS: [&str; 3] = ["target", "from", "bytes"];
const SCHEMA_FACTS: [&str; 4] = ["table_counts", "tables", "indexes", "foreign_keys"];

/// The outputs every engine gives, at backup and at restore.
fn common_outputs(out: &Outcome, backup: &str, restore: &str) -> (Value, Value) {
    let b = out.step(backup)["outputs"].clone();
    let r = out.step(restore)["outputs"].clone();
    for key in BACKUP_OUTPUTS {
        assert!(b.get(key).is_some(), "backup output `{key}` missing: {b}");
    }
    for key in RESTORE_OUTPUTS {
        assert!(r.get(key).is_some(), "restore output `{key}` missing: {r}");
    }
    assert!(b["bytes"].as_u64().is_some_and(|n| n > 0), "{b}");
    assert!(b["snapshot_at"].is_string(), "{b}");
    (b, r)
}

/// The schema facts of a SQL engine: present at backup and at restore, of one shape
/// (`tables` are the keys of `table_counts`), and the restored copy's equal the backup's.
/// Returns the backup's foreign keys.
fn same_schema_facts(out: &Outcome, backup: &str, restore: &str) -> Vec<String> {
    let (b, r) = common_outputs(out, backup, restore);
    for (what, o) in [("backup", &b), ("restore", &r)] {
        for key in SCHEMA_FACTS {
            assert!(o.get(key).is_some(), "{what} output `{key}` missing: {o}");
        }
        let counts = o["table_counts"]
            .as_object()
            .expect("table_counts is a map");
        assert!(!counts.is_empty(), "{what}: no tables in {o}");
        let keys: Vec<String> = counts.keys().cloned().collect();
        assert_eq!(
            names(o, "tables"),
            keys,
            "{what}: `tables` are the tables counted"
        );
        for key in ["indexes", "foreign_keys"] {
            assert!(!names(o, key).is_empty(), "{what}: no {key} in {o}");
        }
    }
    for key in SCHEMA_FACTS {
        assert_eq!(b[key], r[key], "`{key}` differs between backup and restore");
    }
    // `objects` alike, a list of names: every one of the source's is restored (the
    // restore may add its own, such as PostgreSQL's amcheck).
    let restored = names(&r, "objects");
    for object in names(&b, "objects") {
        assert!(
            restored.contains(&object),
            "{object} not restored: {restored:?}"
        );
    }
    names(&b, "foreign_keys")
}

/// A list of names.
fn names(outputs: &Value, key: &str) -> Vec<String> {
    let list = outputs[key].as_array();
    let list = list.unwrap_or_else(|| panic!("`{key}` is not a list: {outputs}"));
    let name = |v: &Value| v.as_str().map(str::to_string);
    let names: Option<Vec<String>> = list.iter().map(name).collect();
    names.unwrap_or_else(|| panic!("`{key}` is not a list of names: {outputs}"))
}

/// SQLite, which does not name its foreign keys, names them by their columns; a check
/// compares them with the backup's like on the other engines.
#[test]
fn sqlite_reports_the_schema_facts_at_backup_and_restore() {
    let fks = sql("fks_by_name", "sqlite", "{{ steps.restore.target }}").checks(
        builtin("fks", "foreign_keys").set("compare_to", "{{ steps.backup.foreign_keys }}"),
    );
    let playbook = sqlite::playbook().after("verify", fks);
    let out = sqlite::drill_of(playbook).run().expect_code(0);
    let foreign_keys = same_schema_facts(&out, "backup", "restore");
    assert_eq!(foreign_keys, ["dispatches(service_id) -> services(id)"]);
    out.step("fks_by_name").check("fks").passed();
}

#[test]
fn postgres_reports_the_schema_facts_at_backup_and_restore() {
    let Some(server) = postgres::PgServer::start("postgres") else {
        return;
    };
    let out = postgres::custom_drill(&server, postgres::EPHEMERAL, &[])
        .run()
        .expect_code(0);
    let foreign_keys = same_schema_facts(&out, "backup", "restore");
    assert!(
        foreign_keys.contains(&"shop.orders.orders_customer_id_fkey".to_string()),
        "{foreign_keys:?}"
    );
}

#[test]
fn mysql_reports_the_schema_facts_at_backup_and_restore() {
    let Some(server) = mysql::mariadb() else {
        return;
    };
    let (playbook, _, _) = mysql::shop(server);
    let out = server.drill(playbook).run().expect_code(0);
    let foreign_keys = same_schema_facts(&out, "backup", "restore");
    assert_eq!(foreign_keys, ["orders.fk_orders_customer"]);
}

/// The files engine has no schema: the common outputs only.
#[test]
fn files_reports_the_common_outputs() {
    let out = files::tree_drill(files::tree_playbook(None))
        .run()
        .expect_code(0);
    let (b, r) = common_outputs(&out, "backup", "restore");
    for o in [&b, &r] {
        for key in SCHEMA_FACTS.iter().chain(&["objects"]) {
            assert!(o.get(*key).is_none(), "{key} in {o}");
        }
    }
}
