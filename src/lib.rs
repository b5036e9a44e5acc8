//! restore-drill: restore drills from TOML playbooks.

pub mod artifact;
pub mod cli;
pub mod commands;
pub mod engines;
pub mod exit;
pub mod limits;
pub mod log;
pub mod playbook;
pub mod report;
pub mod runner;
pub mod schema;
pub mod steps;
pub mod template;

pub use exit::ExitCode;
