//! A pgBackRest stanza as the source of a point-in-time restore: a source server
//! archiving through `pgbackrest archive-push` into a local repository, a full backup,
//! rows on both sides of a target time, and a drill restoring the stanza into a
//! throwaway cluster up to that time. The repository is hashed before and after, and the
//! stanza's spool path (its archive-get is asynchronous) is never written.

use std::time::Duration;

use super::pitr::{hash_tree, rows_drill};
use super::postgres::cluster_gone;
use super::server::give_to_postgres;
use super::*;

fn installed() -> bool {
    Command::new("pgbackrest")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `pgbackrest <args>` as the server's user, which must succeed.
fn pgbackrest(server: &Server, conf: &Path, args: &[&str]) {
    let out = server
        .as_owner("pgbackrest")
        .arg(format!("--config={}", conf.display()))
        .arg("--stanza=main")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pgbackrest {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_pgbackrest_stanza_recovers_to_a_time_fails_past_its_archive_and_is_only_read() {
    if !installed() {
        skip_or_fail("pgbackrest", "pgbackrest not installed");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("rd-pgbr-")
        .tempdir()
        .unwrap();
    give_to_postgres(dir.path());
    let conf = dir.path().join("pgbackrest.conf");
    let push = format!(
        "pgbackrest --config={} --stanza=main archive-push %p",
        conf.display()
    );
    let Some(server) = Server::archiving_with("pgbackrest", &push) else {
        return;
    };
    let d = dir.path().display();
    std::fs::write(
        &conf,
        format!(
            "[global]\nrepo1-path={d}/repo\nlock-path={d}/lock\nlog-path={d}/log\nspool-path={d}/spool\nlog-level-file=off\nstart-fast=y\n\n[main]\npg1-path={}\npg1-socket-path={}\npg1-port={}\npg1-user=postgres\n\n[main:archive-get]\narchive-async=y\n",
            server.data_dir().display(),
            server.dir().display(),
            server.port
        ),
    )
    .unwrap();
    give_to_postgres(&conf);
    pgbackrest(&server, &conf, &["stanza-create"]);
    server.sql("", "CREATE DATABASE app");
    server.sql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, note text NOT NULL);
         INSERT INTO t SELECT i, 'before the backup' FROM generate_series(1, 50) i;",
    );
    pgbackrest(&server, &conf, &["--type=full", "backup"]);
    server.sql(
        "app",
        "INSERT INTO t SELECT i, 'after' FROM generate_series(51, 80) i",
    );
    std::thread::sleep(Duration::from_millis(1100));
    let target = server.sql(
        "",
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    std::thread::sleep(Duration::from_millis(1100));
    server.sql(
        "app",
        "INSERT INTO t SELECT i, 'late' FROM generate_series(81, 100) i",
    );
    server.switch_wal_archived();
    let repo = dir.path().join("repo");
    let before = hash_tree(&repo);
    // The source's spool (its async archive-get queue): `pgbackrest restore` empties
    // it unless the drill gives pgBackRest a spool of its own.
    let spool = dir.path().join("spool");
    let queued = spool.join("archive/main/in/000000010000000000000063");
    std::fs::create_dir_all(queued.parent().unwrap()).unwrap();
    std::fs::write(&queued, "queued for the source").unwrap();
    for made in queued.ancestors().take_while(|p| p.starts_with(&spool)) {
        give_to_postgres(made);
    }
    let spooled = hash_tree(&spool);
    let source = format!(
        "{{ stanza = \"main\", config = {}, verify = true }}",
        conf.display().to_string().to_toml()
    );
    let restore = |target: &str| {
        step("restore", "restore")
            .set("engine", "postgres")
            .set("pgbackrest", raw(source.clone()))
            .set("target_time", target)
    };
    let out = rows_drill(&server, restore(&target), 80)
        .run()
        .expect_code(0);
    out.step("verify").all_checks_passed();
    let restored = out.step("restore");
    assert_eq!(restored.output("verified"), true);
    let recovered_to = restored
        .output("recovered_to")
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        recovered_to < target,
        "recovered_to {recovered_to} is not before {target}"
    );
    cluster_gone(&out);
    // A target after the last archived commit: fails, never promoted.
    let later = server.sql(
        "",
        "SELECT to_char((clock_timestamp() + interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    );
    let out = rows_drill(&server, restore(&later), 100)
        .run()
        .expect_code(1);
    out.step("restore")
        .failed_with("is after the last commit the WAL archive reaches")
        .says("the last reachable commit is at 2")
        .says("not promoted");
    cluster_gone(&out);
    assert_eq!(
        hash_tree(&repo),
        before,
        "the pgBackRest repository changed"
    );
    // The stanza's archive-get is asynchronous, queueing into the host's spool path: the
    // drill's recovery fetches each segment itself and leaves the spool as it was.
    assert_eq!(hash_tree(&spool), spooled, "the source's spool changed");
}
