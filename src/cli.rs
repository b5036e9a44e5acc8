//! Subcommands and flags.

use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{Parser, Subcommand, ValueEnum};

use crate::playbook::ReportFormat;

#[derive(Debug, Parser)]
#[command(
    name = "restore-drill",
    version,
    about = "Run restore drills from TOML playbooks: back up, checksum, restore in isolation, verify, probe, clean up, and gate on RTO/RPO.",
    after_help = crate::exit::HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a drill; writes restore_drill_<ts>.json, .md and .log into the artifacts directory.
    #[command(after_help = crate::exit::HELP)]
    Run(RunArgs),
    /// Parse and check playbooks; runs nothing. Exits 2 when one is invalid.
    Validate {
        /// The playbooks to check (TOML files).
        #[arg(required = true, value_name = "PLAYBOOK")]
        playbooks: Vec<PathBuf>,
    },
    /// Show the resolved steps of a playbook without running anything.
    Plan {
        /// The playbook to show (a TOML file).
        playbook: PathBuf,
        /// Override a var of the playbook.
        #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
        vars: Vec<(String, String)>,
    },
    /// Render a report from a stored restore_drill_<ts>.json.
    Report {
        /// A restore_drill_<ts>.json written by `run`.
        artifact: PathBuf,
        /// A minijinja template of the markdown report (refused with another --format);
        /// default: the built-in report.
        #[arg(long)]
        template: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
        format: ReportFormat,
        /// Write here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Past drills in an artifacts directory: status, RTO, RPO, sizes, trends; over a
    /// tree of many drills' folders, one line per drill.
    History {
        /// The artifacts directory of the drills, or `s3://bucket/prefix/` (endpoint and
        /// keys from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
        #[arg(default_value = "artifacts/restore")]
        dir: PathBuf,
    },
    /// For monitoring: one line per drill (of the folder or the tree below it); exits 0
    /// only when every drill (or --drill) passed within --max-age.
    Status {
        /// The artifacts directory of the drills, or `s3://bucket/prefix/` (endpoint and
        /// keys from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
        #[arg(default_value = "artifacts/restore")]
        dir: PathBuf,
        /// How recent the last passing drill must be, e.g. 35d.
        #[arg(long, default_value = "35d", value_parser = humantime::parse_duration)]
        max_age: std::time::Duration,
        /// Only drills with this name.
        #[arg(long)]
        drill: Option<String>,
        /// `json`: the rows as JSON; `prom`: print
        /// restore_drill_last_success_timestamp_seconds for every drill (exit 0).
        #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
        format: StatusFormat,
    },
    /// Check the records of an artifacts directory: every signature (with --pubkey) and
    /// every drill's hash chain. Exits 1 naming each record edited, removed, renamed or
    /// reordered.
    Verify {
        /// The artifacts directory of the drills, or `s3://bucket/prefix/` (its records
        /// and signatures are fetched into a temporary folder first; endpoint and keys as
        /// for `status`).
        #[arg(default_value = "artifacts/restore")]
        dir: PathBuf,
        /// The minisign public key (`minisign -G` writes it) the records were signed
        /// for; without it only the chain is checked.
        #[arg(long, value_name = "FILE")]
        pubkey: Option<PathBuf>,
    },
    /// Print ready-to-install units that run a drill unattended: a systemd service and
    /// timer, a crontab line, or a Kubernetes CronJob (with --indexed: one Indexed Job for
    /// a directory of playbooks).
    Schedule(ScheduleArgs),
    /// Print a JSON Schema.
    Schema {
        /// Which schema: of a playbook or of a run record.
        which: SchemaKind,
    },
    /// Write a starter playbook.
    Init {
        #[arg(
            long,
            default_value = "sqlite",
            value_parser = clap::builder::PossibleValuesParser::new(starter_names())
        )]
        engine: String,
        /// Where to write it (default: <engine>-drill.toml).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Print a shell completion script, e.g. `restore-drill completions bash >
    /// /etc/bash_completion.d/restore-drill`.
    Completions {
        /// The shell to complete in.
        shell: Shell,
    },
    /// Print the man page (roff), e.g. `restore-drill man > restore-drill.1`.
    Man,
}

