//! Strategies: how a request runs once it has arrived (Python's mix-ins).
//!
//! | Strategy | Python | Each request runs | Needs |
//! |---|---|---|---|
//! | [`Sequential`] | `TCPServer` | on the loop's thread, one at a time | nothing |
//! | [`Threading`] | `ThreadingMixIn` | on a new thread | `Send + Sync` handler |
//! | [`ThreadPool`] | (none) | on one of N workers | `Send + Sync` handler |
//! | `Forking` (unix) | `ForkingMixIn` | in a forked child process | a single-threaded parent |
//!
//! Every strategy honours [`max_connections`](crate::ServerBuilder::max_connections);
//! at the limit the loop stops accepting until a request ends. A handler's
//! panic never escapes its request in any of them.
//!
//! The thread strategies require a thread-safe handler at compile time:
//!
//! ```compile_fail
//! use std::rc::Rc;
//! use socketserver::{StreamRequest, ThreadingTcpServer};
//! let not_send = Rc::new(());
//! let server = ThreadingTcpServer::bind("127.0.0.1:0", move |_req: &mut StreamRequest| {
//!     let _ = &not_send; // an Rc cannot cross threads
//!     Ok(())
//! }).unwrap();
//! server.serve_forever().unwrap();
//! ```
//!
//! while the same handler is fine one request at a time:
//!
//! ```
//! use std::rc::Rc;
//! use socketserver::{StreamRequest, TcpServer};
//! let not_send = Rc::new(());
//! let server = TcpServer::<_>::bind("127.0.0.1:0", move |_req: &mut StreamRequest| {
//!     let _ = &not_send;
//!     Ok(())
//! }).unwrap();
//! server.handle().shutdown();
//! server.serve_forever().unwrap();
//! ```

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::builder::Config;
use crate::control::ServerHandle;
use crate::drain::Guard;
use crate::handler::Handles;
use crate::net::Addr;

#[cfg(unix)]
mod forking;
mod pool;
mod threading;

#[cfg(unix)]
pub use forking::Forking;
pub use pool::ThreadPool;
pub use threading::Threading;

/// What every request of a server shares: the server's own handler value
/// (the hooks run on it; requests run on clones), the settings and a handle.
#[derive(Debug)]
pub(crate) struct Shared<H> {
    pub(crate) handler: H,
    pub(crate) config: Config,
    pub(crate) handle: ServerHandle,
    #[cfg(unix)]
    pub(crate) child_closes: Option<std::os::fd::RawFd>,
}

/// One request, accepted and verified, bound to its handler: what a
/// strategy runs.
#[derive(Debug)]
pub struct Job<R, H> {
    pub(crate) shared: Arc<Shared<H>>,
    pub(crate) request: R,
    pub(crate) peer: Addr,
    pub(crate) guard: Guard,
}

impl<R, H: Handles<R>> Job<R, H> {
    /// Runs the handler's `setup`, `handle` and `finish` on a fresh clone,
    /// reporting errors and panics to `handle_error`; returns false if any
    /// failed. The request's accounting ends when this returns.
    pub fn run(self) -> bool {
        let Job {
            shared,
            request,
            peer,
            guard,
        } = self;
        let ok = shared
            .handler
            .serve(request, peer, shared.handle.clone(), &shared.config);
        drop(guard);
        ok
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A way to run requests. Implemented by [`Sequential`], [`Threading`],
/// [`ThreadPool`] and `Forking`; not meant to be implemented elsewhere.
pub trait Strategy: sealed::Sealed + Send + Sync + 'static {
    /// A cap on requests in flight the strategy imposes by itself.
    #[doc(hidden)]
    fn limit(&self) -> Option<usize> {
        None
    }

    /// Called once when the server is built.
    #[doc(hidden)]
    fn attach(&self, registry: &mio::Registry, child_token: mio::Token) -> io::Result<()> {
        let _ = (registry, child_token);
        Ok(())
    }

    /// Housekeeping on every loop iteration (reaping children).
    #[doc(hidden)]
    fn service(&self) {}

    /// How long the loop may sleep at most while this strategy has work to
    /// check on without a wake-up event.
    #[doc(hidden)]
    fn poll_slice(&self) -> Option<Duration> {
        None
    }

    /// How often a drain must call `service` to notice requests ending.
    #[doc(hidden)]
    fn drain_slice(&self) -> Option<Duration> {
        None
    }

    /// Called once when the server closes, after the drain; `idle` is false
    /// if requests are still running.
    #[doc(hidden)]
    fn close(&self, idle: bool) {
        let _ = idle;
    }
}

/// A strategy able to run requests `R` with handler `H`. The thread
/// strategies implement it only for `Send + Sync` handlers, which is how a
/// handler that cannot cross threads is refused at compile time.
pub trait Execute<R, H>: Strategy {
    /// Starts `job`. On error the job (and its connection) is dropped and
    /// the error goes to `handle_error`.
    #[doc(hidden)]
    fn execute(&self, job: Job<R, H>) -> io::Result<()>;
}

/// One request at a time, on the loop's own thread (Python's plain
/// `TCPServer`). The default.
///
/// While a handler runs, the server accepts nothing else and a shutdown
/// takes effect when it returns: give connections a
/// [`read_timeout`](crate::ServerBuilder::read_timeout) so one silent client
/// cannot hold the server. The handler need not be `Send`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequential;

impl sealed::Sealed for Sequential {}
impl Strategy for Sequential {}

impl<R, H: Handles<R>> Execute<R, H> for Sequential {
    fn execute(&self, job: Job<R, H>) -> io::Result<()> {
        job.run();
        Ok(())
    }
}
