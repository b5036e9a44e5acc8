//! `decrypt` (age) and `decompress` (zstd, gzip) of `locate`: the recovery point is
//! brought as it is (a local file is read where it is; a remote one is first downloaded
//! and verified beside `output`), then streamed through the age decryptor and the
//! decompressor into `output`, the final file. Each stage runs on a thread of its own
//! (decrypting, decompressing, hashing and writing), with a few 1 MiB chunks in flight
//! between them (`stages.rs`): memory stays flat, and the stages share the cores as
//! `age -d | zstd -d` does. A wrong key or a damaged file fails and leaves no `output`
//! (the decoded bytes go to a temporary file renamed only at the end, see `download.rs`).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};

use super::download::{Download, Expect, tempdir_beside};
use super::stages;
use super::{Fetched, Point, Source};
use crate::engines::Ctx;
use crate::limits::{MAX_SETTINGS_BYTES, read_text};
use crate::playbook::{Decompress, Step};

/// Bytes read from the file at a time.
const BUF: usize = 1 << 20;

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
        // The raw copy is staged beside `output`: where that leads is checked first.
        let output = &ctx.sources.check("output", output)?;
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
        let encrypted: Box<dyn Read + Send> = Box::new(BufReader::with_capacity(BUF, file));
        let ids = self.identities.as_deref();
        staged(
            encrypted,
            ids,
            compression,
            &mut download,
            (&point.url, raw.bytes),
            ctx,
        )?;
        if ids.is_some() {
            verified.push("age decryption (authenticated)".into());
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
        false => read_text(Path::new(value.trim()), MAX_SETTINGS_BYTES).map_err(|e| {
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

/// `inner`, which holds its own buffer, decompressed as `compression` says.
fn decompressor<'a>(
    inner: impl BufRead + Send + 'a,
    compression: Decompress,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Decompress::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(inner)?),
        Decompress::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(inner)),
        Decompress::None | Decompress::Auto => Box::new(inner),
    })
}

/// Decodes `input` into `download`, each stage on a thread of its own (see `stages`):
/// decryption (when `identities`), decompression (when compressed), and this thread,
/// which hashes and writes. The decryptor's error wins over the decompressor's (a
/// truncated frame follows from it), and names the file being decrypted.
fn staged(
    input: Box<dyn Read + Send>,
    identities: Option<&[Box<dyn age::Identity>]>,
    compression: Decompress,
    download: &mut Download,
    (url, total): (&str, u64),
    ctx: &Ctx<'_>,
) -> anyhow::Result<()> {
    let input = match identities {
        Some(ids) => decrypt(input, ids, url)?,
        None => input,
    };
    std::thread::scope(|s| {
        let (plain, decrypting) = stages::spawn(s, input);
        let decompressed = match compression {
            Decompress::None | Decompress::Auto => Ok((plain, None)),
            _ => decompressor(plain, compression)
                .map(|d| stages::spawn(s, d))
                .map(|(chunks, handle)| (chunks, Some(handle))),
        };
        let decoded =
            decompressed
                .map_err(anyhow::Error::from)
                .and_then(|(mut chunks, decompressing)| {
                    let copied = download.copy_from(&mut chunks, total, ctx);
                    drop(chunks);
                    // Its error, if any, was handed on to the copy.
                    let _ = decompressing.map(stages::joined);
                    copied
                });
        match (stages::joined(decrypting), identities) {
            (Err(e), Some(_)) => Err(anyhow::Error::from(e).context(format!("decrypting {url}"))),
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
