//! Signing the final record with a minisign secret key.

use std::io;
use std::path::{Path, PathBuf};

use minisign::SecretKeyBox;

use crate::artifact::RunRecord;
use crate::events::{Event, Observer};

/// A decoded minisign secret key. Its messages never quote the key.
pub struct Signer {
    key: minisign::SecretKey,
}

impl Signer {
    /// Decodes `key` (a minisign secret key file's text, or its base64 line alone),
    /// decrypting it with `password` when one is given (which takes seconds and about
    /// 1 GiB of memory: minisign's scrypt parameters).
    pub fn load(key: &str, password: Option<&str>) -> Result<Self, String> {
        let key = key.trim();
        let text = match key.starts_with("untrusted comment:") {
            true => key.to_string(),
            false => format!("untrusted comment: restore-drill signing key\n{key}"),
        };
        let Some(password) = password.filter(|p| !p.is_empty()) else {
            let line = text.lines().nth(1).unwrap_or_default();
            return unencrypted(line).map(|key| Self { key });
        };
        let boxed = SecretKeyBox::from_string(&text).map_err(|e| bad_key(&e))?;
        let decoded = boxed.into_secret_key(Some(password.to_string()));
        let key = decoded.map_err(|e| match e.to_string().as_str() {
            "Key is not encrypted" => {
                "evidence.sign_key has no password: leave out evidence.sign_key_password"
                    .to_string()
            }
            "Wrong password for that key" => {
                "evidence.sign_key_password is not the password of evidence.sign_key".into()
            }
            _ => bad_key(&e),
        })?;
        Ok(Self { key })
    }

    /// The text of a `.minisig` of `bytes`, with `trusted` as its signed comment.
    pub fn sign(&self, bytes: &[u8], trusted: &str) -> Result<String, String> {
        let untrusted = Some("signature of a restore-drill record");
        minisign::sign(
            None,
            &self.key,
            io::Cursor::new(bytes),
            Some(trusted),
            untrusted,
        )
        .map(|signature| signature.into_string())
        .map_err(|e| format!("cannot sign: {e}"))
    }
}

fn bad_key(e: &dyn std::fmt::Display) -> String {
    format!("evidence.sign_key is not a minisign secret key ({e})")
}

/// The bytes of a minisign secret key: algorithms (2 + 2 + 2), KDF salt (32), limits
/// (8 + 8), key id (8), Ed25519 key (64), checksum (32).
const SECRET_KEY_BYTES: usize = 158;

/// An unencrypted key (`minisign -G -W`). The stock minisign leaves its checksum empty,
/// which the crate's decoder refuses as corrupted; the key is proved instead by a
/// signature that its own public half verifies.
fn unencrypted(line: &str) -> Result<minisign::SecretKey, String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .map_err(|e| bad_key(&e))?;
    if bytes.len() != SECRET_KEY_BYTES {
        return Err(bad_key(&format!("{} bytes", bytes.len())));
    }
    if bytes[2..4] != [0, 0] {
        return Err("evidence.sign_key is encrypted: set evidence.sign_key_password".into());
    }
    let key = minisign::SecretKey::from_bytes(&bytes).map_err(|e| bad_key(&e))?;
    let public = minisign::PublicKey::from_secret_key(&key).map_err(|e| bad_key(&e))?;
    minisign::sign(Some(&public), &key, io::Cursor::new(b"probe"), None, None)
        .map_err(|_| bad_key(&"corrupted key"))?;
    Ok(key)
}

/// Signs the final record as written (the record writer runs first) into
/// `restore_drill_<ts>.minisig` beside it. The signed comment names the file and the run,
/// so a signature moved to another record does not verify as its own.
pub struct SignatureWriter {
    signer: Signer,
    record: PathBuf,
    path: PathBuf,
}

impl SignatureWriter {
    pub fn new(signer: Signer, record: &Path) -> Self {
        Self {
            signer,
            record: record.to_path_buf(),
            path: record.with_extension("minisig"),
        }
    }

    fn write(&self, record: &RunRecord) -> Result<(), String> {
        let (bytes, on_disk) = super::read_record(&self.record)?;
        if on_disk.run_id != record.run_id || on_disk.finished_at.is_none() {
            return Err(format!(
                "{} does not hold the final record",
                self.record.display()
            ));
        }
        let file = self
            .record
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let trusted = format!(
            "timestamp:{}\tfile:{file}\trun_id:{}",
            jiff::Timestamp::now().as_second(),
            record.run_id
        );
        let text = self.signer.sign(&bytes, &trusted)?;
        crate::artifact::write_atomic(&self.path, text.as_bytes()).map_err(|e| e.to_string())
    }
}

impl Observer for SignatureWriter {
    fn on_event(&mut self, event: &Event<'_>, record: &RunRecord) -> io::Result<()> {
        if !matches!(event, Event::DrillFinished) {
            return Ok(());
        }
        self.write(record)
            .map_err(|e| io::Error::other(format!("cannot write {}: {e}", self.path.display())))
    }

    fn artifact(&self) -> Option<(&'static str, &Path)> {
        Some(("minisig", &self.path))
    }
}
