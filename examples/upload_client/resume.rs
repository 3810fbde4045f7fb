//! Continuing an interrupted upload: the server says how much it has, the
//! client hashes that much of its own file and sends the rest.
//!
//! The server finds the partial only under the name, size and SHA-256 this
//! upload declares (so a resume hashes the whole file first), and checks
//! the whole file's hash at the end: a partial left by another version of
//! the file is never continued.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::TcpStream;

use serde_json::Value;
use sha2::Sha256;

use super::{other, read_reply, refusal};

/// Reads the server's `{"offset": N}`, feeds the file's first `N` bytes to
/// `hasher` and leaves `file` at `N`.
pub fn negotiate(
    stream: &mut TcpStream,
    file: &mut File,
    size: u64,
    hasher: &mut Sha256,
) -> io::Result<u64> {
    let answer = read_reply(stream)?.ok_or_else(|| {
        other("the server did not answer the resume request (does it support resume?)".into())
    })?;
    if let Some(e) = refusal(&answer) {
        return Err(e);
    }
    let offset = answer
        .get("offset")
        .and_then(Value::as_u64)
        .filter(|&o| o <= size)
        .ok_or_else(|| other(format!("bad resume answer from server: {answer}")))?;
    file.seek(SeekFrom::Start(0))?;
    if io::copy(&mut (&mut *file).take(offset), hasher)? != offset {
        return Err(other("the file shrank while reading".into()));
    }
    Ok(offset)
}
