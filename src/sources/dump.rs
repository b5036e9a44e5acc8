//! One file of a restic snapshot, dumped without listing it first, and the newest
//! snapshot's file dumped while the snapshots are listed.
//!
//! - **No listing of the path.** `restic dump` writes a regular file's bytes as they are
//!   and a directory as a tar archive; it fails on a missing path (or any other kind) and
//!   on a blob whose hash is wrong. So a dump that succeeds and does not begin like a tar
//!   archive is the file, verified blob by blob by restic. Only a stream that begins like
//!   one (a directory, or a file that is itself a tar) or a failed dump goes back to the
//!   listing (`repo.rs`), which tells a tree from a file and explains a failure ("`/x` is
//!   not in snapshot ...").
//! - **The newest snapshot while listing.** When the step takes the newest snapshot of a
//!   local repository, `restic dump latest` runs beside `restic snapshots` (each pays its
//!   own key derivation; together they take the two cores). Which snapshot `latest` was is
//!   proven, not assumed: a local repository's snapshot ids are the file names under
//!   `snapshots/`, each file's name the hash of its contents (its time cannot change
//!   without its name). When those names are the same before the dump starts and after
//!   it ends, and the listing names exactly them, `latest` was resolved over the listed
//!   snapshots: it is the newest of the listing (unless another snapshot has the very
//!   same time, then nothing is proven). Otherwise the dump is thrown away and the step
//!   dumps its pick by id, as for any other pick.
//! - **A tar begun is remembered.** When that proven dump of the newest began like a tar
//!   archive, the fact is kept (`Prefetched`): the fetch of that snapshot goes straight to
//!   the listing (a tree restored, a file that is a tar dumped by id, a missing path
//!   named) instead of dumping the path again to see what it is.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::Path;

use super::Point;
use super::cli::Cli;
use super::download::{Download, buffered};
use crate::engines::Ctx;

/// Bytes of a tar header.
const TAR_BLOCK: usize = 512;

/// What the tool checked of what it dumped (`verified`).
pub fn verified_by(program: &str) -> String {
    format!("every blob's hash ({program} dump)")
}

/// Whether `head` (the first bytes of a dump) may be the beginning of a tar archive: a
/// header with the `ustar` magic and a correct checksum, or an all-zero block (the end
/// of an empty archive).
pub fn looks_like_tar(head: &[u8]) -> bool {
    let Some(head) = head.get(..TAR_BLOCK) else {
        return false;
    };
    if head.iter().all(|b| *b == 0) {
        return true;
    }
    if &head[257..262] != b"ustar" {
        return false;
    }
    let field = String::from_utf8_lossy(&head[148..156]);
    let Ok(stored) = u32::from_str_radix(field.trim_matches([' ', '\0']), 8) else {
        return false;
    };
    let sum: u32 = head
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == stored
}

/// Runs the dump `args` into a new download of `output` (`url` names it in messages).
/// None when the stream began like a tar archive: the tool is stopped and the download
/// dropped, for the caller to list the path.
pub fn sniffed(
    cli: &Cli,
    args: &[String],
    url: &str,
    output: &Path,
    ctx: &Ctx<'_>,
) -> anyhow::Result<Option<Download>> {
    let mut download = Download::start(url, output, false, ctx)?;
    let mut tar = false;
    let dumped = cli.read(args, ctx, &mut |out| {
        let mut head = Vec::with_capacity(TAR_BLOCK);
        out.take(TAR_BLOCK as u64).read_to_end(&mut head)?;
        if looks_like_tar(&head) {
            tar = true;
            anyhow::bail!("the dump began like a tar archive");
        }
        download.copy_from(&mut buffered(head.as_slice().chain(out)), 0, ctx)
    });
    match tar {
        true => Ok(None),
        false => dumped.map(|()| Some(download)),
    }
}

/// The file names in `dir` (None when it cannot be read).
pub fn snapshot_ids(dir: &Path) -> Option<BTreeSet<String>> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect()
}

/// The id of the newest of `points`, when `before` and `after` (the snapshot files'
/// names around the dump) are the same and are exactly the listed ids, and no other
/// point has its time; None when that is not proven.
pub fn proven_newest(
    points: &[Point],
    before: Option<BTreeSet<String>>,
    after: Option<BTreeSet<String>>,
) -> Option<String> {
    let (before, after) = (before?, after?);
    let listed: Option<BTreeSet<String>> = points.iter().map(|p| p.id.clone()).collect();
    if before != after || listed? != before {
        return None;
    }
    let newest = points.iter().max_by_key(|p| p.time)?;
    let ties = points.iter().filter(|p| p.time == newest.time).count();
    (ties == 1).then(|| newest.id.clone()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_header(name: &str) -> Vec<u8> {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).unwrap();
        header.set_size(3);
        header.set_cksum();
        header.as_bytes().to_vec()
    }

    #[test]
    fn a_tar_archive_is_told_from_a_file() {
        let mut head = tar_header("data/cortex.db");
        assert!(looks_like_tar(&head));
        assert!(looks_like_tar(&[0u8; 512]));
        head[0] ^= 1; // the checksum no longer matches
        assert!(!looks_like_tar(&head));
        assert!(!looks_like_tar(b"SQLite format 3\0"));
        let mut sqlite = b"SQLite format 3\0".to_vec();
        sqlite.resize(4096, 7);
        assert!(!looks_like_tar(&sqlite));
    }

    fn point(id: &str, time: &str) -> Point {
        Point {
            url: format!("restic:/r#{id}"),
            time: time.parse().unwrap(),
            bytes: 0,
            id: Some(id.into()),
            taken_of: None,
        }
    }

    #[test]
    fn the_newest_is_proven_only_over_unchanged_listed_snapshots() {
        let set = |ids: &[&str]| Some(ids.iter().map(|s| s.to_string()).collect());
        let points = [
            point("aa", "2026-11-28T03:00:00Z"),
            point("bb", "2026-11-28T05:00:00Z"),
            point("cc", "2026-11-28T04:00:00Z"),
        ];
        let all = || set(&["aa", "bb", "cc"]);
        assert_eq!(proven_newest(&points, all(), all()).as_deref(), Some("bb"));
        // A snapshot added (or removed) while dumping: nothing proven.
        let added = set(&["aa", "bb", "cc", "dd"]);
        assert_eq!(proven_newest(&points, all(), added.clone()), None);
        assert_eq!(proven_newest(&points, added.clone(), all()), None);
        // Added before the dump but not in the listing.
        assert_eq!(proven_newest(&points, added.clone(), added), None);
        assert_eq!(proven_newest(&points, None, all()), None);
        // Two snapshots at the same time: which one `latest` took is not known.
        let tied = [
            point("aa", "2026-11-28T05:00:00Z"),
            point("bb", "2026-11-28T05:00:00Z"),
        ];
        let both = || set(&["aa", "bb"]);
        assert_eq!(proven_newest(&tied, both(), both()), None);
    }
}
