//! `wait`: let time pass (a replica catching up, a cache expiring).

use anyhow::bail;

use super::{StepCtx, StepOutcome, duration};
use crate::playbook::Step;

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let wait = duration(step.duration.as_deref(), "duration")?.unwrap_or_default();
    if !ctx.cancel.sleep(wait) {
        bail!("cancelled");
    }
    Ok(StepOutcome::passed(Default::default()))
}
