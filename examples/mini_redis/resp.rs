//! RESP2, the Redis wire format: a parser that borrows (arguments are byte
//! ranges into the input, no allocation per command) and reply encoders
//! that append to an output buffer.

use std::io::Write;

/// Longest bulk string accepted (Redis: 512 MB; this server: 8 MiB).
pub const MAX_BULK: usize = 8 * 1024 * 1024;
/// Most arguments in one command.
pub const MAX_ARGS: usize = 1024 * 1024;
/// Longest inline command or header line.
pub const MAX_LINE: usize = 64 * 1024;

/// What [`parse`] found at the start of the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// One command of `used` bytes; its arguments are in the ranges.
    Command { used: usize },
    /// Not all of it has arrived.
    Incomplete,
    /// Not RESP: answer the error and close.
    Error(&'static str),
}

/// The arguments of one command: ranges into the input it was parsed from.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    pub buf: &'a [u8],
    pub ranges: &'a [(usize, usize)],
}

impl<'a> Args<'a> {
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn get(&self, i: usize) -> &'a [u8] {
        let (a, b) = self.ranges[i];
        &self.buf[a..b]
    }
}

fn line(buf: &[u8], from: usize) -> Result<Option<usize>, &'static str> {
    let window = &buf[from..buf.len().min(from + MAX_LINE)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some(from + i)),
        None if window.len() >= MAX_LINE => Err("Protocol error: too big inline request"),
        None => Ok(None),
    }
}

fn number(digits: &[u8]) -> Option<i64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Parses one command (a RESP array of bulk strings, or an inline command
/// line as `nc` or `telnet` send) from the start of `buf`, filling `args`.
pub fn parse(buf: &[u8], args: &mut Vec<(usize, usize)>) -> Parse {
    args.clear();
    match parse_inner(buf, args) {
        Ok(Some(used)) => Parse::Command { used },
        Ok(None) => Parse::Incomplete,
        Err(e) => Parse::Error(e),
    }
}

fn parse_inner(buf: &[u8], args: &mut Vec<(usize, usize)>) -> Result<Option<usize>, &'static str> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        return inline(buf, args);
    }
    let Some(end) = line(buf, 1)? else {
        return Ok(None);
    };
    let n = number(&buf[1..end]).ok_or("Protocol error: invalid multibulk length")?;
    if n > MAX_ARGS as i64 {
        return Err("Protocol error: invalid multibulk length");
    }
    let mut at = end + 2;
    for _ in 0..n.max(0) {
        if at >= buf.len() {
            return Ok(None);
        }
        if buf[at] != b'$' {
            return Err("Protocol error: expected '$'");
        }
        let Some(end) = line(buf, at + 1)? else {
            return Ok(None);
        };
        let len = number(&buf[at + 1..end]).ok_or("Protocol error: invalid bulk length")?;
        if !(0..=MAX_BULK as i64).contains(&len) {
            return Err("Protocol error: invalid bulk length");
        }
        let start = end + 2;
        let stop = start + len as usize;
        if buf.len() < stop + 2 {
            return Ok(None);
        }
        if &buf[stop..stop + 2] != b"\r\n" {
            return Err("Protocol error: bulk string not terminated by CRLF");
        }
        args.push((start, stop));
        at = stop + 2;
    }
    Ok(Some(at))
}

fn inline(buf: &[u8], args: &mut Vec<(usize, usize)>) -> Result<Option<usize>, &'static str> {
    let Some(nl) = buf.iter().take(MAX_LINE).position(|&b| b == b'\n') else {
        if buf.len() >= MAX_LINE {
            return Err("Protocol error: too big inline request");
        }
        return Ok(None);
    };
    let end = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    let mut i = 0;
    while i < end {
        while i < end && buf[i] == b' ' {
            i += 1;
        }
        let start = i;
        while i < end && buf[i] != b' ' {
            i += 1;
        }
        if i > start {
            args.push((start, i));
        }
    }
    Ok(Some(nl + 1))
}

pub fn simple(out: &mut Vec<u8>, s: &str) {
    out.push(b'+');
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub fn error(out: &mut Vec<u8>, s: &str) {
    out.push(b'-');
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub fn int(out: &mut Vec<u8>, n: i64) {
    let _ = write!(out, ":{n}\r\n");
}

pub fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    let _ = write!(out, "${}\r\n", b.len());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

pub fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

pub fn array(out: &mut Vec<u8>, n: usize) {
    let _ = write!(out, "*{n}\r\n");
}
