//! `rto_phases`: at least one phase it names must be the phase of a step of `[[steps]]`.
//! Otherwise (a typo: `restor`) the RTO counts nothing, and its gate would end "not
//! evaluated" on every run, never measured. A list naming more phases than the steps have
//! is fine: a team's usual list (`detect`, `decide`, `restore`, ...) fits every drill.

use super::super::fields::default_phase;
use super::super::spans::Seg;
use super::Validator;
use crate::template;

impl Validator<'_> {
    pub(super) fn rto_phases(&mut self) {
        let Some(listed) = &self.pb.gates.rto_phases else {
            return;
        };
        let given = |s: &crate::playbook::Step| s.phase.clone();
        // A templated phase is known only to the run.
        if self
            .pb
            .steps
            .iter()
            .filter_map(given)
            .any(|p| template::has_template_syntax(&p))
        {
            return;
        }
        let mut phases: Vec<String> = Vec::new();
        for step in &self.pb.steps {
            let phase = step
                .phase
                .clone()
                .unwrap_or_else(|| default_phase(step).into());
            if !phases.contains(&phase) {
                phases.push(phase);
            }
        }
        if listed.iter().any(|p| phases.contains(p)) {
            return;
        }
        let span = self
            .spans
            .value(&[Seg::Key("gates"), Seg::Key("rto_phases")]);
        let named = listed.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>();
        self.error(
            format!(
                "no step of [[steps]] is in {}: the RTO would count nothing",
                named.join(" or ")
            ),
            span,
        )
        .help = Some(format!("the phases of [[steps]]: {}", phases.join(", ")));
    }
}
