//! `restore_drill_<ts>.log`: every step's output, prefixed with its id, secrets redacted.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::redact::Redactor;

#[derive(Clone)]
pub struct LogSink {
    file: Arc<Mutex<File>>,
    redactor: Arc<Redactor>,
    path: Arc<Path>,
    /// The first failed write (a full disk): the log is incomplete from there on.
    error: Arc<Mutex<Option<String>>>,
}

impl LogSink {
    pub fn create(path: &Path, redactor: Arc<Redactor>) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file: Arc::new(Mutex::new(file)),
            redactor,
            path: path.into(),
            error: Arc::default(),
        })
    }

    /// Why the log is incomplete, naming it, when a write failed.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok()?.clone()
    }

    /// Appends `text` line by line as `[step] line`.
    pub fn write(&self, step: &str, text: &str) {
        let text = self.redactor.redact(text);
        let mut out = String::with_capacity(text.len() + 64);
        for line in text.lines() {
            out.push_str(&format!("[{step}] {line}\n"));
        }
        let result = match self.file.lock() {
            Ok(mut f) => f.write_all(out.as_bytes()),
            Err(_) => return,
        };
        if let Err(e) = result
            && let Ok(mut first) = self.error.lock()
        {
            first.get_or_insert_with(|| format!("cannot write {}: {e}", self.path.display()));
        }
    }

    /// Appends a whole file (a step's captured output) without loading it at once.
    pub fn append_file(&self, step: &str, stream: &str, path: &Path) {
        use std::io::BufRead as _;
        let Ok(file) = File::open(path) else { return };
        let reader = std::io::BufReader::new(file);
        let mut chunk = String::new();
        for line in reader.lines().map_while(Result::ok) {
            chunk.push_str(&format!("{stream}: {line}\n"));
            if chunk.len() > 64 * 1024 {
                self.write(step, &chunk);
                chunk.clear();
            }
        }
        if !chunk.is_empty() {
            self.write(step, &chunk);
        }
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }
}

/// The last `max_lines` lines of a file, at most `max_bytes`, read from its end.
pub fn tail_file(path: &Path, max_lines: usize, max_bytes: u64) -> String {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(max_bytes);
    // From the byte before: whether the tail starts a line or cuts one.
    let _ = file.seek(SeekFrom::Start(start.saturating_sub(1)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    let text = match (start, buf.split_first()) {
        (0, _) => String::from_utf8_lossy(&buf).into_owned(),
        (_, Some((b'\n', rest))) => String::from_utf8_lossy(rest).into_owned(),
        // A cut line is marked, so the redactor hides the end of a secret left there.
        (_, Some((_, rest))) => format!("{}{}", crate::redact::CUT, String::from_utf8_lossy(rest)),
        (_, None) => String::new(),
    };
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}
