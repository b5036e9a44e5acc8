//! Directory trees (configuration, JSON knowledge bases): a streaming tar archive with
//! a manifest of every file (`archive`), a restore that never writes outside its target
//! (`extract`), and verification of the restored tree (`verify`).

pub mod archive;
mod engine;
pub mod extract;
pub mod manifest;
pub mod verify;

use anyhow::bail;

pub use engine::Files;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Zstd,
    Gzip,
    None,
}

impl Compression {
    pub fn parse(s: Option<&str>) -> anyhow::Result<Self> {
        Ok(match s.unwrap_or("zstd") {
            "zstd" => Compression::Zstd,
            "gzip" => Compression::Gzip,
            "none" => Compression::None,
            other => bail!("unknown compression `{other}`: use \"zstd\", \"gzip\" or \"none\""),
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
