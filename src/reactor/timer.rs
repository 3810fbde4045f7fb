//! A coarse timer wheel, one per loop (Netty's `HashedWheelTimer`): time is
//! counted in ticks; each connection with a timeout has one entry in the
//! slot of its earliest deadline. Activity on the hot path only updates a
//! tick number in the connection; when an entry comes due the loop
//! recomputes the connection's deadline and either fires a timeout or
//! moves the entry to its new slot. Timeouts are therefore accurate to a
//! tick, which is all I/O timeouts need.

use std::time::{Duration, Instant};

const SLOTS: usize = 256;

/// An entry: a connection's slot index and generation.
pub(crate) type Entry = (usize, u64);

#[derive(Debug)]
pub(crate) struct Wheel {
    start: Instant,
    tick: Duration,
    slots: Vec<Vec<Entry>>,
    /// Every tick before this one has been processed.
    next: u64,
    len: usize,
}

impl Wheel {
    pub(crate) fn new(tick: Duration) -> Wheel {
        Wheel {
            start: Instant::now(),
            tick: tick.max(Duration::from_millis(1)),
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            next: 0,
            len: 0,
        }
    }

    /// The tick `now` falls in.
    pub(crate) fn tick_of(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.start).as_nanos() / self.tick.as_nanos()) as u64
    }

    /// How many ticks `d` spans, rounded up (a deadline never fires early).
    pub(crate) fn ticks(&self, d: Duration) -> u64 {
        (d.as_nanos().div_ceil(self.tick.as_nanos()) as u64).max(1)
    }

    /// Files `entry` under tick `at` (a deadline beyond one turn of the
    /// wheel is filed at the far end and refiled when it comes up).
    pub(crate) fn insert(&mut self, entry: Entry, at: u64) {
        let at = at.clamp(self.next, self.next + SLOTS as u64 - 1);
        self.slots[(at % SLOTS as u64) as usize].push(entry);
        self.len += 1;
    }

    /// Moves the entries of every tick up to `now` into `due`.
    pub(crate) fn expire(&mut self, now: u64, due: &mut Vec<Entry>) {
        let mut steps = 0;
        while self.next <= now && steps < SLOTS {
            let slot = &mut self.slots[(self.next % SLOTS as u64) as usize];
            self.len -= slot.len();
            due.append(slot);
            self.next += 1;
            steps += 1;
        }
        // After a long stall every slot was visited once; skip the rest.
        self.next = self.next.max(now + 1);
    }

    /// How long until the next tick with entries may be due, if any.
    pub(crate) fn timeout(&self, now: Instant) -> Option<Duration> {
        if self.len == 0 {
            return None;
        }
        let at = self.start
            + Duration::from_nanos((self.tick.as_nanos() as u64).saturating_mul(self.next));
        Some(at.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_due_in_their_tick_and_not_before() {
        let mut w = Wheel::new(Duration::from_millis(10));
        w.insert((1, 1), 3);
        w.insert((2, 2), 1000); // beyond one turn: filed at the far end
        let mut due = Vec::new();
        w.expire(2, &mut due);
        assert!(due.is_empty());
        w.expire(3, &mut due);
        assert_eq!(due, vec![(1, 1)]);
        due.clear();
        w.expire(3 + SLOTS as u64, &mut due);
        assert_eq!(due, vec![(2, 2)]);
        assert!(w.timeout(Instant::now()).is_none());
    }
}
