//! One readiness loop: a mio poller (epoll/kqueue), edge-triggered, with the
//! connections it owns.
//!
//! ```text
//! loop turn
//!   poll(2)                        sleeps until readiness, a wake-up or a tick
//!   readable: read until a short read (one read(2) for a small message)
//!             -> data_received on complete frames -> read_complete
//!   writable: flush what a full socket left behind
//!   accept    while the listener is ready and a connection slot is free
//!   inbox     offload results and mailbox messages -> message_received
//!   timers    idle / incomplete frame / write stall (a coarse wheel)
//!   flush     one write(2) per connection with output, at the end of the turn
//! ```
//!
//! Every socket is registered once for READABLE|WRITABLE and never
//! re-registered; the loop remembers readiness until a read or write says
//! `WouldBlock` (or reads less than its buffer, which under edge-triggered
//! polling proves the socket drained).

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::buffers::{InBuf, OutBuf};
use super::glue::{
    Addr, Connection, Guard, Incoming, ServerHandle, Stats, Stream, TcpTransport, TimeoutKind,
    TransportImpl, UnixStreamTransport, catch, catch_hook, control, stats, stream_of, track,
};
use super::offload::{Delivery, Inbox, Mailbox, Pool};
use super::protocol::{Asks, Conn, Factory, Protocol, Timeout};
use super::timer::{Entry, Wheel};
use crate::HandlerError;

pub(crate) const WAKER: Token = Token(0);
const LISTENER: Token = Token(1);
const FIRST: usize = 2;

/// Bytes one `read(2)` may return; one buffer per loop.
const READ_BUF: usize = 64 * 1024;
/// Reads per connection per turn before others get their turn.
const READS_PER_TURN: usize = 8;
/// Connections accepted per turn.
const ACCEPT_BATCH: usize = 64;
/// Messages from the inbox per turn.
const INBOX_BATCH: usize = 1024;
/// Pause after an accept error such as `EMFILE`.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// A listening socket the loops accept from.
#[derive(Debug)]
pub(crate) enum Listener {
    /// Accepted through mio: `accept4(SOCK_NONBLOCK)`, and `TCP_NODELAY`
    /// is inherited from the listener, so a new connection costs no
    /// `ioctl`/`setsockopt`.
    Tcp(mio::net::TcpListener, Addr),
    Unix(UnixStreamTransport),
}

impl Listener {
    pub(crate) fn tcp(t: TcpTransport, nodelay: bool) -> std::io::Result<Listener> {
        let addr = t.local_addr().clone();
        let std = t.into_listener();
        if nodelay {
            socket2::SockRef::from(&std).set_nodelay(true)?;
        }
        Ok(Listener::Tcp(mio::net::TcpListener::from_std(std), addr))
    }

    /// One connection, and whether it still needs to be made non-blocking.
    fn next(&mut self) -> (Incoming<Connection>, bool) {
        match self {
            Listener::Tcp(l, _) => match l.accept() {
                Ok((s, peer)) => {
                    let std = std::net::TcpStream::from(std::os::fd::OwnedFd::from(s));
                    let conn = Connection::new(Stream::Tcp(std));
                    (Incoming::Request(conn, Addr::Inet(peer)), false)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => (Incoming::WouldBlock, false),
                Err(e) => (Incoming::Error(e), false),
            },
            Listener::Unix(t) => (t.next(), true),
        }
    }

    fn raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            Listener::Tcp(l, _) => l.as_raw_fd(),
            Listener::Unix(t) => t.raw_fd(),
        }
    }

    pub(crate) fn local_addr(&self) -> &Addr {
        match self {
            Listener::Tcp(_, a) => a,
            Listener::Unix(t) => t.local_addr(),
        }
    }
}

/// The per-connection limits and timeouts.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) loops: usize,
    pub(crate) high_water: usize,
    pub(crate) low_water: usize,
    pub(crate) max_input: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) frame_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) nodelay: bool,
    pub(crate) blocking_threads: usize,
    pub(crate) drain_timeout: Option<Duration>,
    pub(crate) max_connections: Option<usize>,
}

impl Options {
    /// The wheel's tick: a quarter of the shortest timeout, 5–100 ms.
    fn tick(&self) -> Duration {
        [self.idle_timeout, self.frame_timeout, self.write_timeout]
            .into_iter()
            .flatten()
            .min()
            .map_or(Duration::from_millis(100), |t| {
                (t / 4).clamp(Duration::from_millis(5), Duration::from_millis(100))
            })
    }

