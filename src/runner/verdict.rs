//! Gate policy: a step's `max_duration` gate once it passed, the drill's RTO, RPO and
//! custom gates once it ended (not evaluated when it stopped before recovery finished),
//! its status, and the one-line summary.

use super::{Runner, gates};
use crate::artifact::{
    GateKind, GateRecord, GateStatus, RunRecord, RunStatus, StepRecord, StepStatus,
};
use crate::events::Event;
use crate::fmt::plural;
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

    /// The `max_duration` gate of every step that did not pass (failed, skipped, never
    /// reached): not evaluated, rather than left out of the gates.
    fn unevaluated_step_gates(&mut self) {
        let mut gates = Vec::new();
        // The record lists every step in the playbook's order: found by position, since
        // its ids may be redacted (a secret `demo` makes `demo_db` `***_db` there).
        for ((_, step), rec) in self.pb.all_steps().zip(&self.record.steps) {
            let Some(max) = &step.max_duration else {
                continue;
            };
            if rec.status == StepStatus::Passed {
                continue;
            }
            let target = crate::limits::parse_duration(max)
                .ok()
                .map(|d| d.as_secs_f64());
            let shown = target.map_or_else(|| max.clone(), crate::fmt::fmt_secs);
            let status = rec.status.as_str().replace('_', " ");
            let why = format!("step `{}` did not pass ({status})", rec.id);
            gates.push(gates::not_evaluated(
                &format!("{} under {shown}", rec.name),
                GateKind::MaxDuration,
                target,
                &why,
            ));
        }
        for gate in gates {
            self.push_gate(gate);
        }
    }

    pub(super) fn evaluate_drill_gates(&mut self) {
        self.unevaluated_step_gates();
        let mut targets = self.pb.playbook.gates.clone();
        for (name, kind, slot) in [
            ("RTO", GateKind::Rto, &mut targets.rto),
            ("RPO", GateKind::Rpo, &mut targets.rpo),
        ] {
            if let Some(src) = slot.take() {
                match gates::target(&src, &self.ctx) {
                    Ok(text) => *slot = Some(text),
                    Err(why) => self.push_gate(gates::unreadable(name, kind, &why)),
                }
            }
        }
        let mut rto = gates::rto(&self.record.steps, &targets);
        let drill_steps = || {
            let steps = self.record.steps.iter();
            steps.filter(|s| s.section != Section::Cleanup)
        };
        let stopped =
            drill_steps().any(|s| matches!(s.status, StepStatus::NotRun | StepStatus::Running));
        // A step that failed and let the drill go on (`continue_on_failure`): recovery
        // did not succeed, so its time and the age of what it restored mean nothing.
        let failed = drill_steps().find(|s| s.status.is_failure());
        // A step the operator skipped in a walkthrough: the time of a recovery without
        // it is not the recovery's.
        let unproved = drill_steps().find(|s| skipped_by_operator(s));
        let completed = !self.interrupted && !stopped && failed.is_none() && unproved.is_none();
        let why = match (failed, unproved) {
            _ if self.interrupted => "the drill was interrupted".to_string(),
            _ if stopped => "the drill stopped before recovery finished".to_string(),
            (Some(s), _) => format!("step `{}` failed: recovery did not finish", s.id),
            (None, Some(s)) => format!("step `{}` {OPERATOR_SKIP}: recovery was not proved", s.id),
            (None, None) => String::new(),
        };
        let why = why.as_str();
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
        if let Some((mut rpo, gate)) = gates::rpo(&targets, &self.ctx, self.started_at) {
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
        let pb = self.pb;
        let steps = pb.all_steps().zip(&self.record.steps);
        let statuses: Vec<(&str, StepStatus)> =
            steps.map(|((_, s), r)| (s.id.as_str(), r.status)).collect();
        for custom in &targets.custom {
            let unmeasured = gates::unmeasured_step(&custom.check, &statuses);
            let gate = if let (true, Some(why)) = (completed, &unmeasured) {
                gates::not_evaluated(&custom.name, GateKind::Custom, None, why)
            } else if completed {
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
            .any(|g| g.status == GateStatus::Failed || unmet(g));
        let unproved = self.record.steps.iter().any(skipped_by_operator);
        if step_failed || gate_failed || unproved || nothing_ran(&self.record) {
            RunStatus::Failed
        } else {
            RunStatus::Passed
        }
    }
}

/// Every step of the drill itself was skipped (`when`): it proved nothing, so it cannot
/// have passed (as `validate` refuses a playbook without `[[steps]]`).
fn nothing_ran(record: &RunRecord) -> bool {
    let steps = || {
        let all = record.steps.iter();
        all.filter(|s| s.section == Section::Steps)
    };
    steps().next().is_some() && steps().all(|s| s.status == StepStatus::Skipped)
}

/// Why a step the operator answered `skip` to in a walkthrough did not run (its
/// `skipped_because`).
pub(super) const OPERATOR_SKIP: &str = "skipped by the operator";

/// A step of the drill itself that the operator skipped in a walkthrough: what it was to
/// prove went unproved, so the drill cannot pass (as a manual step answered `skip` is
/// not done). A `wait` proves nothing: skipping one fails nothing; nor does a step
/// skipped by its playbook's `when`.
fn skipped_by_operator(step: &StepRecord) -> bool {
    step.section == Section::Steps
        && step.status == StepStatus::Skipped
        && step.kind != "wait"
        && step.outputs.get("skipped_because").and_then(|v| v.as_str()) == Some(OPERATOR_SKIP)
}

/// What [`nothing_ran`] says in the summary.
const NOTHING_RAN: &str = "every step of the drill was skipped: it proved nothing";

/// A drill's target (RTO, RPO, a custom gate) that was set and not evaluated: the drill
/// cannot have passed, since "every gate passed" is what passing means. A skipped step's
/// `max_duration` goes with its step (a step skipped by `when` fails nothing), and an RPO
/// gate without a target has nothing to meet.
fn unmet(gate: &GateRecord) -> bool {
    gate.status == GateStatus::NotEvaluated
        && match gate.kind {
            GateKind::MaxDuration => false,
            GateKind::Custom => true,
            _ => gate.target_s.is_some(),
        }
}

/// How long the summary may grow: one line a pager, a chat message or a mail subject
/// shows whole.
pub const SUMMARY_CHARS: usize = 200;

/// One line (at most [`SUMMARY_CHARS`]): the verdict and, when it failed, the first
/// failure, named; the full detail stays in the step or the gate.
pub fn summary(record: &RunRecord) -> String {
    let steps = record
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
        });
    let gates = record.gates.iter().filter_map(|g| match g.status {
        GateStatus::Failed => Some(format!("gate {} missed: {}", g.name, g.detail)),
        _ if unmet(g) => Some(format!("gate {} not evaluated: {}", g.name, g.detail)),
        _ => None,
    });
    let unproved = record.steps.iter().filter(|s| skipped_by_operator(s));
    let unproved = unproved.map(|s| format!("step `{}` {OPERATOR_SKIP}: not proved", s.id));
    let nothing = nothing_ran(record).then(|| NOTHING_RAN.to_string());
    let mut reasons = nothing
        .into_iter()
        .chain(steps)
        .chain(unproved)
        .chain(gates);
    let count = |status: StepStatus| record.steps.iter().filter(|s| s.status == status).count();
    let text = match record.status {
        RunStatus::Passed => {
            let gates = record.gates.iter();
            let passed = gates.filter(|g| g.status == GateStatus::Passed).count();
            // A skipped step did not run: it is not counted among those that passed.
            let skipped = match count(StepStatus::Skipped) {
                0 => String::new(),
                n => format!(" ({n} skipped)"),
            };
            // What cleanup could not remove does not fail the drill, but the line
            // that pagers, chats and CI show says so (the detail is in `warnings`).
            let left = left_behind(record).map_or_else(String::new, |l| format!("; {l}"));
            format!(
                "passed: {}{skipped}, {} passed{left}",
                plural(count(StepStatus::Passed), "step"),
                plural(passed, "gate")
            )
        }
        RunStatus::Aborted => format!("aborted: interrupted; {}", cleanup_outcome(record)),
        RunStatus::Error => format!(
            "error: {}",
            record.error.as_deref().unwrap_or("the runner broke")
        ),
        RunStatus::Running => "running".into(),
        RunStatus::Failed => {
            let first = reasons.next().unwrap_or_default();
            let more = reasons.count();
            let more = if more > 0 {
                format!(" (and {more} more)")
            } else {
                String::new()
            };
            let room = SUMMARY_CHARS - "failed: ".len() - more.chars().count();
            format!("failed: {}{more}", one_line(&first, room))
        }
    };
    one_line(&text, SUMMARY_CHARS)
}

