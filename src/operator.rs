//! The operator of a walkthrough: lines typed on stdin, read by a thread of their own so
//! that whoever waits for an answer (the runner before a step, a manual step) can still
//! notice Ctrl-C.

use std::io::{BufRead as _, Write as _};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::proc::signals;
use crate::redact::Redactor;

#[derive(Clone)]
pub struct Operator {
    lines: Arc<Mutex<Receiver<String>>>,
    /// Prompts show rendered runbooks and instructions: secrets redacted.
    redactor: Arc<Redactor>,
    /// The people of the walkthrough (`--operator`), so that a manual step records who
    /// did it.
    names: Arc<Vec<String>>,
}

/// What the operator answered.
pub enum Answer {
    Line(String),
    /// Ctrl-C, or stdin closed: there is nobody to answer.
    Gone,
}

impl Operator {
    pub fn start(redactor: Arc<Redactor>, names: Vec<String>) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("operator".into())
            .spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .expect("start the operator thread");
        Self {
            lines: Arc::new(Mutex::new(rx)),
            redactor,
            names: Arc::new(names),
        }
    }

    /// Prints `text` on stderr (secrets redacted), without waiting for an answer.
    pub fn tell(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}", self.redactor.redact_cow(text));
    }

    /// Who of the walkthrough's operators did `what`: asked where there are several
    /// (Enter: the first named), the one where there is one; None where none was named.
    pub fn who(&self, what: &str) -> Option<Answer> {
        let names = self.names.as_slice();
        let first = names.first()?;
        if names.len() == 1 {
            return Some(Answer::Line(first.clone()));
        }
        let prompt = format!("Who did {what}? ({}; Enter: {first}) ", names.join(", "));
        loop {
            match self.ask(&prompt) {
                Answer::Line(name) if name.is_empty() => return Some(Answer::Line(first.clone())),
                Answer::Line(name) if names.contains(&name) => return Some(Answer::Line(name)),
                Answer::Line(name) => self.tell(&format!("`{name}` is not one of the operators")),
                Answer::Gone => return Some(Answer::Gone),
            }
        }
    }

    /// Prints `prompt` on stderr and waits for a line.
    pub fn ask(&self, prompt: &str) -> Answer {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{}", self.redactor.redact_cow(prompt));
        let _ = err.flush();
        drop(err);
        let lines = self.lines.lock().unwrap();
        loop {
            match lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => return Answer::Line(line.trim().to_string()),
                Err(RecvTimeoutError::Disconnected) => return Answer::Gone,
                Err(RecvTimeoutError::Timeout) if signals::count() > 0 => return Answer::Gone,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}
