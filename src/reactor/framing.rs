//! Framing helpers for [`Protocol::data_received`](super::Protocol::data_received):
//! each takes the bytes offered and returns how many it consumed, so a
//! protocol is "decode what is complete, reply, return the count".
//!
//! - [`lines`]: `\n`-terminated lines (a trailing `\r` dropped), with a
//!   maximum length (Twisted's `LineReceiver.MAX_LENGTH`).
//! - [`frames`]: length-prefixed frames in any [`FrameFormat`],
//!   including the lesson's 4-byte `struct.pack('i', n)` prefix.
//! - [`json_header`] (feature `json`): the lesson's 4-byte length plus
//!   JSON header; the body that follows is raw bytes the protocol consumes
//!   itself, as a RESP parser consumes what it parsed.
//!
//! A line-echo protocol:
//!
//! ```
//! use socketserver::reactor::{framing, Conn, Protocol};
//! struct LineEcho;
//! impl Protocol for LineEcho {
//!     fn data_received(&mut self, data: &[u8], conn: &mut Conn<'_>) -> std::io::Result<usize> {
//!         framing::lines(data, 1024, |line| {
//!             conn.write(line);
//!             conn.write(b"\n");
//!             Ok(())
//!         })
//!     }
//! }
//! ```

use std::io;

pub use crate::framing::FrameFormat;

fn too_long(what: &str, max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what} longer than {max} bytes"),
    )
}

/// The first complete line of `data` (without `\n` and a trailing `\r`)
/// and the bytes it takes, `None` if no line is complete yet. A line, or
/// an unterminated start of one, longer than `max_len` is an
/// `InvalidData` error.
///
/// ```
/// use socketserver::reactor::framing::line;
/// assert_eq!(line(b"PING\r\nPI", 64)?, Some((&b"PING"[..], 6)));
/// assert_eq!(line(b"PI", 64)?, None);
/// assert!(line(b"0123456789", 4).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn line(data: &[u8], max_len: usize) -> io::Result<Option<(&[u8], usize)>> {
    let window = &data[..data.len().min(max_len.saturating_add(2))];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let mut l = &data[..i];
            if let Some(stripped) = l.strip_suffix(b"\r") {
                l = stripped;
            }
            if l.len() > max_len {
                return Err(too_long("line", max_len));
            }
            Ok(Some((l, i + 1)))
        }
        None if data.len() > max_len => Err(too_long("line", max_len)),
        None => Ok(None),
    }
}

/// Calls `each` on every complete line of `data`; returns the bytes
/// consumed (see [`line()`]). An error from `each` stops and is returned.
pub fn lines(
    data: &[u8],
    max_len: usize,
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<usize> {
    let mut used = 0;
    while let Some((l, n)) = line(&data[used..], max_len)? {
        used += n;
        each(l)?;
    }
    Ok(used)
}

/// The first complete length-prefixed frame of `data` (its payload) and
/// the bytes it takes, `None` if incomplete. The prefix is checked against
/// the format (a negative or over-[`limit`](FrameFormat::limit) length is
/// an `InvalidData` error) before anything waits for the payload.
///
/// ```
/// use socketserver::reactor::framing::{frame, FrameFormat};
/// let wire = b"\x03\x00\x00\x00abc\x01";
/// assert_eq!(frame(wire, &FrameFormat::LESSON)?, Some((&b"abc"[..], 7)));
/// assert_eq!(frame(&wire[7..], &FrameFormat::LESSON)?, None);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn frame<'a>(data: &'a [u8], format: &FrameFormat) -> io::Result<Option<(&'a [u8], usize)>> {
    let h = format.header_len();
    if data.len() < h {
        return Ok(None);
    }
    let Some(len) = format.read_len(&mut &data[..h])? else {
        return Ok(None);
    };
    let end = h.saturating_add(len as usize);
    if data.len() < end {
        return Ok(None);
    }
    Ok(Some((&data[h..end], end)))
}

/// Calls `each` on the payload of every complete frame of `data`; returns
/// the bytes consumed (see [`frame`]).
pub fn frames(
    data: &[u8],
    format: &FrameFormat,
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<usize> {
    let mut used = 0;
    while let Some((payload, n)) = frame(&data[used..], format)? {
        used += n;
        each(payload)?;
    }
    Ok(used)
}

/// The lesson's header: a length-prefixed frame holding JSON, decoded as
/// `T`, and the bytes it takes; `None` if incomplete. The body the header
/// announces follows as raw bytes for the protocol to consume.
///
/// ```
/// use socketserver::reactor::framing::{json_header, FrameFormat};
/// let mut wire = Vec::new();
/// FrameFormat::LESSON.write_frame(&mut wire, br#"{"total_size": 3}"#)?;
/// wire.extend_from_slice(b"abc");
/// let (header, used): (serde_json::Value, usize) =
///     json_header(&wire, &FrameFormat::LESSON)?.unwrap();
/// assert_eq!(header["total_size"], 3);
/// assert_eq!(&wire[used..], b"abc");
/// # Ok::<(), std::io::Error>(())
/// ```
#[cfg(feature = "json")]
pub fn json_header<T: serde::de::DeserializeOwned>(
    data: &[u8],
    format: &FrameFormat,
) -> io::Result<Option<(T, usize)>> {
    match frame(data, format)? {
        Some((payload, n)) => {
            let value = serde_json::from_slice(payload)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            Ok(Some((value, n)))
        }
        None => Ok(None),
    }
}
