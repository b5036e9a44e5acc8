//! `compression = "zstd"`: pg_dump writes an uncompressed custom archive (`-Z0`) to a
//! pipe and the drill compresses it with multithreaded zstd, which is several times
//! faster than pg_dump's single-threaded zlib at a similar size; on restore the archive
//! is decompressed on the fly into pg_restore's stdin. Memory stays flat: fixed buffers.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use anyhow::Context as _;

/// zstd's frame magic number.
const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Level 3: zstd's default, fast with a ratio close to zlib's default.
const LEVEL: i32 = 3;
const BUF: usize = 1 << 20;

pub fn is_zstd(path: &Path) -> bool {
    let mut head = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head == MAGIC
}

fn threads() -> u32 {
    std::thread::available_parallelism().map_or(2, |n| n.get() as u32)
}

/// Compresses everything `input` yields into `output`; calls `progress` with the bytes
/// read so far. Returns the bytes read.
pub fn compress(
    mut input: impl Read,
    output: &Path,
    progress: &dyn Fn(u64),
) -> anyhow::Result<u64> {
    let file =
        File::create(output).with_context(|| format!("cannot create {}", output.display()))?;
    let mut enc = zstd::stream::Encoder::new(BufWriter::with_capacity(BUF, file), LEVEL)?;
    enc.multithread(threads())?;
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
    let mut dec = zstd::stream::Decoder::new(file)?;
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
