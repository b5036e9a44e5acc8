//! `restore-drill schedule`: ready-to-install units that run a drill unattended — a
//! systemd service and timer, a crontab line, a Kubernetes CronJob, or one Indexed Job
//! for a directory of playbooks. Pure functions of what they are given: the caller
//! resolves paths and reads the playbooks.

mod calendar;
mod kubernetes;

pub use calendar::{Every, every};
pub use kubernetes::{InCluster, cron_job, indexed_job};

use std::path::PathBuf;

use crate::fmt::shell_word;

/// A drill to schedule on this machine (systemd, cron): absolute paths.
pub struct Local {
    /// The drill's name (`[drill] name`).
    pub name: String,
    pub playbook: PathBuf,
    pub artifacts: PathBuf,
    /// Where it runs from (relative paths in the playbook's vars are relative to it).
    pub workdir: PathBuf,
    /// The restore-drill binary to run.
    pub binary: PathBuf,
    /// The vars each run overrides (`--var KEY=VALUE`).
    pub vars: Vec<(String, String)>,
}

impl Local {
    fn command(&self) -> String {
        let vars = self
            .vars
            .iter()
            .flat_map(|(k, v)| ["--var".into(), shell_word(&format!("{k}={v}"))]);
        [
            shell_word(&self.binary.display().to_string()),
            "run".into(),
            shell_word(&self.playbook.display().to_string()),
        ]
        .into_iter()
        .chain(vars)
        .chain([
            "--artifacts".into(),
            shell_word(&self.artifacts.display().to_string()),
            "--quiet".into(),
        ])
        .collect::<Vec<String>>()
        .join(" ")
    }

    fn unit(&self) -> String {
        format!("restore-drill-{}", self.name)
    }
}

/// The systemd service and timer: (file name, text) of each. Secrets come from an
/// `EnvironmentFile` (mode 0600), never from the unit.
pub fn systemd(drill: &Local, every: &Every) -> [(String, String); 2] {
    let unit = drill.unit();
    let name = &drill.name;
    let dir = drill.workdir.display();
    let service = format!(
        "[Unit]
Description=Restore drill {name}
Documentation=man:restore-drill(1)
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
WorkingDirectory={dir}
# The playbook's secrets, as KEY=VALUE lines (chmod 600); optional.
EnvironmentFile=-/etc/restore-drill/{name}.env
ExecStart={command}
# A drill is background work: it yields CPU and disk to production.
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7
# Far above any sane drill; the playbook's own timeouts stop a step first.
TimeoutStartSec=12h
",
        command = drill.command()
    );
    let timer = format!(
        "[Unit]
Description=Restore drill {name}, {label}

[Timer]
OnCalendar={calendar}
# A run missed while the machine was off runs at the next boot.
Persistent=true
RandomizedDelaySec=15m

[Install]
WantedBy=timers.target
",
        label = every.label,
        calendar = every.calendar
    );
    [
        (format!("{unit}.service"), service),
        (format!("{unit}.timer"), timer),
    ]
}

/// A crontab line (with a comment saying how to alert on a stale drill).
pub fn cron(drill: &Local, every: &Every) -> String {
    let status = [
        shell_word(&drill.binary.display().to_string()),
        "status".into(),
        shell_word(&drill.artifacts.display().to_string()),
        "--drill".into(),
        drill.name.clone(),
        "--max-age".into(),
        "35d".into(),
    ]
    .join(" ");
    format!(
        "# restore drill {name}, {label}; secrets: KEY=VALUE lines above it in the crontab
{cron} cd {dir} && {command}
# alert when it has not passed for 35 days:
# 0 * * * * {status} || <your alert>
",
        name = drill.name,
        label = every.label,
        cron = every.cron,
        dir = shell_word(&drill.workdir.display().to_string()),
        command = drill.command()
    )
}

/// A Kubernetes object name from a drill's: lowercase, `-` for `_`, at most `max`.
fn k8s_name(prefix: &str, name: &str, max: usize) -> String {
    let mut out = format!("{prefix}{}", name.to_ascii_lowercase().replace('_', "-"));
    out.truncate(max);
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests;
