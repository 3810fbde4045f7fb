//! The way out for blocking work, and messages into a loop from other
//! threads: a [`Mailbox`] queues a [`Message`] for one connection and wakes
//! its loop; the blocking [`Pool`] runs jobs and posts their results there.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crossbeam_channel::{Receiver, Sender};

use super::protocol::Message;
use crate::PanicError;

/// A message on its way to connection `token` (generation `id`).
pub(crate) struct Delivery {
    pub(crate) token: usize,
    pub(crate) id: u64,
    pub(crate) message: Message,
    /// The result of an offloaded job (ends the connection's busy count).
    pub(crate) job: bool,
}

/// A loop's inbox: the queue plus its waker, woken once per batch.
pub(crate) struct Inbox {
    tx: Sender<Delivery>,
    waker: Arc<mio::Waker>,
    /// Set by a sender that woke the loop; cleared by the loop before it
    /// empties the queue, so one wake-up covers many messages.
    woken: AtomicBool,
}

impl Inbox {
    pub(crate) fn new(waker: Arc<mio::Waker>) -> (Arc<Inbox>, Receiver<Delivery>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let inbox = Inbox {
            tx,
            waker,
            woken: AtomicBool::new(false),
        };
        (Arc::new(inbox), rx)
    }

    /// The loop is about to empty its queue.
    pub(crate) fn rearm(&self) {
        self.woken.store(false, Ordering::SeqCst);
    }

    /// Wakes the loop for a reason other than a message.
    pub(crate) fn wake(&self) {
        let _ = self.waker.wake();
    }
}

/// Sends [`Message`]s to one connection from any thread; get one from
/// [`Conn::mailbox`](super::Conn::mailbox). The connection's protocol
/// receives them in [`message_received`](super::Protocol::message_received),
/// in order, on its loop. Cheap to clone.
#[derive(Clone)]
pub struct Mailbox {
    pub(crate) inbox: Arc<Inbox>,
    pub(crate) token: usize,
    pub(crate) id: u64,
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox")
            .field("connection", &self.id)
            .finish_non_exhaustive()
    }
}

impl Mailbox {
    /// Queues `message` for the connection and wakes its loop. False if
    /// the loop has stopped; a message for a connection that has closed
    /// is dropped on arrival.
    pub fn send<T: Send + 'static>(&self, message: T) -> bool {
        self.deliver(Box::new(message), false)
    }

    pub(crate) fn deliver(&self, message: Message, job: bool) -> bool {
        let sent = self
            .inbox
            .tx
            .send(Delivery {
                token: self.token,
                id: self.id,
                message,
                job,
            })
            .is_ok();
        if sent && !self.inbox.woken.swap(true, Ordering::SeqCst) {
            self.inbox.wake();
        }
        sent
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The blocking pool: threads started on first use, ended when the server
/// is dropped.
pub(crate) struct Pool {
    threads: usize,
    tx: OnceLock<Sender<Job>>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads)
            .finish()
    }
}

impl Pool {
    pub(crate) fn new(threads: usize) -> Pool {
        Pool {
            threads: threads.max(1),
            tx: OnceLock::new(),
        }
    }

    /// Runs `job` on a pool thread. A panicking job delivers a
    /// [`PanicError`] as its result (see [`Conn::offload`](super::Conn::offload)).
    pub(crate) fn run(&self, job: Job) {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = crossbeam_channel::unbounded::<Job>();
            for i in 0..self.threads {
                let rx = rx.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("reactor-blocking-{i}"))
                    .spawn(move || {
                        for job in rx {
                            job();
                        }
                    });
                if let Err(e) = spawned {
                    log::error!("socketserver: cannot start a blocking-pool thread: {e}");
                }
            }
            tx
        });
        if let Err(e) = tx.send(job) {
            // No thread is left to run it: run it here rather than lose it.
            (e.into_inner())();
        }
    }
}

/// Runs `job`, turning a panic into a [`PanicError`] message.
pub(crate) fn run_caught<T: Send + 'static>(job: impl FnOnce() -> T) -> Message {
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(v) => Box::new(v),
        Err(payload) => Box::new(PanicError::from_payload(payload)),
    }
}
