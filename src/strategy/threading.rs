//! A thread per request: `ThreadingMixIn`.

use std::io;
use std::thread;

use super::{Execute, Job, Strategy, sealed};
use crate::handler::Handles;

/// A new thread for every request (Python's `ThreadingMixIn`).
///
/// Threads are named (default `"socketserver"`), are not retained once they
/// finish (Python 3.7 kept every one: bpo-37193) and are bounded only by
/// [`max_connections`](crate::ServerBuilder::max_connections), which you
/// should set for a server facing untrusted clients. Closing the server
/// waits for them (Python's `block_on_close`), up to the
/// [`drain_timeout`](crate::ServerBuilder::drain_timeout).
///
/// ```
/// use socketserver::Threading;
/// let strategy = Threading::new().stack_size(128 * 1024).name("echo");
/// # let _ = strategy;
/// ```
#[derive(Debug, Clone)]
pub struct Threading {
    stack_size: Option<usize>,
    name: String,
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
        }
    }

    /// Each thread's stack size in bytes. Default: std's (2 MiB, reserved
    /// but mostly untouched). A small stack (64–256 KiB) lets many idle
    /// connections live in little memory.
    pub fn stack_size(mut self, bytes: usize) -> Threading {
        self.stack_size = Some(bytes);
        self
    }

    /// The threads' name, as shown by `top -H` and in panic messages.
    /// Default: `"socketserver"`.
    pub fn name(mut self, name: impl Into<String>) -> Threading {
        self.name = name.into();
        self
    }
}

impl sealed::Sealed for Threading {}
impl Strategy for Threading {}

impl<R, H> Execute<R, H> for Threading
where
    R: Send + 'static,
    H: Handles<R> + Send + Sync,
{
    fn execute(&self, job: Job<R, H>) -> io::Result<()> {
        let mut builder = thread::Builder::new().name(self.name.clone());
        if let Some(size) = self.stack_size {
            builder = builder.stack_size(size);
        }
        builder.spawn(move || {
            job.run();
        })?;
        Ok(())
    }
}
