//! Cleanup, whatever happened: the application's services stopped first, then the
//! cleanup steps (a second Ctrl-C skips what is left of them), then everything else steps
//! registered torn down, and the work directory removed unless it is kept.

use super::Runner;
use crate::artifact::ResourceRecord;
use crate::events::Event;
use crate::playbook::{Section, Step};
use crate::proc::{self, Stopped, kernel, signals};

/// The detail of a work directory kept on purpose (`--keep-workdir`): no cleanup undone.
pub(super) const KEPT: &str = "kept (--keep-workdir)";

/// Between SIGTERM and SIGKILL for a stray (as for a service's `stop_grace` default).
const STRAY_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

impl Runner<'_> {
    pub(super) fn run_cleanup(&mut self, steps: &[Step]) {
        self.interrupted |= signals::count() > 0;
        if self.interrupted {
            self.notice("interrupted: stopping the running step and cleaning up (Ctrl-C again to skip cleanup)");
        }
        // The application goes first: cleanup steps may drop what it still holds open.
        if !second_interrupt() {
            self.tear_down_resources(|kind| kind == "service");
        }
        for step in steps {
            if second_interrupt() {
                let msg = format!(
                    "second interrupt: cleanup step `{}` and those after it skipped",
                    step.id
                );
                self.record.warnings.push(msg.clone());
                self.notice(&msg);
                break;
            }
            self.run_step(Section::Cleanup, step);
        }
        if second_interrupt() {
            for (kind, id, step) in self.resources.pending() {
                let msg = format!(
                    "left behind by the second interrupt: {kind} {id} (from step `{step}`)"
                );
                self.record.warnings.push(msg.clone());
                self.notice(&msg);
                self.record.resources.push(ResourceRecord {
                    kind,
                    id: self.redactor.redact(&id),
                    step: Some(step),
                    removed: false,
                    detail: Some("teardown skipped by a second interrupt".into()),
                });
            }
        } else {
            self.tear_down_resources(|_| true);
            self.stop_strays();
        }
        self.remove_workdir();
    }

    /// Processes of this run that left the groups it started (`setsid`, a daemon), which
    /// stopping those groups missed: stopped too, and recorded as `stray`.
    fn stop_strays(&mut self) {
        let Some(run) = kernel::run_id() else { return };
        for strays in proc::strays::stop(&run, STRAY_GRACE) {
            let found = strays.found.join(", ");
            let (removed, how) = match &strays.stopped {
                Ok(Stopped::Gone) => (true, "gone before it was stopped".to_string()),
                Ok(Stopped::Term) => (true, "stopped by SIGTERM".into()),
                Ok(Stopped::Kill) => (true, "stopped by SIGKILL".into()),
                Err(why) => (false, why.clone()),
            };
            let msg = format!(
                "process group {} ({found}) left the process groups this run started (setsid or a daemon): {how}",
                strays.pgid
            );
            self.record.warnings.push(msg.clone());
            self.notice(&msg);
            self.log.write("teardown", &msg);
            self.record.resources.push(ResourceRecord {
                kind: "stray".into(),
                id: self
                    .redactor
                    .redact(&format!("process group {}", strays.pgid)),
                step: None,
                removed,
                detail: Some(self.redactor.redact(&format!("{found}: {how}"))),
            });
        }
    }

    /// Stops services, drops scratch databases, removes clusters: whatever steps registered.
    fn tear_down_resources(&mut self, kind: impl Fn(&str) -> bool) {
        for torn in self.resources.tear_down_where(kind) {
            let removed = torn.result.is_ok();
            let detail = torn.result.err().map(|e| format!("{e:#}"));
            if let Some(d) = &detail {
                let msg = format!("{} {} was not removed: {d}", torn.kind, torn.id);
                self.record.warnings.push(msg.clone());
                self.notice(&msg);
            }
            self.log.write(
                "teardown",
                &format!(
                    "{} {}: {}",
                    torn.kind,
                    torn.id,
                    detail.as_deref().unwrap_or("removed")
                ),
            );
            self.record.resources.push(ResourceRecord {
                kind: torn.kind,
                id: self.redactor.redact(&torn.id),
                step: Some(torn.step),
                removed,
                detail,
            });
        }
        self.emit(Event::TornDown);
    }

    fn remove_workdir(&mut self) {
        let keep = self.opts.keep_workdir;
        let result = if keep {
            Ok(())
        } else {
            std::fs::remove_dir_all(&self.workdir)
        };
        let removed = !keep && result.is_ok();
        if let Some(r) = self
            .record
            .resources
            .iter_mut()
            .find(|r| r.kind == "workdir")
        {
            r.removed = removed;
            r.detail = match (keep, &result) {
                (true, _) => Some(KEPT.into()),
                (false, Err(e)) => Some(format!("could not remove: {e}")),
                (false, Ok(())) => None,
            };
        }
        if let Err(e) = result {
            let msg = format!("work directory {} left behind: {e}", self.workdir.display());
            self.record.warnings.push(msg.clone());
            self.notice(&msg);
        }
    }
}

/// A second Ctrl-C (or SIGTERM), wherever it came: what is left of cleanup is skipped.
fn second_interrupt() -> bool {
    signals::count() >= 2
}
