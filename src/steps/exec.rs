//! `exec`: run a command (through `sh -c`, or an argv) in its own process group; its
//! output goes into the drill's log line by line as it comes (memory stays flat).

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;

use anyhow::Context as _;

use super::output::{OUTPUT_DRAIN, Output};
use super::{StepCtx, StepOutcome};
use crate::outputs;
use crate::playbook::Step;
use crate::proc::Tool;

/// Lines of the output (both streams, in the order they came) kept as the log tail.
const TAIL_LINES: usize = 20;

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let expect = step.expect_exit.unwrap_or(0);
    let (stdout, stdout_w) = os_pipe::pipe()?;
    let (stderr, stderr_w) = os_pipe::pipe()?;
    let expr = command(step, false)?
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

/// `argv`, or `run` through `sh -c`, with `cwd` and `env` added to the inherited
/// environment. A relative program path (`bin/app`) is found from the drill's directory,
/// or from `cwd` with `program_from_cwd` (where a service always found it).
pub fn command(step: &Step, program_from_cwd: bool) -> anyhow::Result<duct::Expression> {
    let mut expr = match (&step.argv, &step.run) {
        (Some(argv), _) => {
            let (program, args) = argv.split_first().context("`argv` is empty")?;
            let path = Path::new(program);
            match &step.cwd {
                Some(cwd) if program_from_cwd && path.is_relative() && program.contains('/') => {
                    duct::cmd(Path::new(cwd).join(path), args)
                }
                _ => duct::cmd(program, args),
            }
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
