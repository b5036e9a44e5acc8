//! Physical backups and point-in-time recovery of PostgreSQL, end to end: a source server
//! archiving its WAL into a directory (`archive_mode = on`), a base backup by the drill
//! (`method = "basebackup"`, plain and tar), rows written after it on both sides of a
//! target, and restores into the throwaway cluster that must bring back exactly the rows
//! committed before the target, or fail naming why the target is out of reach. The
//! archive is hashed before and after: a drill never writes to it.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::postgres::{cluster_gone, processes_mentioning};
use super::*;

/// The source, its archive, two base backups and what was written after them.
struct Fixture {
    server: Server,
    dir: tempfile::TempDir,
    /// The outputs of the backup steps (`plain`, `tar`).
    backups: Value,
    /// Between the rows 51..=80 (committed before) and 81..=110 (after).
    target_time: String,
    /// The segment holding rows 51..=80 (later ones are archived too).
    middle_segment: String,
}

static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();

fn fixture() -> Option<&'static Fixture> {
    server::fixture_once(&FIXTURE, build, |f| {
        f.server.stop();
        let _ = std::fs::remove_dir_all(f.dir.path());
    })
}

impl Fixture {
    fn archive(&self) -> PathBuf {
        self.dir.path().join("archive")
    }

    fn backup(&self, format: &str) -> PathBuf {
        self.dir.path().join(format)
    }

    /// The last segment the source archived after a switch.
    fn switch(&self) -> String {
        self.server.switch_wal_archived()
    }
}

pub fn os_user() -> &'static str {
    if is_root() { "postgres" } else { "" }
}

fn build() -> Option<Fixture> {
    let dir = tempfile::Builder::new()
        .prefix("rd-pitr-")
        .tempdir()
        .unwrap();
    let server = Server::archiving("pitr", &dir.path().join("archive"))?;
    server.sql("", "CREATE DATABASE app");
    server.sql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, note text NOT NULL);
         INSERT INTO t SELECT i, 'before the backup' FROM generate_series(1, 50) i;",
    );
    let plain = dir.path().join("plain").display().to_string();
    let tar = dir.path().join("tar").display().to_string();
    let base = |id: &str, output: &str, format: &str| {
        step(id, "backup")
            .set("engine", "postgres")
            .set("method", "basebackup")
            .set("format", format)
            .set("output", output)
            .set("url", server.url("app"))
    };
    let out = server
        .drill(pb("pitr_base").step([base("plain", &plain, "plain"), base("tar", &tar, "tar")]))
        .run()
        .expect_code(0);
    let backups = serde_json::json!({
        "plain": out.step("plain")["outputs"].clone(),
        "tar": out.step("tar")["outputs"].clone(),
    });
    let mut f = Fixture {
        server,
        dir,
        backups,
        target_time: String::new(),
        middle_segment: String::new(),
    };
    f.server.sql(
        "app",
        "INSERT INTO t SELECT i, 'after the backup' FROM generate_series(51, 80) i",
    );
    f.middle_segment = f.switch();
    std::thread::sleep(Duration::from_millis(1100));
    f.target_time = f.server.sql(
        "",
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'); SELECT pg_create_restore_point('before_81')",
    );
    f.target_time = f.target_time.lines().next().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(1100));
    f.server.sql(
        "app",
        "INSERT INTO t SELECT i, 'after the target' FROM generate_series(81, 100) i",
    );
    f.switch();
    f.server.sql(
        "app",
        "INSERT INTO t SELECT i, 'last' FROM generate_series(101, 110) i",
    );
    f.switch();
    Some(f)
}

/// A restore of `from` into a throwaway cluster with `fields` (the target), then the
/// checks that rows up to `upto` came back and none after.
fn pitr_drill(f: &Fixture, from: &Path, fields: &str, upto: i64) -> Drill {
    let restore = restore("postgres", &from.display().to_string()).fields(fields);
    rows_drill(&f.server, restore, upto)
}

/// `restore` into a throwaway cluster, then the checks that the rows of `t` up to `upto`
/// came back and none after.
pub fn rows_drill(server: &Server, restore: Step, upto: i64) -> Drill {
    let restore = restore
        .set("isolation", "ephemeral")
        .set("os_user", os_user());
    let rows = [
        query(
            "rows before the target",
            &format!("SELECT count(*) FROM t WHERE id <= {upto}"),
            upto,
        ),
        query(
            "no row after it",
            &format!("SELECT count(*) FROM t WHERE id > {upto}"),
            0,
        ),
    ];
    let verify = sql("verify", "postgres", "{{ steps.restore.target }}").checks(rows);
    server.drill(pb("pitr").step([restore, verify]))
}

