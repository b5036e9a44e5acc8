//! Templates are parsed, rendered and evaluated on one long-lived worker thread with a
//! large stack, and the caller waits for each at most the time its budget gives it.
//!
//! minijinja recurses over a template's syntax tree and over the values a template builds
//! (printing, comparing and dropping them), and some of its operations on a lazy sequence
//! (`x in [1] * 10**11`) run in one instruction that fuel cannot stop. The large stack
//! makes room for what `guard` lets through; the time limit turns what it cannot bound
//! into an error instead of a hang. A template that runs past its limit is abandoned (its
//! thread keeps running until the process ends) and a fresh worker takes over; after
//! `MAX_ABANDONED` of them, templates fail at once rather than pile up more.

use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

use minijinja::{Error, ErrorKind};

/// The worker's stack: reserved, not used, unless a template nests that deep.
const STACK: usize = 256 << 20;
/// Runaway templates left running before the engine refuses to start more.
const MAX_ABANDONED: usize = 2;
static ABANDONED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

type Job = Box<dyn FnOnce() + Send>;

/// The current worker, and a number telling workers apart.
static WORKER: Mutex<Option<(u64, Sender<Job>)>> = Mutex::new(None);

fn worker() -> Option<(u64, Sender<Job>)> {
    let mut current = WORKER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(w) = current.as_ref() {
        return Some(w.clone());
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("templates".into())
        .stack_size(STACK)
        .spawn(move || {
            for job in rx {
                // A panic fails that template (its answer is never sent), not the worker.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        })
        .ok()?;
    *current = Some((id, tx.clone()));
    Some((id, tx))
}

/// Forgets worker `id` (stuck or gone), so that the next template starts a new one.
fn retire(id: u64) {
    let mut current = WORKER.lock().unwrap_or_else(|e| e.into_inner());
    if current
        .as_ref()
        .is_some_and(|(current_id, _)| *current_id == id)
    {
        *current = None;
    }
}

/// Runs `job` on the worker and waits for its result at most `timeout`.
pub fn run<T: Send + 'static>(
    timeout: Duration,
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    if ABANDONED.load(std::sync::atomic::Ordering::Relaxed) >= MAX_ABANDONED {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "not rendered: earlier templates did not finish (they are still running)",
        ));
    }
    let Some((id, tx)) = worker() else {
        // No thread could be started: run here rather than not at all.
        return Ok(job());
    };
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    let sent = tx.send(Box::new(move || {
        let _ = done_tx.send(job());
    }));
    if sent.is_err() {
        retire(id);
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "the template engine stopped; try again",
        ));
    }
    match done_rx.recv_timeout(timeout) {
        Ok(value) => Ok(value),
        Err(RecvTimeoutError::Timeout) => {
            retire(id);
            ABANDONED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "template does too much work: it did not finish within {} s",
                    timeout.as_secs()
                ),
            ))
        }
        Err(RecvTimeoutError::Disconnected) => Err(Error::new(
            ErrorKind::InvalidOperation,
            "the template engine failed on this template (it panicked)",
        )),
    }
}
