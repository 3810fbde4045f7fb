//! A fixed pool of worker threads fed by a bounded queue.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender};

use super::{Execute, Strategy, StrategyImpl};
use crate::batch::{Batch, Report};
use crate::dispatch::{Handles, Job};
use crate::transport::Arrival;

type Task = Box<dyn FnOnce() + Send>;

/// N worker threads fed by a bounded [`crossbeam_channel`] queue: no thread
/// is started per request.
///
/// **A worker holds a connection until its handler returns.** With N
/// workers, N persistent clients (a chat, an interactive shell) occupy all
/// of them; client N+1 is accepted into the queue and waits there, connected
/// but unanswered, until one of the first N leaves; beyond the queue, new
/// clients wait in the kernel's listen backlog. Use [`Threading`](crate::Threading)
/// for long-lived connections, the pool for many short ones. Facing
/// untrusted clients, N silent connections (slowloris) lock the pool out:
/// set a [`read_timeout`](crate::ServerBuilder::read_timeout) and
/// [`max_connections_per_ip`](crate::ServerBuilder::max_connections_per_ip).
///
/// The server never accepts more than `workers + queue` requests at once
/// (less if [`max_connections`](crate::ServerBuilder::max_connections) is
/// lower), so the queue is never full when a request is handed over and the
/// loop never blocks on it. A handler that panics is reported and its
/// worker carries on.
///
/// A datagram server hands the pool whole batches: the datagrams of one
/// `recvmmsg(2)` (up to 32) go to one worker in one hand-off, whose
/// handlers run one after another there and whose replies leave in one
/// `sendmmsg(2)`. While datagrams keep coming (a batch of 4 or more), that
/// worker receives the next batches itself (the loop stops watching the socket), until the
/// socket is empty or it has taken nothing for 2 ms (a handler that
/// blocks), when the loop takes over and hands later datagrams to other
/// workers. Each datagram still counts as a request in flight.
#[derive(Debug)]
pub struct ThreadPool {
    workers: usize,
    queue: usize,
    stack_size: Option<usize>,
    running: Mutex<Option<Running>>,
}

#[derive(Debug)]
struct Running {
    tx: Sender<Task>,
    threads: Vec<JoinHandle<()>>,
}

impl Default for ThreadPool {
    /// A pool of 16 workers.
    fn default() -> Self {
        ThreadPool::new(16)
    }
}

impl ThreadPool {
    /// A pool of `workers` threads (at least 1) and a queue as long as the
    /// pool.
    pub fn new(workers: usize) -> ThreadPool {
        let workers = workers.max(1);
        ThreadPool {
            workers,
            queue: workers,
            stack_size: None,
            running: Mutex::new(None),
        }
    }

    /// How many accepted requests may wait for a free worker. Default: as
    /// many as there are workers. 0 means a request is accepted only when a
    /// worker is free.
    pub fn queue(mut self, len: usize) -> ThreadPool {
        self.queue = len;
        self
    }

    /// Each worker's stack size in bytes. Default: std's (2 MiB).
    pub fn stack_size(mut self, bytes: usize) -> ThreadPool {
        self.stack_size = Some(bytes);
        self
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn work(rx: Receiver<Task>) {
    for task in rx {
        // Job::run already catches handler panics; this catches the rest
        // (a panicking handle_error) so the worker survives.
        let _ = catch_unwind(AssertUnwindSafe(task));
    }
}

impl Strategy for ThreadPool {}

impl StrategyImpl for ThreadPool {
    fn drains(&self) -> bool {
        true
    }

    fn limit(&self) -> Option<usize> {
        Some(self.workers + self.queue)
    }

    fn attach(&self, _: &mio::Registry, _: mio::Token) -> io::Result<()> {
        // A strategy is moved into exactly one server, which attaches once.
        // Bounded: `limit` keeps it from ever being full.
        let (tx, rx) = crossbeam_channel::bounded::<Task>(self.workers + self.queue);
        let mut threads = Vec::with_capacity(self.workers);
        for i in 0..self.workers {
            let rx = rx.clone();
            let mut builder = thread::Builder::new().name(format!("socketserver-pool-{i}"));
            if let Some(size) = self.stack_size {
                builder = builder.stack_size(size);
            }
            threads.push(builder.spawn(move || work(rx))?);
        }
        *self.lock() = Some(Running { tx, threads });
        Ok(())
    }

    fn close(&self, idle: bool) {
        if let Some(Running { tx, threads }) = self.lock().take() {
            drop(tx);
            if idle {
                for t in threads {
                    let _ = t.join();
                }
            }
        }
    }
}

impl ThreadPool {
    /// Queues `task` for a worker. Never blocks: the loop stops accepting
    /// at `limit`, the queue's capacity, and every task holds at least one
    /// request in flight.
    fn submit(&self, task: Task) -> io::Result<()> {
        let closed = || io::Error::other("the thread pool is closed");
        let running = self.lock();
        let tx = &running.as_ref().ok_or_else(closed)?.tx;
        tx.send(task).map_err(|_| closed())
    }
}

impl<R, H> Execute<R, H> for ThreadPool
where
    R: Arrival,
    H: Handles<R> + Send + Sync,
{
    fn execute(&self, job: Job<R, H>) -> io::Result<()> {
        self.submit(Box::new(move || {
            job.run();
        }))
    }

    fn execute_batch(&self, batch: Batch<R, H>, report: &Report<'_>) {
        // One hand-off (one wake-up) per batch, not per datagram.
        let peer = batch.jobs.first().map(|j| j.peer.clone());
        if let (Err(e), Some(peer)) = (self.submit(Box::new(move || batch.run())), peer) {
            report(&peer, e);
        }
    }
}
