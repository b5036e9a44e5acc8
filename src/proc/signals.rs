//! SIGINT and SIGTERM become a counter the runner polls: the first stops the running step
//! and starts cleanup, a second one skips what is left of cleanup.

use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

static RECEIVED: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();

pub fn install() {
    INSTALL.call_once(|| {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // SAFETY: the handler only touches an atomic, which is async-signal-safe.
            let result = unsafe {
                signal_hook::low_level::register(signal, || {
                    RECEIVED.fetch_add(1, Ordering::SeqCst);
                })
            };
            if let Err(e) = result {
                eprintln!("warning: cannot handle signal {signal}: {e}");
            }
        }
    });
}

/// How many interrupting signals arrived so far.
pub fn count() -> usize {
    RECEIVED.load(Ordering::SeqCst)
}
