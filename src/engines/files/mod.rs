//! Directory trees (configuration, JSON knowledge bases): a streaming tar archive with
//! a manifest of every file (`archive`), a restore that never writes outside its target
//! (`extract`), and verification of the restored tree (`verify`).

pub mod archive;
mod engine;
pub mod extract;
pub mod manifest;
pub mod verify;

use anyhow::bail;

use crate::playbook::one_of;

pub use engine::Files;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Zstd,
    Gzip,
    None,
}

impl Compression {
    /// The values of `compression`, as `parse` reads them.
    pub const NAMES: &[&str] = &["zstd", "gzip", "none"];

    pub fn parse(s: Option<&str>) -> anyhow::Result<Self> {
        Ok(match s.unwrap_or("zstd") {
            "zstd" => Compression::Zstd,
            "gzip" => Compression::Gzip,
            "none" => Compression::None,
            other => bail!(
                "`compression` must be {}, not \"{other}\"",
                one_of(Self::NAMES)
            ),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::None => "none",
        }
    }
}
