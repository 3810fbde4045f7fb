//! Checking the body against the header's `hash`: the SHA-256 of stdout
//! then stderr, computed as they stream past (the lesson's server sends a
//! placeholder, which is not 64 hex digits and so is not checked).

use std::io::{self, Write};

use sha2::{Digest, Sha256};

use super::common::hex;

/// The running SHA-256 of a body.
#[derive(Default)]
pub struct Hashing(Sha256);

/// A writer that hashes what passes through it.
pub struct Tee<'a, W: ?Sized> {
    inner: &'a mut W,
    hasher: &'a mut Sha256,
}

impl Hashing {
    /// Wraps `inner` so that what is written to it is hashed too.
    pub fn wrap<'a, W: Write + ?Sized>(&'a mut self, inner: &'a mut W) -> Tee<'a, W> {
        Tee {
            inner,
            hasher: &mut self.0,
        }
    }

    /// Compares with `want` if it is a SHA-256 in hex.
    pub fn check(self, want: Option<&str>) -> io::Result<()> {
        let Some(want) = want.filter(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        else {
            return Ok(());
        };
        let got = hex(&self.0.finalize());
        if got.eq_ignore_ascii_case(want) {
            return Ok(());
        }
        let msg = format!("body hash mismatch: header says {want}, body is {got}");
        Err(io::Error::new(io::ErrorKind::InvalidData, msg))
    }
}

impl<W: Write + ?Sized> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
