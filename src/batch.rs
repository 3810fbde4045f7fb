//! A batch of datagram requests, received together by one `recvmmsg(2)`
//! and run together by one strategy hand-off: the handlers run one after
//! another on one thread, their replies are queued in that thread's
//! [`Outbox`] and leave in one `sendmmsg(2)` when the last handler returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::dispatch::{Context, Handles, Job};
use crate::error::{HandlerError, TruncatedDatagram};
use crate::net::Addr;
use crate::stats::Stats;
use crate::transport::{Arrival, Incoming, Outbox, SharedRecv};
use crate::unwind::{catch, catch_hook};

/// Where a strategy reports a request it could not start.
pub(crate) type Report<'a> = dyn Fn(&crate::net::Addr, std::io::Error) + 'a;

/// Requests received together, each verified and counted in flight.
pub struct Batch<R, H> {
    pub(crate) jobs: Vec<Job<R, H>>,
    /// Where the thread running this batch takes the next ones, and the
    /// episode it does so for.
    pub(crate) intake: Option<(Arc<Intake<R, H>>, u64)>,
}

impl<R, H> std::fmt::Debug for Batch<R, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("datagrams", &self.jobs.len())
            .finish_non_exhaustive()
    }
}

impl<R: Arrival, H: Handles<R>> Batch<R, H> {
    /// Runs every request in arrival order (each with its own handler clone,
    /// as [`Job::run`] does), then sends the queued replies; a reply the
    /// kernel refused goes to `handle_error` with its peer. The requests
    /// stay in flight until their replies have left, so a drain that sees
    /// them finish knows the replies are sent.
    ///
    /// With an intake, the thread then takes and runs further batches
    /// itself until the socket is empty (see [`Intake`]).
    pub(crate) fn run(self) {
        run_jobs(self.jobs);
        if let Some((intake, episode)) = self.intake {
            while let Some(jobs) = intake.take(episode) {
                run_jobs(jobs);
            }
            intake.release(episode);
        }
    }
}

/// Runs `jobs` with this thread's outbox open, then sends their replies.
fn run_jobs<R: Arrival, H: Handles<R>>(jobs: Vec<Job<R, H>>) {
    let Some(first) = jobs.first() else {
        return;
    };
    let context = Arc::clone(&first.context);
    let scope = first.request.reply_socket().and_then(Outbox::enter);
    let mut guards = Vec::with_capacity(jobs.len());
    for job in jobs {
        let Job {
            context,
            request,
            peer,
            guard,
        } = job;
        context
            .handler
            .serve(request, peer, context.handle.clone(), &context.config);
        guards.push(guard);
    }
    if let Some(scope) = scope {
        for (peer, e) in scope.finish() {
            report(&context, &peer, HandlerError::from(e));
        }
    }
    drop(guards);
}

/// The smallest batch after which the thread running it takes the next
/// batches itself: a sign of datagrams arriving faster than one at a time.
/// A lone datagram is handed over and the loop keeps the socket, as the
/// hand-back would cost more system calls than it saves.
pub(crate) const INTAKE_MIN: usize = 4;

/// How long the loop leaves the socket to a thread taking batches itself
/// before it concludes that thread is stuck in a handler and takes the
/// datagrams back (handing them to another thread).
pub(crate) const TAKEOVER: Duration = Duration::from_millis(2);

/// Lets the thread that ran a datagram batch take the next batches itself
/// while datagrams keep coming, instead of the loop receiving each one and
/// waking a thread for it: on a busy server one thread then receives, runs
/// and replies in turn without a hand-off, as `Sequential` does. The loop
/// stands back meanwhile (it stops watching the socket) and takes over
/// again when that thread finds the socket empty, or when it has taken
/// nothing for [`TAKEOVER`] (a handler that blocks), so other datagrams
/// still reach other threads.
pub(crate) struct Intake<R, H> {
    recv: SharedRecv<R>,
    context: Arc<Context<H>>,
    /// The episode whose thread takes batches now; 0: the loop does.
    owner: AtomicU64,
    next_episode: AtomicU64,
    /// Batches taken by intake threads, watched by the loop.
    progress: AtomicU64,
    pub(crate) sizes: Arc<BatchSizes>,
}

impl<R, H> Intake<R, H> {
    pub(crate) fn new(
        recv: SharedRecv<R>,
        context: Arc<Context<H>>,
        sizes: Arc<BatchSizes>,
    ) -> Self {
        Intake {
            recv,
            context,
            owner: AtomicU64::new(0),
            next_episode: AtomicU64::new(0),
            progress: AtomicU64::new(0),
            sizes,
        }
    }

