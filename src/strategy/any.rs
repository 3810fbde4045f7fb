//! A strategy chosen at run time, for a `--strategy` command-line option.

use std::io;
use std::str::FromStr;
use std::time::Duration;

use super::{Execute, Forking, Strategy, StrategyImpl, ThreadPool, Threading};
use crate::batch::{Batch, Report};
use crate::dispatch::{Handles, Job};
use crate::error::HandlerError;
use crate::net::Addr;
use crate::transport::Arrival;

/// One of the strategies, picked at run time: each strategy is its own type,
/// so a program that reads `--strategy pool` from its command line builds
/// its server with this enum instead of one `match` arm per type.
///
/// It needs a `Send + Sync` handler, like [`Threading`]. Parsed from
/// `"sequential"`, `"threading"`, `"pool"` (16 workers) or `"forking"`
/// (40 children):
///
/// ```
/// use socketserver::{AnyStrategy, ServerBuilder, StreamRequest};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let strategy: AnyStrategy = "pool".parse()?;
/// let server = ServerBuilder::new()
///     .strategy(strategy)
///     .bind_tcp("127.0.0.1:0", |req: &mut StreamRequest| {
///         std::io::copy(&mut req.rfile, &mut req.wfile)?;
///         Ok(())
///     })?;
/// # drop(server);
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyStrategy {
    /// [`Sequential`](super::Sequential): one request at a time.
    Sequential,
    /// A thread per request.
    Threading(Threading),
    /// A fixed pool of worker threads.
    ThreadPool(ThreadPool),
    /// A forked child per request.
    Forking(Forking),
}

impl FromStr for AnyStrategy {
    type Err = String;

    fn from_str(s: &str) -> Result<AnyStrategy, String> {
        Ok(match s {
            "sequential" => AnyStrategy::Sequential,
            "threading" => AnyStrategy::Threading(Threading::new()),
            "pool" => AnyStrategy::ThreadPool(ThreadPool::default()),
            "forking" => AnyStrategy::Forking(Forking::new()),
            other => {
                return Err(format!(
                    "unknown strategy {other:?}: expected sequential, threading, pool or forking"
                ));
            }
        })
    }
}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr, $seq:expr) => {
        match $self {
            AnyStrategy::Sequential => $seq,
            AnyStrategy::Threading($s) => $e,
            AnyStrategy::ThreadPool($s) => $e,
            AnyStrategy::Forking($s) => $e,
        }
    };
}

impl Strategy for AnyStrategy {}

impl StrategyImpl for AnyStrategy {
    fn limit(&self) -> Option<usize> {
        each!(self, s => s.limit(), None)
    }
    fn drains(&self) -> bool {
        each!(self, s => s.drains(), false)
    }
    fn attach(&self, registry: &mio::Registry, token: mio::Token) -> io::Result<()> {
        each!(self, s => s.attach(registry, token), Ok(()))
    }
    fn reap(&self, report: &dyn Fn(&Addr, HandlerError)) {
        each!(self, s => s.reap(report), ())
    }
    fn sweep_interval(&self) -> Option<Duration> {
        each!(self, s => s.sweep_interval(), None)
    }
    fn drain_sweep_interval(&self) -> Option<Duration> {
        each!(self, s => s.drain_sweep_interval(), None)
    }
    fn close(&self, idle: bool) {
        each!(self, s => s.close(idle), ())
    }
}

impl<R, H> Execute<R, H> for AnyStrategy
where
    R: Arrival,
    H: Handles<R> + Send + Sync,
{
    fn execute(&self, job: Job<R, H>) -> io::Result<()> {
        each!(self, s => s.execute(job), {
            job.run();
            Ok(())
        })
    }

    fn execute_batch(&self, batch: Batch<R, H>, report: &Report<'_>) {
        each!(self, s => s.execute_batch(batch, report), batch.run())
    }
}
