//! Progress on stderr: a spinner (or a byte bar) while a step runs and a line per step
//! when it ends. Plain lines when stderr is not a terminal or with `--quiet`.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::artifact::{GateStatus, Mode, RunRecord, StepRecord, StepStatus};
use crate::events::{Event, Observer};
use crate::fmt::fmt_secs;
use crate::fmt::human_bytes;

pub struct Progress {
    fancy: bool,
    bar: Option<ProgressBar>,
    bytes_mode: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Self {
            fancy: !quiet && std::io::stderr().is_terminal(),
            bar: None,
            bytes_mode: false,
        }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{text}");
            }
        }
    }

    fn start_spinner(&mut self, step: &StepRecord) {
        if !self.fancy {
            return;
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("  {spinner} {msg} {elapsed}").expect("valid template"),
        );
        bar.set_message(step.name.clone());
        bar.enable_steady_tick(Duration::from_millis(100));
        self.bar = Some(bar);
        self.bytes_mode = false;
    }

    fn show_bytes(&mut self, done: u64, total: u64) {
        let Some(bar) = &self.bar else { return };
        if !self.bytes_mode {
            bar.set_style(
                ProgressStyle::with_template(
                    "  {spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            self.bytes_mode = true;
        }
        bar.set_length(total);
        bar.set_position(done);
    }

    fn finish_step(&mut self, step: &StepRecord) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let (mark, word) = match step.status {
            StepStatus::Passed => ("✔", "passed"),
            StepStatus::Failed => ("✘", "FAILED"),
            StepStatus::TimedOut => ("✘", "TIMED OUT"),
            StepStatus::Skipped => ("-", "skipped"),
            StepStatus::NotRun | StepStatus::Running => ("?", step.status.as_str()),
        };
        let time = match step.assumed_s {
            Some(a) => format!("{} (assumed)", fmt_secs(a)),
            None => fmt_secs(step.duration_s),
        };
        let mut text = format!(
            "  {mark} {:<8} {:<44} {word:<9} {time}",
            step.phase,
            truncate(&step.name, 44)
        );
        if let Some(bytes) = step.outputs.get("bytes").and_then(|b| b.as_f64()) {
            text.push_str(&format!("  {}", human_bytes(bytes)));
        }
        if let Some(err) = &step.error {
            text.push_str(&format!("\n      {err}"));
        }
        text.push_str(&stderr_tail(step));
        self.line(&text);
    }
}

/// Lines of a failed command's stderr shown under it (cron mails only the terminal).
const STDERR_LINES: usize = 10;

/// The last lines of a failed `exec` step's stderr, indented; empty otherwise.
fn stderr_tail(step: &StepRecord) -> String {
    let stderr = step.outputs.get("stderr").and_then(|s| s.as_str());
    let Some(stderr) = stderr.filter(|_| step.kind == "exec" && step.status.is_failure()) else {
        return String::new();
    };
    let lines: Vec<&str> = stderr.lines().collect();
    let shown = &lines[lines.len().saturating_sub(STDERR_LINES)..];
    shown.iter().map(|l| format!("\n      | {l}")).collect()
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

impl Observer for Progress {
    fn on_event(&mut self, event: &Event<'_>, record: &RunRecord) -> std::io::Result<()> {
        match event {
            Event::DrillStarted => self.line(&format!(
                "restore-drill: {} ({})",
                record.drill.title.as_deref().unwrap_or(&record.drill.name),
                record.run_id
            )),
            // A manual step of a walkthrough is waiting at a prompt: no spinner over it.
            Event::StepStarted(step)
                if step.kind == "manual" && record.mode == Mode::Walkthrough => {}
            Event::StepStarted(step) => self.start_spinner(step),
            Event::StepProgress { done, total, .. } => self.show_bytes(*done, *total),
            Event::StepFinished(step) => self.finish_step(step),
            Event::GateEvaluated(gate) => {
                let mark = match gate.status {
                    GateStatus::Passed => "✔",
                    GateStatus::Failed => "✘",
                    GateStatus::NotEvaluated => "-",
                };
                // Cut like a step's name, so that every detail starts in one column.
                let name = truncate(&gate.name, 39);
                self.line(&format!("  {mark} gate {name:<39} {}", gate.detail));
            }
            Event::Notice(text) => self.line(&format!("  ! {text}")),
            Event::TornDown => {}
            Event::DrillFinished => {
                self.line(&record.summary);
                // A failed drill that could not write an artifact says that too.
                if let Some(e) = record
                    .error
                    .as_deref()
                    .filter(|e| !record.summary.contains(e))
                {
                    self.line(&format!("  ! {e}"));
                }
                for (kind, path) in &record.artifacts {
                    self.line(&format!(
                        "  {kind:<10} {}",
                        path.as_str().unwrap_or_default()
                    ));
                }
            }
        }
        Ok(())
    }
}
