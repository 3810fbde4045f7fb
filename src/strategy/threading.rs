//! A thread per request: `ThreadingMixIn`.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::{Execute, Strategy, StrategyImpl};
use crate::batch::{Batch, Report};
use crate::dispatch::{Handles, Job};
use crate::transport::Arrival;

type Task = Box<dyn FnOnce() + Send>;

/// How long a datagram thread waits for another batch before it exits.
const LINGER: Duration = Duration::from_secs(2);

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
/// **Datagrams** are not given a thread each (a thread start per datagram
/// made a UDP server ten times slower than a plain loop). Each batch, the
/// datagrams of one `recvmmsg(2)` (up to 32), runs on a thread of its own
/// taken from the threads that finished an earlier batch and are idle
/// (started only when none is, and ending after 2 s without work): batches
/// run concurrently with each other, as Python's per-datagram threads do,
/// while the datagrams of one batch run one after another and their
/// replies leave together in one `sendmmsg(2)`. While datagrams keep
/// coming (a batch of 4 or more), the thread that ran a batch receives the
/// next ones itself
/// (`recvmmsg(2)`; the loop stops watching the socket meanwhile), so a busy
/// server pays no hand-off per batch; when that thread has taken nothing
/// for 2 ms (a handler that blocks), the loop takes the socket back and
/// later datagrams go to another thread. A handler that blocks thus delays
/// the rest of its own batch, and later datagrams by about 2 ms. Datagrams
/// in flight are bounded (by `max_connections`, or 1024 for a datagram
/// server without it), and so are these threads.
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
    idle: Arc<Idle>,
}

/// The threads that finished a datagram batch and wait for another.
#[derive(Debug)]
struct Idle {
    /// Waiting threads not yet promised a task.
    count: AtomicUsize,
    tx: Mutex<Option<Sender<Task>>>,
    rx: Receiver<Task>,
}

impl Idle {
    fn new() -> Arc<Idle> {
        let (tx, rx) = crossbeam_channel::unbounded();
        Arc::new(Idle {
            count: AtomicUsize::new(0),
            tx: Mutex::new(Some(tx)),
            rx,
        })
    }

    /// Promises one waiting thread a task; false if none waits.
    fn reserve(&self) -> bool {
        self.count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Hands `task` to a waiting thread, or gives it back if none waits.
    fn hand_over(&self, task: Task) -> Result<(), Task> {
        let tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        match tx.as_ref() {
            Some(tx) if self.reserve() => tx.send(task).map_err(|e| e.into_inner()),
            _ => Err(task),
        }
    }

    /// Runs `task`, then further tasks until none comes for [`LINGER`] or
    /// the server closes.
    fn work(&self, mut task: Task) {
        loop {
            // Job::run catches handler panics; this catches the rest.
            let _ = catch_unwind(AssertUnwindSafe(task));
            self.count.fetch_add(1, Ordering::SeqCst);
            task = match self.rx.recv_timeout(LINGER) {
                Ok(t) => t,
                // Leave only if no task was promised to a waiting thread;
                // if one was, this thread may be the one to take it.
                Err(RecvTimeoutError::Timeout) if self.reserve() => return,
                Err(RecvTimeoutError::Timeout) => match self.rx.recv() {
                    Ok(t) => t,
                    Err(_) => return,
                },
                Err(RecvTimeoutError::Disconnected) => return,
            };
        }
    }
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
            idle: Idle::new(),
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

impl Threading {
    fn spawn(&self, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let n = self.started.fetch_add(1, Ordering::Relaxed) + 1;
        let mut builder = thread::Builder::new().name(format!("{}-{n}", self.name));
        if let Some(size) = self.stack_size {
            builder = builder.stack_size(size);
        }
        builder.spawn(f)?;
        Ok(())
    }
}

impl StrategyImpl for Threading {
    fn drains(&self) -> bool {
        true
    }

    fn close(&self, _idle: bool) {
        // Idle datagram threads see the channel close and exit.
        let tx = self
            .idle
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(tx);
    }
}
impl Strategy for Threading {}

impl<R, H> Execute<R, H> for Threading
where
    R: Arrival,
    H: Handles<R> + Send + Sync,
{
    fn execute(&self, job: Job<R, H>) -> io::Result<()> {
        self.spawn(move || {
            job.run();
        })
    }

    fn execute_batch(&self, batch: Batch<R, H>, report: &Report<'_>) {
        let peer = batch.jobs.first().map(|j| j.peer.clone());
        let Err(task) = self.idle.hand_over(Box::new(move || batch.run())) else {
            return;
        };
        let idle = Arc::clone(&self.idle);
        if let (Err(e), Some(peer)) = (self.spawn(move || idle.work(task)), peer) {
            report(&peer, e);
        }
    }
}
