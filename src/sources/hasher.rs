//! Hashing on a thread of its own: a download hands each chunk it has written to the
//! hasher through a bounded channel (a few chunks in flight: memory stays flat) and goes
//! on writing while the chunk is hashed; the buffers come back to be filled again. On two
//! cores the sha256 of the output then costs the download little time of its own.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use md5::Digest as _;
use sha2::Digest as _;

/// Chunks in flight between the writer and the hasher.
const DEPTH: usize = 4;

/// The digests of everything handed to a [`Hasher`]: hex sha256, and hex md5 when asked.
pub type Digests = (String, Option<String>);

/// A thread hashing what it is handed, in order.
pub struct Hasher {
    tx: Option<SyncSender<Vec<u8>>>,
    recycled: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<Digests>>,
}

impl Hasher {
    /// Starts the thread: sha256, and md5 too when `md5` (an ETag to check).
    pub fn start(md5: bool) -> Self {
        let (tx, rx) = sync_channel::<Vec<u8>>(DEPTH);
        let (free, recycled) = sync_channel::<Vec<u8>>(DEPTH + 2);
        let thread = std::thread::spawn(move || {
            let mut sha256 = sha2::Sha256::new();
            let mut md5 = md5.then(md5::Md5::new);
            for chunk in rx {
                sha256.update(&chunk);
                if let Some(md5) = &mut md5 {
                    md5.update(&chunk);
                }
                let _ = free.try_send(chunk);
            }
            let md5 = md5.map(|m| super::hex(&m.finalize()));
            (super::hex(&sha256.finalize()), md5)
        });
        Self {
            tx: Some(tx),
            recycled,
            thread: Some(thread),
        }
    }

    /// An empty buffer to fill and hand back with [`Hasher::take`] (one the thread has
    /// finished with, when there is one).
    pub fn buffer(&self) -> Vec<u8> {
        let mut buf = self.recycled.try_recv().unwrap_or_default();
        buf.clear();
        buf
    }

    /// Hashes a copy of `chunk`.
    pub fn update(&mut self, chunk: &[u8]) {
        let mut buf = self.buffer();
        buf.extend_from_slice(chunk);
        self.take(buf);
    }

    /// Hashes `chunk` (next after everything handed before).
    pub fn take(&mut self, chunk: Vec<u8>) {
        if let Some(tx) = &self.tx {
            // The thread only stops once the sender is gone: a send cannot fail before.
            let _ = tx.send(chunk);
        }
    }

    /// The digests, once every chunk is hashed.
    pub fn finish(mut self) -> anyhow::Result<Digests> {
        self.tx = None;
        let thread = self.thread.take();
        thread
            .map(JoinHandle::join)
            .and_then(Result::ok)
            .ok_or_else(|| anyhow::anyhow!("the hashing thread panicked"))
    }
}

impl Drop for Hasher {
    /// A download given up: the thread ends with the channel (not waited for).
    fn drop(&mut self) {
        self.tx = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_hashes_every_chunk_in_order() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let mut hasher = Hasher::start(true);
        for (i, chunk) in data.chunks(700_000).enumerate() {
            match i % 2 {
                0 => hasher.update(chunk),
                _ => {
                    let mut buf = hasher.buffer();
                    buf.extend_from_slice(chunk);
                    hasher.take(buf);
                }
            }
        }
        let (sha256, md5) = hasher.finish().unwrap();
        assert_eq!(sha256, super::super::hex(&sha2::Sha256::digest(&data)));
        assert_eq!(md5.unwrap(), super::super::hex(&md5::Md5::digest(&data)));
        let (_, none) = Hasher::start(false).finish().unwrap();
        assert!(none.is_none());
    }
}
