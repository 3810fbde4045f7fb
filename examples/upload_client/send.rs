//! Sending the body at speed: the bytes go from the file to the socket
//! without passing through this process (`io::copy` from a `File` to a
//! `TcpStream` is `sendfile(2)` on Linux), while a second thread reads the
//! same range of the file and hashes it. A file that changes meanwhile
//! makes the two hashes differ, and the upload fails as a mismatch.

use std::fs::File;
use std::io::{self, BufReader, ErrorKind, Read};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sha2::Sha256;

use super::{Progress, UploadOptions, other, read_reply, refusal};

/// Bytes per `sendfile` call between progress reports.
const CHUNK: u64 = 4 << 20;
/// Size of the hashing thread's read buffer.
const BUF: usize = 1 << 20;

/// Reads `file` from `pos` on with `pread`, leaving its offset alone;
/// ends early once `stop` is set (the send failed).
struct At<'a> {
    file: &'a File,
    pos: u64,
    stop: &'a AtomicBool,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(0);
        }
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Sends `file` from its current offset `offset` to `size`, pacing and
/// reporting progress; returns the bytes sent.
fn send(
    stream: &mut TcpStream,
    file: &File,
    offset: u64,
    size: u64,
    opts: &UploadOptions,
    progress: &mut dyn FnMut(&Progress),
) -> io::Result<u64> {
    // Paced sends go out in pieces of a twentieth of a second.
    let chunk = opts
        .rate_limit
        .map_or(CHUNK, |r| (r / 20).clamp(8192, CHUNK));
    let started = Instant::now();
    let mut sent = 0;
    while sent < size - offset {
        let n = io::copy(&mut file.take(chunk.min(size - offset - sent)), stream)?;
        if n == 0 {
            let at = offset + sent;
            return Err(other(format!(
                "the file shrank while sending: ended after {at} of {size} bytes"
            )));
        }
        sent += n;
        let elapsed = started.elapsed();
        progress(&Progress {
            offset,
            sent,
            total: size,
            elapsed,
        });
        if let Some(rate) = opts.rate_limit {
            let due = Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
            std::thread::sleep(due.saturating_sub(elapsed));
        }
    }
    Ok(sent)
}

/// Sends bytes `offset..size` of `file` (positioned at `offset`) and feeds
/// them to `hasher`; returns how many went out. When the server stops
/// reading, its refusal (if it sent one) is the error.
pub fn body(
    stream: &mut TcpStream,
    file: &mut File,
    hasher: &mut Sha256,
    offset: u64,
    size: u64,
    opts: &UploadOptions,
    progress: &mut dyn FnMut(&Progress),
) -> io::Result<u64> {
    let file = &*file;
    let stop = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        let hashing = s.spawn(|| {
            let at = At {
                file,
                pos: offset,
                stop: &stop,
            };
            io::copy(
                &mut BufReader::with_capacity(BUF, at.take(size - offset)),
                hasher,
            )
        });
        let sent = send(stream, file, offset, size, opts, progress);
        stop.store(sent.is_err(), Ordering::Relaxed);
        let hashed = hashing.join().expect("the hashing thread panicked");
        sent.and_then(|n| hashed.map(|_| n))
    });
    match result {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) =>
        {
            // The server stopped reading: it may have said why.
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            match read_reply(stream) {
                Ok(Some(v)) => Err(refusal(&v).unwrap_or(e)),
                _ => Err(e),
            }
        }
        other => other,
    }
}
