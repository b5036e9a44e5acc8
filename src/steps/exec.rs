//! `exec`: run a command (through `sh -c`, or an argv) in its own process group; its
//! output goes to files (memory stays flat), then into the drill's log.

use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{StepCtx, StepOutcome};
use crate::log::tail_file;
use crate::outputs;
use crate::playbook::Step;
use crate::proc::Tool;

/// How much of stdout/stderr the record keeps (the log keeps everything).
const KEEP_BYTES: u64 = 4096;

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let expect = step.expect_exit.unwrap_or(0);
    let captured = Captured::new(ctx);
    let expr = command(step, false)?
        .stdin_null()
        .stdout_path(&captured.stdout)
        .stderr_path(&captured.stderr);
    let status = Tool::new(expr, "command").start(&ctx.cancel)?.finish()?;
    ctx.log
        .append_file(&ctx.step_id, "stdout", &captured.stdout);
    ctx.log
        .append_file(&ctx.step_id, "stderr", &captured.stderr);
    let stdout = tail_file(&captured.stdout, 200, KEEP_BYTES);
    let stderr = tail_file(&captured.stderr, 200, KEEP_BYTES);
    let mut outcome = StepOutcome::passed(outputs! {
        "exit_code" => status.code(),
        "stdout" => ctx.log.redactor().redact(&stdout),
        "stderr" => ctx.log.redactor().redact(&stderr),
    });
    let tail = [stderr.as_str(), stdout.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    outcome.log_tail = (!tail.is_empty()).then(|| last_lines(&tail, 20));
    captured.remove();
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

struct Captured {
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Captured {
    fn new(ctx: &StepCtx) -> Self {
        let dir = ctx.workdir.join(".steps");
        let _ = std::fs::create_dir_all(&dir);
        Self {
            stdout: dir.join(format!("{}.stdout", ctx.step_id)),
            stderr: dir.join(format!("{}.stderr", ctx.step_id)),
        }
    }

    fn remove(&self) {
        let _ = std::fs::remove_file(&self.stdout);
        let _ = std::fs::remove_file(&self.stderr);
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
