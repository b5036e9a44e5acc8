//! `manual`: a human action. In a walkthrough the operator confirms it and its real
//! duration is recorded, with who did it (`done_by`, one of `--operator`); in an automated run its `assume` is counted (and marked assumed),
//! so the RTO includes detection and decision time.

use anyhow::bail;

use super::{StepCtx, StepOutcome, duration, required};
use crate::operator::Answer;
use crate::outputs;
use crate::playbook::Step;

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let instructions = required(step.instructions.as_deref(), "instructions")?;
    let Some(operator) = &ctx.operator else {
        let assumed = duration(step.assume.as_deref(), "assume")?.unwrap_or_default();
        // No one answered: `note` and `done_by` are none (a template may still read them).
        let mut outcome = StepOutcome::passed(outputs! {
            "assumed" => true,
            "assume_s" => assumed.as_secs_f64(),
            "note" => None::<String>,
            "done_by" => None::<String>,
        });
        outcome.assumed_s = Some(assumed.as_secs_f64());
        if step.assume.is_none() {
            outcome.warnings.push(
                "a manual step without `assume`: its phase counts 0s of it in the RTO of a run without an operator".into(),
            );
        }
        return Ok(outcome);
    };
    let runbook = step
        .runbook
        .as_deref()
        .map(|r| format!("{}\n\n", r.trim()))
        .unwrap_or_default();
    let prompt = format!(
        "\n── manual step: {} ──\n{runbook}{}\n\nPress Enter when done (or type a note; start it with `fail` if it could not be done): ",
        step.title(),
        instructions.trim()
    );
    let note = match operator.ask(&prompt) {
        Answer::Line(note) => note,
        Answer::Gone => bail!("no answer from the operator"),
    };
    ctx.log.write(&ctx.step_id, &format!("operator: {note}"));
    if note.to_lowercase().starts_with("fail") {
        bail!("operator reported failure: {note}");
    }
    // `skip` skips the drill's other steps; a manual action skipped was not done.
    if note.trim().eq_ignore_ascii_case("skip") {
        bail!("the operator answered `skip`: the manual step was not done");
    }
    let done_by = match operator.who(&format!("\"{}\"", step.title())) {
        Some(Answer::Line(name)) => Some(name),
        Some(Answer::Gone) => bail!("no answer from the operator"),
        None => None,
    };
    if let Some(name) = &done_by {
        ctx.log.write(&ctx.step_id, &format!("done by {name}"));
    }
    Ok(StepOutcome::passed(
        outputs! { "assumed" => false, "note" => note, "done_by" => done_by },
    ))
}
