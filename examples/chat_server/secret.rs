//! Guards a member's identity: a random secret the room gives each
//! `chat_client` member when it joins, which every later datagram from it
//! carries (`#SECRET text`). A datagram that claims a member's address but
//! lacks its secret (a spoofed source) cannot speak, rename or kick it.
//!
//! Not protected: anyone who can read the traffic (same Wi-Fi, on the path)
//! sees the secret in clear text; UDP has no encryption here.

use std::io;

use sha2::{Digest, Sha256};
use socketserver::Addr;

use super::room::Outbox;

/// What starts a signed datagram: `#` + [`SECRET_HEX`] hex digits + a space.
pub const MARK: u8 = b'#';

/// Hex digits in a secret (128 random bits).
pub const SECRET_HEX: usize = 32;

/// A member's secret: 128 random bits as hex.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A fresh secret from the operating system's random source.
    pub fn new() -> io::Result<Secret> {
        Ok(Secret(hex(&random_bytes::<16>()?)))
    }

    /// The secret as sent in `/welcome`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this secret (compared without leaking where a
    /// guess goes wrong).
    pub fn matches(&self, given: &str) -> bool {
        same(&self.0, given)
    }
}

/// `a == b` in a time that depends only on the lengths: the digests are
/// compared, so a guess learns nothing from how long the comparison took.
pub fn same(a: &str, b: &str) -> bool {
    let (da, db) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Splits a signed datagram `#SECRET text` into its secret and text.
pub fn split_signed(data: &[u8]) -> Option<(&str, &[u8])> {
    let rest = data.strip_prefix(&[MARK])?;
    if rest.len() < SECRET_HEX + 1 || rest[SECRET_HEX] != b' ' {
        return None;
    }
    let secret = std::str::from_utf8(&rest[..SECRET_HEX]).ok()?;
    secret
        .bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then_some((secret, &rest[SECRET_HEX + 1..]))
}

pub use super::common::{hex, random_bytes};

/// A datagram from a member's address without the member's secret: a
/// forged source. Nothing is done and nothing is sent.
pub fn spoofed(peer: &Addr) -> Outbox {
    log::debug!("{peer}: datagram without the member's secret, dropped");
    Outbox::default()
}
