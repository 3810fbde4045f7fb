//! The server loop: one loop for every transport, handler and strategy.
//!
//! ```text
//! serve_forever
//!   loop
//!     stop requested? ─────────────────────────────► return
//!     accept while the listener is ready and below max_connections:
//!       stop requested? ─► return  (checked before every accept)
//!       transport.next()            accept(2), non-blocking
//!       handler.verify_request      false: close, done
//!       strategy.execute(job)       inline / thread / pool / fork
//!     (datagrams: transport.next_batch, one recvmmsg(2) of up to 32;
//!      verify_request on each; strategy.execute_batch runs them on one
//!      thread and sends their replies in one sendmmsg(2))
//!     strategy.reap()               reap children (a death by signal: handle_error)
//!     handler.service_actions()
//!     poll(2) on listener + waker   sleeps until a request or a wake-up
//! ```
//!
//! The poller is [`mio`] (epoll/kqueue), edge-triggered: the loop remembers
//! that the listener is ready until `accept` says `WouldBlock`, so it can
//! stop accepting at the connection limit without spinning and resume when
//! a request ends (the request's guard wakes the loop).

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};

use crate::batch::{Batch, BatchSizes, INTAKE_MIN, Intake, Report, TAKEOVER};
use crate::config::Config;
use crate::dispatch::{Context, Handles, Job};
use crate::error::{HandlerError, TruncatedDatagram};
use crate::inflight::{DrainReport, InFlight};
use crate::net::{Addr, DatagramSocket};
use crate::shutdown::{Lifecycle, ServerHandle};
use crate::stats::Stats;
use crate::strategy::{Execute, Sequential, Strategy};
use crate::transport::{Arrival, Incoming, Transport};
use crate::unwind::{catch, catch_hook};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const CHILD: Token = Token(2);

/// Requests taken per wake-up before housekeeping runs again.
const ACCEPT_BATCH: usize = 64;
/// The most datagrams in flight when neither `max_connections` nor the
/// strategy sets a limit (Threading): what a flood can make the server hold.
const DATAGRAMS_IN_FLIGHT: usize = 1024;
/// First and longest pause after an accept error such as `EMFILE`.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The handler's hooks and the strategy's entry point, fixed when the
/// server is built (where the compiler checks that the strategy can run
/// this handler), so the loop's methods need no bounds of their own.
struct Entry<R, H, S> {
    execute: fn(&S, Job<R, H>) -> io::Result<()>,
    execute_batch: fn(&S, Batch<R, H>, &Report<'_>),
    verify_request: fn(&H, &Addr) -> bool,
    handle_error: fn(&H, &Addr, &HandlerError),
    handle_timeout: fn(&H),
    service_actions: fn(&H),
}

impl<R, H: Handles<R>, S: Execute<R, H>> Entry<R, H, S> {
    fn new() -> Self {
        Entry {
            execute: S::execute,
            execute_batch: S::execute_batch,
            verify_request: H::verify_request,
            handle_error: H::handle_error,
            handle_timeout: H::handle_timeout,
            service_actions: H::service_actions,
        }
    }
}

/// The loop's own state; only one thread runs the loop at a time.
struct Loop<T> {
    poll: Poll,
    events: Events,
    transport: Option<T>,
    /// The listener reported readiness and `next` has not said `WouldBlock`.
    ready: bool,
    /// Stopped at `max_connections` (counted once per pause).
    paused: bool,
    /// After an accept error: no accepting until then, and the next pause.
    backoff: Option<(Instant, Duration)>,
    /// The loop left the datagram socket to a thread taking batches itself
    /// (and stopped watching it): since when, and that thread's progress
    /// then.
    back: Option<(Instant, u64)>,
}

/// A server: a transport `T`, a handler `H` and a strategy `S`.
///
/// Use the aliases: [`TcpServer`](crate::TcpServer),
/// [`UdpServer`](crate::UdpServer), [`UnixStreamServer`](crate::UnixStreamServer),
/// [`UnixDatagramServer`](crate::UnixDatagramServer), and their `Threading…`
/// and `Forking…` forms; configure one with [`ServerBuilder`](crate::ServerBuilder).
///
/// All methods take `&self`: run [`serve_forever`](Self::serve_forever) on
/// one thread and call [`shutdown`](Self::shutdown) from another (share the
/// server with `std::thread::scope` or an `Arc`), or keep a
/// [`ServerHandle`]. Dropping the server closes it as
/// [`server_close`](Self::server_close) does.
pub struct Server<T: Transport, H, S: Strategy = Sequential> {
    context: Arc<Context<H>>,
    entry: Entry<T::Request, H, S>,
    strategy: S,
    local: Addr,
    socket: Option<Arc<DatagramSocket>>,
    accept_loop: Mutex<Loop<T>>,
    /// Datagram batches taken, by size (logged at close).
    batches: Arc<BatchSizes>,
    /// Thread strategies on a datagram transport: where their threads take
    /// further batches themselves.
    intake: Option<Arc<Intake<T::Request, H>>>,
    /// The thread running the loop now, to refuse `server_close` from a
    /// handler on it (it would wait for itself).
    loop_thread: Mutex<Option<ThreadId>>,
    closed: Mutex<Option<DrainReport>>,
}

impl<T: Transport, H, S: Strategy> fmt::Debug for Server<T, H, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("server_address", &self.local)
            .field(
                "active_connections",
                &self.context.handle.active_connections(),
            )
            .finish_non_exhaustive()
    }
}