    fn timed(&self) -> bool {
        self.idle_timeout.is_some() || self.frame_timeout.is_some() || self.write_timeout.is_some()
    }
}

/// What another thread can reach of a loop.
pub(crate) struct Remote {
    pub(crate) inbox: Arc<Inbox>,
    /// The loop stopped accepting at the connection limit.
    paused: AtomicBool,
}

impl Remote {
    pub(crate) fn new(inbox: Arc<Inbox>) -> Remote {
        Remote {
            inbox,
            paused: AtomicBool::new(false),
        }
    }
}

/// What every loop of a server shares.
pub(crate) struct Shared<F> {
    pub(crate) factory: F,
    pub(crate) handle: ServerHandle,
    pub(crate) opts: Options,
    pub(crate) listeners: Vec<Mutex<Option<Listener>>>,
    pub(crate) remotes: Vec<Remote>,
    /// `serve_forever` runs and has not been asked to stop.
    pub(crate) accepting: AtomicBool,
    /// `server_close` has drained: loops end.
    pub(crate) exit: AtomicBool,
    /// Connection slots taken (reserved before `accept`).
    taken: AtomicUsize,
    limit: usize,
    pub(crate) pool: Pool,
}

impl<F> Shared<F> {
    pub(crate) fn new(
        factory: F,
        handle: ServerHandle,
        opts: Options,
        listeners: Vec<Listener>,
        remotes: Vec<Remote>,
    ) -> Shared<F> {
        let limit = opts.max_connections.unwrap_or(usize::MAX).max(1);
        let pool = Pool::new(opts.blocking_threads);
        Shared {
            factory,
            handle,
            opts,
            listeners: listeners.into_iter().map(|l| Mutex::new(Some(l))).collect(),
            remotes,
            accepting: AtomicBool::new(false),
            exit: AtomicBool::new(false),
            taken: AtomicUsize::new(0),
            limit,
            pool,
        }
    }

