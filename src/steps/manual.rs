//! `manual`: a human action. In a walkthrough the operator confirms it and its real
//! duration is recorded; in an automated run its `assume` is counted (and marked assumed),
//! so the RTO includes detection and decision time.

use std::io::{BufRead as _, Write as _};

use anyhow::bail;

use super::{StepCtx, StepOutcome, duration, required};
use crate::outputs;
use crate::playbook::Step;

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let instructions = required(step.instructions.as_deref(), "instructions")?;
    if !ctx.walkthrough {
        let assumed = duration(step.assume.as_deref(), "assume")?.unwrap_or_default();
        let mut outcome = StepOutcome::passed(outputs! {
            "assumed" => true,
            "assume_s" => assumed.as_secs_f64(),
        });
        outcome.assumed_s = Some(assumed.as_secs_f64());
        return Ok(outcome);
    }
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "\n── manual step: {} ──\n{}\n",
        step.title(),
        instructions.trim()
    )?;
    write!(
        err,
        "Press Enter when done (or type a note; start with `fail` if it could not be done): "
    )?;
    err.flush()?;
    drop(err);
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let note = answer.trim().to_string();
    ctx.log.write(&ctx.step_id, &format!("operator: {note}"));
    if note.to_lowercase().starts_with("fail") {
        bail!("operator reported failure: {note}");
    }
    Ok(StepOutcome::passed(
        outputs! { "assumed" => false, "note" => note },
    ))
}
