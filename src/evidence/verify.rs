//! `restore-drill verify DIR`: every record's signature and every link of every drill's
//! hash chain, with each record edited, removed, renamed or reordered named.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use minisign::{PublicKey, PublicKeyBox, SignatureBox};

use super::{read_record, sha256_hex};
use crate::artifact::{self, PreviousRecord, RunRecord};

/// What `verify` found.
#[derive(Debug, Default)]
pub struct Verified {
    pub records: usize,
    pub drills: usize,
    /// Records whose signature was checked and holds.
    pub signed: usize,
    /// One line per record that was edited, removed, renamed or reordered (or is not
    /// signed when a key was given), each naming the file.
    pub problems: Vec<String>,
    /// What is worth knowing but proves nothing wrong (a run that never finished).
    pub notes: Vec<String>,
}

/// A minisign public key: a `.pub` file's text, or its base64 line alone (`-P`).
pub fn public_key(text: &str) -> Result<PublicKey, String> {
    let text = text.trim();
    let key = match text.starts_with("untrusted comment:") {
        true => PublicKeyBox::from_string(text).and_then(|b| b.into_public_key()),
        false => PublicKey::from_base64(text),
    };
    key.map_err(|e| format!("not a minisign public key ({e})"))
}

struct Entry {
    path: PathBuf,
    /// How messages name it: its path below the directory verified.
    shown: String,
    sha256: String,
    record: Linked,
}

/// What `verify` keeps of a record once read (the rest is dropped: memory stays flat
/// however many, or large, the records are).
struct Linked {
    run_id: String,
    drill: String,
    finished: bool,
    previous: Option<PreviousRecord>,
}

impl From<RunRecord> for Linked {
    fn from(r: RunRecord) -> Self {
        Self {
            run_id: r.run_id,
            drill: r.drill.name,
            finished: r.finished_at.is_some(),
            previous: r.previous,
        }
    }
}

impl Entry {
    fn name(&self) -> String {
        self.shown.clone()
    }
}

/// `path` as messages show it: below `root`.
fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Checks the records in `dir` and in the folders below it (each folder its own chains);
/// signatures too when `key` is given.
pub fn verify(dir: &Path, key: Option<&PublicKey>) -> io::Result<Verified> {
    let paths = artifact::list_tree(dir)?;
    let mut folders: Vec<&Path> = paths.iter().filter_map(|p| p.parent()).collect();
    folders.push(dir);
    folders.sort();
    folders.dedup();
    let mut found = Verified::default();
    for folder in folders {
        verify_folder(dir, folder, key, &mut found)?;
    }
    Ok(found)
}

fn verify_folder(
    root: &Path,
    dir: &Path,
    key: Option<&PublicKey>,
    found: &mut Verified,
) -> io::Result<()> {
    let mut drills: Vec<(String, Vec<Entry>)> = Vec::new();
    let paths = artifact::list(dir)?;
    for path in &paths {
        match read_record(path) {
            Ok((bytes, record)) => {
                let entry = Entry {
                    path: path.clone(),
                    shown: shown(root, path),
                    sha256: sha256_hex(&bytes),
                    record: record.into(),
                };
                match drills.iter_mut().find(|(d, _)| *d == entry.record.drill) {
                    Some((_, list)) => list.push(entry),
                    None => drills.push((entry.record.drill.clone(), vec![entry])),
                }
            }
            Err(e) => found
                .problems
                .push(format!("{}: edited: {e}", shown(root, path))),
        }
    }
    found.records += paths.len();
    found.drills += drills.len();
    orphan_signatures(root, dir, found)?;
    for (drill, entries) in &drills {
        let at: HashMap<&str, usize> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.record.run_id.as_str(), i))
            .collect();
        for (i, entry) in entries.iter().enumerate() {
            check_name(entry, found);
            if let Some(key) = key {
                check_signature(entry, key, found);
            }
            check_link(drill, entries, i, &at, found);
        }
    }
    Ok(())
}

/// A signature whose record is gone: the record was removed (or renamed).
fn orphan_signatures(root: &Path, dir: &Path, found: &mut Verified) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)?.filter_map(Result::ok) {
        let path = entry.path();
        let name = file_name(&path);
        if name.starts_with("restore_drill_")
            && name.ends_with(".minisig")
            && !path.with_extension("json").exists()
        {
            found.problems.push(format!(
                "{}: removed (its signature {name} is still there)",
                shown(root, &path.with_extension("json"))
            ));
        }
    }
    Ok(())
}

