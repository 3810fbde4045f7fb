//! Tracking live requests: backpressure (`max_connections`) and graceful
//! drain with a deadline.
//!
//! Every request in flight holds a [`Guard`]; the tracker counts live
//! requests and keeps an entry for each one a forced drain can cut (a
//! connection, a child), nothing per finished request, so memory is
//! O(live connections) (Python 3.7 kept every finished thread: bpo-37193).
//! Dropping the guard ends the request's accounting, wakes `server_close`
//! if it is draining, and wakes the loop if it had stopped accepting at the
//! limit. A datagram in flight is only counted: no lock, no map entry, and
//! no wake-up system call unless someone waits.

use std::collections::HashMap;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::control::Control;
use crate::net::Stream;

/// What a live request holds that a forced drain can cut.
#[doc(hidden)]
#[derive(Debug)]
pub enum Live {
    /// A connection: forced with `shutdown(SHUT_RDWR)`.
    Stream(Arc<Stream>),
    /// A datagram being handled: nothing to cut.
    Datagram,
    /// A forked child: forced with `SIGTERM`.
    #[cfg(unix)]
    Child(i32),
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    live: HashMap<u64, Live>,
}

#[derive(Debug)]
pub(crate) struct Tracker {
    inner: Mutex<Inner>,
    changed: Condvar,
    count: AtomicUsize,
    /// A drain is waiting on `changed`: only then do guards notify it.
    draining: AtomicBool,
    limit: usize,
    control: Arc<Control>,
}

impl Tracker {
    pub(crate) fn new(limit: Option<usize>, control: Arc<Control>) -> Tracker {
        Tracker {
            inner: Mutex::default(),
            changed: Condvar::new(),
            count: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            limit: limit.unwrap_or(usize::MAX).max(1),
            control,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn live(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub(crate) fn at_capacity(&self) -> bool {
        self.live() >= self.limit
    }

    pub(crate) fn register(self: &Arc<Self>, live: Live) -> Guard {
        let id = match live {
            Live::Datagram => None,
            live => {
                let mut inner = self.lock();
                let id = inner.next_id;
                inner.next_id += 1;
                inner.live.insert(id, live);
                Some(id)
            }
        };
        self.count.fetch_add(1, Ordering::SeqCst);
        Guard {
            tracker: Arc::clone(self),
            id,
        }
    }

    fn remove(&self, id: Option<u64>) {
        if let Some(id) = id {
            self.lock().live.remove(&id);
        }
        let before = self.count.fetch_sub(1, Ordering::SeqCst);
        if before == self.limit {
            // The loop may be parked at the limit: let it accept again.
            self.control.wake();
        }
        if self.draining.load(Ordering::SeqCst) {
            // Taking the lock orders this after the drain's check or after
            // it started waiting, so the wake-up cannot be lost.
            drop(self.lock());
            self.changed.notify_all();
        }
    }

    /// Waits until nothing is live or `deadline` passes; `service` runs
    /// between waits (the forking strategy reaps children there) and
    /// `slice` bounds each wait when `service` needs calling.
    fn wait_empty(
        &self,
        deadline: Option<Instant>,
        slice: Option<Duration>,
        service: &dyn Fn(),
    ) -> bool {
        self.draining.store(true, Ordering::SeqCst);
        loop {
            service();
            let inner = self.lock();
            if self.live() == 0 {
                return true;
            }
            let now = Instant::now();
            let mut wait = deadline.map(|d| d.saturating_duration_since(now));
            if wait == Some(Duration::ZERO) {
                return false;
            }
            if let Some(s) = slice {
                wait = Some(wait.map_or(s, |w| w.min(s)));
            }
            match wait {
                Some(w) => drop(self.changed.wait_timeout(inner, w)),
                None => drop(self.changed.wait(inner)),
            }
        }
    }

    /// Cuts every live connection and signals every live child; returns how
    /// many were cut.
    fn force_all(&self) -> usize {
        let inner = self.lock();
        let mut forced = 0;
        for live in inner.live.values() {
            match live {
                Live::Stream(s) => {
                    let _ = s.shutdown(Shutdown::Both);
                    forced += 1;
                }
                Live::Datagram => {}
                #[cfg(unix)]
                Live::Child(pid) => {
                    crate::sys::terminate(*pid);
                    forced += 1;
                }
            }
        }
        forced
    }

    /// The graceful drain: wait up to `grace` for live requests to end, then
    /// cut the rest and wait up to `grace` again (at most `FORCE_WAIT`) for
    /// their handlers to return.
    pub(crate) fn drain(
        &self,
        grace: Option<Duration>,
        slice: Option<Duration>,
        service: &dyn Fn(),
    ) -> DrainReport {
        let start = Instant::now();
        let initial = self.live();
        let mut forced = 0;
        if !self.wait_empty(grace.map(|g| start + g), slice, service) {
            let live = self.live();
            forced = self.force_all();
            log::warn!(
                "socketserver: drain deadline passed with {live} request(s) live; cut {forced}"
            );
            let wait = grace.map_or(FORCE_WAIT, |g| g.min(FORCE_WAIT));
            self.wait_empty(Some(Instant::now() + wait), slice, service);
        }
        let abandoned = self.live();
        DrainReport {
            completed: initial.saturating_sub(forced).saturating_sub(abandoned),
            forced,
            abandoned,
            elapsed: start.elapsed(),
        }
    }
}

/// The longest a forced drain waits for cut handlers to return.
const FORCE_WAIT: Duration = Duration::from_secs(5);

/// Held by a request in flight; dropping it ends the request's accounting.
#[derive(Debug)]
pub(crate) struct Guard {
    tracker: Arc<Tracker>,
    /// The tracker's entry, for requests a forced drain can cut.
    id: Option<u64>,
}

impl Guard {
    /// Replaces what a forced drain would cut (a forked child's pid).
    #[cfg(unix)]
    pub(crate) fn set(&mut self, live: Live) {
        let mut inner = self.tracker.lock();
        match self.id {
            Some(id) => {
                inner.live.insert(id, live);
            }
            None => {
                let id = inner.next_id;
                inner.next_id += 1;
                inner.live.insert(id, live);
                self.id = Some(id);
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.tracker.remove(self.id);
    }
}

/// What [`Server::server_close`](crate::Server::server_close) did.
///
/// ```
/// use socketserver::{StreamRequest, TcpServer};
/// # fn main() -> std::io::Result<()> {
/// let server = TcpServer::<_>::bind("127.0.0.1:0", |_req: &mut StreamRequest| Ok(()))?;
/// let report = server.server_close()?;
/// assert_eq!((report.completed, report.forced, report.abandoned), (0, 0, 0));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Requests that were in flight when closing began and ended on their
    /// own within the drain deadline.
    pub completed: usize,
    /// Connections cut (`shutdown(SHUT_RDWR)`) or children sent `SIGTERM`
    /// because the deadline passed.
    pub forced: usize,
    /// Requests still running when `server_close` gave up waiting (a handler
    /// that ignores a cut connection, or a datagram handler that never
    /// returns).
    pub abandoned: usize,
    /// How long closing took.
    pub elapsed: Duration,
}
