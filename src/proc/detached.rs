//! A blocking call that nothing can interrupt (a TCP handshake, an HTTP request), run on
//! a thread of its own so that its caller stops waiting when it must: at a deadline, or
//! when the step is cancelled. The thread is left to end at the call's own timeout; what
//! it returns then is dropped.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::Cancel;

/// How often a wait looks at its cancel token.
const POLL: Duration = Duration::from_millis(20);

/// How a wait for a detached call ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Waited<T> {
    /// The call returned this.
    Done(T),
    /// The deadline came first.
    TimedOut,
    /// The cancel token fired first.
    Cancelled,
    /// The call's thread ended without returning (it panicked).
    Crashed,
}

/// A call running on its own thread.
pub struct Detached<T>(mpsc::Receiver<T>);

impl<T: Send + 'static> Detached<T> {
    /// Starts `call` on a thread named `name`.
    pub fn start(name: &str, call: impl FnOnce() -> T + Send + 'static) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _ = tx.send(call());
            })?;
        Ok(Self(rx))
    }

    /// Waits for the call's answer, for at most `limit` (None: without a deadline) and
    /// no longer than `cancel` allows.
    pub fn wait(self, limit: Option<Duration>, cancel: Option<&Cancel>) -> Waited<T> {
        let deadline = limit.map(|l| Instant::now() + l);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let slice = match (left, cancel) {
                (Some(left), Some(_)) => left.min(POLL),
                (Some(left), None) => left,
                (None, _) => POLL,
            };
            match self.0.recv_timeout(slice) {
                Ok(answer) => return Waited::Done(answer),
                Err(RecvTimeoutError::Disconnected) => return Waited::Crashed,
                Err(RecvTimeoutError::Timeout) => {
                    if cancel.is_some_and(Cancel::is_cancelled) {
                        return Waited::Cancelled;
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Waited::TimedOut;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(secs: u64) -> Detached<u8> {
        Detached::start("sleeper", move || {
            std::thread::sleep(Duration::from_secs(secs));
            7
        })
        .unwrap()
    }

    #[test]
    fn an_answer_in_time_is_returned() {
        let quick = Detached::start("quick", || 7).unwrap();
        assert_eq!(
            quick.wait(Some(Duration::from_secs(5)), None),
            Waited::Done(7)
        );
        let quick = Detached::start("quick", || 7).unwrap();
        let cancel = Cancel::default();
        assert_eq!(quick.wait(None, Some(&cancel)), Waited::Done(7));
    }

    #[test]
    fn a_call_past_its_deadline_is_given_up_at_the_deadline() {
        let started = Instant::now();
        let waited = sleeper(30).wait(Some(Duration::from_millis(200)), None);
        assert_eq!(waited, Waited::TimedOut);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn a_cancelled_wait_stops_at_once_without_a_deadline() {
        let cancel = std::sync::Arc::new(Cancel::default());
        let trigger = std::sync::Arc::clone(&cancel);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            trigger.stop(Duration::ZERO);
        });
        let started = Instant::now();
        assert_eq!(sleeper(30).wait(None, Some(&cancel)), Waited::Cancelled);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_call_that_panics_is_told_apart() {
        let crash = Detached::<u8>::start("crash", || panic!("boom")).unwrap();
        assert_eq!(
            crash.wait(Some(Duration::from_secs(5)), None),
            Waited::Crashed
        );
    }
}