/// Whether cleanup ran to its end after an interrupt: a second one skips what is left of
/// it (and of the teardown), and a cleanup step can fail or be interrupted itself. A kept
/// work directory is no cleanup left undone.
fn cleanup_outcome(record: &RunRecord) -> String {
    let cleanup = || {
        let steps = record.steps.iter();
        steps.filter(|s| s.section == Section::Cleanup)
    };
    let mut undone: Vec<String> = cleanup()
        .filter(|s| s.status.is_failure())
        .map(|s| format!("step `{}` {}", s.id, s.status.as_str().replace('_', " ")))
        .collect();
    let not_run = cleanup()
        .filter(|s| matches!(s.status, StepStatus::NotRun | StepStatus::Running))
        .count();
    if not_run > 0 {
        undone.push(format!("{} not run", plural(not_run, "cleanup step")));
    }
    if let Some(left) = left_behind(record) {
        undone.push(left);
    }
    if undone.is_empty() {
        "cleanup ran".into()
    } else {
        format!("cleanup incomplete: {}", undone.join(", "))
    }
}

/// How many resources cleanup failed to remove (a service, a scratch database, a
/// cluster, the work directory), when there are any; a work directory kept on purpose
/// is not one.
fn left_behind(record: &RunRecord) -> Option<String> {
    let kept = Some(super::cleanup::KEPT);
    let resources = record.resources.iter();
    let left = resources.filter(|r| !r.removed && r.detail.as_deref() != kept);
    match left.count() {
        0 => None,
        n => Some(format!("{} left behind", plural(n, "resource"))),
    }
}

