//! Moves the body from the socket into the file and the hash at speed:
//! large reused buffers, the file's space reserved up front (`fallocate`
//! when the size is known), and a final `fdatasync`.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};

use rustix::fs::FallocateFlags;
use sha2::{Digest, Sha256};

/// Size of the buffer every body byte goes through.
pub const BUF: usize = 1 << 20;

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

/// The file and the hash, as one writer; remembers a failed file write so
/// it is not mistaken for a connection error.
struct Store<'a> {
    file: &'a File,
    hasher: &'a mut Sha256,
    failed: Option<io::Error>,
}

impl Write for Store<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Err(e) = self.file.write_all(buf) {
            let kind = e.kind();
            self.failed = Some(e);
            return Err(kind.into());
        }
        self.hasher.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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
    let store = Store {
        file,
        hasher,
        failed: None,
    };
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

/// Makes the file's data durable.
pub fn finish(file: &File) -> io::Result<()> {
    file.sync_data()
}
