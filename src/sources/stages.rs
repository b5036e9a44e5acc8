//! A streaming pipeline's stage on a thread of its own: it reads its input to the end in
//! large chunks and hands them on through a bounded channel (a few chunks: memory stays
//! flat), and the buffers come back to it once read. Used where one reader feeds the
//! next (age decryption, then decompression, then hashing and writing) so that each
//! takes a core, as the stages of a shell pipeline do, without a pipe's copies.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{Scope, ScopedJoinHandle};

/// Bytes of one chunk.
pub const CHUNK: usize = 1 << 20;
/// Chunks in flight between two stages.
const DEPTH: usize = 4;

/// The chunks of a stage, read as one stream. Dropped early, it stops the stage.
pub struct Chunks {
    rx: Receiver<io::Result<Vec<u8>>>,
    free: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl BufRead for Chunks {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.at == self.current.len() {
            let next = match self.rx.recv() {
                Ok(next) => next?,
                // The stage ended: everything it read was handed on.
                Err(_) => return Ok(&[]),
            };
            let used = std::mem::replace(&mut self.current, next);
            let _ = self.free.try_send(used);
            self.at = 0;
        }
        Ok(&self.current[self.at..])
    }

    fn consume(&mut self, n: usize) {
        self.at = (self.at + n).min(self.current.len());
    }
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let chunk = self.fill_buf()?;
        let n = buf.len().min(chunk.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// Starts reading `input` to its end on a thread of `scope`. The thread's result is its
/// input's error, if any (also handed on as the stream's last read); a reader that went
/// away is no error of the stage.
pub fn spawn<'s, 'e: 's>(
    scope: &'s Scope<'s, 'e>,
    mut input: impl Read + Send + 'e,
) -> (Chunks, ScopedJoinHandle<'s, io::Result<()>>) {
    let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(DEPTH);
    let (free, recycled) = sync_channel::<Vec<u8>>(DEPTH + 2);
    let handle = scope.spawn(move || {
        loop {
            let mut buf = recycled.try_recv().unwrap_or_default();
            buf.resize(CHUNK, 0);
            let n = match fill(&mut input, &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            };
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            if tx.send(Ok(buf)).is_err() {
                return Ok(());
            }
        }
    });
    let chunks = Chunks {
        rx,
        free,
        current: Vec::new(),
        at: 0,
    };
    (chunks, handle)
}

/// Reads into `buf` until it is full or the input ends; the bytes read.
fn fill(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The result of a stage's thread (a panic is an error).
pub fn joined(handle: ScopedJoinHandle<'_, io::Result<()>>) -> io::Result<()> {
    handle
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("a decoding thread panicked")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives `data`, then fails.
    struct Failing<'a>(&'a [u8]);

    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "tag mismatch"));
            }
            let n = buf.len().min(self.0.len()).min(1000);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn chunks_carry_every_byte_in_order_and_then_the_error() {
        let data: Vec<u8> = (0..3 * CHUNK + 12_345).map(|i| (i % 251) as u8).collect();
        std::thread::scope(|s| {
            let (mut chunks, handle) = spawn(s, &data[..]);
            let mut got = Vec::new();
            chunks.read_to_end(&mut got).unwrap();
            assert!(got == data);
            joined(handle).unwrap();

            let (mut chunks, handle) = spawn(s, Failing(&data[..5000]));
            let mut got = Vec::new();
            let err = chunks.read_to_end(&mut got).unwrap_err();
            assert_eq!(err.to_string(), "tag mismatch");
            assert_eq!(
                joined(handle).unwrap_err().kind(),
                io::ErrorKind::InvalidData
            );
        });
    }

    #[test]
    fn a_reader_that_goes_away_stops_the_stage() {
        let endless = io::repeat(7);
        std::thread::scope(|s| {
            let (mut chunks, handle) = spawn(s, endless);
            let mut some = [0u8; 10];
            chunks.read_exact(&mut some).unwrap();
            drop(chunks);
            joined(handle).unwrap();
        });
    }
}