impl<T, H, S> Server<T, H, S>
where
    T: Transport,
    H: Handles<T::Request>,
    S: Execute<T::Request, H>,
{
    pub(crate) fn new(transport: T, handler: H, strategy: S, config: Config) -> io::Result<Self> {
        let poll = Poll::new()?;
        poll.registry().register(
            &mut mio::unix::SourceFd(&transport.raw_fd()),
            LISTENER,
            Interest::READABLE,
        )?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        strategy.attach(poll.registry(), CHILD)?;
        let limit = match (config.max_connections, strategy.limit()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let limit = match limit {
            None if <T::Request as Arrival>::BATCHED => Some(DATAGRAMS_IN_FLIGHT),
            limit => limit,
        };
        let handle = ServerHandle {
            lifecycle: Arc::new(Lifecycle::new(Arc::clone(&waker))),
            in_flight: Arc::new(
                InFlight::new(limit, waker).limit_per_ip(config.max_connections_per_ip),
            ),
            stats: Default::default(),
        };
        let context = Arc::new(Context {
            handler,
            config,
            handle,
            listener_fd: transport.listener_fd(),
        });
        let batches = Arc::new(BatchSizes::default());
        let intake = transport
            .shared_recv()
            .filter(|_| strategy.drains())
            .map(|recv| {
                Arc::new(Intake::new(
                    recv,
                    Arc::clone(&context),
                    Arc::clone(&batches),
                ))
            });
        Ok(Server {
            intake,
            batches,
            context,
            entry: Entry::new(),
            strategy,
            local: transport.local_addr().clone(),
            socket: transport.datagram_socket().cloned(),
            accept_loop: Mutex::new(Loop {
                poll,
                events: Events::with_capacity(64),
                transport: Some(transport),
                ready: true,
                paused: false,
                backoff: None,
                back: None,
            }),
            loop_thread: Mutex::new(None),
            closed: Mutex::new(None),
        })
    }
}

impl<T: Transport, H, S: Strategy> Server<T, H, S> {
    /// The address the server is bound to (Python's `server_address`): with
    /// port 0, the port the OS picked.
    pub fn server_address(&self) -> &Addr {
        &self.local
    }

    /// The socket of a datagram server (UDP or Unix datagram), to send from
    /// outside a handler: a broadcast when the server stops, a reply from
    /// `service_actions`. `None` for stream servers, whose listening socket
    /// carries no data.
    pub fn socket(&self) -> Option<&Arc<DatagramSocket>> {
        self.socket.as_ref()
    }

    /// The listening socket's descriptor, for a stream server (`None` for a
    /// datagram one): what [`restart::spawn_replacement`](crate::restart::spawn_replacement)
    /// hands over. Valid until [`server_close`](Self::server_close).
    pub fn listener_fd(&self) -> Option<std::os::fd::RawFd> {
        self.context.listener_fd
    }

    /// A cloneable handle to stop the server from any thread.
    pub fn handle(&self) -> ServerHandle {
        self.context.handle.clone()
    }

    /// The server's own handler value, on which the hooks run.
    pub fn handler(&self) -> &H {
        &self.context.handler
    }

    /// The strategy, e.g. to read `Forking::active_children`.
    pub fn strategy(&self) -> &S {
        &self.strategy
    }

    /// Stops [`serve_forever`](Self::serve_forever) at once, without
    /// blocking; see [`ServerHandle::shutdown`].
    ///
    /// Unlike Python's, it does not wait for the loop to return (which
    /// deadlocks when called from a handler): join the thread running the
    /// loop, or call [`server_close`](Self::server_close), to wait.
    pub fn shutdown(&self) {
        self.context.handle.shutdown();
    }

    /// True once shutdown has been requested.
    pub fn is_shutting_down(&self) -> bool {
        self.context.handle.is_shutting_down()
    }

    /// How many requests are in flight now.
    pub fn active_connections(&self) -> usize {
        self.context.handle.active_connections()
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.context.handle.lifecycle
    }

    fn stats(&self) -> &Stats {
        &self.context.handle.stats
    }

    fn in_flight(&self) -> &InFlight {
        &self.context.handle.in_flight
    }

    fn lock(&self) -> MutexGuard<'_, Loop<T>> {
        self.accept_loop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn loop_thread(&self) -> MutexGuard<'_, Option<ThreadId>> {
        self.loop_thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with the loop locked and this thread recorded as its owner.
    fn own_loop<R>(&self, f: impl FnOnce(&mut Loop<T>) -> R) -> R {
        let mut lp = self.lock();
        *self.loop_thread() = Some(thread::current().id());
        let result = f(&mut lp);
        *self.loop_thread() = None;
        result
    }

    /// Closes the server: the listening socket first (the port is free at
    /// once, nothing more is accepted), then waits for requests in flight
    /// (Python's `block_on_close`), at most the
    /// [`drain_timeout`](crate::ServerBuilder::drain_timeout), after which
    /// live connections are cut with `shutdown(SHUT_RDWR)` and forked
    /// children get `SIGTERM`. Returns what happened.
    ///
    /// A running `serve_forever` is stopped first. Calling it again returns
    /// the first report. It refuses with `ErrorKind::Deadlock` when called
    /// from a handler running on the loop's own thread, which would wait for
    /// itself; call [`shutdown`](Self::shutdown) there instead.
    pub fn server_close(&self) -> io::Result<DrainReport> {
        let mut closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(report) = *closed {
            return Ok(report);
        }
        self.lifecycle().close();
        if *self.loop_thread() == Some(thread::current().id()) {
            return Err(io::Error::new(
                io::ErrorKind::Deadlock,
                "server_close called from a handler on the loop's thread; use shutdown()",
            ));
        }
        let mut lp = self.lock();
        if let Some(mut transport) = lp.transport.take() {
            let _ = lp
                .poll
                .registry()
                .deregister(&mut mio::unix::SourceFd(&transport.raw_fd()));
            if self.context.config.edge.serve_backlog {
                self.serve_backlog(&mut transport);
            }
            drop(transport);
            self.batches.log(&self.local);
        }
        drop(lp);
        let report = self.in_flight().drain(
            self.context.config.drain_timeout,
            self.strategy.drain_sweep_interval(),
            &|| self.reap(),
        );
        self.strategy.close(report.abandoned == 0);
        self.stats().closed();
        *closed = Some(report);
        Ok(report)
    }

    /// Serves requests until [`shutdown`](Self::shutdown) is called
    /// (Python's `serve_forever`).
    ///
    /// There is no `poll_interval`: the loop sleeps until a request, a
    /// shutdown or a finished request (at the connection limit) wakes it, so
    /// shutdown takes effect at once. It returns `Ok` after a shutdown; a
    /// request's failure never ends it, and accept errors (`EMFILE`, ...) are
    /// logged and retried after a growing pause. A later call serves again.
    /// After [`server_close`](Self::server_close) it fails with
    /// `NotConnected`.
    pub fn serve_forever(&self) -> io::Result<()> {
        self.own_loop(|lp| {
            if lp.transport.is_none() {
                return Err(closed_error());
            }
            if !self.lifecycle().begin_serve() {
                return Ok(());
            }
            let result = self.run(lp);
            self.lifecycle().end_serve();
            result
        })
    }

    fn run(&self, lp: &mut Loop<T>) -> io::Result<()> {
        loop {
            if self.lifecycle().stop_requested() {
                return Ok(());
            }
            for _ in 0..ACCEPT_BATCH {
                if !self.take(lp, ACCEPT_BATCH, true) {
                    break;
                }
            }
            self.housekeeping();
            if self.lifecycle().stop_requested() {
                return Ok(());
            }
            let timeout = self.poll_timeout(lp, None);
            self.wait(lp, timeout)?;
        }
    }

    /// Serves exactly one request (Python's `handle_request`), or calls
    /// `handle_timeout` once if the [`handle_request_timeout`]
    /// passes first. With no timeout it waits as long as it takes.
    ///
    /// [`handle_request_timeout`]: crate::ServerBuilder::handle_request_timeout
    pub fn handle_request(&self) -> io::Result<()> {
        self.own_loop(|lp| {
            if lp.transport.is_none() {
                return Err(closed_error());
            }
            self.one_request(lp)
        })
    }

    fn one_request(&self, lp: &mut Loop<T>) -> io::Result<()> {
        let deadline = self
            .context
            .config
            .handle_request_timeout
            .map(|t| Instant::now() + t);
        loop {
            if self.take(lp, 1, false) {
                self.reap();
                return Ok(());
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| d <= now) {
                let _ = catch_hook(|| (self.entry.handle_timeout)(&self.context.handler));
                self.reap();
                return Ok(());
            }
            let timeout = self.poll_timeout(lp, deadline.map(|d| d - now));
            self.wait(lp, timeout)?;
        }
    }

    /// Takes and dispatches one request (datagrams: a batch of at most
    /// `max`, which the receiving thread may follow with more batches of
    /// its own if `drain`) if the listener is ready and there is room;
    /// false when there is nothing more to take now.
    fn take(&self, lp: &mut Loop<T>, max: usize, drain: bool) -> bool {
        if <T::Request as Arrival>::BATCHED && !self.watch_intake(lp, drain) {
            return false;
        }
        if !lp.ready || self.lifecycle().stop_requested() {
            return false;
        }
        if self.in_flight().at_capacity() {
            if !std::mem::replace(&mut lp.paused, true) {
                Stats::bump(&self.stats().paused);
            }
            return false;
        }
        lp.paused = false;
        if let Some((until, _)) = lp.backoff
            && Instant::now() < until
        {
            return false;
        }
        if <T::Request as Arrival>::BATCHED {
            return self.take_batch(lp, max, drain);
        }
        let Some(transport) = lp.transport.as_mut() else {
            return false;
        };
        let incoming = transport.next();
        self.arrived(lp, incoming, &mut |request, peer| {
            self.dispatch(request, peer)
        })
    }

    /// One `recvmmsg` worth of datagrams, verified and counted one by one,
    /// started as one batch.
    fn take_batch(&self, lp: &mut Loop<T>, max: usize, drain: bool) -> bool {
        let Some(transport) = lp.transport.as_mut() else {
            return false;
        };
        let mut arrived = Vec::new();
        transport.next_batch(max.min(self.in_flight().room()), &mut |i| arrived.push(i));
        let mut jobs = Vec::with_capacity(arrived.len());
        let mut took = false;
        for incoming in arrived {
            took |= self.arrived(lp, incoming, &mut |request, peer| {
                jobs.extend(self.admit(request, peer));
            });
        }
        self.batches.record(jobs.len());
        if !jobs.is_empty() {
            let busy = drain && jobs.len() >= INTAKE_MIN;
            let intake = self.intake.as_ref().filter(|_| busy).map(|i| {
                let episode = i.begin();
                self.stand_back(lp, i.progress());
                (Arc::clone(i), episode)
            });
            let report = |peer: &Addr, e: io::Error| self.report(peer, e.into());
            (self.entry.execute_batch)(&self.strategy, Batch { jobs, intake }, &report);
        }
        took
    }

    /// While a thread takes datagram batches itself, the loop keeps its
    /// hands off the socket: false then. It takes the socket back when that
    /// thread has ended its episode (socket empty, limit, stop), or has
    /// taken nothing for [`TAKEOVER`] (stuck in a handler), or at once for
    /// `handle_request` (`!drain`).
    fn watch_intake(&self, lp: &mut Loop<T>, drain: bool) -> bool {
        let (Some(intake), Some((since, seen))) = (self.intake.as_ref(), lp.back) else {
            return true;
        };
        if intake.active() && drain {
            let progress = intake.progress();
            if progress != seen {
                lp.back = Some((Instant::now(), progress));
                return false;
            }
            if since.elapsed() < TAKEOVER {
                return false;
            }
        }
        intake.take_over();
        self.rejoin(lp);
        true
    }

    /// Stops watching the datagram socket: a thread takes its batches.
    fn stand_back(&self, lp: &mut Loop<T>, progress: u64) {
        if lp.back.is_none()
            && let Some(t) = lp.transport.as_ref()
        {
            let _ = lp
                .poll
                .registry()
                .deregister(&mut mio::unix::SourceFd(&t.raw_fd()));
        }
        lp.back = Some((Instant::now(), progress));
        lp.ready = false;
    }

    /// Watches the datagram socket again, and tries it at once (datagrams
    /// may have queued while nobody watched).
    fn rejoin(&self, lp: &mut Loop<T>) {
        if lp.back.take().is_some()
            && let Some(t) = lp.transport.as_ref()
            && let Err(e) = lp.poll.registry().register(
                &mut mio::unix::SourceFd(&t.raw_fd()),
                LISTENER,
                Interest::READABLE,
            )
        {
            log::error!("socketserver: watching {} again failed: {e}", self.local);
        }
        lp.ready = true;
    }

    /// Handles what one attempt to take a request gave: a request goes to
    /// `start`; true if the loop should try again at once.
    fn arrived(
        &self,
        lp: &mut Loop<T>,
        incoming: Incoming<T::Request>,
        start: &mut dyn FnMut(T::Request, Addr),
    ) -> bool {
        match incoming {
            Incoming::Request(request, peer) => {
                if let Some((_, pause)) = lp.backoff.as_mut() {
                    *pause = BACKOFF_MIN;
                }
                start(request, peer);
                true
            }
            Incoming::WouldBlock => {
                lp.ready = false;
                false
            }
            Incoming::Truncated(peer) => {
                let e = TruncatedDatagram {
                    buffer_size: self.context.config.max_packet_size,
                };
                self.report(&peer, e.into());
                true
            }
            Incoming::Error(e) => {
                self.accept_failed(lp, e);
                false
            }
        }
    }

    /// Takes the connections already queued in the listen backlog (which
    /// closing the listener would reset) and dispatches them, at most one
    /// backlog's worth. Connections only: queued datagrams are not reset
    /// by the close, and handing them over one by one at close would
    /// bypass the batches (a thread each under `Threading`).
    fn serve_backlog(&self, transport: &mut T) {
        if <T::Request as Arrival>::BATCHED {
            return;
        }
        for _ in 0..self.context.config.backlog.max(1) {
            match transport.next() {
                Incoming::Request(request, peer) => self.dispatch(request, peer),
                Incoming::Truncated(_) => {}
                Incoming::WouldBlock | Incoming::Error(_) => break,
            }
        }
    }

    fn dispatch(&self, request: T::Request, peer: Addr) {
        let Some(job) = self.admit(request, peer) else {
            return;
        };
        let peer = job.peer.clone();
        if let Err(e) = (self.entry.execute)(&self.strategy, job) {
            self.report(&peer, e.into());
        }
    }

    /// `verify_request`, then the request counts as in flight: its job, or
    /// `None` if it was refused (and closed).
    fn admit(&self, request: T::Request, peer: Addr) -> Option<Job<T::Request, H>> {
        let handler = &self.context.handler;
        let allowed =
            catch(|| Ok((self.entry.verify_request)(handler, &peer))).unwrap_or_else(|e| {
                self.report(&peer, e);
                false
            });
        Stats::bump(&self.stats().accepted);
        if !allowed {
            Stats::bump(&self.stats().refused);
            log::debug!("socketserver: verify_request refused {peer}");
            request.reject();
            return None;
        }
        let in_flight = &self.context.handle.in_flight;
        let Some(guard) = in_flight.register_from(request.cut(), peer.ip()) else {
            Stats::bump(&self.stats().refused);
            log::debug!("socketserver: {peer} is at max_connections_per_ip; closed");
            request.reject();
            return None;
        };
        self.stats().note_active(self.in_flight().live());
        Some(Job {
            context: Arc::clone(&self.context),
            request,
            peer,
            guard,
        })
    }

    fn report(&self, peer: &Addr, error: HandlerError) {
        let _ = catch_hook(|| (self.entry.handle_error)(&self.context.handler, peer, &error));
    }

    /// Reaps finished children, reporting deaths by signal.
    fn reap(&self) {
        self.strategy.reap(&|peer, e| self.report(peer, e));
    }

    /// Once per loop iteration: reap, then the `service_actions` hook.
    fn housekeeping(&self) {
        self.reap();
        if let Err(e) = catch_hook(|| (self.entry.service_actions)(&self.context.handler)) {
            log::error!("socketserver: service_actions failed: {e}");
        }
    }

    fn accept_failed(&self, lp: &mut Loop<T>, e: io::Error) {
        use io::ErrorKind::*;
        if matches!(
            e.kind(),
            Interrupted | ConnectionAborted | ConnectionReset | ConnectionRefused
        ) {
            // Transient: the next attempt may succeed (a client that gave
            // up in the backlog, an ICMP error on a UDP socket).
            return;
        }
        Stats::bump(&self.stats().accept_errors);
        if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
            Stats::bump(&self.stats().emfile_backoffs);
        }
        let pause = lp.backoff.map_or(BACKOFF_MIN, |(_, p)| p);
        log::error!(
            "socketserver: accept on {} failed: {e}; retrying in {pause:?}",
            self.local
        );
        lp.backoff = Some((Instant::now() + pause, (pause * 2).min(BACKOFF_MAX)));
    }

    /// How long the loop may sleep: zero if it can accept now, else until
    /// the earliest of the backoff's end, the caller's limit, the service
    /// interval and the strategy's sweep.
    fn poll_timeout(&self, lp: &Loop<T>, limit: Option<Duration>) -> Option<Duration> {
        let now = Instant::now();
        let room = !self.in_flight().at_capacity();
        let backoff = lp
            .backoff
            .map(|(until, _)| until.saturating_duration_since(now));
        if lp.ready && room && backoff.is_none_or(|b| b.is_zero()) {
            return Some(Duration::ZERO);
        }
        [
            backoff.filter(|_| lp.ready && room),
            lp.back.map(|_| TAKEOVER),
            limit,
            self.context.config.service_interval,
            self.strategy.sweep_interval(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn wait(&self, lp: &mut Loop<T>, timeout: Option<Duration>) -> io::Result<()> {
        let Loop { poll, events, .. } = lp;
        match poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        if events.iter().any(|ev| ev.token() == LISTENER) {
            lp.ready = true;
        }
        Ok(())
    }
}

fn closed_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the server is closed")
}

impl<T: Transport, H, S: Strategy> Drop for Server<T, H, S> {
    /// Closes the server as [`server_close`](Server::server_close) does.
    fn drop(&mut self) {
        if let Err(e) = self.server_close() {
            log::error!("socketserver: closing {} failed: {e}", self.local);
        }
    }
}
