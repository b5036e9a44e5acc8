//! `decrypt` (age) and `decompress` (zstd, gzip) of `locate`: the recovery point is
//! brought as it is (a local file is read where it is; a remote one is first downloaded
//! and verified beside `output`), then streamed through the age decryptor and the
//! decompressor into `output`, the final file. Memory stays flat (a pipe between the
//! decrypting thread and the one that decompresses, hashes and writes, which use a core
//! each, as `age -d | zstd -d` does); a wrong key or a damaged file fails and leaves no `output` (the
//! decoded bytes go to a temporary file renamed only at the end, see `download.rs`).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::fd::AsRawFd as _;
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};

use super::download::{Download, Expect, tempdir_beside};
use super::{Fetched, Point, Source};
use crate::engines::Ctx;
use crate::playbook::{Decompress, Step};

/// Bytes buffered between the two threads (the pipe's capacity, where Linux allows it).
const PIPE: i32 = 1 << 20;

/// How a step's backup is decoded.
pub struct Decode {
    identities: Option<Vec<Box<dyn age::Identity>>>,
    decompress: Decompress,
}

impl Decode {
    /// None when the step neither decrypts nor decompresses.
    pub fn of(step: &Step) -> anyhow::Result<Option<Self>> {
        let decompress = step.decompress.unwrap_or(Decompress::None);
        let identities = match &step.decrypt {
            Some(d) => Some(identities(&d.age_identity)?),
            None => None,
        };
        Ok(
            (identities.is_some() || decompress != Decompress::None).then_some(Self {
                identities,
                decompress,
            }),
        )
    }

    /// The compression of a backup named `name` (`auto`: by its extension, after `.age`
    /// when it is decrypted).
    fn compression(&self, name: &str) -> Decompress {
        if self.decompress != Decompress::Auto {
            return self.decompress;
        }
        let name = name.to_ascii_lowercase();
        let name = match self.identities {
            Some(_) => name.strip_suffix(".age").unwrap_or(&name),
            None => &name,
        };
        if name.ends_with(".zst") || name.ends_with(".zstd") {
            Decompress::Zstd
        } else if name.ends_with(".gz") {
            Decompress::Gzip
        } else {
            Decompress::None
        }
    }

    /// Brings `point` (named `name`: its file name or path in the snapshot) from `source`
    /// to `output`, decoded.
    pub fn fetch(
        &self,
        source: &dyn Source,
        point: &Point,
        name: &str,
        output: Option<&Path>,
        ctx: &Ctx<'_>,
    ) -> anyhow::Result<Fetched> {
        let output = output.context(
            "`output` is required to decrypt or decompress: where the decoded backup is written",
        )?;
        let staging = match source.in_place() {
            true => None,
            false => Some(tempdir_beside(output, ".restore-drill-raw.")?),
        };
        let raw = source.fetch(
            point,
            staging.as_ref().map(|d| d.path().join("raw")).as_deref(),
            ctx,
        )?;
        if raw.path.is_dir() {
            bail!("`decrypt` and `decompress` take a single file; {name} is a tree");
        }
        let file =
            File::open(&raw.path).with_context(|| format!("opening {}", raw.path.display()))?;
        let compression = self.compression(name);
        let mut download = Download::start(&point.url, output, false, ctx)?.doing("decoding");
        let mut verified = raw.verified;
        let encrypted: Box<dyn Read + Send> = Box::new(BufReader::with_capacity(1 << 20, file));
        match &self.identities {
            Some(ids) => {
                let plain = decrypt(encrypted, ids, &point.url)?;
                verified.push("age decryption (authenticated)".into());
                piped(plain, compression, &mut download, raw.bytes, ctx)
                    .with_context(|| format!("decrypting {}", point.url))?;
            }
            None => {
                let mut reader = decompressor(encrypted, compression)?;
                download.copy_from(&mut reader, raw.bytes, ctx)?;
            }
        }
        if !matches!(compression, Decompress::None | Decompress::Auto) {
            verified.push(format!("{compression:?} decompression").to_lowercase());
        }
        let mut fetched = download.finish(&Expect::default(), ctx)?;
        fetched.verified = verified;
        Ok(fetched)
    }
}

