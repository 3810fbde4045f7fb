//! Telling the request forms apart by their first bytes, and refusing
//! anything that looks like HTTP.
//!
//! - **Framed** (the default form): a 4-byte little-endian length, then that
//!   much JSON. A length below 16 MiB has a zero last byte, which no text has.
//! - **Raw** (the lesson's form, only with `--raw`): the command's bytes, no
//!   frame, read with one receive of at most [`RAW_MAX`] bytes as the
//!   lesson's `conn.recv(1024)`.
//! - **HTTP**: a browser can be made to send a request to any local port (an
//!   `<img src="http://127.0.0.1:8000/;touch$IFS~/pwned;">`, a `no-cors`
//!   POST), and its request line is printable text that a shell would run.
//!   A first line that starts with an HTTP method or carries ` HTTP/` is
//!   refused in every mode, before anything else is decided.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use socketserver::StreamRequest;

use super::limits::{Deadline, is_timeout};

/// The lesson's server reads a raw command with `recv(1024)`.
pub const RAW_MAX: usize = 1024;
/// How long to wait for more bytes when the first ones do not decide the
/// form (a 2-byte raw `ls`, a frame header or request line split in transit).
pub const SNIFF_WAIT: Duration = Duration::from_millis(200);

/// Request methods browsers and HTTP clients send.
const METHODS: [&[u8]; 10] = [
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH", b"PRI",
];

/// The form of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Length-prefixed JSON header.
    Framed,
    /// The lesson's unframed command bytes.
    Raw,
    /// An HTTP request (a browser, curl): refused.
    Http,
}

/// A byte that can appear in a text command (printable ASCII, tab, line
/// ends, or a byte of UTF-8).
fn is_text(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\r' | 0x20..=0x7e | 0x80..=0xbf | 0xc2..=0xf4)
}

/// Whether `head` is an HTTP request line; `None` while it could still
/// become one. `complete`: no more bytes will come.
pub fn is_http(head: &[u8], complete: bool) -> Option<bool> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line_done = complete || line.len() < head.len();
    if line.windows(6).any(|w| w == b" HTTP/") {
        return Some(true);
    }
    let word = line.split(|&b| b == b' ').next().unwrap_or_default();
    let word_done = line_done || word.len() < line.len();
    let word = word.strip_suffix(b"\r").unwrap_or(word);
    if word_done {
        Some(METHODS.contains(&word))
    } else if METHODS.iter().any(|m| m.starts_with(word)) {
        None
    } else {
        Some(false)
    }
}

/// The form of a request starting with `head`; `None` if more bytes are
/// needed to tell. `complete`: decide with what there is.
///
/// ```text
/// "\x0e\0\0\0{\"cmd\":\"ls\"}"  -> Framed
/// "ls -l"                       -> Raw
/// "GET /;touch$IFS~/pwned; HTTP/1.1\r\n" -> Http
/// ```
pub fn classify(head: &[u8], complete: bool) -> Option<Kind> {
    match is_http(head, complete) {
        Some(true) => return Some(Kind::Http),
        None => return None,
        Some(false) => {}
    }
    let first = &head[..head.len().min(4)];
    if first.iter().any(|&b| !is_text(b)) {
        Some(Kind::Framed)
    } else if first.len() >= 3 || complete {
        Some(Kind::Raw)
    } else {
        None
    }
}

/// Reads the first bytes of a request and classifies them. Only the bytes
/// that decide are taken out of `req.rfile` (a framed request continues
/// with `head.chain(...)`, and a second frame already buffered stays
/// there), waiting up to [`SNIFF_WAIT`] for them; a raw request then takes
/// what else has arrived, up to [`RAW_MAX`] bytes in all.
pub fn read_head(req: &mut StreamRequest, until: Instant) -> io::Result<(Kind, Vec<u8>)> {
    let sock = req.stream().try_clone()?;
    let mut more = Deadline::new(
        &mut req.rfile,
        &sock,
        until.min(Instant::now() + SNIFF_WAIT),
    );
    let mut head = Vec::new();
    while classify(&head, false).is_none() {
        // One byte at a time, so that no byte past the decision is taken.
        match (&mut more).take(1).read_to_end(&mut head) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => break,
            Err(e) => return Err(e),
        }
    }
    if classify(&head, true) == Some(Kind::Raw) {
        let rest = req.rfile.buffer();
        let n = rest.len().min(RAW_MAX.saturating_sub(head.len()));
        head.extend_from_slice(&rest[..n]);
        req.rfile.consume(n);
    }
    // Now with the whole first line, if it is there.
    let kind = classify(&head, true).unwrap_or(Kind::Raw);
    Ok((kind, head))
}
