//! Sending the body: read from the file, hashed, written to the socket,
//! through one reused 256 KiB buffer (`io::copy` into a `BufWriter` reads
//! the file straight into it), optionally paced. The buffer stays in the
//! L2 cache between the read, the hash and the send; `sendfile` with a
//! second thread re-reading the file to hash it measured 30 % more CPU per
//! byte (docs/benchmarks.md).

use std::fs::File;
use std::io::{self, BufWriter, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{Progress, UploadOptions, other, read_reply, refusal};

/// Size of the buffer every byte goes through.
pub const BUF: usize = 256 << 10;

/// The socket and the hash as one writer, reporting progress and pacing.
struct Tee<'a> {
    stream: &'a mut TcpStream,
    hasher: &'a mut Sha256,
    progress: &'a mut dyn FnMut(&Progress),
    rate: Option<u64>,
    started: Instant,
    offset: u64,
    total: u64,
    sent: u64,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write_all(buf)?;
        self.hasher.update(buf);
        self.sent += buf.len() as u64;
        let elapsed = self.started.elapsed();
        let p = Progress {
            offset: self.offset,
            sent: self.sent,
            total: self.total,
            elapsed,
        };
        (self.progress)(&p);
        if let Some(rate) = self.rate {
            let due = Duration::from_secs_f64(self.sent as f64 / rate.max(1) as f64);
            std::thread::sleep(due.saturating_sub(elapsed));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends bytes `offset..size` of `file` (positioned at `offset`); returns
/// how many went out. When the server stops reading, its refusal (if it
/// sent one) is the error.
pub fn body(
    stream: &mut TcpStream,
    file: &mut File,
    hasher: &mut Sha256,
    offset: u64,
    size: u64,
    opts: &UploadOptions,
    progress: &mut dyn FnMut(&Progress),
) -> io::Result<u64> {
    // Paced sends go out in pieces of a twentieth of a second.
    let buf = opts
        .rate_limit
        .map_or(BUF, |r| (r as usize / 20).clamp(8192, BUF));
    let mut probe = stream.try_clone()?;
    let tee = Tee {
        stream,
        hasher,
        progress,
        rate: opts.rate_limit,
        started: Instant::now(),
        offset,
        total: size,
        sent: 0,
    };
    let mut w = BufWriter::with_capacity(buf, tee);
    let result =
        io::copy(&mut file.take(size - offset), &mut w).and_then(|n| w.flush().map(|()| n));
    match result {
        Ok(n) if n == size - offset => Ok(n),
        Ok(n) => Err(other(format!(
            "the file shrank while sending: ended after {} of {size} bytes",
            offset + n
        ))),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) =>
        {
            // The server stopped reading: it may have said why.
            probe.set_read_timeout(Some(Duration::from_secs(2)))?;
            match read_reply(&mut probe) {
                Ok(Some(v)) => Err(refusal(&v).unwrap_or(e)),
                _ => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}
