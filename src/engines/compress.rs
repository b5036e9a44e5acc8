//! Compression shared by the engines: a writer that compresses as it goes (zstd on
//! every core, gzip, or none), and a reader that undoes whichever one a file has.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

pub use super::files::Compression;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The compressor in front of the output file.
pub enum Sink<W: Write> {
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Gzip(flate2::write::GzEncoder<W>),
    None(W),
}

impl<W: Write> Sink<W> {
    pub fn new(w: W, compression: Compression) -> anyhow::Result<Self> {
        Ok(match compression {
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(w, 3)?;
                // Every core compresses (like `zstd -T0`); the frame checksum makes a
                // corrupted archive fail its restore instead of restoring wrong bytes.
                let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
                enc.multithread(workers)?;
                enc.include_checksum(true)?;
                Sink::Zstd(enc)
            }
            Compression::Gzip => Sink::Gzip(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::default(),
            )),
            Compression::None => Sink::None(w),
        })
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            Sink::Zstd(e) => e.finish(),
            Sink::Gzip(e) => e.finish(),
            Sink::None(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Zstd(e) => e.write(buf),
            Sink::Gzip(e) => e.write(buf),
            Sink::None(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Zstd(e) => e.flush(),
            Sink::Gzip(e) => e.flush(),
            Sink::None(w) => w.flush(),
        }
    }
}

/// Whether the file starts with zstd's frame magic number.
pub fn is_zstd(path: &Path) -> bool {
    let mut head = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head == ZSTD_MAGIC
}

/// Reads `inner` (the contents of `path`), decompressing by the file's first bytes:
/// zstd, gzip, or nothing.
pub fn decompressor<R: Read + 'static>(path: &Path, inner: R) -> io::Result<Box<dyn Read>> {
    let mut magic = [0u8; 4];
    let n = File::open(path)?.read(&mut magic)?;
    let buffered = BufReader::with_capacity(1 << 20, inner);
    Ok(if n == 4 && magic == ZSTD_MAGIC {
        Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?)
    } else if n >= 2 && magic[..2] == GZIP_MAGIC {
        Box::new(flate2::read::GzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    })
}
