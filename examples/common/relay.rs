//! `io::copy` with one `read(2)` and one `write(2)` per message, for the
//! echo example.
//!
//! `io::copy(&mut req.rfile, &mut req.wfile)` copies through the `Rfile`'s
//! 8 KiB buffer, so a 16 KiB message is two reads and two sends (two
//! segments back, the second after the client's ACK of the first without
//! `TCP_NODELAY`). A read of at least the buffer's size goes straight to
//! the socket instead (std's `BufReader` lends it only an empty buffer), so
//! reading into 64 KiB moves each message, up to 64 KiB, in one piece.

use std::io::{self, Read, Write};

/// Bytes read per `read(2)`: more than any message the echo expects.
const CHUNK: usize = 64 * 1024;

/// Copies `from` to `to` until end of input, as `io::copy` does; returns
/// the bytes copied. Whatever `from` had buffered goes first.
pub fn copy(from: &mut impl Read, to: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}
