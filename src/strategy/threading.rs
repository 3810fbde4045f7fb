//! A thread per request: `ThreadingMixIn`.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use super::{Execute, Strategy, StrategyImpl};
use crate::dispatch::{Handles, Job};

/// A new thread for every request (Python's `ThreadingMixIn`).
///
/// Threads are numbered like Python's (`socketserver-1`, `socketserver-2`,
/// ...; `threading.current_thread().name` is
/// `std::thread::current().name()`), are not retained once they
/// finish (Python 3.7 kept every one: bpo-37193) and are bounded only by
/// [`max_connections`](crate::ServerBuilder::max_connections), which you
/// should set for a server facing untrusted clients: without it, 8,000
/// silent connections are 8,000 threads (141 MiB RSS, 17 GiB virtual,
/// measured); add [`max_connections_per_ip`](crate::ServerBuilder::max_connections_per_ip)
/// and a [`read_timeout`](crate::ServerBuilder::read_timeout). Closing the server
/// waits for them (Python's `block_on_close`), up to the
/// [`drain_timeout`](crate::ServerBuilder::drain_timeout).
///
/// ```
/// use socketserver::Threading;
/// let strategy = Threading::new().stack_size(128 * 1024).name("echo");
/// # let _ = strategy;
/// ```
#[derive(Debug)]
pub struct Threading {
    stack_size: Option<usize>,
    name: String,
    started: AtomicUsize,
}

impl Default for Threading {
    fn default() -> Self {
        Threading::new()
    }
}

impl Threading {
    /// Threads named `"socketserver"` with the platform's default stack size.
    pub fn new() -> Threading {
        Threading {
            stack_size: None,
            name: "socketserver".into(),
            started: AtomicUsize::new(0),
        }
    }

    /// Each thread's stack size in bytes. Default: std's (2 MiB, reserved
    /// but mostly untouched). A small stack (64–256 KiB) lets many idle
    /// connections live in little memory.
    pub fn stack_size(mut self, bytes: usize) -> Threading {
        self.stack_size = Some(bytes);
        self
    }

    /// The threads' name prefix, as shown by `top -H` and in panic
    /// messages; each thread adds its number (`echo-1`, `echo-2`, ...).
    /// Default: `"socketserver"`.
    pub fn name(mut self, name: impl Into<String>) -> Threading {
        self.name = name.into();
        self
    }
}

impl StrategyImpl for Threading {}
impl Strategy for Threading {}

impl<R, H> Execute<R, H> for Threading
where
    R: Send + 'static,
    H: Handles<R> + Send + Sync,
{
    fn execute(&self, job: Job<R, H>) -> io::Result<()> {
        let n = self.started.fetch_add(1, Ordering::Relaxed) + 1;
        let mut builder = thread::Builder::new().name(format!("{}-{n}", self.name));
        if let Some(size) = self.stack_size {
            builder = builder.stack_size(size);
        }
        builder.spawn(move || {
            job.run();
        })?;
        Ok(())
    }
}
