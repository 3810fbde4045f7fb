//! Guards the rest of the Internet against the room: anti-amplification.
//!
//! UDP source addresses can be forged. A server that answers a small
//! datagram with a large one (or with one datagram to every member) lets an
//! attacker aim that traffic at a victim by writing the victim's address as
//! the source. The rule, QUIC's (RFC 9000 §8): never send an address that
//! has not proved it receives more than [`FACTOR`] times the bytes it sent.
//!
//! The proof is a cookie: `/hello` (padded with spaces: the padding pays
//! for the answer, `chat_client` sends 64 bytes) is answered
//! `/cookie C`, where `C` is a MAC of the sender's address under a key only
//! this process knows; `/join C` can only come from someone who received
//! it. The server keeps no state for a `/hello`, so forged ones cost it
//! nothing but one reply no larger than the rule allows.
//!
//! Not protected: an attacker who can receive at the forged address (on
//! the path) can join as it; the rule bounds the reflection, it does not
//! stop a forged source from using up that source IP's rate limit.

use std::io;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use socketserver::Addr;

use super::room::{Key, Outbox, Room, To};
use super::secret::{self, Secret};

/// Most bytes sent to an unproven address per byte received from it.
pub const FACTOR: usize = 3;

/// A cookie is valid for one to two of these.
const EPOCH: Duration = Duration::from_secs(120);

/// The server's cookie key and clock.
pub struct Cookies {
    key: [u8; 32],
    start: Instant,
}

impl Cookies {
    /// A fresh random key: cookies from an earlier run are not valid.
    pub fn new() -> io::Result<Cookies> {
        Ok(Cookies {
            key: secret::random_bytes()?,
            start: Instant::now(),
        })
    }

    fn epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs() / EPOCH.as_secs()
    }

    fn mac(&self, addr: &Addr, epoch: u64) -> String {
        let digest = Sha256::new()
            .chain_update(self.key)
            .chain_update(epoch.to_le_bytes())
            .chain_update(addr.to_string().as_bytes())
            .finalize();
        secret::hex(&digest[..16])
    }

    /// The cookie for `addr` now.
    pub fn issue(&self, addr: &Addr, now: Instant) -> String {
        self.mac(addr, self.epoch(now))
    }

    /// Whether `given` was issued to `addr` in this epoch or the last one.
    pub fn check(&self, addr: &Addr, given: &str, now: Instant) -> bool {
        let e = self.epoch(now);
        [e, e.saturating_sub(1)]
            .iter()
            .any(|&e| secret::same(&self.mac(addr, e), given))
    }
}

/// Whether `data` is a `/hello` (the word, then only spaces).
pub fn is_hello(data: &[u8]) -> bool {
    data.strip_prefix(b"/hello")
        .is_some_and(|pad| pad.iter().all(|&b| b == b' '))
}

/// What may still be sent to the sender of one datagram while its address
/// is unproven: [`FACTOR`] times that datagram's size, counted down.
#[derive(Debug)]
pub struct Allowance {
    peer: Addr,
    left: usize,
}

impl Allowance {
    /// The allowance for `received` bytes from `peer`.
    pub fn new(peer: &Addr, received: usize) -> Allowance {
        Allowance {
            peer: peer.clone(),
            left: FACTOR * received,
        }
    }

    /// Whether `len` more bytes may go to `to`, counting them if so. Other
    /// addresses are not this allowance's business (only members are sent
    /// anything else).
    pub fn permits(&mut self, to: &Addr, len: usize) -> bool {
        if *to != self.peer {
            return true;
        }
        if len > self.left {
            log::debug!("not sending {len} bytes to unproven {to}: over {FACTOR}x");
            return false;
        }
        self.left -= len;
        true
    }
}

/// `/hello`: a cookie for the sender, and no state kept. Hellos count
/// against the sender IP's join bucket.
pub fn hello(room: &mut Room, peer: &Addr, now: Instant) -> Outbox {
    let ip = peer.ip().expect("a UDP peer has an IP address");
    if !room.flood.join(ip, now) {
        return Outbox::default();
    }
    let cookie = room.cookies.issue(peer, now);
    Outbox::one(To::Udp(peer.clone()), format!("/cookie {cookie}"))
}

/// Step 2 for `chat_client` (see `main.rs`): admit the address that echoed its cookie
/// (it has proved it receives what it is sent) and give it a secret.
pub fn join(room: &mut Room, peer: &Addr, cookie: &[u8], now: Instant) -> Outbox {
    let (key, to) = (Key::Udp(peer.clone()), To::Udp(peer.clone()));
    let cookie = std::str::from_utf8(cookie).unwrap_or("").trim();
    if !room.cookies.check(peer, cookie, now) {
        log::debug!("{peer}: /join with a wrong cookie");
        return Outbox::default();
    }
    if let Some(m) = room.member(&key) {
        // Its `/welcome` was lost: the same again.
        return match &m.secret {
            Some(s) => Outbox::one(to, welcome(s, &m.name)),
            None => secret::spoofed(peer),
        };
    }
    let secret = match Secret::new() {
        Ok(s) => s,
        Err(e) => return Outbox::one(to, format!("! server error: {e}")),
    };
    let ip = peer.ip().expect("a UDP peer has an IP address");
    match room.admit(key, ip, to.clone(), Some(secret.clone()), now) {
        Ok((name, mut out)) => {
            out.push(&to, welcome(&secret, &name));
            out
        }
        Err(refusal) => Outbox::one(to, refusal),
    }
}

fn welcome(secret: &Secret, name: &str) -> String {
    format!("/welcome {} {name}", secret.as_str())
}