    /// Starts an episode: the thread that runs the batch about to be
    /// handed over may take the next ones.
    pub(crate) fn begin(&self) -> u64 {
        let id = self.next_episode.fetch_add(1, Ordering::SeqCst) + 1;
        self.owner.store(id, Ordering::SeqCst);
        id
    }

    /// True while a thread takes batches itself.
    pub(crate) fn active(&self) -> bool {
        self.owner.load(Ordering::SeqCst) != 0
    }

    /// The loop takes the socket back; the episode's thread stops after
    /// the batch it is running.
    pub(crate) fn take_over(&self) {
        self.owner.store(0, Ordering::SeqCst);
    }

    /// Batches taken by intake threads so far.
    pub(crate) fn progress(&self) -> u64 {
        self.progress.load(Ordering::SeqCst)
    }

    /// Ends `episode` if it is still the current one, and wakes the loop
    /// to watch the socket again.
    fn release(&self, episode: u64) {
        if self
            .owner
            .compare_exchange(episode, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.context.handle.lifecycle.wake();
        }
    }
}

impl<R: Arrival, H: Handles<R>> Intake<R, H> {
    /// The next batch for `episode`'s thread: `None` once the socket is
    /// empty, the server is at its limit or stopping, or the loop took over.
    fn take(&self, episode: u64) -> Option<Vec<Job<R, H>>> {
        let handle = &self.context.handle;
        if self.owner.load(Ordering::SeqCst) != episode || handle.lifecycle.stop_requested() {
            return None;
        }
        let room = handle.in_flight.room();
        if room == 0 {
            return None;
        }
        let mut jobs = Vec::new();
        (self.recv)(room, &mut |incoming| match incoming {
            Incoming::Request(request, peer) => jobs.extend(admit(&self.context, request, peer)),
            Incoming::Truncated(peer) => {
                let e = TruncatedDatagram {
                    buffer_size: self.context.config.max_packet_size,
                };
                report(&self.context, &peer, e.into());
            }
            // The loop sees a lasting error again and backs off.
            Incoming::WouldBlock | Incoming::Error(_) => {}
        });
        self.progress.fetch_add(1, Ordering::SeqCst);
        self.sizes.record(jobs.len());
        (!jobs.is_empty()).then_some(jobs)
    }
}

/// `verify_request`, then the request counts as in flight: its job, or
/// `None` if it was refused (and closed).
pub(crate) fn admit<R: Arrival, H: Handles<R>>(
    context: &Arc<Context<H>>,
    request: R,
    peer: Addr,
) -> Option<Job<R, H>> {
    let allowed = catch(|| Ok(context.handler.verify_request(&peer))).unwrap_or_else(|e| {
        report(context, &peer, e);
        false
    });
    let stats = &context.handle.stats;
    Stats::bump(&stats.accepted);
    if !allowed {
        Stats::bump(&stats.refused);
        log::debug!("socketserver: verify_request refused {peer}");
        request.reject();
        return None;
    }
    // Datagrams are only counted (no per-address limit applies to them).
    let in_flight = &context.handle.in_flight;
    let guard = in_flight.register(request.cut());
    stats.note_active(in_flight.live());
    Some(Job {
        context: Arc::clone(context),
        request,
        peer,
        guard,
    })
}

fn report<R, H: Handles<R>>(context: &Context<H>, peer: &Addr, error: HandlerError) {
    let _ = catch_hook(|| context.handler.handle_error(peer, &error));
}

/// Datagram batches taken, by size: 1, 2–3, 4–7, 8–15, 16–31, 32+
/// datagrams. Logged at `debug` level when the server closes.
#[derive(Debug, Default)]
pub(crate) struct BatchSizes {
    by_class: [AtomicU64; 6],
    datagrams: AtomicU64,
}

impl BatchSizes {
    pub(crate) fn record(&self, n: usize) {
        if n > 0 {
            let class = (usize::BITS - 1 - n.leading_zeros()) as usize;
            self.by_class[class.min(5)].fetch_add(1, Ordering::Relaxed);
            self.datagrams.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    pub(crate) fn log(&self, local: &Addr) {
        let c: Vec<u64> = self
            .by_class
            .iter()
            .map(|x| x.load(Ordering::Relaxed))
            .collect();
        let batches: u64 = c.iter().sum();
        let datagrams = self.datagrams.load(Ordering::Relaxed);
        if batches > 0 {
            log::debug!(
                "socketserver: {local}: {datagrams} datagrams in {batches} batches (mean {:.2}); \
                 batches of 1: {}, 2-3: {}, 4-7: {}, 8-15: {}, 16-31: {}, 32+: {}",
                datagrams as f64 / batches as f64,
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                c[5]
            );
        }
    }
}
