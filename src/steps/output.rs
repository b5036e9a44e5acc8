//! A child's stdout and stderr, copied line by line into the drill's log by two threads
//! as the lines arrive (memory stays flat), so the log and the tail keep the order in
//! which the lines were written; the last lines of each stream are kept too (an `exec`
//! step's `stdout` and `stderr` outputs). Used by `exec` and `service`.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::StepCtx;
use crate::log::LogSink;
use crate::redact::CUT;

/// Lines kept for a failure's log tail (both streams, in order); the log has them all.
const TAIL_LINES: usize = 40;
/// Lines and bytes kept of each stream on its own.
const STREAM_LINES: usize = 200;
const STREAM_BYTES: usize = 4096;
/// A line longer than this is cut into pieces, so a program printing without newlines
/// cannot grow memory.
const MAX_LINE: u64 = 8 * 1024;
/// How long the threads copying the output may take to see its end once the program
/// is gone.
pub const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// The last lines of one stream, at most [`STREAM_LINES`] and about [`STREAM_BYTES`].
#[derive(Default)]
struct Kept {
    lines: VecDeque<String>,
    bytes: usize,
}

impl Kept {
    fn push(&mut self, line: &str, max_lines: usize, max_bytes: usize) {
        self.lines.push_back(line.to_string());
        self.bytes += line.len() + 1;
        while self.lines.len() > max_lines || (self.bytes > max_bytes && self.lines.len() > 1) {
            let gone = self.lines.pop_front().unwrap_or_default();
            self.bytes -= gone.len() + 1;
        }
    }

    fn text(&self) -> String {
        self.lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// What the two threads keep: both streams in arrival order, and each on its own.
#[derive(Default)]
struct Seen {
    both: Kept,
    stdout: Kept,
    stderr: Kept,
}

pub struct Output {
    seen: Arc<Mutex<Seen>>,
    saw_line: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Output {
    /// Starts copying `streams` (named `stdout` and `stderr`); `ready_line`: a line to
    /// watch for (a service's readiness).
    pub fn capture(
        streams: [(&'static str, os_pipe::PipeReader); 2],
        ctx: &StepCtx,
        ready_line: Option<String>,
    ) -> Self {
        let output = Self {
            seen: Arc::default(),
            saw_line: Arc::default(),
            threads: Mutex::default(),
        };
        for (name, stream) in streams {
            let pump = Pump {
                stream: name,
                step: ctx.step_id.clone(),
                log: ctx.log.clone(),
                seen: Arc::clone(&output.seen),
                saw_line: Arc::clone(&output.saw_line),
                ready_line: ready_line.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{name}", ctx.step_id))
                .spawn(move || pump.run(stream));
            if let Ok(handle) = spawned {
                output.threads.lock().unwrap().push(handle);
            }
        }
        output
    }

    pub fn saw_ready_line(&self) -> bool {
        self.saw_line.load(Ordering::SeqCst)
    }

    /// Waits (at most `limit`) for the copying to finish, so the log is complete; a
    /// process that escaped the group may hold the pipe open, hence the limit.
    pub fn join(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut threads = self.threads.lock().unwrap();
        while threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        for t in std::mem::take(&mut *threads) {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }

    /// The last `lines` lines printed on either stream, in the order they came, each
    /// prefixed with its stream, secrets redacted; None when nothing was printed.
    pub fn tail(&self, ctx: &StepCtx, lines: usize) -> Option<String> {
        let seen = self.seen.lock().unwrap();
        let all = &seen.both.lines;
        let text = all.range(all.len().saturating_sub(lines)..).cloned();
        let text = text.collect::<Vec<_>>().join("\n");
        (!text.is_empty()).then(|| ctx.log.redactor().redact(&text))
    }

    /// The last lines of `stdout` and of `stderr` (not redacted).
    pub fn streams(&self) -> (String, String) {
        let seen = self.seen.lock().unwrap();
        (seen.stdout.text(), seen.stderr.text())
    }
}

struct Pump {
    stream: &'static str,
    step: String,
    log: LogSink,
    seen: Arc<Mutex<Seen>>,
    saw_line: Arc<AtomicBool>,
    ready_line: Option<String>,
}

impl Pump {
    fn run(self, stream: os_pipe::PipeReader) {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        // Whether the line goes on from a piece cut off before.
        let mut goes_on = false;
        loop {
            buf.clear();
            match reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    // Both sides of a cut are marked, so the redactor hides the piece of
                    // a secret each side holds.
                    let cut = !buf.ends_with(b"\n") && buf.len() as u64 == MAX_LINE;
                    let text = String::from_utf8_lossy(&buf);
                    let (from, to) = (if goes_on { CUT } else { "" }, if cut { CUT } else { "" });
                    self.line(&format!("{from}{text}{to}"));
                    goes_on = cut;
                }
            }
        }
    }

    fn line(&self, raw: &str) {
        let line = raw.trim_end_matches(['\n', '\r']);
        if self
            .ready_line
            .as_deref()
            .is_some_and(|want| line.contains(want))
        {
            self.saw_line.store(true, Ordering::SeqCst);
        }
        // Under the lock: the log and the tail see the lines in the same order.
        let mut seen = self.seen.lock().unwrap();
        let tagged = format!("{}: {line}", self.stream);
        self.log.write(&self.step, &tagged);
        seen.both.push(&tagged, TAIL_LINES, usize::MAX);
        let own = if self.stream == "stdout" {
            &mut seen.stdout
        } else {
            &mut seen.stderr
        };
        own.push(line, STREAM_LINES, STREAM_BYTES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_keeps_its_last_lines_within_its_bytes() {
        let mut kept = Kept::default();
        for i in 0..10 {
            kept.push(&format!("line {i}"), 4, usize::MAX);
        }
        assert_eq!(kept.text(), "line 6\nline 7\nline 8\nline 9");
        let mut small = Kept::default();
        for line in ["aaaa", "bbbb", "cccc"] {
            small.push(line, 100, 10);
        }
        assert_eq!(small.text(), "bbbb\ncccc");
    }
}
