//! Strategies: how a request runs once it has arrived (Python's mix-ins).
//!
//! | Strategy | Python | Each request runs | Needs |
//! |---|---|---|---|
//! | [`Sequential`] | `TCPServer` | on the loop's thread, one at a time | nothing |
//! | [`Threading`] | `ThreadingMixIn` | on a new thread | `Send + Sync` handler |
//! | [`ThreadPool`] | (none) | on one of N workers | `Send + Sync` handler |
//! | [`Forking`] | `ForkingMixIn` | in a forked child process | a single-threaded parent |
//! | [`AnyStrategy`] | (none) | as chosen at run time (`--strategy pool`) | `Send + Sync` handler |
//!
//! Every strategy honours [`max_connections`](crate::ServerBuilder::max_connections);
//! at the limit the loop stops accepting until a request ends. A handler's
//! panic never escapes its request in any of them.
//!
//! The thread strategies require a thread-safe handler at compile time:
//!
//! ```compile_fail,E0277
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
//! (`` `Rc<()>` cannot be shared between threads safely ``, reported at
//! `bind`), while the same handler is fine one request at a time:
//!
//! ```
//! use std::rc::Rc;
//! use socketserver::{StreamRequest, TcpServer};
//! let not_send = Rc::new(());
//! let server = TcpServer::bind("127.0.0.1:0", move |_req: &mut StreamRequest| {
//!     let _ = &not_send;
//!     Ok(())
//! }).unwrap();
//! server.handle().shutdown();
//! server.serve_forever().unwrap();
//! ```

use std::io;
use std::time::Duration;

use crate::batch::{Batch, Report};
use crate::dispatch::{Handles, Job};
use crate::transport::Arrival;

mod any;
mod forking;
mod pool;
mod threading;

pub use any::AnyStrategy;
pub use forking::Forking;
pub use pool::ThreadPool;
pub use threading::Threading;

pub(crate) mod sealed {
    use super::*;
    use crate::error::HandlerError;
    use crate::net::Addr;

    /// The crate-private side of [`Strategy`]: what the loop asks of it.
    pub trait StrategyImpl: Send + Sync + 'static {
        /// A cap on requests in flight the strategy imposes by itself.
        fn limit(&self) -> Option<usize> {
            None
        }

        /// True if a thread that ran a datagram batch should take the next
        /// batches itself while datagrams keep coming (the loop stands back
        /// meanwhile): the thread strategies, where handing every batch
        /// over would cost a wake-up each.
        fn drains(&self) -> bool {
            false
        }

        /// Called once when the server is built.
        fn attach(&self, registry: &mio::Registry, child_token: mio::Token) -> io::Result<()> {
            let _ = (registry, child_token);
            Ok(())
        }

        /// Reaps finished children; a child's failure it alone can see (a
        /// death by signal) goes to `report`.
        fn reap(&self, report: &dyn Fn(&Addr, HandlerError)) {
            let _ = report;
        }

        /// How long the loop may sleep at most while children must be
        /// swept for without a wake-up event.
        fn sweep_interval(&self) -> Option<Duration> {
            None
        }

        /// How often a drain must call `reap` to notice requests ending.
        fn drain_sweep_interval(&self) -> Option<Duration> {
            None
        }

        /// Called once when the server closes, after the drain; `idle` is
        /// false if requests are still running.
        fn close(&self, idle: bool) {
            let _ = idle;
        }
    }

    /// A strategy able to run requests `R` with handler `H`. The thread
    /// strategies implement it only for `Send + Sync` handlers, which is how
    /// a handler that cannot cross threads is refused at compile time.
    pub trait Execute<R, H>: Strategy {
        /// Starts `job`. On error the job (and its connection) is dropped
        /// and the error goes to `handle_error`.
        fn execute(&self, job: Job<R, H>) -> io::Result<()>;

        /// Starts a batch of datagram requests. By default each goes to
        /// [`execute`](Execute::execute) on its own (forking: a child per
        /// datagram); a job that fails to start goes to `report`.
        fn execute_batch(&self, batch: Batch<R, H>, report: &Report<'_>) {
            for job in batch.jobs {
                let peer = job.peer.clone();
                if let Err(e) = self.execute(job) {
                    report(&peer, e);
                }
            }
        }
    }
}

pub(crate) use sealed::{Execute, StrategyImpl};

/// A way to run requests: [`Sequential`], [`Threading`], [`ThreadPool`],
/// [`Forking`] or [`AnyStrategy`]. Sealed: the loop's side of it is private,
/// so it can change without breaking anyone.
pub trait Strategy: StrategyImpl {}

/// One request at a time, on the loop's own thread (Python's plain
/// `TCPServer`). The default.
///
/// A datagram server takes up to 32 datagrams per `recvmmsg(2)`, runs
/// their handlers one after another and sends their replies in one
/// `sendmmsg(2)` before receiving again.
///
/// While a handler runs, the server accepts nothing else and a shutdown
/// takes effect when it returns: give connections a
/// [`read_timeout`](crate::ServerBuilder::read_timeout) so one silent client
/// cannot hold the server (a slowloris client sending nothing stops every
/// other client). The handler need not be `Send`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequential;

impl StrategyImpl for Sequential {}
impl Strategy for Sequential {}

impl<R: Arrival, H: Handles<R>> Execute<R, H> for Sequential {
    fn execute(&self, job: Job<R, H>) -> io::Result<()> {
        job.run();
        Ok(())
    }

    fn execute_batch(&self, batch: Batch<R, H>, _: &Report<'_>) {
        batch.run();
    }
}
