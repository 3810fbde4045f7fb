//! Keeps a quiet member in the room: a `/ping` every so often, and a word
//! on stderr when the server stops answering (UDP loses datagrams).

use std::time::{Duration, Instant};

/// What the keepalive asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepaliveAction {
    /// Nothing to do now.
    Wait,
    /// Time for a `/ping`.
    Ping,
    /// The last `/ping` had no answer in time: report it, ping again. The
    /// number counts unanswered pings in a row.
    Retry(u32),
}

/// The keepalive's clock: a `/ping` every `every`; any datagram from the
/// server counts as an answer; none within `answer_timeout` is a miss.
#[derive(Debug, Clone)]
pub struct Keepalive {
    every: Duration,
    answer_timeout: Duration,
    next_ping: Instant,
    awaiting: Option<Instant>,
    misses: u32,
}

impl Keepalive {
    /// A keepalive whose first ping is due at once.
    pub fn new(every: Duration, answer_timeout: Duration, now: Instant) -> Keepalive {
        Keepalive {
            every,
            answer_timeout,
            next_ping: now,
            awaiting: None,
            misses: 0,
        }
    }

    /// Something arrived from the server: it is alive. Returns how many
    /// pings had gone unanswered before (0 if none).
    pub fn answered(&mut self) -> u32 {
        self.awaiting = None;
        std::mem::take(&mut self.misses)
    }

    /// What to do at `now`; call it often (the client does every 200 ms).
    /// Assumes the caller sends the ping it is asked for.
    pub fn tick(&mut self, now: Instant) -> KeepaliveAction {
        match self.awaiting {
            Some(sent) if now.duration_since(sent) >= self.answer_timeout => {
                self.misses += 1;
                self.awaiting = Some(now);
                KeepaliveAction::Retry(self.misses)
            }
            Some(_) => KeepaliveAction::Wait,
            None if now >= self.next_ping => {
                self.awaiting = Some(now);
                self.next_ping = now + self.every;
                KeepaliveAction::Ping
            }
            None => KeepaliveAction::Wait,
        }
    }
}
