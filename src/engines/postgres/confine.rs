//! What keeps a restored physical backup inside its throwaway directory: a backup with
//! tablespaces is refused before any server starts (its links, or its `tablespace_map`,
//! point outside the cluster: at the backup's own copy or the source's live tablespace,
//! where WAL replay would write), and the server runs with every setting of the backup's
//! `postgresql.conf` / `postgresql.auto.conf` that runs a command or writes outside the
//! cluster's directory overridden on its command line (`-c` wins over the files).

use std::path::Path;

use anyhow::{Context as _, bail};

/// The tablespaces `dir` carries: `pg_tblspc/<oid> -> <target>` entries, the lines of
/// its `tablespace_map`, and (a tar backup) `<oid>.tar` files beside `base.tar`.
pub fn tablespaces(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir.join("pg_tblspc")) {
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            match std::fs::read_link(e.path()) {
                Ok(to) => found.push(format!("pg_tblspc/{name} -> {}", to.display())),
                Err(_) => found.push(format!("pg_tblspc/{name}")),
            }
        }
    }
    if let Ok(map) = std::fs::read_to_string(dir.join("tablespace_map")) {
        found.extend(
            map.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| format!("tablespace_map: {}", l.trim())),
        );
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            let oid = name.split_once(".tar").map(|(stem, _)| stem);
            if oid.is_some_and(|o| !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit())) {
                found.push(format!("tablespace archive {name}"));
            }
        }
    }
    found.sort();
    found
}

/// Fails, naming them, when `dir` (the backup, or its copy in the throwaway cluster)
/// carries tablespaces: restoring them is not supported yet.
pub fn refuse_tablespaces(dir: &Path, from: &Path) -> anyhow::Result<()> {
    let found = tablespaces(dir);
    if found.is_empty() {
        return Ok(());
    }
    bail!(
        "{} has tablespaces ({}): restoring a physical backup with tablespaces is not supported yet (WAL replay would write into the tablespace directories outside the throwaway cluster, such as the source's own); not restored",
        from.display(),
        found.join(", ")
    )
}

/// Makes `data/pg_tblspc` read-only (its owner too is held by the mode): replaying a
/// `CREATE TABLESPACE` from the archive cannot link the cluster to the tablespace's
/// recorded directory (the source's own), and recovery stops there instead.
pub fn seal_tablespaces(data: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = data.join("pg_tblspc");
    if !dir.is_dir() {
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500))
        .with_context(|| format!("cannot make {} read-only", dir.display()))
}

/// Why recovery stopped, when the server's `log` shows a replayed `CREATE TABLESPACE`
/// refused by the read-only `pg_tblspc`.
pub fn replayed_tablespace(log: &str) -> Option<String> {
    let line = log
        .lines()
        .find(|l| l.contains("pg_tblspc/") && l.contains("could not create symbolic link"))?;
    // Its CONTEXT: `WAL redo at 0/3000060 for Tablespace/CREATE: 16390 "/srv/ts"`.
    let location = log
        .lines()
        .find_map(|l| l.split_once("Tablespace/CREATE: ").map(|(_, t)| t.trim()))
        .map_or(String::new(), |t| format!(" ({t})"));
    Some(format!(
        "the WAL replayed after the base backup creates a tablespace{location}: restoring tablespaces is not supported yet (replay would write into that directory, outside the throwaway cluster), so recovery was stopped there; not restored ({})",
        line.trim()
    ))
}

/// The settings that override the backup's configuration files so that the throwaway
/// server runs no command of the source's and writes nothing outside `base` (the
/// cluster's directory, its data in `base/data`); `version` is the backup's major
/// version (`PG_VERSION`), for settings older servers have.
pub fn settings(base: &Path, version: u32) -> Vec<String> {
    let data = base.join("data");
    let mut s: Vec<String> = [
        // The data directory is this copy, whatever its postgresql.conf says.
        format!("data_directory={}", data.display()),
        format!("config_file={}", data.join("postgresql.conf").display()),
        format!("hba_file={}", base.join("pg_hba.conf").display()),
        format!("ident_file={}", base.join("pg_ident.conf").display()),
        // The source's pid file (it would be overwritten, then removed at shutdown).
        "external_pid_file=".into(),
        // Commands of the source's: never run by a drill.
        "recovery_end_command=".into(),
        "archive_cleanup_command=".into(),
        "archive_mode=off".into(),
        "archive_command=".into(),
        // No streaming from the source's primary (nor its replication slot moved).
        "primary_conninfo=".into(),
        "primary_slot_name=".into(),
        "recovery_min_apply_delay=0".into(),
        // The server's log is its stderr, in the cluster's directory.
        "logging_collector=off".into(),
        "log_destination=stderr".into(),
        // SSL keys are never loaded, so no `ssl_passphrase_command` runs.
        "ssl=off".into(),
        // A recovery target only the drill sets.
        "recovery_target=".into(),
        "recovery_target_lsn=".into(),
        "recovery_target_name=".into(),
        "recovery_target_time=".into(),
        "recovery_target_xid=".into(),
    ]
    .into();
    if version < 15 {
        s.push("stats_temp_directory=pg_stat_tmp".into());
    }
    if version < 16 {
        // Removed on promotion: the source's trigger file is never seen nor removed.
        s.push("promote_trigger_file=".into());
    }
    s
}

/// The major version in `data/PG_VERSION` (0 when unreadable: every setting then).
pub fn version(data: &Path) -> u32 {
    std::fs::read_to_string(data.join("PG_VERSION"))
        .ok()
        .and_then(|v| v.trim().split('.').next()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tablespaces_are_named_by_link_map_line_and_archive() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(tablespaces(d).is_empty());
        std::fs::create_dir(d.join("pg_tblspc")).unwrap();
        std::os::unix::fs::symlink("/srv/ts", d.join("pg_tblspc/16384")).unwrap();
        std::fs::write(d.join("tablespace_map"), "16385 /srv/ts2\n").unwrap();
        for f in ["base.tar", "pg_wal.tar", "16386.tar.gz", "backup_manifest"] {
            std::fs::write(d.join(f), "").unwrap();
        }
        assert_eq!(
            tablespaces(d),
            [
                "pg_tblspc/16384 -> /srv/ts",
                "tablespace archive 16386.tar.gz",
                "tablespace_map: 16385 /srv/ts2"
            ]
        );
        let err = refuse_tablespaces(d, Path::new("/b"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not supported yet"), "{err}");
    }

    #[test]
    fn settings_of_older_servers_are_set_only_for_them() {
        let s15 = settings(Path::new("/c"), 15);
        assert!(s15.contains(&"data_directory=/c/data".to_string()));
        assert!(s15.contains(&"promote_trigger_file=".to_string()));
        assert!(!s15.iter().any(|s| s.starts_with("stats_temp_directory")));
        let s16 = settings(Path::new("/c"), 16);
        assert!(!s16.iter().any(|s| s.starts_with("promote_trigger_file")));
        assert!(settings(Path::new("/c"), 14).contains(&"stats_temp_directory=pg_stat_tmp".into()));
    }
}
