//! The processes a run starts, and what is left of them if it dies: the kernel's help
//! (parent-death signal, child subreaper), `/proc`, and the registry of process groups
//! and clusters that the runner keeps in the drill's lock file.
//!
//! A leaf module: it imports nothing from the runner, the steps or the engines.

pub mod kernel;
pub mod registry;
pub mod stat;

pub use registry::{Key, Registry, Tracked};
