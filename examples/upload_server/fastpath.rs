//! Moves the body from the socket into the file and the hash at speed.
//! What the benchmark's split (docs/benchmarks.md, "Upload, split") showed,
//! and what this file does about it:
//!
//! - One reused buffer for every byte (`io::copy` into a `BufWriter` reads
//!   the socket straight into it), 256 KiB: large enough that syscalls do
//!   not matter, small enough to stay in the core's L2 cache between the
//!   read, the hash and the write (1 MiB measured no faster and doubles
//!   the memory per upload).
//! - The file's blocks are reserved up front (`fallocate`, the size is
//!   known), so a full disk is found before the body, not in the middle.
//! - One `fsync` of a whole GiB at the end is a cliff: dirty pages are sent
//!   to the disk every 8 MiB (`sync_file_range`, write-behind), waiting for
//!   the window two back, so the final `fdatasync` has little left to do.
//! - SHA-256 is the largest cost per byte: with more than one core it runs
//!   on a second thread, fed copies of the buffer through a bounded channel
//!   (a few buffers in flight at most: memory stays bounded). Pinned to one
//!   core (`available_parallelism` follows the affinity mask) it runs inline.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use rustix::fs::FallocateFlags;
use sha2::{Digest, Sha256};

/// Size of the buffer every body byte goes through.
pub const BUF: usize = 256 << 10;
/// Write-behind window.
const WINDOW: u64 = 8 << 20;
/// Bodies smaller than this are hashed inline (a thread is not worth it).
const THREAD_MIN: u64 = 4 * BUF as u64;

/// How the body transfer failed.
#[derive(Debug)]
pub enum BodyError {
    /// The connection failed (gone, too slow, cut by the drain).
    Net(io::Error),
    /// Writing the file failed.
    Disk(io::Error),
}

/// Reserves the blocks for bytes `from..to` of `f` (the file's length stays
/// what was written). Where the filesystem cannot, nothing is reserved.
pub fn preallocate(f: &File, from: u64, to: u64) -> io::Result<()> {
    if to <= from {
        return Ok(());
    }
    match rustix::fs::fallocate(f, FallocateFlags::KEEP_SIZE, from, to - from) {
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => Ok(()),
        other => Ok(other?),
    }
}

/// Starts writing `[off, off + len)` of `f` back to disk, or (with `wait`)
/// waits until it is. rustix and nix have no `sync_file_range`, hence the
/// one libc call; it only passes integers to the kernel.
fn sync_range(f: &File, off: u64, len: u64, wait: bool) {
    use std::os::fd::AsRawFd;
    let flags = match wait {
        true => {
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER
        }
        false => libc::SYNC_FILE_RANGE_WRITE,
    };
    // SAFETY: no pointers; an invalid descriptor or range is an error return.
    unsafe { libc::sync_file_range(f.as_raw_fd(), off as i64, len as i64, flags) };
}

/// Where the hash is computed.
enum Hashing<'a> {
    Inline(&'a mut Sha256),
    Thread {
        to: SyncSender<Vec<u8>>,
        free: Receiver<Vec<u8>>,
    },
}

/// The file and the hash, as one writer; remembers a failed file write so
/// it is not mistaken for a connection error.
struct Store<'a> {
    file: &'a File,
    hashing: Hashing<'a>,
    written: u64,
    synced: u64,
    failed: Option<io::Error>,
}

impl Store<'_> {
    fn hash(&mut self, buf: &[u8]) {
        match &mut self.hashing {
            Hashing::Inline(h) => h.update(buf),
            Hashing::Thread { to, free } => {
                let mut copy = free.try_recv().unwrap_or_default();
                copy.clear();
                copy.extend_from_slice(buf);
                // The hasher only stops if it panicked; join reports that.
                let _ = to.send(copy);
            }
        }
    }

    /// Write-behind: start the newest full window, wait for an old one.
    fn write_behind(&mut self) {
        while self.written - self.synced >= WINDOW {
            sync_range(self.file, self.synced, WINDOW, false);
            if self.synced >= 2 * WINDOW {
                sync_range(self.file, self.synced - 2 * WINDOW, WINDOW, true);
            }
            self.synced += WINDOW;
        }
    }
}

impl Write for Store<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hash(buf);
        if let Err(e) = self.file.write_all(buf) {
            let kind = e.kind();
            self.failed = Some(e);
            return Err(kind.into());
        }
        self.written += buf.len() as u64;
        self.write_behind();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Copies `n` bytes of `r` through `store` with `io::copy`.
fn copy(r: &mut impl Read, store: Store<'_>, n: u64) -> Result<u64, BodyError> {
    let mut w = BufWriter::with_capacity(BUF, store);
    let copied = io::copy(&mut r.take(n), &mut w);
    // What arrived before a connection error is kept for a resume.
    let flushed = w.flush();
    let failed = w.get_mut().failed.take();
    match (copied, flushed, failed) {
        (_, _, Some(e)) => Err(BodyError::Disk(e)),
        (Err(e), _, None) => Err(BodyError::Net(e)),
        (Ok(_), Err(e), None) => Err(BodyError::Disk(e)),
        (Ok(got), Ok(()), None) => Ok(got),
    }
}

/// Copies up to `n` bytes of `r` into `file` (at its current offset) and
/// `hasher`; returns how many there were (fewer if the client closed).
pub fn receive(
    r: &mut impl Read,
    file: &File,
    hasher: &mut Sha256,
    n: u64,
) -> Result<u64, BodyError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = |hashing| Store {
        file,
        hashing,
        written: 0,
        synced: 0,
        failed: None,
    };
    if cores < 2 || n < THREAD_MIN {
        return copy(r, start(Hashing::Inline(hasher)), n);
    }
    let (to, work) = sync_channel::<Vec<u8>>(2);
    let (back, free) = sync_channel::<Vec<u8>>(3);
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            for buf in work {
                hasher.update(&buf);
                let _ = back.try_send(buf);
            }
        });
        let got = copy(r, start(Hashing::Thread { to, free }), n);
        worker.join().expect("the hashing thread panicked");
        got
    })
}

/// Makes the file's data durable.
pub fn finish(file: &File) -> io::Result<()> {
    file.sync_data()
}
