//! Connecting to a database server with a deadline on the whole handshake. A socket
//! timeout only bounds the TCP connect: a server (or anything else listening there) that
//! accepts and then never speaks would keep a step waiting for ever, and the client
//! crates cannot be interrupted. The connect runs on a thread of its own; past the
//! deadline the step gets an error and the thread is left to end with its socket.

use std::time::Duration;

use crate::proc::{Detached, Waited};

/// How long a server may take to complete the handshake when nothing says otherwise
/// (libpq's `connect_timeout` bounds the same: the whole connection set-up).
pub const CONNECT_LIMIT: Duration = Duration::from_secs(15);

/// `connect()`, or an error naming `server` when it has not answered within `limit`.
pub fn within<T: Send + 'static>(
    limit: Duration,
    server: &str,
    connect: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    match Detached::start("connect", connect)?.wait(Some(limit), None) {
        Waited::Done(result) => result,
        Waited::TimedOut | Waited::Cancelled => anyhow::bail!(
            "cannot connect to {server}: no answer within {} (something accepts connections there but never completes the handshake)",
            crate::fmt::fmt_secs(limit.as_secs_f64())
        ),
        Waited::Crashed => {
            anyhow::bail!("cannot connect to {server}: the connection attempt crashed")
        }
    }
}