/// The first line of `text`, at most `max` characters (cut with `…`).
fn one_line(text: &str, max: usize) -> String {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let first = first.trim();
    let cut = first.chars().count() > max || text.trim().lines().nth(1).is_some();
    if !cut {
        return first.to_string();
    }
    let kept: String = first.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", kept.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::Mode;
    use crate::runner::RunOptions;

    /// The record of a failed drill of two steps, `a` and `b`, each failed with its
    /// error where one is given.
    fn failed(errors: [Option<&str>; 2]) -> RunRecord {
        let dir = tempfile::tempdir().unwrap();
        let playbook = dir.path().join("p.toml");
        let step = |id| format!("[[steps]]\nid = \"{id}\"\nkind = \"wait\"\nduration = \"1ms\"\n");
        let toml = format!(
            "version = 1\n[drill]\nname = \"t\"\n{}{}",
            step("a"),
            step("b")
        );
        std::fs::write(&playbook, toml).unwrap();
        let pb = crate::playbook::load(&playbook, &crate::engines::specs()).unwrap();
        let mut record = super::super::setup::initial_record(
            &pb,
            &RunOptions::default(),
            "t-1".into(),
            Mode::Automated,
            &jiff::Timestamp::now(),
            dir.path(),
            &dir.path().join("r.json"),
            &dir.path().join("r.log"),
        );
        record.status = RunStatus::Failed;
        for (step, error) in record.steps.iter_mut().zip(errors) {
            step.status = StepStatus::Passed;
            if let Some(error) = error {
                step.status = StepStatus::Failed;
                step.error = Some(error.into());
            }
        }
        record
    }

    #[test]
    fn a_failed_summary_names_the_first_failure_and_counts_the_others() {
        let one = summary(&failed([Some("exit 3"), None]));
        assert_eq!(one, "failed: step `a` failed: exit 3");
        let two = summary(&failed([Some("exit 3"), Some("exit 4")]));
        assert_eq!(two, "failed: step `a` failed: exit 3 (and 1 more)");
    }

    /// A first failure too long for the line is cut so that the count of the others
    /// still ends it.
    #[test]
    fn a_long_first_failure_is_cut_before_the_count_of_the_others() {
        let long = "x".repeat(400);
        let text = summary(&failed([Some(&long), Some("exit 4")]));
        assert!(text.ends_with("x… (and 1 more)"), "{text}");
        assert_eq!(text.chars().count(), SUMMARY_CHARS, "{text}");
    }

    #[test]
    fn one_line_keeps_the_first_line_within_its_length() {
        assert_eq!(one_line("short", 10), "short");
        assert_eq!(one_line("\nfirst\nsecond", 10), "first…");
        assert_eq!(one_line("abcdefghijkl", 6), "abcde…");
        // Exactly as long as allowed: kept whole.
        assert_eq!(one_line("abcdef", 6), "abcdef");
    }
}
