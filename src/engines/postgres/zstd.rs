//! `compression = "zstd"`: pg_dump writes an uncompressed custom archive (`-Z0`) to a
//! pipe and the drill compresses it with multithreaded zstd, which is several times
//! faster than pg_dump's single-threaded zlib at a similar size; on restore the archive
//! is decompressed on the fly into pg_restore's stdin. Memory stays flat: fixed buffers.
//! The compressor itself is the engines' shared one (`engines/compress.rs`).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use anyhow::Context as _;

use crate::engines::compress::{self, Compression, Sink};

const BUF: usize = 1 << 20;

pub fn is_zstd(path: &Path) -> bool {
    compress::is_zstd(path)
}

/// Compresses everything `input` yields into `output`; calls `progress` with the bytes
/// read so far. Returns the bytes read.
pub fn compress(
    mut input: impl Read,
    output: &Path,
    progress: &dyn Fn(u64),
) -> anyhow::Result<u64> {
    let file = crate::guard::create_file(output)?;
    let mut enc = Sink::new(BufWriter::with_capacity(BUF, file), Compression::Zstd)?;
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading pg_dump's output"),
        };
        enc.write_all(&buf[..n])?;
        total += n as u64;
        progress(total);
    }
    let file = enc.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(total)
}

/// Decompresses `archive` into `out` (a pipe to pg_restore, or a file). A reader that
/// stops early (`pg_restore --list` needs only the header) is not an error.
pub fn decompress(archive: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let file = File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let mut dec = compress::decompressor(archive, file)?;
    match std::io::copy(&mut dec, out) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot decompress {} (damaged zstd archive?)",
                archive.display()
            )
        }),
    }
}
