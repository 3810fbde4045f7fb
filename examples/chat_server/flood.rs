//! Guards the room against floods: token buckets kept per source IP, so
//! leaving and rejoining (`/quit`, a new port) starts with the same
//! (empty) bucket, and joins have a bucket of their own.
//!
//! Not protected: a forged source IP spends that IP's tokens (a member on
//! it may be told to slow down); many source IPs (a botnet, or IPv6 prefixes)
//! each get their own buckets, up to [`MAX_TRACKED`] of them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Join tokens per second one IP gets back, on average. A join costs two
/// (its `/hello` and its `/join`): one join per ten seconds...
pub const JOIN_RATE: f64 = 0.2;
/// ...after a burst of five joins.
pub const JOIN_BURST: f64 = 10.0;
/// Most IPs whose buckets are kept; beyond it, new IPs are refused until
/// [`Flood::sweep`] forgets full buckets.
pub const MAX_TRACKED: usize = 65_536;

/// A token bucket: `burst` tokens, refilled at `rate` per second.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
    }
}

/// Takes one token from `ip`'s bucket in `map`; false if empty (or if
/// `ip` is new and the map is full).
fn take(
    map: &mut HashMap<IpAddr, Bucket>,
    ip: IpAddr,
    rate: f64,
    burst: f64,
    now: Instant,
) -> bool {
    if !map.contains_key(&ip) && map.len() >= MAX_TRACKED {
        return false;
    }
    let b = map.entry(ip).or_insert(Bucket {
        tokens: burst,
        at: now,
    });
    b.refill(rate, burst, now);
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        true
    } else {
        false
    }
}

/// The buckets of every source IP.
#[derive(Debug)]
pub struct Flood {
    rate: f64,
    burst: f64,
    datagrams: HashMap<IpAddr, Bucket>,
    joins: HashMap<IpAddr, Bucket>,
}

impl Flood {
    /// `rate` datagrams per second per IP on average, after `burst`.
    pub fn new(rate: f64, burst: f64) -> Flood {
        Flood {
            rate,
            burst,
            datagrams: HashMap::new(),
            joins: HashMap::new(),
        }
    }

    /// One datagram from `ip`: false if it is over its limit.
    pub fn datagram(&mut self, ip: IpAddr, now: Instant) -> bool {
        take(&mut self.datagrams, ip, self.rate, self.burst, now)
    }

    /// One `/hello` or `/join` from `ip`: false if it joined too often lately.
    pub fn join(&mut self, ip: IpAddr, now: Instant) -> bool {
        take(&mut self.joins, ip, JOIN_RATE, JOIN_BURST, now)
    }

    /// `! slow down` for a datagram over the limit.
    pub fn refusal(&self) -> String {
        format!(
            "! slow down: message not sent (limit {}/s, burst {}, per address)",
            self.rate, self.burst
        )
    }

    /// Forgets buckets that have refilled: they hold nothing a newcomer
    /// would not get anyway.
    pub fn sweep(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.datagrams.retain(|_, b| {
            b.refill(rate, burst, now);
            b.tokens < burst
        });
        self.joins.retain(|_, b| {
            b.refill(JOIN_RATE, JOIN_BURST, now);
            b.tokens < JOIN_BURST
        });
    }
}
