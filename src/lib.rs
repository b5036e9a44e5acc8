//! restore-drill: restore drills from TOML playbooks.

pub mod artifact;
pub mod cli;
pub mod commands;
pub mod engines;
pub mod events;
pub mod evidence;
pub mod exit;
pub mod fmt;
pub mod globs;
pub mod guard;
pub mod limits;
pub mod log;
pub mod notify;
pub mod operator;
pub mod playbook;
pub mod proc;
pub mod redact;
pub mod report;
pub mod resources;
pub mod runner;
pub mod schedule;
pub mod schema;
pub mod sources;
pub mod steps;
pub mod template;

pub use exit::ExitCode;
