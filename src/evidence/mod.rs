//! Tamper-evident records. Every run's record names the previous record of its drill in
//! the same directory (`previous`: its run id and the SHA-256 of its file), so a drill's
//! records are a hash chain; with `[evidence] sign_key` each final record is also signed
//! with minisign (`restore_drill_<ts>.minisig`, which the stock `minisign -V` checks).
//! `restore-drill verify` checks both and names every record edited, removed, renamed or
//! reordered.
//!
//! Below the runner: it knows the record (`artifact`) and the events, nothing above.

mod sign;
mod verify;

use std::path::Path;

use sha2::Digest as _;

use crate::artifact::{self, PreviousRecord, RunRecord};

pub use sign::{SignatureWriter, Signer};
pub use verify::{Verified, public_key, verify};

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The newest record of `drill` in `dir` (by file name, which starts with the run's
/// time), as the link the next record of that drill carries; `None` for its first run.
/// A file that is not a record is passed over (`verify` names it).
pub fn previous(dir: &Path, drill: &str) -> Option<PreviousRecord> {
    let paths = artifact::list(dir).ok()?;
    paths.iter().rev().find_map(|path| {
        let (bytes, record) = read_record(path).ok()?;
        (record.drill.name == drill).then(|| PreviousRecord {
            run_id: record.run_id,
            sha256: sha256_hex(&bytes),
        })
    })
}

/// A record file's exact bytes (at most the size of a record) and what they say.
fn read_record(path: &Path) -> Result<(Vec<u8>, RunRecord), String> {
    let bytes =
        crate::limits::read_regular(path, crate::limits::MAX_RECORD_BYTES).map_err(|e| match e
            .kind()
        {
            std::io::ErrorKind::Other => e.to_string(),
            _ => format!("cannot read it: {e}"),
        })?;
    let record = serde_json::from_slice(&bytes)
        .map_err(|e| format!("it is not a restore-drill record: {e}"))?;
    Ok((bytes, record))
}

#[cfg(test)]
mod tests;
