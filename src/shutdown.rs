//! Stopping the loop: the shutdown state machine ([`Lifecycle`]) and
//! [`ServerHandle`].
//!
//! Python's `shutdown()` sets a flag that the loop notices at its next
//! `select(poll_interval)` (up to 0.5 s later), blocks until the loop has
//! exited (so it deadlocks when called from the serving thread), and leaves
//! the flag set when called after the loop has stopped (the next
//! `serve_forever` then returns at once). Here `shutdown()` wakes the loop
//! through a [`mio::Waker`] (an `eventfd` on Linux), never blocks, and means:
//!
//! - while `serve_forever` runs: stop it;
//! - before the first `serve_forever` starts: stop it as soon as it starts,
//!   so a shutdown that races the start-up is never lost;
//! - after a `serve_forever` has returned: nothing (the flag is not sticky,
//!   a later `serve_forever` serves again).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::inflight::InFlight;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Never served.
    Idle,
    /// Shutdown was asked for before the first `serve_forever`.
    Pending,
    /// `serve_forever` is running.
    Running,
    /// A `serve_forever` has returned.
    Stopped,
}

/// Whether `serve_forever` runs, was asked to stop, or is closed.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    /// The running loop must return.
    stop: AtomicBool,
    /// A shutdown was requested and no `serve_forever` has started since:
    /// what handlers see as `is_shutting_down`.
    shutting_down: AtomicBool,
    state: Mutex<State>,
    waker: Arc<mio::Waker>,
}

impl Lifecycle {
    pub(crate) fn new(waker: Arc<mio::Waker>) -> Lifecycle {
        Lifecycle {
            stop: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            state: Mutex::new(State::Idle),
            waker,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the loop to stop; never blocks.
    pub(crate) fn request_stop(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let mut state = self.state();
        match *state {
            State::Idle => *state = State::Pending,
            State::Running => {
                self.stop.store(true, Ordering::SeqCst);
                self.wake();
            }
            State::Pending | State::Stopped => {}
        }
    }

    /// Marks the server closing: every later `serve_forever` returns at once.
    pub(crate) fn close(&self) {
        self.request_stop();
        let mut state = self.state();
        if *state != State::Running {
            *state = State::Pending;
        }
    }

    /// Called when `serve_forever` starts; false means "return at once".
    pub(crate) fn begin_serve(&self) -> bool {
        let mut state = self.state();
        if *state == State::Pending {
            *state = State::Stopped;
            return false;
        }
        *state = State::Running;
        self.stop.store(false, Ordering::SeqCst);
        self.shutting_down.store(false, Ordering::SeqCst);
        true
    }

    /// Called when `serve_forever` returns.
    pub(crate) fn end_serve(&self) {
        let mut state = self.state();
        if *state == State::Running {
            *state = State::Stopped;
        }
        self.stop.store(false, Ordering::SeqCst);
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub(crate) fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::error!("socketserver: cannot wake the server loop: {e}");
        }
    }
}

/// A cheap, cloneable handle to a server: stop it from any thread, or from
/// inside a handler, and ask whether it is stopping.
///
/// Get one from [`Server::handle`](crate::Server::handle) or, inside a
/// handler, from [`StreamRequest::server`](crate::StreamRequest::server) /
/// [`DatagramRequest::server`](crate::DatagramRequest::server).
///
/// ```
/// use socketserver::{StreamRequest, TcpServer};
/// # fn main() -> std::io::Result<()> {
/// let server = TcpServer::bind("127.0.0.1:0", |_req: &mut StreamRequest| Ok(()))?;
/// let handle = server.handle();
/// handle.shutdown(); // before serve_forever: it returns at once
/// server.serve_forever()?;
/// assert!(handle.is_shutting_down());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ServerHandle {
    pub(crate) lifecycle: Arc<Lifecycle>,
    pub(crate) in_flight: Arc<InFlight>,
    pub(crate) stats: Arc<crate::stats::Stats>,
}

impl ServerHandle {
    /// Stops `serve_forever` at once (Python's `shutdown()`), without
    /// blocking.
    ///
    /// The loop is woken through a waker, accepts nothing more (not even a
    /// connection that arrived during the wake-up) and returns. Requests in
    /// flight keep running; [`Server::server_close`](crate::Server::server_close)
    /// drains them. Called before `serve_forever` has started, the next
    /// `serve_forever` returns at once; called after it has returned, it does
    /// nothing. Safe to call from inside a handler, any number of times.
    pub fn shutdown(&self) {
        self.lifecycle.request_stop();
    }

    /// True once shutdown has been requested (and while closing), so
    /// long-lived handlers (a chat, an upload) can end politely.
    pub fn is_shutting_down(&self) -> bool {
        self.lifecycle.is_shutting_down()
    }

    /// How many requests are in flight right now (connections being
    /// handled, datagrams being handled, forked children alive).
    pub fn active_connections(&self) -> usize {
        self.in_flight.live()
    }

    /// Stops `serve_forever` like [`shutdown`](Self::shutdown), and makes a
    /// drain in progress (or the next one) cut every connection and signal
    /// every child at once instead of waiting for its deadline: the second
    /// Ctrl-C.
    pub fn abort(&self) {
        self.lifecycle.request_stop();
        self.in_flight.abort();
    }
}

impl ServerHandle {
    /// A snapshot of the server's counters (see [`ServerStats`](crate::ServerStats)).
    pub fn stats(&self) -> crate::stats::ServerStats {
        self.stats
            .snapshot(self.active_connections(), self.is_shutting_down())
    }
}