/// [`pitr_drill`] of `backup` with `archive` (if any) and `target` (fields), run to exit
/// `code`.
fn recover(
    f: &Fixture,
    backup: &Path,
    archive: Option<&Path>,
    target: &str,
    upto: i64,
    code: i32,
) -> Outcome {
    let wal = archive.map_or(String::new(), |a| {
        format!("wal_archive = {}\n", a.display().to_string().to_toml())
    });
    pitr_drill(f, backup, &format!("{wal}{target}"), upto)
        .run()
        .expect_code(code)
}

fn target_time(time: &str) -> String {
    format!("target_time = {}", time.to_toml())
}

/// `cp -a from to`.
fn cp_a(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// The sha256 of every file under `dir`, by relative path.
pub fn hash_tree(dir: &Path) -> BTreeMap<String, String> {
    listing(dir)
        .into_iter()
        .filter(|rel| dir.join(rel).is_file())
        .map(|rel| {
            let h = sha256_of(&dir.join(&rel));
            (rel, h)
        })
        .collect()
}

/// A copy of the archive without `segment`, owned like the archive.
fn archive_without(f: &Fixture, segment: &str) -> tempfile::TempDir {
    use std::os::unix::fs::MetadataExt as _;
    let copy = tempfile::Builder::new()
        .prefix("rd-pitr-gap-")
        .tempdir()
        .unwrap();
    cp_a(&f.archive().join("."), copy.path());
    std::fs::remove_file(copy.path().join(segment)).unwrap();
    let owner = std::fs::metadata(f.archive()).unwrap();
    std::os::unix::fs::chown(copy.path(), Some(owner.uid()), Some(owner.gid())).unwrap();
    copy
}

#[test]
fn base_backup_has_its_manifest_and_counts_at_its_start() {
    let Some(f) = fixture() else { return };
    for format in ["plain", "tar"] {
        let b = &f.backups[format];
        assert_eq!(b["format"], format, "{b}");
        assert_eq!(b["table_counts"]["public.t"], 50, "{b}");
        assert_eq!(b["database"], "app");
        assert!(b["snapshot_at"].as_str().unwrap().ends_with('Z'), "{b}");
        assert!(Path::new(b["manifest"].as_str().unwrap()).is_file(), "{b}");
        assert!(b["bytes"].as_u64().unwrap() > 1_000_000, "{b}");
    }
    assert!(f.backup("tar").join("base.tar").is_file());
}

/// Rows committed before `target_time` come back, rows after do not; the archive is
/// untouched; the cluster is gone.
#[test]
fn restore_to_a_time_brings_back_exactly_the_rows_before_it() {
    let Some(f) = fixture() else { return };
    let before = hash_tree(&f.archive());
    let target = target_time(&f.target_time);
    let out = recover(f, &f.backup("plain"), Some(&f.archive()), &target, 80, 0);
    out.step("verify").all_checks_passed();
    let restore = out.step("restore");
    assert_eq!(restore.output("verified"), true);
    assert_eq!(restore.output("database"), "app");
    assert_eq!(restore.output("table_counts")["public.t"], 80);
    let recovered_to = restore.output("recovered_to").as_str().unwrap().to_string();
    assert!(
        recovered_to.as_str() < f.target_time.as_str(),
        "recovered_to {recovered_to} is not before the target {}",
        f.target_time
    );
    cluster_gone(&out);
    assert_eq!(hash_tree(&f.archive()), before, "the WAL archive changed");
}

/// A tar backup recovered to a named restore point, the same rows.
#[test]
fn tar_backup_recovers_to_a_named_restore_point() {
    let Some(f) = fixture() else { return };
    let target = "target_name = \"before_81\"";
    let out = recover(f, &f.backup("tar"), Some(&f.archive()), target, 80, 0);
    out.step("verify").all_checks_passed();
    assert_eq!(out.step("restore").output("verified"), true);
    cluster_gone(&out);
}

/// Without an archive, `immediate`: the backup alone, consistent.
#[test]
fn immediate_restores_the_backup_alone() {
    let Some(f) = fixture() else { return };
    let out = recover(f, &f.backup("plain"), None, "target = \"immediate\"", 50, 0);
    out.step("verify").all_checks_passed();
    cluster_gone(&out);
}

/// A segment missing from the archive before the target: the restore fails naming it,
/// and is never promoted at the gap.
#[test]
fn a_missing_segment_fails_the_restore_and_is_named() {
    let Some(f) = fixture() else { return };
    let gap = archive_without(f, &f.middle_segment);
    let before = hash_tree(gap.path());
    let missing = format!("WAL segment {} is missing", f.middle_segment);
    let target = target_time(&f.target_time);
    let out = recover(f, &f.backup("plain"), Some(gap.path()), &target, 80, 1);
    out.step("restore")
        .failed_with(&missing)
        .says("not promoted");
    out.step("verify").status("not_run");
    cluster_gone(&out);
    // `latest` cannot silently stop at the gap either: refused before the server starts.
    let latest = "target = \"latest\"";
    let out = recover(f, &f.backup("plain"), Some(gap.path()), latest, 110, 1);
    out.step("restore").failed_with(&missing);
    cluster_gone(&out);
    assert_eq!(hash_tree(gap.path()), before, "the WAL archive changed");
}

/// A target after the last archived commit fails, naming the last reachable time.
#[test]
fn a_target_after_the_last_archived_commit_names_the_last_reachable_time() {
    let Some(f) = fixture() else { return };
    let target = target_time("2999-01-01 00:00:00Z");
    let out = recover(f, &f.backup("plain"), Some(&f.archive()), &target, 110, 1);
    out.step("restore")
        .failed_with("target_time 2999-01-01 00:00:00.000000+00 is after the last commit the WAL archive reaches")
        .says("the last reachable commit is at 2")
        .says("not promoted");
    cluster_gone(&out);
}

/// A base backup whose file does not match its manifest fails before any cluster,
/// naming the file.
#[test]
fn a_damaged_base_backup_fails_naming_the_file() {
    let Some(f) = fixture() else { return };
    let copy = tempfile::Builder::new()
        .prefix("rd-pitr-bad-")
        .tempdir()
        .unwrap();
    let damaged = copy.path().join("b");
    cp_a(&f.backup("plain"), &damaged);
    let victim = damaged.join("global/1262");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let out = recover(f, &damaged, Some(&f.archive()), "", 110, 1);
    out.step("restore")
        .failed_with("does not verify against its manifest")
        .says("global/1262");
    let record = out.record();
    let clusters = record["resources"]
        .as_array()
        .map_or(0, |r| r.iter().filter(|r| r["kind"] == "cluster").count());
    assert_eq!(clusters, 0, "a cluster was made: {}", record["resources"]);
}

/// A new temp directory every user can traverse (a TMPDIR for a run whose servers run
/// as `os_user`).
fn traversable_dir(prefix: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `pg_verifybackup` runs while the backup is copied, not before: a stand-in verifier
/// (in a `pg_bin_dir` of the real programs) verifies only once a copy of the backup
/// has been readied in a throwaway directory beside it, and gives up after 20 s.
#[test]
fn the_backup_is_verified_while_it_is_copied() {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(f) = fixture() else { return };
    let real = super::server::postgres_bin().unwrap();
    let (dir, tmp) = (
        traversable_dir("rd-pitr-overlap-"),
        traversable_dir("rd-pitr-tmp-"),
    );
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for e in std::fs::read_dir(&real).unwrap() {
        let e = e.unwrap();
        std::os::unix::fs::symlink(e.path(), bin.join(e.file_name())).unwrap();
    }
    let verifier = bin.join("pg_verifybackup");
    std::fs::remove_file(&verifier).unwrap();
    let script = format!(
        "#!/bin/sh\nfor i in $(seq 200); do\n  for d in \"$TMPDIR\"/restore-drill-pg-*/data; do\n    [ -f \"$d/recovery.signal\" ] && exec {} \"$@\"\n  done\n  sleep 0.1\ndone\necho 'no copy beside the verifier' >&2\nexit 3\n",
        real.join("pg_verifybackup").display()
    );
    std::fs::write(&verifier, script).unwrap();
    std::fs::set_permissions(&verifier, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fields = format!(
        "wal_archive = {}\npg_bin_dir = {}",
        f.archive().display().to_string().to_toml(),
        bin.display().to_string().to_toml()
    );
    let out = pitr_drill(f, &f.backup("plain"), &fields, 110)
        .env("TMPDIR", &tmp.path().display().to_string())
        .run()
        .expect_code(0);
    out.step("verify").all_checks_passed();
    out.log_has(&format!(
        "pg_verifybackup: {} verified",
        f.backup("plain").display()
    ));
    cluster_gone(&out);
}

/// A later step writing `into` (inside what `restore` reads) is refused, naming `why`
/// (no server needed: the restore fails first, after its sources are known).
fn later_write_is_refused(restore: Step, into: &str, why: &str) {
    let restore = restore
        .set("isolation", "ephemeral")
        .set("continue_on_failure", true);
    let writer = sqlite_backup("src.db", into);
    let d = pb("guard").step([restore, writer]).drill().db("src.db", 3);
    d.known_only_to_the_run(into);
    let out = d.run().expect_code(1);
    out.step("backup")
        .failed_with(&format!("refusing to write output {into}"))
        .says(&format!("a source of this playbook ({why})"));
}

/// `wal_archive` is a source: no later step may write into it.
#[test]
fn the_wal_archive_is_a_source_no_later_step_may_write_to() {
    let archive = tempfile::tempdir().unwrap();
    let arch = archive.path().display().to_string();
    let restore =
        restore("postgres", "{{ drill.workdir }}/no-such-backup").set("wal_archive", arch.as_str());
    let why = "`wal_archive` of step `restore`";
    later_write_is_refused(restore, &format!("{arch}/evil.db"), why);
    assert!(
        listing(archive.path()).is_empty(),
        "the archive was written to"
    );
}

/// A restore of the stanza `main` that `conf` configures.
fn pgbackrest_restore(conf: &str) -> Step {
    let source = format!("{{ stanza = \"main\", config = {} }}", conf.to_toml());
    step("restore", "restore")
        .set("engine", "postgres")
        .set("pgbackrest", raw(source))
}

/// A pgBackRest configuration is a source too.
#[test]
fn the_pgbackrest_config_is_a_source_no_later_step_may_write_to() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("pgbackrest.conf").display().to_string();
    let restore = pgbackrest_restore(&conf);
    later_write_is_refused(restore, &conf, "`pgbackrest.config` of step `restore`");
}

/// And so is the repository its configuration names (`repo1-path`), for the stanza
/// (`[main]` overriding `[global]`: both are protected).
#[test]
fn the_pgbackrest_repository_is_a_source_no_later_step_may_write_to() {
    let dir = tempfile::tempdir().unwrap();
    let (global, own) = (dir.path().join("repo"), dir.path().join("main-repo"));
    let conf = dir.path().join("pgbackrest.conf");
    let text = format!(
        "[global]\nrepo1-path={}\n\n[main]\nrepo1-path={}\n",
        global.display(),
        own.display()
    );
    std::fs::write(&conf, text).unwrap();
    let conf = conf.display().to_string();
    for repo in [&global, &own] {
        std::fs::create_dir_all(repo).unwrap();
        let into = repo.join("evil.db").display().to_string();
        let why = format!("the pgBackRest repository of step `restore`: repo1-path in {conf}");
        later_write_is_refused(pgbackrest_restore(&conf), &into, &why);
        assert!(listing(repo).is_empty(), "the repository was written to");
    }
}

/// Ctrl-C while the cluster recovers: the drill ends aborted and the cluster, its
/// directory and processes are gone.
#[test]
fn ctrl_c_during_recovery_removes_the_cluster() {
    let Some(f) = fixture() else { return };
    let fields = format!(
        "wal_archive = {}\ntarget = \"latest\"",
        f.archive().display().to_string().to_toml()
    );
    // The run's own TMPDIR: its cluster, not another test's, is waited for.
    let tmp = traversable_dir("rd-pitr-ctrl-c-");
    let mut run = pitr_drill(f, &f.backup("plain"), &fields, 110)
        .env("TMPDIR", &tmp.path().display().to_string())
        .start();
    run.wait_running("restore");
    let deadline = Instant::now() + Duration::from_secs(60);
    // The recovering server names its directory's `wal-misses` in its restore_command.
    let needle = format!("{}/restore-drill-pg-", tmp.path().display());
    let recovering = || {
        let lines = processes_mentioning(&needle);
        lines.iter().any(|l| l.contains("/wal-misses"))
    };
    while !recovering() {
        assert!(Instant::now() < deadline, "the cluster never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    cluster_gone(&run.interrupt());
}

/// The shipped `playbooks/postgres-pitr.toml` against a source archiving its WAL: the
/// rows before its target come back, those after do not, the marker table is dropped
/// from the source at cleanup, the archive is only read.
#[test]
fn shipped_pitr_playbook_brings_back_exactly_the_rows_before_its_target() {
    let dir = tempfile::Builder::new()
        .prefix("rd-pitr-shipped-")
        .tempdir()
        .unwrap();
    let archive = dir.path().join("archive");
    let Some(server) = Server::archiving("pitr", &archive) else {
        return;
    };
    server.sql("", "CREATE DATABASE app");
    let playbook = include_str!("../../playbooks/postgres-pitr.toml");
    let vars = [
        format!("pg_url={}", server.plain_url("app")),
        format!("wal_archive={}", archive.display()),
        format!("os_user={}", os_user()),
    ];
    let mut d = Drill::new(playbook).env("PGPASSWORD", server.password());
    for v in &vars {
        d = d.arg("--var").arg(v);
    }
    let out = d.run().expect_code(0);
    out.step("verify").all_checks_passed();
    let restore = out.step("restore");
    let target = out.output("mark", "value");
    let recovered_to = restore.output("recovered_to");
    assert!(
        recovered_to.as_str().unwrap() < target.as_str().unwrap(),
        "recovered_to {recovered_to} is not before the target {target}"
    );
    cluster_gone(&out);
    let left = server.sql(
        "app",
        "SELECT count(*) FROM pg_tables WHERE tablename = 'restore_drill_pitr'",
    );
    assert_eq!(left, "0", "the marker table was left on the source");
}
