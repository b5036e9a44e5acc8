//! `exec`: run a command (through `sh -c`, or an argv) in its own process group; its
//! output goes into the drill's log line by line as it comes (memory stays flat).

use std::borrow::Cow;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;

use anyhow::Context as _;

use super::output::{OUTPUT_DRAIN, Output};
use super::{StepCtx, StepOutcome};
use crate::outputs;
use crate::playbook::Step;
use crate::proc::Tool;
use crate::redact::Redactor;

/// Lines of the output (both streams, in the order they came) kept as the log tail.
const TAIL_LINES: usize = 20;

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let expect = step.expect_exit.unwrap_or(0);
    let (stdout, stdout_w) = os_pipe::pipe()?;
    let (stderr, stderr_w) = os_pipe::pipe()?;
    let expr = command(step, false, ctx.log.redactor())?
        .stdin_null()
        .stdout_file(stdout_w)
        .stderr_file(stderr_w);
    let running = Tool::new(expr, "command").start(&ctx.cancel)?;
    let output = Output::capture([("stdout", stdout), ("stderr", stderr)], ctx, None);
    let status = running.finish()?;
    // The group is gone: the copying sees the end of its output.
    output.join(OUTPUT_DRAIN);
    let (stdout, stderr) = output.streams();
    let mut outcome = StepOutcome::passed(outputs! {
        "exit_code" => status.code(),
        "stdout" => ctx.log.redactor().redact(&stdout),
        "stderr" => ctx.log.redactor().redact(&stderr),
    });
    outcome.log_tail = output.tail(ctx, TAIL_LINES);
    match (status.code(), status.signal()) {
        (Some(code), _) if code == expect => Ok(outcome),
        (Some(code), _) => Ok(outcome.fail(format!("exited with {code}, expected {expect}"))),
        (None, Some(sig)) => Ok(outcome.fail(format!("killed by signal {sig}"))),
        (None, None) => Ok(outcome.fail("ended without an exit status")),
    }
}

/// The variable a `run` that holds a secret reaches `sh` through (never its argv).
const SCRIPT_VAR: &str = "RESTORE_DRILL_SCRIPT";

/// `argv`, or `run` through `sh -c`, with `cwd` and `env` added to the inherited
/// environment. A relative program path (`bin/app`) is found from the drill's directory,
/// or from `cwd` with `program_from_cwd` (where a service always found it).
///
/// A command line is readable by every user of the machine (`ps`): a `run` holding a
/// secret (or a url's password) goes to `sh` in the environment of that process alone
/// (unset before it runs, so nothing it starts inherits it), and an `argv` word holding
/// one is refused.
pub fn command(
    step: &Step,
    program_from_cwd: bool,
    redactor: &Redactor,
) -> anyhow::Result<duct::Expression> {
    let secret = |text: &str| matches!(redactor.redact_cow(text), Cow::Owned(_));
    let mut expr = match (&step.argv, &step.run) {
        (Some(argv), _) => {
            if let Some(n) = argv.iter().position(|word| secret(word)) {
                anyhow::bail!(
                    "`argv` word {} holds a secret, which a command line shows to every user of the machine (ps): pass it in `env` instead",
                    n + 1
                );
            }
            let (program, args) = argv.split_first().context("`argv` is empty")?;
            let path = Path::new(program);
            match &step.cwd {
                Some(cwd) if program_from_cwd && path.is_relative() && program.contains('/') => {
                    duct::cmd(Path::new(cwd).join(path), args)
                }
                _ => duct::cmd(program, args),
            }
        }
        (None, Some(script)) if secret(script) => {
            let run =
                format!("__rd_script=${SCRIPT_VAR}; unset {SCRIPT_VAR}; eval \"$__rd_script\"");
            duct::cmd("sh", ["-c", run.as_str()]).env(SCRIPT_VAR, script)
        }
        (None, Some(script)) => duct::cmd("sh", ["-c", script.as_str()]),
        (None, None) => anyhow::bail!("needs `run` or `argv`"),
    };
    if let Some(cwd) = &step.cwd {
        expr = expr.dir(cwd);
    }
    for (key, value) in step.env.iter().flatten() {
        expr = expr.env(key, value);
    }
    Ok(expr)
}
