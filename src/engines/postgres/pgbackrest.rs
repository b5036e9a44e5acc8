//! A pgBackRest stanza as the source of a physical restore: `pgbackrest verify` when
//! asked, `pgbackrest restore` into the throwaway cluster's empty data directory (the
//! backup set chosen for the target, `--type`/`--target` as pgBackRest spells them),
//! and `archive-get` as the recovery's restore command (never asynchronous: nothing is
//! queued into the host's spool path). The repository is only read; pgBackRest's own
//! lock, spool and log files go into the cluster's directory.

use std::path::Path;

use anyhow::Context as _;

use super::recovery::{Target, sh_quote};
use crate::playbook::PgBackRest;
use crate::proc::{Cancel, OsUser, Tool};

/// pgBackRest's own state, in the cluster's directory instead of where the source's
/// configuration keeps it: its lock files and its spool (`pgbackrest restore` empties the
/// spool's archive-get queue, which on the database host is the source's). Environment
/// variables: commands that take no lock refuse the option on their command line.
fn own_state(base: &Path) -> [(&'static str, String); 2] {
    let path = |name: &str| base.join(name).display().to_string();
    [
        ("PGBACKREST_LOCK_PATH", path("pgbackrest-lock")),
        ("PGBACKREST_SPOOL_PATH", path("pgbackrest-spool")),
    ]
}

/// The options every pgbackrest command of the drill takes.
fn common(src: &PgBackRest) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(c) = src.config.as_deref().filter(|c| !c.is_empty()) {
        args.push(format!("--config={c}"));
    }
    args.extend([
        format!("--stanza={}", src.stanza),
        "--log-level-file=off".into(),
        "--log-level-stderr=error".into(),
    ]);
    args
}

/// `--type` and `--target` for `target`.
fn target_args(target: &Target) -> Vec<String> {
    let (kind, value) = match target {
        Target::Immediate => ("immediate", None),
        Target::Latest => ("default", None),
        Target::Time(t) => ("time", Some(t)),
        Target::Lsn(l) => ("lsn", Some(l)),
        Target::Name(n) => ("name", Some(n)),
    };
    let mut args = vec![format!("--type={kind}")];
    if let Some(v) = value {
        args.push(format!("--target={v}"));
        args.push("--target-action=pause".into());
    }
    args
}

pub struct Run<'a> {
    pub src: &'a PgBackRest,
    pub base: &'a Path,
    pub user: Option<OsUser>,
    pub cancel: &'a Cancel,
}

impl Run<'_> {
    fn run(&self, args: Vec<String>, what: &str) -> anyhow::Result<()> {
        let expr = own_state(self.base)
            .into_iter()
            .fold(duct::cmd("pgbackrest", &args), |e, (k, v)| e.env(k, v));
        Tool::new(expr, format!("pgbackrest {what}"))
            .as_user(self.user)
            .logged(&self.base.join(format!("pgbackrest-{what}.log")))
            .run(self.cancel)
            .with_context(|| format!("pgbackrest {what} of stanza `{}`", self.src.stanza))
    }

    /// `pgbackrest verify`: the repository's backups and archive, checked (read only).
    pub fn verify(&self) -> anyhow::Result<()> {
        let mut args = common(self.src);
        args.push("verify".into());
        self.run(args, "verify")
    }

    /// `pgbackrest restore` into `data` (empty, the cluster user's).
    pub fn restore(&self, data: &Path, target: &Target) -> anyhow::Result<()> {
        let mut args = common(self.src);
        args.push(format!("--pg1-path={}", data.display()));
        // Tablespaces into the cluster's directory, never their recorded paths (the
        // source's own): the restore then refuses them (see `confine`).
        args.push(format!(
            "--tablespace-map-all={}",
            self.base.join("tablespaces").display()
        ));
        args.extend(target_args(target));
        args.push("restore".into());
        self.run(args, "restore")
    }
}

/// The recovery's restore command: `pgbackrest archive-get`, each miss recorded in
/// `misses` as the archive-directory one does.
pub fn restore_command(src: &PgBackRest, base: &Path, misses: &Path) -> String {
    let mut args = common(src);
    // archive-get checks that it serves the cluster in this data directory.
    args.push(format!("--pg1-path={}", base.join("data").display()));
    // Each segment fetched by itself: an asynchronous archive-get (`archive-async=y` in
    // the stanza's configuration) would queue segments into the host's `spool-path`,
    // which a standby of the source on this host may be using.
    args.push("--no-archive-async".into());
    let args: Vec<String> = args.iter().map(|a| sh_quote(a)).collect();
    let env: Vec<String> = own_state(base)
        .iter()
        .map(|(k, v)| format!("{k}={}", sh_quote(v)))
        .collect();
    format!(
        "{} pgbackrest {} archive-get \"%f\" \"%p\" || {{ echo \"%f\" >> {}; exit 1; }}",
        env.join(" "),
        args.join(" "),
        sh_quote(&misses.display().to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stanza() -> PgBackRest {
        PgBackRest {
            stanza: "main".into(),
            config: Some("/etc/pgbackrest/it's.conf".into()),
            verify: None,
        }
    }

    #[test]
    fn targets_are_spelled_as_pgbackrest_reads_them() {
        let time = Target::Time("2026-12-01 14:30:00.000000+00".into());
        assert_eq!(
            target_args(&time),
            [
                "--type=time",
                "--target=2026-12-01 14:30:00.000000+00",
                "--target-action=pause"
            ]
        );
        assert_eq!(target_args(&Target::Latest), ["--type=default"]);
        assert_eq!(target_args(&Target::Immediate), ["--type=immediate"]);
    }

    #[test]
    fn archive_get_serves_the_throwaway_data_directory_and_records_misses() {
        let c = restore_command(&stanza(), Path::new("/tmp/c"), Path::new("/tmp/c/m"));
        assert_eq!(
            c,
            r#"PGBACKREST_LOCK_PATH='/tmp/c/pgbackrest-lock' PGBACKREST_SPOOL_PATH='/tmp/c/pgbackrest-spool' pgbackrest '--config=/etc/pgbackrest/it'\''s.conf' '--stanza=main' '--log-level-file=off' '--log-level-stderr=error' '--pg1-path=/tmp/c/data' '--no-archive-async' archive-get "%f" "%p" || { echo "%f" >> '/tmp/c/m'; exit 1; }"#
        );
    }
}