#[derive(Debug, clap::Args)]
pub struct ScheduleArgs {
    /// What runs it.
    pub target: ScheduleTarget,
    /// The playbook (with `kubernetes --indexed`: a directory of playbooks).
    pub playbook: PathBuf,
    /// monthly (the 1st, 03:00), weekly (Monday 03:00), daily (03:00) or a cron
    /// expression ("0 4 * * 1-5").
    #[arg(long, default_value = "monthly", value_name = "WHEN")]
    pub every: String,
    /// kubernetes: one Indexed Job running every playbook of the directory, playbook N
    /// on completion index N.
    #[arg(long)]
    pub indexed: bool,
    /// kubernetes: how many drills of --indexed run at once.
    #[arg(long, default_value_t = 4)]
    pub parallelism: usize,
    /// kubernetes: the image to run (the repository's Dockerfile builds it).
    #[arg(long, default_value = concat!("restore-drill:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// systemd, cron: where the records and reports go.
    #[arg(long, default_value = "artifacts/restore")]
    pub artifacts: PathBuf,
    /// systemd, cron: a var of the playbook each run overrides (repeatable), e.g.
    /// `--var os_user=postgres` where root runs the drill.
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleTarget {
    Systemd,
    Cron,
    Kubernetes,
}

/// The shells `completions` writes for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The playbook to run (a TOML file).
    pub playbook: PathBuf,
    /// Override a var of the playbook (repeatable).
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Where the record, report and log go; `s3://bucket/prefix/`: uploaded to
    /// `prefix/<drill>/` when the run ends (endpoint and keys from AWS_ENDPOINT_URL,
    /// AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
    #[arg(long, default_value = "artifacts/restore")]
    pub artifacts: PathBuf,
    /// Step through interactively: read each runbook, confirm manual steps.
    #[arg(long)]
    pub walkthrough: bool,
    /// Who takes part (repeatable); recorded in the artifact.
    #[arg(long = "operator", value_name = "NAME")]
    pub operators: Vec<String>,
    /// Keep the work directory (restored data) for inspection.
    #[arg(long)]
    pub keep_workdir: bool,
    /// Plain progress lines, no spinners.
    #[arg(long)]
    pub quiet: bool,
    /// Also write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write Prometheus metrics (text format) here.
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
}

/// `--format`: the short names (`md`, `prom`) as before, the long ones of `[report]
/// formats` (`markdown`, `prometheus`) as well.
impl ValueEnum for ReportFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &ReportFormat::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let value = PossibleValue::new(self.short_name());
        Some(match self.name() {
            long if long != self.short_name() => value.alias(long),
            _ => value,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
    Prom,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaKind {
    /// A playbook (for editors: `#:schema` in the TOML file).
    Playbook,
    /// A restore_drill_<ts>.json run record.
    Artifact,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

/// Starter playbooks of no engine's (`init --engine s3`, `restic`, `borg`: a `locate` from
/// a bucket or a repository): name, playbook, the command that runs it (`{playbook}` its
/// path).
pub const STARTERS: &[(&str, &str, &str)] = &[
    (
        "s3",
        include_str!("../templates/init/s3.toml"),
        "S3_ACCESS_KEY=... S3_SECRET_KEY=... restore-drill run {playbook} --var endpoint=https://... --var bucket=... --var prefix=...",
    ),
    (
        "restic",
        include_str!("../templates/init/restic.toml"),
        "RESTIC_PASSWORD_DRILL=... restore-drill run {playbook} --var repository=... --var path=...",
    ),
    (
        "borg",
        include_str!("../templates/init/borg.toml"),
        "BORG_PASSPHRASE_DRILL=... restore-drill run {playbook} --var repository=... --var path=...",
    ),
];

/// What `init --engine` takes: every engine, then the other starters.
pub fn starter_names() -> Vec<&'static str> {
    let mut names = crate::engines::names();
    names.extend(STARTERS.iter().map(|(name, _, _)| *name));
    names
}

/// Writes the completion script for `shell` (made in memory first: clap_complete panics
/// on a write error such as a closed pipe).
pub fn completions(shell: Shell, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap_complete::Shell as S;
    let shell = match shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
    };
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "restore-drill", &mut script);
    out.write_all(&script)
}

/// Writes the man page: the tool's, then a section per subcommand with its synopsis,
/// description and options.
pub fn man(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let cmd = <Cli as clap::CommandFactory>::command();
    clap_mangen::Man::new(cmd.clone()).render(out)?;
    for sub in cmd.get_subcommands() {
        let name = sub.get_name();
        writeln!(out, ".SH \"COMMAND: {}\"", name.to_uppercase())?;
        let page = clap_mangen::Man::new(sub.clone().bin_name(format!("restore-drill {name}")));
        let mut text = Vec::new();
        page.render_synopsis_section(&mut text)?;
        page.render_description_section(&mut text)?;
        page.render_options_section(&mut text)?;
        if sub.get_after_help().is_some() {
            page.render_extra_section(&mut text)?;
        }
        // Its sections are subsections of the command's.
        let text = String::from_utf8_lossy(&text).replace(".SH ", ".SS ");
        out.write_all(text.as_bytes())?;
    }
    Ok(())
}
