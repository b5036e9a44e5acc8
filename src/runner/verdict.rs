//! Gate policy: a step's `max_duration` gate once it passed, the drill's RTO, RPO and
//! custom gates once it ended (not evaluated when it stopped before recovery finished),
//! its status, and the one-line summary.

use super::{Runner, gates};
use crate::artifact::{GateKind, GateRecord, GateStatus, RunRecord, RunStatus, StepStatus};
use crate::events::Event;
use crate::playbook::Section;

impl Runner<'_> {
    /// Records a gate and tells the observers (the record, gate and all, is scrubbed of
    /// secrets first).
    pub(super) fn push_gate(&mut self, gate: GateRecord) {
        self.record.gates.push(gate);
        self.observers.emit_with(&mut self.record, |r| {
            Event::GateEvaluated(r.gates.last().expect("just pushed"))
        });
    }

    pub(super) fn evaluate_drill_gates(&mut self) {
        let book = &self.pb.playbook;
        let mut rto = gates::rto(&self.record.steps, &book.gates);
        let completed = !self.interrupted
            && self
                .record
                .steps
                .iter()
                .filter(|s| s.section != Section::Cleanup)
                .all(|s| !matches!(s.status, StepStatus::NotRun | StepStatus::Running));
        let why = if self.interrupted {
            "the drill was interrupted"
        } else {
            "the drill stopped before recovery finished"
        };
        if let Some(gate) = gates::rto_gate(&rto) {
            let gate = if completed {
                gate
            } else {
                gates::not_evaluated("RTO", GateKind::Rto, rto.target_s, why)
            };
            self.push_gate(gate);
        }
        if !completed {
            // Recovery did not finish: its time and the age of what it restored were
            // not measured, whatever the steps that ran took.
            rto.measured_s = None;
        }
        self.record.rto = rto;
        if let Some((mut rpo, gate)) = gates::rpo(&book.gates, &self.ctx, self.started_at) {
            let gate = if completed {
                gate
            } else {
                rpo.measured_s = None;
                rpo.source = None;
                rpo.error = Some(why.to_string());
                gates::not_evaluated("RPO", GateKind::Rpo, rpo.target_s, why)
            };
            self.push_gate(gate);
            self.record.rpo = Some(rpo);
        }
        for custom in &book.gates.custom {
            let gate = if completed {
                gates::custom(
                    &custom.name,
                    &custom.check,
                    &self.ctx,
                    &self.record.rto,
                    self.record.rpo.as_ref(),
                )
            } else {
                gates::not_evaluated(&custom.name, GateKind::Custom, None, why)
            };
            self.push_gate(gate);
        }
    }

    pub(super) fn verdict(&self) -> RunStatus {
        if self.interrupted {
            return RunStatus::Aborted;
        }
        let step_failed = self.record.steps.iter().any(|s| s.status.is_failure());
        let gate_failed = self
            .record
            .gates
            .iter()
            .any(|g| g.status == GateStatus::Failed);
        if step_failed || gate_failed {
            RunStatus::Failed
        } else {
            RunStatus::Passed
        }
    }
}

/// One line: the verdict and, when it failed, the first reasons.
pub fn summary(record: &RunRecord) -> String {
    let mut reasons: Vec<String> = record
        .steps
        .iter()
        .filter(|s| s.status.is_failure())
        .map(|s| {
            format!(
                "step `{}` {}: {}",
                s.id,
                s.status.as_str().replace('_', " "),
                s.error.as_deref().unwrap_or("")
            )
        })
        .collect();
    reasons.extend(
        record
            .gates
            .iter()
            .filter(|g| g.status == GateStatus::Failed)
            .map(|g| format!("gate {} missed: {}", g.name, g.detail)),
    );
    let ran = record
        .steps
        .iter()
        .filter(|s| !matches!(s.status, StepStatus::NotRun))
        .count();
    match record.status {
        RunStatus::Passed => format!(
            "passed: {ran} steps, {} gates passed",
            record
                .gates
                .iter()
                .filter(|g| g.status == GateStatus::Passed)
                .count()
        ),
        RunStatus::Aborted => "aborted: interrupted; cleanup ran".into(),
        RunStatus::Error => format!(
            "error: {}",
            record.error.as_deref().unwrap_or("the runner broke")
        ),
        RunStatus::Running => "running".into(),
        RunStatus::Failed => {
            let more = reasons.len().saturating_sub(3);
            let mut s = format!(
                "failed: {}",
                reasons.into_iter().take(3).collect::<Vec<_>>().join("; ")
            );
            if more > 0 {
                s.push_str(&format!(" (and {more} more)"));
            }
            s
        }
    }
}
