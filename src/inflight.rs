//! Requests in flight: counting them (`max_connections`), remembering what a
//! drain can cut, and the graceful drain with a deadline.
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
use std::net::{IpAddr, Shutdown};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::net::Stream;

/// Where a connection's handler is: serving a request, or waiting in
/// [`StreamRequest::next_request`](crate::StreamRequest::next_request) for
/// the next one (which a drain may end at once).
#[derive(Debug, Default)]
pub struct Phase(AtomicU8);

const BUSY: u8 = 0;
const IDLE: u8 = 1;
const CUT: u8 = 2;

impl Phase {
    /// The handler waits for the next request.
    pub(crate) fn set_idle(&self) {
        let _ = self
            .0
            .compare_exchange(BUSY, IDLE, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// A request arrived; false if a drain already closed the connection.
    pub(crate) fn set_busy(&self) -> bool {
        match self
            .0
            .compare_exchange(IDLE, BUSY, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => true,
            Err(now) => now == BUSY,
        }
    }

    /// True once a drain has closed the connection while it was idle.
    pub(crate) fn is_cut(&self) -> bool {
        self.0.load(Ordering::SeqCst) == CUT
    }

    fn cut_if_idle(&self) -> bool {
        self.0
            .compare_exchange(IDLE, CUT, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

/// What a live request holds that a drain can cut.
#[derive(Debug)]
pub enum Cut {
    /// A connection: closed for reading at the drain's start if idle, cut
    /// with `shutdown(SHUT_RDWR)` at its deadline.
    Stream(Arc<Stream>, Arc<Phase>),
    /// A datagram being handled: nothing to cut.
    Datagram,
    /// A forked child: sent `SIGTERM`.
    Child(i32),
}

#[derive(Debug, Default)]
struct Entries {
    next_id: u64,
    live: HashMap<u64, Cut>,
}

/// Counts the requests in flight and drains them.
#[derive(Debug)]
pub(crate) struct InFlight {
    entries: Mutex<Entries>,
    changed: Condvar,
    count: AtomicUsize,
    /// A drain is waiting on `changed`: only then do guards notify it.
    drain_waiting: AtomicBool,
    /// [`ServerHandle::abort`](crate::ServerHandle::abort): cut now.
    aborted: AtomicBool,
    limit: usize,
    /// `max_connections_per_ip`, and the live connections of each IP.
    per_ip_limit: Option<usize>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Wakes the loop when a slot frees at the limit.
    waker: Arc<mio::Waker>,
}

impl InFlight {
    pub(crate) fn new(limit: Option<usize>, waker: Arc<mio::Waker>) -> InFlight {
        InFlight {
            entries: Mutex::default(),
            changed: Condvar::new(),
            count: AtomicUsize::new(0),
            drain_waiting: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            limit: limit.unwrap_or(usize::MAX).max(1),
            per_ip_limit: None,
            per_ip: Mutex::default(),
            waker,
        }
    }

    /// Caps the live connections from one IP address (`None`: no cap).
    pub(crate) fn limit_per_ip(mut self, limit: Option<usize>) -> InFlight {
        self.per_ip_limit = limit.map(|l| l.max(1));
        self
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn live(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub(crate) fn at_capacity(&self) -> bool {
        self.live() >= self.limit
    }

    /// How many more requests may start now.
    pub(crate) fn room(&self) -> usize {
        self.limit.saturating_sub(self.live())
    }

    pub(crate) fn register(self: &Arc<Self>, cut: Cut) -> Guard {
        let id = match cut {
            Cut::Datagram => None,
            cut => {
                let mut entries = self.lock();
                let id = entries.next_id;
                entries.next_id += 1;
                entries.live.insert(id, cut);
                Some(id)
            }
        };
        self.count.fetch_add(1, Ordering::SeqCst);
        Guard {
            tracker: Arc::clone(self),
            id,
            ip: None,
        }
    }

    /// [`register`](Self::register) for a connection from `ip`, counted
    /// against `max_connections_per_ip`; `None` if that IP is at its cap.
    pub(crate) fn register_from(self: &Arc<Self>, cut: Cut, ip: Option<IpAddr>) -> Option<Guard> {
        let ip = ip.filter(|_| matches!(cut, Cut::Stream(..)));
        let (Some(limit), Some(ip)) = (self.per_ip_limit, ip) else {
            return Some(self.register(cut));
        };
        {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
            let live = per_ip.entry(ip).or_insert(0);
            if *live >= limit {
                return None;
            }
            *live += 1;
        }
        let mut guard = self.register(cut);
        guard.ip = Some(ip);
        Some(guard)
    }

    fn release_ip(&self, ip: IpAddr) {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = per_ip.get_mut(&ip) {
            *live -= 1;
            if *live == 0 {
                per_ip.remove(&ip);
            }
        }
    }

    fn remove(&self, id: Option<u64>) {
        if let Some(id) = id {
            self.lock().live.remove(&id);
        }
        let before = self.count.fetch_sub(1, Ordering::SeqCst);
        if before == self.limit
            && let Err(e) = self.waker.wake()
        {
            // The loop may be parked at the limit: let it accept again.
            log::error!("socketserver: cannot wake the server loop: {e}");
        }
        if self.drain_waiting.load(Ordering::SeqCst) {
            self.notify();
        }
    }

    fn notify(&self) {
        // Taking the lock orders this after the drain's check or after it
        // started waiting, so the wake-up cannot be lost.
        drop(self.lock());
        self.changed.notify_all();
    }

    /// Makes a drain in progress (or the next one) cut everything now.
    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
        self.notify();
    }

    /// Waits until nothing is live, `deadline` passes or an abort; `reap`
    /// runs between waits (the forking strategy reaps children there) and
    /// `slice` bounds each wait when `reap` needs calling.
    fn wait_empty(
        &self,
        deadline: Option<Instant>,
        slice: Option<Duration>,
        reap: &dyn Fn(),
    ) -> bool {
        self.drain_waiting.store(true, Ordering::SeqCst);
        loop {
            reap();
            let entries = self.lock();
            if self.live() == 0 {
                return true;
            }
            if self.aborted.load(Ordering::SeqCst) {
                return false;
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
                Some(w) => drop(self.changed.wait_timeout(entries, w)),
                None => drop(self.changed.wait(entries)),
            }
        }
    }

    /// Closes the reading side of every connection whose handler waits in
    /// `next_request`: its read returns end of input at once.
    fn close_idle(&self) {
        for cut in self.lock().live.values() {
            if let Cut::Stream(stream, phase) = cut
                && phase.cut_if_idle()
            {
                let _ = stream.shutdown(Shutdown::Read);
            }
        }
    }

    /// Cuts every live connection and signals every live child; returns how
    /// many were cut.
    fn force_all(&self) -> usize {
        let entries = self.lock();
        let mut forced = 0;
        for cut in entries.live.values() {
            match cut {
                Cut::Stream(s, _) => {
                    let _ = s.shutdown(Shutdown::Both);
                    forced += 1;
                }
                Cut::Datagram => {}
                Cut::Child(pid) => {
                    crate::sys::terminate(*pid);
                    forced += 1;
                }
            }
        }
        forced
    }

    /// The graceful drain: close idle connections, wait up to `grace` for
    /// the other requests to end, then cut the rest and wait up to `grace`
    /// again (at most `FORCE_WAIT`) for their handlers to return.
    pub(crate) fn drain(
        &self,
        grace: Option<Duration>,
        slice: Option<Duration>,
        reap: &dyn Fn(),
    ) -> DrainReport {
        let start = Instant::now();
        let initial = self.live();
        self.close_idle();
        let mut forced = 0;
        if !self.wait_empty(grace.map(|g| start + g), slice, reap) {
            let live = self.live();
            forced = self.force_all();
            log::warn!("socketserver: drain stopped with {live} request(s) live; cut {forced}");
            let wait = grace.map_or(FORCE_WAIT, |g| g.min(FORCE_WAIT));
            self.wait_empty(Some(Instant::now() + wait), slice, reap);
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
    tracker: Arc<InFlight>,
    /// The tracker's entry, for requests a forced drain can cut.
    id: Option<u64>,
    /// The IP counted against `max_connections_per_ip`.
    ip: Option<IpAddr>,
}

impl Guard {
    /// Replaces what a forced drain would cut (a forked child's pid).
    pub(crate) fn set(&mut self, cut: Cut) {
        let mut entries = self.tracker.lock();
        let id = *self.id.get_or_insert_with(|| {
            entries.next_id += 1;
            entries.next_id - 1
        });
        entries.live.insert(id, cut);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            self.tracker.release_ip(ip);
        }
        self.tracker.remove(self.id);
    }
}

/// What [`Server::server_close`](crate::Server::server_close) did.
///
/// ```
/// use socketserver::{StreamRequest, TcpServer};
/// # fn main() -> std::io::Result<()> {
/// let server = TcpServer::bind("127.0.0.1:0", |_req: &mut StreamRequest| Ok(()))?;
/// let report = server.server_close()?;
/// assert_eq!((report.completed, report.forced, report.abandoned), (0, 0, 0));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Requests that were in flight when closing began and ended on their
    /// own within the drain deadline (idle connections closed by the drain
    /// included).
    pub completed: usize,
    /// Connections cut (`shutdown(SHUT_RDWR)`) or children sent `SIGTERM`
    /// because the deadline passed or [`abort`](crate::ServerHandle::abort)
    /// was called.
    pub forced: usize,
    /// Requests still running when `server_close` gave up waiting (a handler
    /// that ignores a cut connection, or a datagram handler that never
    /// returns).
    pub abandoned: usize,
    /// How long closing took.
    pub elapsed: Duration,
}
