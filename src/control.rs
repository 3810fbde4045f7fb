//! Stopping the loop: the shutdown state machine and [`ServerHandle`].
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

use crate::drain::Tracker;

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

#[derive(Debug)]
pub(crate) struct Control {
    stop: AtomicBool,
    draining: AtomicBool,
    state: Mutex<State>,
    waker: mio::Waker,
}

impl Control {
    pub(crate) fn new(waker: mio::Waker) -> Control {
        Control {
            stop: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            state: Mutex::new(State::Idle),
            waker,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the loop to stop; never blocks.
    pub(crate) fn request_stop(&self) {
        self.draining.store(true, Ordering::SeqCst);
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
        self.draining.store(false, Ordering::SeqCst);
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

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
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
/// let server = TcpServer::<_>::bind("127.0.0.1:0", |_req: &mut StreamRequest| Ok(()))?;
/// let handle = server.handle();
/// handle.shutdown(); // before serve_forever: it returns at once
/// server.serve_forever()?;
/// assert!(handle.is_shutting_down());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ServerHandle {
    pub(crate) control: Arc<Control>,
    pub(crate) tracker: Arc<Tracker>,
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
        self.control.request_stop();
    }

    /// True once shutdown has been requested (and while closing), so
    /// long-lived handlers (a chat, an upload) can end politely.
    pub fn is_shutting_down(&self) -> bool {
        self.control.is_draining()
    }

    /// How many requests are in flight right now (connections being
    /// handled, datagrams being handled, forked children alive).
    pub fn active_connections(&self) -> usize {
        self.tracker.live()
    }
}
