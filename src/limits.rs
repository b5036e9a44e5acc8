//! Bounds on what a playbook (or a file handed to the tool) may ask for, so that absurd or
//! hostile input fails with a clear error instead of a panic, an abort or a hang.
//!
//! A leaf module: it imports nothing from the rest of the crate.

use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

/// The longest duration any field may hold (`timeout`, `retry_delay`, gates, ...): 365 days.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// How `MAX_DURATION` is written in messages and the README.
pub const MAX_DURATION_TEXT: &str = "365 days";

/// The most retries a step may ask for (each attempt may last up to its `timeout`).
pub const MAX_RETRIES: u32 = 1000;

/// The most parallel `jobs` of pg_dump or pg_restore (each a process and a connection).
pub const MAX_JOBS: u32 = 256;

/// What is wrong with a `sample` (the fraction of the rows a digest hashes): it must be
/// above 0 and at most 1 (NaN is neither). None when it is right.
pub fn sample_problem(sample: f64) -> Option<String> {
    let fraction = sample > 0.0 && sample <= 1.0;
    (!fraction).then(|| {
        format!(
            "`sample` must be a fraction of the rows above 0 and at most 1, such as 0.05, not {sample}"
        )
    })
}

/// The largest playbook read: 16 MiB (a real one is a few KiB).
pub const MAX_PLAYBOOK_BYTES: u64 = 16 << 20;
/// The largest report template read.
pub const MAX_TEMPLATE_BYTES: u64 = 16 << 20;
/// The largest run record read back (`report`, `history`, `status`).
pub const MAX_RECORD_BYTES: u64 = 64 << 20;
/// The largest checksum manifest read (a million files' lines are about 100 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 256 << 20;
/// The largest small file of settings read (an age identity, a pgBackRest config).
pub const MAX_SETTINGS_BYTES: u64 = 1 << 20;

/// Parses a humantime duration (`"90s"`, `"1h 30m"`) no longer than [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d > MAX_DURATION {
        return Err(format!("longer than the limit of {MAX_DURATION_TEXT}"));
    }
    Ok(d)
}

/// Opens `path` for reading without waiting for a writer: a named pipe (FIFO) nobody
/// writes to reads as empty at once, where a plain open would block for ever. Reads
/// block as usual (a pipe being written to is read to its end).
pub fn open_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function owns; it changes only its flags.
    let cleared = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) >= 0
    };
    match cleared {
        true => Ok(file),
        false => Err(std::io::Error::last_os_error()),
    }
}

/// Reads a file of at most `limit` bytes, without reading more than `limit + 1` bytes of
/// it (so `/dev/zero` or a runaway file is refused at once), nor waiting for a writer
/// of a named pipe (see [`open_file`]).
pub fn read_bytes(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileTypeExt as _;
    let file = open_file(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_dir() {
        return Err(std::io::Error::other("is a directory"));
    }
    let bytes = read_at_most(file, limit)?;
    if bytes.is_empty() && kind.is_fifo() {
        return Err(std::io::Error::other(
            "is a named pipe (FIFO) that nothing was written to",
        ));
    }
    Ok(bytes)
}

/// Reads a UTF-8 text file of at most `limit` bytes (see [`read_bytes`]).
pub fn read_text(path: &Path, limit: u64) -> std::io::Result<String> {
    utf8(read_bytes(path, limit)?)
}

/// Opens a file the tool wrote itself (a run record, its signature): only a regular
/// file. A FIFO, socket or device found in its place is refused at once; opening a FIFO
/// would otherwise wait for a writer for ever.
pub fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    let file = open_file(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(
            "not a regular file (a FIFO, socket, device or directory)",
        ));
    }
    Ok(file)
}

/// The bytes of a file the tool wrote itself (see [`open_regular`]), at most `limit`.
pub fn read_regular(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    read_at_most(open_regular(path)?, limit)
}

/// `read_text` of a file the tool wrote itself (see [`open_regular`]).
pub fn read_regular_text(path: &Path, limit: u64) -> std::io::Result<String> {
    utf8(read_regular(path, limit)?)
}

fn read_at_most(file: std::fs::File, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "larger than the limit of {}",
            size_text(limit)
        )));
    }
    Ok(bytes)
}

fn utf8(bytes: Vec<u8>) -> std::io::Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// `16 MiB` for 16 << 20.
pub fn size_text(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// `9950` → `9,950`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_bounded() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("365d").is_ok());
        let err = parse_duration("366d").unwrap_err();
        assert!(err.contains("365 days"), "{err}");
        assert!(parse_duration("18446744073709551615s").is_err());
        assert!(parse_duration("99999999999999999999999999s").is_err());
    }

    #[test]
    fn reading_stops_at_the_limit() {
        let err = read_text(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(err.to_string().contains("1 MiB"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, "abc").unwrap();
        assert_eq!(read_text(&p, 3).unwrap(), "abc");
        assert!(read_text(&p, 2).is_err());
        assert!(read_text(dir.path(), 10).is_err());
    }

    /// A named pipe nobody writes to is an error at once, not a read that never ends.
    #[test]
    fn a_fifo_without_a_writer_is_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_text(&fifo, 10).unwrap_err();
        assert!(err.to_string().contains("named pipe"), "{err}");
    }

    #[test]
    fn numbers_get_separators() {
        assert_eq!(thousands(5), "5");
        assert_eq!(thousands(9950), "9,950");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
