//! The processes a run starts, and what is left of them if it dies: cancelling a step
//! (`cancel`), process groups and how they are stopped (`group`), running a program
//! (`tool`), the interrupting signals the runner polls (`signals`), the kernel's help
//! (parent-death signal, child subreaper), `/proc`, a blocking call waited for on a
//! thread of its own (`detached`), the registry of process groups and
//! clusters that the runner keeps in the drill's lock file, the mark that names the run
//! which made a scratch database (`owner`), and the small things starting a program
//! needs (a free port, a file holding its password).
//!
//! A leaf module: it imports nothing from the runner, the steps or the engines.

pub mod cancel;
pub mod detached;
pub mod group;
pub mod kernel;
pub mod lockfile;
pub mod owner;
pub mod registry;
pub mod secret;
pub mod signals;
pub mod stat;
pub mod strays;
pub mod tool;

pub use cancel::{Cancel, OnCancel};
pub use detached::{Detached, Waited};
pub use group::{NotStopped, Stopped};
pub use owner::{Liveness, Owner};
pub use registry::{Key, Registry, Tracked};
pub use secret::SecretFile;
pub use tool::{Leader, OsUser, Running, Tool};

/// A TCP port on 127.0.0.1 that nobody listens on now (the kernel's choice). It is free
/// when this returns, not reserved: use it at once.
pub fn free_port() -> std::io::Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
}