    pub(crate) fn listener(&self, i: usize) -> MutexGuard<'_, Option<Listener>> {
        self.listeners[i % self.listeners.len()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn wake_all(&self) {
        for r in &self.remotes {
            r.inbox.wake();
        }
    }

    fn reserve(&self) -> bool {
        let before = self.taken.fetch_add(1, Ordering::SeqCst);
        if before >= self.limit {
            self.taken.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        true
    }

    fn release(&self) {
        let before = self.taken.fetch_sub(1, Ordering::SeqCst);
        if before == self.limit {
            for r in &self.remotes {
                if r.paused.load(Ordering::SeqCst) {
                    r.inbox.wake();
                }
            }
        }
    }

    fn full(&self) -> bool {
        self.taken.load(Ordering::SeqCst) >= self.limit
    }
}

/// One connection the loop owns.
struct Slot<P> {
    id: u64,
    stream: Arc<Stream>,
    peer: Addr,
    proto: P,
    inb: InBuf,
    out: OutBuf,
    asks: Asks,
    /// Readable and not yet read to `WouldBlock` / a short read.
    read_ready: bool,
    /// The peer's FIN or an error was reported: read until EOF, not just
    /// until a short read.
    hup: bool,
    eof: bool,
    /// Output above the high-water mark: not reading until below the low.
    backpressure: bool,
    /// On the flush list already.
    queued: bool,
    /// The last write said `WouldBlock`.
    blocked: bool,
    last_in: u64,
    last_out: u64,
    partial_since: u64,
    _guard: Guard,
}

impl<P> Slot<P> {
    fn can_read(&self) -> bool {
        !(self.eof || self.backpressure || self.asks.paused || self.asks.close || self.asks.abort)
    }

    fn idle(&self) -> bool {
        self.inb.is_empty() && self.out.is_empty() && self.asks.jobs == 0
    }
}

/// Runs one protocol callback on `slot`, catching a panic.
fn call<F: Factory, R>(
    shared: &Shared<F>,
    inbox: &Arc<Inbox>,
    idx: usize,
    slot: &mut Slot<F::Protocol>,
    f: impl FnOnce(&mut F::Protocol, &mut Conn<'_>) -> R,
) -> Result<R, HandlerError> {
    let id = slot.id;
    let mailbox = || Mailbox {
        inbox: Arc::clone(inbox),
        token: idx,
        id,
    };
    let mut conn = Conn {
        out: &mut slot.out,
        asks: &mut slot.asks,
        peer: &slot.peer,
        handle: &shared.handle,
        mailbox: &mailbox,
        pool: &shared.pool,
    };
    let proto = &mut slot.proto;
    catch(|| Ok(f(proto, &mut conn)))
}

fn report<F: Factory>(shared: &Shared<F>, peer: &Addr, error: HandlerError) {
    stats(&shared.handle).handler_failed(&error);
    let _ = catch_hook(|| shared.factory.handle_error(peer, &error));
}

/// A loop and the connections it owns; lives on its own thread.
pub(crate) struct Loop<F: Factory> {
    index: usize,
    shared: Arc<Shared<F>>,
    poll: Poll,
    rx: Receiver<Delivery>,
    inbox: Arc<Inbox>,
    conns: Vec<Option<Slot<F::Protocol>>>,
    free: Vec<usize>,
    next_id: u64,
    readbuf: Vec<u8>,
    flush: Vec<usize>,
    again: Vec<usize>,
    /// Accepted this turn: stream, peer, needs non-blocking + nodelay set.
    accepted: Vec<(Arc<Stream>, Addr, bool)>,
    wheel: Wheel,
    due: Vec<Entry>,
    now: u64,
    /// The listener is registered with this loop's poller.
    listening: bool,
    listener_ready: bool,
    accept_retry: Option<Instant>,
    swept: bool,
    inbox_more: bool,
    /// Bytes read and written this turn (added to the stats once per turn).
    bytes_in: usize,
    bytes_out: usize,
}

impl<F: Factory> Loop<F> {
    pub(crate) fn new(
        index: usize,
        shared: Arc<Shared<F>>,
        poll: Poll,
        rx: Receiver<Delivery>,
    ) -> Loop<F> {
        let inbox = Arc::clone(&shared.remotes[index].inbox);
        let wheel = Wheel::new(shared.opts.tick());
        Loop {
            index,
            shared,
            poll,
            rx,
            inbox,
            conns: Vec::new(),
            free: Vec::new(),
            next_id: 0,
            readbuf: vec![0; READ_BUF],
            flush: Vec::new(),
            again: Vec::new(),
            accepted: Vec::new(),
            wheel,
            due: Vec::new(),
            now: 0,
            listening: false,
            listener_ready: false,
            accept_retry: None,
            swept: false,
            inbox_more: false,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Runs until `server_close` has drained, then drops what is left.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut work = Vec::with_capacity(1024);
        while !self.shared.exit.load(Ordering::SeqCst) {
            let timeout = self.timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("socketserver: reactor poll failed: {e}");
                    std::thread::sleep(ACCEPT_RETRY);
                }
                continue;
            }
            self.now = self.wheel.tick_of(Instant::now());
            self.sync();
            for ev in events.iter() {
                match ev.token() {
                    WAKER => self.inbox_more = true,
                    LISTENER => self.listener_ready = true,
                    Token(t) => {
                        let idx = t - FIRST;
                        if let Some(Some(slot)) = self.conns.get_mut(idx) {
                            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                                slot.read_ready = true;
                            }
                            if ev.is_read_closed() || ev.is_error() {
                                // The FIN (or error) came with this edge: a
                                // short read does not mean drained any more,
                                // the next read returns it.
                                slot.hup = true;
                            }
                            if ev.is_writable() && !slot.out.is_empty() {
                                self.queue(idx);
                            }
                            work.push(idx);
                        }
                    }
                }
            }
            for idx in work.drain(..) {
                self.read(idx);
            }
            self.accept();
            let mut again = std::mem::take(&mut self.again);
            for &idx in &again {
                self.read(idx);
            }
            // Reads queued meanwhile go to the next turn.
            again.clear();
            again.append(&mut self.again);
            self.again = again;
            if self.inbox_more {
                self.deliver();
            }
            self.timers();
            self.flush_all();
            self.count_bytes();
        }
        self.close_all();
    }

    fn count_bytes(&mut self) {
        let counters = stats(&self.shared.handle);
        if self.bytes_in > 0 {
            Stats::add(&counters.bytes_in, std::mem::take(&mut self.bytes_in));
        }
        if self.bytes_out > 0 {
            Stats::add(&counters.bytes_out, std::mem::take(&mut self.bytes_out));
        }
    }

    fn timeout(&self) -> Option<Duration> {
        if !self.again.is_empty() || self.inbox_more {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let retry = self.accept_retry.map(|t| t.saturating_duration_since(now));
        match (self.wheel.timeout(now), retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Follows the server's state: accept or not, drain or not.
    fn sync(&mut self) {
        let shared = &*self.shared;
        let control = control(&shared.handle);
        let remote = &shared.remotes[self.index];
        if remote.paused.load(Ordering::SeqCst) && !shared.full() {
            remote.paused.store(false, Ordering::SeqCst);
        }
        if let Some(t) = self.accept_retry
            && Instant::now() >= t
        {
            self.accept_retry = None;
            self.listener_ready = true;
        }
        let want = shared.accepting.load(Ordering::SeqCst)
            && !control.stop_requested()
            && !remote.paused.load(Ordering::SeqCst);
        if want != self.listening {
            let guard = shared.listener(self.index);
            if let Some(l) = guard.as_ref() {
                let fd = l.raw_fd();
                let registry = self.poll.registry();
                let done = if want {
                    registry.register(&mut SourceFd(&fd), LISTENER, Interest::READABLE)
                } else {
                    registry.deregister(&mut SourceFd(&fd))
                };
                match done {
                    Ok(()) => {
                        self.listening = want;
                        // A fresh registration reports a waiting backlog,
                        // but try at once anyway.
                        self.listener_ready = want;
                    }
                    Err(e) => log::error!("socketserver: reactor listener registration: {e}"),
                }
            } else {
                self.listening = false;
            }
        }
        let draining = control.is_shutting_down();
        if draining && !self.swept {
            self.swept = true;
            for idx in 0..self.conns.len() {
                if let Some(slot) = &self.conns[idx]
                    && slot.idle()
                {
                    self.finish(idx, None, true);
                }
            }
        } else if !draining {
            self.swept = false;
        }
    }

    fn accept(&mut self) {
        if !self.listening || !self.listener_ready {
            return;
        }
        let shared = Arc::clone(&self.shared);
        {
            let mut guard = shared.listener(self.index);
            let Some(listener) = guard.as_mut() else {
                return;
            };
            for _ in 0..ACCEPT_BATCH {
                if control(&shared.handle).stop_requested() {
                    break;
                }
                if !shared.reserve() {
                    // Stop accepting (the backlog holds the rest) until a
                    // connection ends; never accept and close.
                    shared.remotes[self.index]
                        .paused
                        .store(true, Ordering::SeqCst);
                    Stats::bump(&stats(&shared.handle).paused);
                    let _ = self
                        .poll
                        .registry()
                        .deregister(&mut SourceFd(&listener.raw_fd()));
                    self.listening = false;
                    // A slot freed between the check and the flag: look again.
                    if !shared.full() {
                        shared.remotes[self.index].inbox.wake();
                    }
                    break;
                }
                let (incoming, setup) = listener.next();
                match incoming {
                    Incoming::Request(conn, peer) => {
                        self.accepted.push((stream_of(conn), peer, setup))
                    }
                    Incoming::WouldBlock => {
                        shared.release();
                        self.listener_ready = false;
                        break;
                    }
                    Incoming::Truncated(_) => shared.release(),
                    Incoming::Error(e) => {
                        shared.release();
                        if !matches!(
                            e.kind(),
                            io::ErrorKind::Interrupted
                                | io::ErrorKind::ConnectionAborted
                                | io::ErrorKind::ConnectionReset
                        ) {
                            log::error!("socketserver: accept failed: {e}; pausing");
                            Stats::bump(&stats(&shared.handle).accept_errors);
                            self.listener_ready = false;
                            self.accept_retry = Some(Instant::now() + ACCEPT_RETRY);
                            break;
                        }
                    }
                }
            }
        }
        let mut accepted = std::mem::take(&mut self.accepted);
        for (stream, peer, setup) in accepted.drain(..) {
            self.adopt(stream, peer, setup);
        }
        self.accepted = accepted;
    }

    /// Sets up an accepted connection (its slot is already reserved) and
    /// reads it at once: a request that came with the connection is
    /// answered in this turn.
    fn adopt(&mut self, stream: Arc<Stream>, peer: Addr, setup: bool) {
        let shared = Arc::clone(&self.shared);
        let refuse = |stream: &Stream| {
            let _ = stream.shutdown(Shutdown::Write);
            shared.release();
        };
        if setup && let Err(e) = stream.set_nonblocking(true) {
            log::error!("socketserver: cannot make a connection non-blocking: {e}");
            return refuse(&stream);
        }
        let allowed = catch(|| Ok(shared.factory.verify_request(&peer))).unwrap_or_else(|e| {
            report(&shared, &peer, e);
            false
        });
        if !allowed {
            Stats::bump(&stats(&shared.handle).refused);
            return refuse(&stream);
        }
        let proto = match catch(|| Ok(shared.factory.build(&peer))) {
            Ok(p) => p,
            Err(e) => {
                report(&shared, &peer, e);
                return refuse(&stream);
            }
        };
        let idx = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        let fd = stream.as_raw_fd();
        if let Err(e) = self.poll.registry().register(
            &mut SourceFd(&fd),
            Token(idx + FIRST),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::error!("socketserver: cannot register a connection: {e}");
            self.free.push(idx);
            return refuse(&stream);
        }
        let guard = track(&shared.handle, Arc::clone(&stream));
        let counters = stats(&shared.handle);
        Stats::bump(&counters.accepted);
        counters.note_active(shared.handle.active_connections());
        self.next_id += 1;
        let now = self.now;
        self.conns[idx] = Some(Slot {
            id: self.next_id,
            stream,
            peer,
            proto,
            inb: InBuf::default(),
            out: OutBuf::default(),
            asks: Asks::default(),
            read_ready: true,
            hup: false,
            eof: false,
            backpressure: false,
            queued: false,
            blocked: false,
            last_in: now,
            last_out: now,
            partial_since: now,
            _guard: guard,
        });
        if shared.opts.timed() {
            self.wheel.insert((idx, self.next_id), now + 1);
        }
        self.callback(idx, |p, c| p.connection_made(c));
        self.read(idx);
    }

    /// Runs a callback that may only write or ask (connection_made,
    /// message_received, timed_out); a panic aborts the connection.
    fn callback<R: Default>(
        &mut self,
        idx: usize,
        f: impl FnOnce(&mut F::Protocol, &mut Conn<'_>) -> R,
    ) -> R {
        let Some(Some(slot)) = self.conns.get_mut(idx) else {
            return R::default();
        };
        let r = call(&self.shared, &self.inbox, idx, slot, f);
        match r {
            Ok(r) => {
                self.after(idx);
                r
            }
            Err(e) => {
                report(&self.shared, &slot.peer, e);
                self.finish(idx, None, false);
                R::default()
            }
        }
    }

    /// After a callback: queue the flush and any read it unblocked.
    fn after(&mut self, idx: usize) {
        let high = self.shared.opts.high_water;
        let Some(Some(slot)) = self.conns.get_mut(idx) else {
            return;
        };
        if slot.out.len() > high {
            slot.backpressure = true;
        }
        let resume = slot.read_ready && slot.can_read();
        if !slot.out.is_empty() || slot.asks.close || slot.asks.abort {
            self.queue(idx);
        }
        if resume {
            self.again.push(idx);
        }
    }

    fn queue(&mut self, idx: usize) {
        if let Some(Some(slot)) = self.conns.get_mut(idx)
            && !slot.queued
        {
            slot.queued = true;
            self.flush.push(idx);
        }
    }

    /// Reads connection `idx` while it has bytes (bounded), offering them
    /// to the protocol.
    fn read(&mut self, idx: usize) {
        let mut buf = std::mem::take(&mut self.readbuf);
        let mut fed = false;
        let mut lost = None;
        for _ in 0..READS_PER_TURN {
            let Some(Some(slot)) = self.conns.get_mut(idx) else {
                break;
            };
            if !slot.read_ready || !slot.can_read() {
                break;
            }
            match (&*slot.stream).read(&mut buf) {
                Ok(0) => {
                    slot.read_ready = false;
                    slot.eof = true;
                    let keep = self.callback(idx, |p, c| p.eof_received(c));
                    if let Some(Some(slot)) = self.conns.get_mut(idx)
                        && !keep
                    {
                        slot.asks.close = true;
                        self.queue(idx);
                    }
                    break;
                }
                Ok(n) => {
                    self.bytes_in += n;
                    slot.last_in = self.now;
                    if n < buf.len() && !slot.hup {
                        slot.read_ready = false;
                    }
                    fed = true;
                    self.feed(idx, &buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    slot.read_ready = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    lost = Some(e);
                    break;
                }
            }
        }
        self.readbuf = buf;
        if let Some(e) = lost {
            self.finish(idx, Some(e), false);
            return;
        }
        if fed {
            self.callback(idx, |p, c| p.read_complete(c));
        }
        if let Some(Some(slot)) = self.conns.get(idx)
            && slot.read_ready
            && slot.can_read()
        {
            // The read budget ran out: continue next turn, after others.
            self.again.push(idx);
        }
    }

    /// Offers `data` (after any unconsumed input) to the protocol.
    fn feed(&mut self, idx: usize, data: &[u8]) {
        let shared = Arc::clone(&self.shared);
        let now = self.now;
        let Some(Some(slot)) = self.conns.get_mut(idx) else {
            return;
        };
        let was_empty = slot.inb.is_empty();
        let result = if was_empty {
            let r = call(&shared, &self.inbox, idx, slot, |p, c| {
                p.data_received(data, c)
            });
            if let Ok(Ok(n)) = r
                && n < data.len()
            {
                slot.inb.extend(&data[n..]);
                slot.partial_since = now;
            }
            r
        } else {
            slot.inb.extend(data);
            let held = slot.inb.take();
            let r = call(&shared, &self.inbox, idx, slot, |p, c| {
                p.data_received(&held, c)
            });
            slot.inb.put_back(held);
            if let Ok(Ok(n)) = r {
                slot.inb.consume(n);
                if n > 0 {
                    slot.partial_since = now;
                }
            }
            r
        };
        match result {
            Ok(Ok(_)) if slot.inb.len() > shared.opts.max_input => {
                let e = io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "more than {} bytes of input without a complete frame",
                        shared.opts.max_input
                    ),
                );
                report(&shared, &slot.peer, Box::new(e));
                slot.inb.clear();
                slot.asks.close = true;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                report(&shared, &slot.peer, Box::new(e));
                slot.inb.clear();
                slot.asks.close = true;
            }
            Err(e) => {
                report(&shared, &slot.peer, e);
                slot.asks.abort = true;
            }
        }
        self.after(idx);
    }

    /// Offload results and mailbox messages.
    fn deliver(&mut self) {
        self.inbox_more = false;
        self.inbox.rearm();
        for _ in 0..INBOX_BATCH {
            let Ok(d) = self.rx.try_recv() else {
                return;
            };
            let Some(Some(slot)) = self.conns.get_mut(d.token) else {
                continue;
            };
            if slot.id != d.id {
                continue;
            }
            if d.job {
                slot.asks.jobs = slot.asks.jobs.saturating_sub(1);
            }
            let message = d.message;
            self.callback(d.token, move |p, c| p.message_received(message, c));
        }
        self.inbox_more = true;
    }

    fn timers(&mut self) {
        let opts = &self.shared.opts;
        if !opts.timed() {
            return;
        }
        let ticks = |d: Option<Duration>| d.map(|d| self.wheel.ticks(d));
        let (idle, frame, write) = (
            ticks(opts.idle_timeout),
            ticks(opts.frame_timeout),
            ticks(opts.write_timeout),
        );
        let recheck = [idle, frame, write]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(1);
        let now = self.now;
        let mut due = std::mem::take(&mut self.due);
        self.wheel.expire(now, &mut due);
        for (idx, id) in due.drain(..) {
            let Some(Some(slot)) = self.conns.get_mut(idx) else {
                continue;
            };
            if slot.id != id {
                continue;
            }
            let mut fire = None;
            let mut next = now + recheck;
            let mut check = |kind, since: u64, limit: Option<u64>, applies: bool| {
                if let (Some(limit), true) = (limit, applies) {
                    let at = since + limit;
                    if at <= now {
                        fire.get_or_insert(kind);
                    } else {
                        next = next.min(at);
                    }
                }
            };
            check(
                Timeout::WriteStall,
                slot.last_out,
                write,
                !slot.out.is_empty(),
            );
            check(
                Timeout::IncompleteFrame,
                slot.partial_since,
                frame,
                !slot.inb.is_empty(),
            );
            check(Timeout::Idle, slot.last_in, idle, slot.idle() && !slot.eof);
            if let Some(kind) = fire {
                stats(&self.shared.handle).timeout(match kind {
                    Timeout::Idle => TimeoutKind::Idle,
                    Timeout::IncompleteFrame => TimeoutKind::Request,
                    _ => TimeoutKind::MinRate,
                });
                let keep = self.callback(idx, |p, c| p.timed_out(kind, c));
                let Some(Some(slot)) = self.conns.get_mut(idx) else {
                    continue;
                };
                if keep {
                    match kind {
                        Timeout::WriteStall => slot.last_out = now,
                        Timeout::IncompleteFrame => slot.partial_since = now,
                        _ => slot.last_in = now,
                    }
                } else if kind == Timeout::WriteStall {
                    slot.asks.abort = true;
                } else {
                    slot.asks.close = true;
                }
                self.queue(idx);
            }
            self.wheel.insert((idx, id), next.max(now + 1));
        }
        self.due = due;
    }

    fn flush_all(&mut self) {
        let mut list = std::mem::take(&mut self.flush);
        for &idx in &list {
            self.flush_one(idx);
        }
        list.clear();
        // Flushing may have queued nothing new; keep the allocation.
        list.append(&mut self.flush);
        self.flush = list;
    }

    /// Writes what connection `idx` has (until the socket is full), then
    /// closes it if it asked to be closed or the server drains.
    fn flush_one(&mut self, idx: usize) {
        let low = self.shared.opts.low_water;
        let draining = control(&self.shared.handle).is_shutting_down();
        let now = self.now;
        let Some(Some(slot)) = self.conns.get_mut(idx) else {
            return;
        };
        slot.queued = false;
        if slot.asks.abort {
            return self.finish(idx, None, false);
        }
        let mut lost = None;
        for _ in 0..64 {
            if slot.out.is_empty() {
                break;
            }
            match (&*slot.stream).write(slot.out.pending()) {
                Ok(0) => {
                    lost = Some(io::Error::from(io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => {
                    self.bytes_out += n;
                    slot.out.advance(n);
                    slot.last_out = now;
                    slot.blocked = false;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !slot.blocked {
                        slot.blocked = true;
                        slot.last_out = now;
                    }
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    lost = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = lost {
            return self.finish(idx, Some(e), false);
        }
        if slot.out.is_empty() {
            slot.blocked = false;
        }
        if slot.backpressure && slot.out.len() <= low {
            slot.backpressure = false;
            if !slot.inb.is_empty() {
                // Input held back by the pause: offer it again.
                self.feed(idx, &[]);
            }
            if let Some(Some(slot)) = self.conns.get(idx)
                && slot.read_ready
                && slot.can_read()
            {
                self.again.push(idx);
            }
        }
        let Some(Some(slot)) = self.conns.get(idx) else {
            return;
        };
        if slot.out.is_empty() && (slot.asks.close || (draining && slot.idle())) {
            self.finish(idx, None, true);
        }
    }

    /// Closes connection `idx`: gracefully (FIN after the output, unread
    /// input discarded so the close sends no RST) or at once.
    fn finish(&mut self, idx: usize, error: Option<io::Error>, graceful: bool) {
        let Some(mut slot) = self.conns.get_mut(idx).and_then(Option::take) else {
            return;
        };
        self.free.push(idx);
        // No EPOLL_CTL_DEL: the descriptor closes when the slot drops (the
        // tracker's reference goes with its guard), which removes it from
        // the epoll set. After the peer's EOF nothing is left to discard and
        // close(2) sends the FIN itself.
        if graceful && !slot.eof {
            let _ = slot.stream.shutdown(Shutdown::Write);
            for _ in 0..4 {
                match (&*slot.stream).read(&mut self.readbuf) {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
        }
        let peer = slot.peer.clone();
        let proto = &mut slot.proto;
        if let Err(e) = catch_hook(|| proto.connection_lost(error.as_ref())) {
            report(&self.shared, &peer, e);
        }
        drop(slot);
        self.shared.release();
    }

    fn close_all(&mut self) {
        for idx in 0..self.conns.len() {
            self.finish(idx, None, false);
        }
    }
}