/// The identities of `decrypt.age_identity`: the identity itself (`AGE-SECRET-KEY-1...`,
/// with comments as `age-keygen` writes them) or the path of such a file. Its text is
/// never part of an error.
fn identities(value: &str) -> anyhow::Result<Vec<Box<dyn age::Identity>>> {
    let text = match value.contains("AGE-SECRET-KEY-") {
        true => value.to_string(),
        false => std::fs::read_to_string(value.trim()).map_err(|e| {
            anyhow!("`decrypt.age_identity` is neither an age identity (AGE-SECRET-KEY-1...) nor a readable identity file: {e}")
        })?,
    };
    let file = age::IdentityFile::from_buffer(text.as_bytes())
        .map_err(|e| anyhow!("`decrypt.age_identity` is not a valid age identity: {e}"))?;
    let ids = file
        .into_identities()
        .map_err(|e| anyhow!("`decrypt.age_identity` is not a valid age identity: {e}"))?;
    if ids.is_empty() {
        bail!("`decrypt.age_identity` holds no age identity");
    }
    Ok(ids)
}

/// The plaintext of an age file (binary or armored).
fn decrypt(
    input: Box<dyn Read + Send>,
    identities: &[Box<dyn age::Identity>],
    url: &str,
) -> anyhow::Result<Box<dyn Read + Send>> {
    let armored = age::armor::ArmoredReader::new(input);
    let decryptor = age::Decryptor::new(armored)
        .map_err(|e| anyhow!("{url} is not an age-encrypted file: {e}"))?;
    let reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| anyhow!("cannot decrypt {url} with `decrypt.age_identity`: {e}"))?;
    Ok(Box::new(reader))
}

/// `inner` decompressed as `compression` says.
fn decompressor<'a>(
    inner: impl Read + 'a,
    compression: Decompress,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Decompress::Zstd => Box::new(zstd::stream::read::Decoder::new(inner)?),
        Decompress::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(inner))),
        Decompress::None | Decompress::Auto => Box::new(inner),
    })
}

/// Decrypts on a thread of its own into a pipe that this thread decompresses (if need be)
/// into `download`, which hashes and writes. The decryptor's error wins over the decompressor's (a broken pipe or a
/// truncated frame follows from it).
fn piped(
    mut plain: Box<dyn Read + Send>,
    compression: Decompress,
    download: &mut Download,
    total: u64,
    ctx: &Ctx<'_>,
) -> anyhow::Result<()> {
    let (reader, mut writer) = os_pipe::pipe()?;
    // SAFETY: F_SETPIPE_SZ on a descriptor this function owns; a refusal keeps 64 KiB.
    unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE) };
    std::thread::scope(|s| {
        let decrypting = s.spawn(move || io::copy(&mut plain, &mut writer));
        let decoded = decompressor(reader, compression)
            .map_err(anyhow::Error::from)
            .and_then(|mut r| download.copy_from(&mut r, total, ctx));
        let decrypted = decrypting
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the decrypting thread panicked")));
        match decrypted {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe || decoded.is_ok() => Err(e.into()),
            _ => decoded,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(decompress: Decompress, decrypt: bool) -> Decode {
        Decode {
            identities: decrypt.then(Vec::new),
            decompress,
        }
    }

    #[test]
    fn auto_goes_by_the_extension_after_age() {
        let auto = decode(Decompress::Auto, true);
        assert_eq!(
            auto.compression("s3://b/cortex.db.zst.age"),
            Decompress::Zstd
        );
        assert_eq!(auto.compression("/x/cortex.db.GZ.age"), Decompress::Gzip);
        assert_eq!(auto.compression("/x/cortex.db.age"), Decompress::None);
        let plain = decode(Decompress::Auto, false);
        assert_eq!(plain.compression("cortex.db.zst.age"), Decompress::None);
        assert_eq!(plain.compression("cortex.db.zstd"), Decompress::Zstd);
        assert_eq!(
            decode(Decompress::Gzip, false).compression("x.zst"),
            Decompress::Gzip
        );
    }

    #[test]
    fn an_identity_that_is_neither_key_nor_file_is_refused_without_echoing_it() {
        for (value, says) in [
            ("not-a-key-and-no-such-file", "neither an age identity"),
            ("AGE-SECRET-KEY-1BROKEN", "not a valid age identity"),
        ] {
            let err = identities(value).err().unwrap().to_string();
            assert!(err.contains(says), "{err}");
            assert!(!err.contains(value), "{err}");
        }
        let key = age::x25519::Identity::generate();
        let text = format!(
            "# created: now\n{}\n",
            age::secrecy::ExposeSecret::expose_secret(&key.to_string())
        );
        assert_eq!(identities(&text).unwrap().len(), 1);
    }
}
