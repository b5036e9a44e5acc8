//! Exit codes: stable, documented in the README and `--help`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// The drill passed: every step and gate passed.
    Passed = 0,
    /// The drill failed: a step failed or a gate was missed (artifact and report written).
    Failed = 1,
    /// Usage error or invalid playbook (nothing was run).
    Usage = 2,
    /// The runner itself broke (I/O error writing artifacts, internal error).
    Broken = 3,
    /// Interrupted (SIGINT/SIGTERM): cleanup ran, artifact written with status `aborted`.
    Interrupted = 130,
}

pub const HELP: &str = "\
Exit codes:
  0    drill passed: every step and gate passed
  1    drill failed: a step failed or a gate was missed (artifact and report written)
  2    usage error or invalid playbook (nothing was run)
  3    the runner itself broke (I/O error writing artifacts, internal error)
  130  interrupted (SIGINT/SIGTERM): cleanup ran, artifact written with status `aborted`";
