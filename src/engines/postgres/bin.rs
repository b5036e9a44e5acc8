//! Finding PostgreSQL's programs: `pg_bin_dir` when given, else PATH, else the newest
//! `/usr/lib/postgresql/*/bin` (Debian and Ubuntu keep the server programs there, off
//! PATH).

use std::path::{Path, PathBuf};

use anyhow::bail;

const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

#[derive(Debug, Clone)]
pub struct Bins {
    /// `pg_bin_dir` of the step, when given.
    chosen: Option<PathBuf>,
}

impl Bins {
    pub fn new(pg_bin_dir: Option<&str>) -> anyhow::Result<Self> {
        if let Some(dir) = pg_bin_dir {
            let dir = PathBuf::from(dir);
            if !dir.is_dir() {
                bail!("pg_bin_dir {} is not a directory", dir.display());
            }
            return Ok(Self { chosen: Some(dir) });
        }
        Ok(Self { chosen: None })
    }

    /// A client program (`pg_dump`, `psql`): PATH first, where Debian's wrapper picks
    /// the version that fits the server.
    pub fn client(&self, tool: &str) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.chosen {
            return in_dir(dir, tool);
        }
        on_path(tool).or_else(|| newest_versioned_dir().map(|d| d.join(tool)).filter(|p| p.is_file())).ok_or_else(|| {
            anyhow::anyhow!("`{tool}` not found on PATH nor under {DEBIAN_ROOT}/*/bin; install PostgreSQL's client programs or set `pg_bin_dir`")
        })
    }

    /// A client program that any version fits (psql for a COPY), as `client` finds it,
    /// but past Debian's wrapper (`pg_wrapper`, a Perl script whose start costs more
    /// than a small table's COPY) to the newest versioned one when there is one.
    pub fn client_unwrapped(&self, tool: &str) -> anyhow::Result<PathBuf> {
        let found = self.client(tool)?;
        let wrapped = std::fs::canonicalize(&found)
            .is_ok_and(|p| p.file_name().is_some_and(|n| n == "pg_wrapper"));
        let direct = newest_versioned_dir().map(|d| d.join(tool));
        Ok(match direct {
            Some(direct) if wrapped && direct.is_file() => direct,
            _ => found,
        })
    }

    /// The directory of the server programs (`initdb`, `postgres`), whose `pg_restore`
    /// is used for the throwaway cluster so that versions match.
    pub fn server_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.chosen {
            in_dir(dir, "initdb")?;
            return Ok(dir.clone());
        }
        if let Some(initdb) = on_path("initdb")
            && let Some(dir) = initdb.parent()
            && dir.join("postgres").is_file()
        {
            return Ok(dir.to_path_buf());
        }
        newest_versioned_dir().filter(|d| d.join("initdb").is_file()).ok_or_else(|| {
            anyhow::anyhow!("PostgreSQL server programs (initdb, postgres) not found on PATH nor under {DEBIAN_ROOT}/*/bin; install the PostgreSQL server package or set `pg_bin_dir`")
        })
    }
}

fn in_dir(dir: &Path, tool: &str) -> anyhow::Result<PathBuf> {
    let p = dir.join(tool);
    if !p.is_file() {
        bail!("`{tool}` not found in pg_bin_dir {}", dir.display());
    }
    Ok(p)
}

fn on_path(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

/// `/usr/lib/postgresql/<newest major>/bin`.
fn newest_versioned_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_ROOT)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.is_dir())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A server program beside `initdb` in `server_dir`, or beside the file `initdb` links
/// to (a PATH folder may link only `initdb` and `postgres` to the versioned folder).
pub fn server_tool(server_dir: &Path, tool: &str) -> PathBuf {
    let here = server_dir.join(tool);
    if here.is_file() {
        return here;
    }
    std::fs::canonicalize(server_dir.join("initdb"))
        .ok()
        .and_then(|i| Some(i.parent()?.join(tool)))
        .filter(|p| p.is_file())
        .unwrap_or(here)
}