/// `restore_drill_<ts>.json` must hold a run that started at `<ts>` (the run id is
/// `<drill>-<ts>-<pid>`).
fn check_name(entry: &Entry, found: &mut Verified) {
    let name = entry.name();
    let file = file_name(&entry.path);
    let file_ts = file
        .trim_start_matches("restore_drill_")
        .trim_end_matches(".json")
        .split('_')
        .next()
        .unwrap_or_default();
    let run = &entry.record.run_id;
    let run_ts = run
        .strip_prefix(&format!("{}-", entry.record.drill))
        .and_then(|rest| rest.split('-').next())
        .unwrap_or_default();
    if file_ts != run_ts {
        found.problems.push(format!(
            "{name}: renamed: it holds run {run}, which was written as restore_drill_{run_ts}.json"
        ));
    }
}

fn check_signature(entry: &Entry, key: &PublicKey, found: &mut Verified) {
    let name = entry.name();
    let sig_path = entry.path.with_extension("minisig");
    let sig_name = file_name(&sig_path);
    let text = match crate::limits::read_regular_text(&sig_path, 1 << 20) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match entry.record.finished {
                false => found
                    .notes
                    .push(format!("{name}: not signed: the run never finished")),
                true => found
                    .problems
                    .push(format!("{name}: not signed ({sig_name} is missing)")),
            }
            return;
        }
        Err(e) => {
            found
                .problems
                .push(format!("{name}: cannot read its signature {sig_name}: {e}"));
            return;
        }
    };
    let signature = match SignatureBox::from_string(&text) {
        Ok(s) => s,
        Err(e) => {
            found.problems.push(format!(
                "{name}: {sig_name} is not a minisign signature ({e})"
            ));
            return;
        }
    };
    let bytes =
        crate::limits::read_bytes(&entry.path, crate::limits::MAX_RECORD_BYTES).unwrap_or_default();
    if let Err(e) = minisign::verify(key, &signature, io::Cursor::new(bytes), true, false, false) {
        let why = match e.to_string().contains("is different from public key") {
            true => format!("signed with another key than the one given ({e})"),
            false => format!("edited: its signature {sig_name} does not match its content"),
        };
        found.problems.push(format!("{name}: {why}"));
        return;
    }
    let trusted = signature.trusted_comment().unwrap_or_default();
    let signed_as = trusted
        .split('\t')
        .find_map(|f| f.strip_prefix("file:"))
        .unwrap_or_default();
    if signed_as != file_name(&entry.path) {
        found.problems.push(format!(
            "{name}: renamed: its signature was made for {signed_as}"
        ));
        return;
    }
    found.signed += 1;
}

/// Record `i` must name record `i - 1` of its drill (by run id and hash); the first
/// record names none.
fn check_link(
    drill: &str,
    entries: &[Entry],
    i: usize,
    at: &HashMap<&str, usize>,
    found: &mut Verified,
) {
    let entry = &entries[i];
    let name = entry.name();
    let before = i.checked_sub(1).map(|j| &entries[j]);
    match (&entry.record.previous, before) {
        (None, None) => {}
        (None, Some(b)) => found.problems.push(format!(
            "{name}: edited or reordered: it names no previous record, but {} (drill {drill}) comes before it",
            b.name()
        )),
        (Some(p), Some(b)) if p.run_id == b.record.run_id => {
            if p.sha256 != b.sha256 {
                found.problems.push(format!(
                    "{}: edited: its sha256 is {}, but the next record {name} chained {}",
                    b.name(),
                    b.sha256,
                    p.sha256
                ));
            }
        }
        (Some(p), _) => match at.get(p.run_id.as_str()) {
            Some(&j) => found.problems.push(format!(
                "{name}: reordered: it follows run {} in its chain, which is {} here",
                p.run_id,
                entries[j].name()
            )),
            None => found.problems.push(format!(
                "{name}: the record before it (run {}, sha256 {}) was removed",
                p.run_id, p.sha256
            )),
        },
    }
}
