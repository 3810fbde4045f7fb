//! [`ReactorServer`] and [`ReactorBuilder`]: the crate's server lifecycle
//! over event loops.

use std::fmt;
use std::io;
use std::net::{TcpListener, ToSocketAddrs};
#[cfg(unix)]
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use crossbeam_channel::Receiver;
use mio::{Events, Poll, Waker};

use super::event_loop::{Listener, Loop, Options, Remote, Shared, WAKER};
#[cfg(unix)]
use super::glue::UnixStreamTransport;
use super::glue::{
    Addr, Config, DrainReport, ServerHandle, TcpTransport, TransportImpl, control, drain,
    new_handle,
};
use super::offload::{Delivery, Inbox};
use super::protocol::Factory;

/// Configures and binds a [`ReactorServer`]; every setter states its
/// default.
///
/// ```
/// use std::time::Duration;
/// use socketserver::reactor::{Conn, Protocol, ReactorBuilder};
/// # struct Echo;
/// # impl Protocol for Echo {
/// #     fn data_received(&mut self, d: &[u8], c: &mut Conn<'_>) -> std::io::Result<usize> {
/// #         c.write(d); Ok(d.len())
/// #     }
/// # }
/// let server = ReactorBuilder::new()
///     .loops(1)
///     .max_connections(10_000)
///     .idle_timeout(Duration::from_secs(300))
///     .bind_tcp("127.0.0.1:0", |_: &socketserver::Addr| Echo)?;
/// println!("listening on {}", server.server_address());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until one of its bind methods is called"]
pub struct ReactorBuilder {
    config: Config,
    opts: Options,
    reuse_port: bool,
}

impl Default for ReactorBuilder {
    fn default() -> Self {
        ReactorBuilder::new()
    }
}

impl ReactorBuilder {
    /// Every default: one loop per available core, `TCP_NODELAY` on,
    /// 256 KiB / 64 KiB output water marks, 1 MiB input cap, no timeouts,
    /// no connection limit.
    pub fn new() -> Self {
        let loops = std::thread::available_parallelism().map_or(1, |n| n.get());
        ReactorBuilder {
            config: Config::default(),
            opts: Options {
                loops,
                high_water: 256 * 1024,
                low_water: 64 * 1024,
                max_input: 1024 * 1024,
                idle_timeout: None,
                frame_timeout: None,
                write_timeout: None,
                nodelay: true,
                blocking_threads: 4,
                drain_timeout: None,
                max_connections: None,
            },
            reuse_port: true,
        }
    }

    /// Event loops (threads), each owning its connections. Default: the
    /// available parallelism; 1 is valid (and best when the server has one
    /// core).
    pub fn loops(mut self, n: usize) -> Self {
        self.opts.loops = n.max(1);
        self
    }

    /// With several loops on TCP, give each its own `SO_REUSEPORT`
    /// listener on the same port (the kernel spreads connections by
    /// address hash) rather than one listener all loops accept from.
    /// Default: on.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// Most connections open at once. At the limit the loops stop
    /// accepting (the backlog holds newcomers) until one closes. Default:
    /// no limit.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.opts.max_connections = Some(n);
        self
    }

    /// Output above this many bytes stops reading that connection (a
    /// client that pipelines and never reads cannot grow memory) until it
    /// falls to the [`low_water`](Self::low_water) mark. Default: 256 KiB.
    pub fn high_water(mut self, bytes: usize) -> Self {
        self.opts.high_water = bytes.max(1);
        self.opts.low_water = self.opts.low_water.min(self.opts.high_water);
        self
    }

    /// Output at or below which a paused connection reads again. Default:
    /// 64 KiB.
    pub fn low_water(mut self, bytes: usize) -> Self {
        self.opts.low_water = bytes.min(self.opts.high_water);
        self
    }

    /// Most unconsumed input a connection may hold (a frame being
    /// assembled); more is an error that closes the connection, never an
    /// allocation of a size the peer claims. Default: 1 MiB.
    pub fn max_input(mut self, bytes: usize) -> Self {
        self.opts.max_input = bytes.max(1);
        self
    }

    /// Close a connection (after [`timed_out`](super::Protocol::timed_out))
    /// that sent nothing for this long while there was nothing to send.
    /// Default: none.
    pub fn idle_timeout(mut self, t: Duration) -> Self {
        self.opts.idle_timeout = Some(t);
        self
    }

    /// Close a connection whose started frame (unconsumed input) is not
    /// completed within this long (slowloris). Default: none.
    pub fn frame_timeout(mut self, t: Duration) -> Self {
        self.opts.frame_timeout = Some(t);
        self
    }

    /// Abort a connection whose peer takes none of its pending output for
    /// this long. Default: none.
    pub fn write_timeout(mut self, t: Duration) -> Self {
        self.opts.write_timeout = Some(t);
        self
    }

    /// How long [`server_close`](ReactorServer::server_close) waits for
    /// busy connections before cutting them (idle ones close at once).
    /// Default: no limit; `Duration::ZERO` cuts at once.
    pub fn drain_timeout(mut self, t: Duration) -> Self {
        self.opts.drain_timeout = Some(t);
        self
    }

    /// `TCP_NODELAY` on accepted connections. Default: on (a reply leaves
    /// in one write per turn, so Nagle's algorithm only adds delay).
    pub fn nodelay(mut self, on: bool) -> Self {
        self.opts.nodelay = on;
        self
    }

    /// Threads of the pool [`Conn::offload`](super::Conn::offload) runs
    /// blocking jobs on (started on first use). Default: 4.
    pub fn blocking_threads(mut self, n: usize) -> Self {
        self.opts.blocking_threads = n.max(1);
        self
    }

    /// The `listen(2)` backlog. Default: `SOMAXCONN`.
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.config.backlog = backlog;
        self
    }

    /// Binds a TCP server at `addr` (port 0: the OS picks).
    pub fn bind_tcp<A: ToSocketAddrs, F: Factory>(
        self,
        addr: A,
        factory: F,
    ) -> io::Result<ReactorServer<F>> {
        let mut listeners = Vec::new();
        if self.opts.loops > 1 && self.reuse_port {
            let mut config = self.config.clone();
            config.reuse_port = true;
            let first = TcpTransport::bind(addr, &config)?;
            let local = first.local_addr().as_inet();
            listeners.push(Listener::tcp(first, self.opts.nodelay)?);
            if let Some(local) = local {
                for _ in 1..self.opts.loops {
                    listeners.push(Listener::tcp(
                        TcpTransport::bind(local, &config)?,
                        self.opts.nodelay,
                    )?);
                }
            }
        } else {
            listeners.push(Listener::tcp(
                TcpTransport::bind(addr, &self.config)?,
                self.opts.nodelay,
            )?);
        }
        ReactorServer::new(listeners, factory, self.opts)
    }

    /// Adopts a bound, listening TCP listener (all loops accept from it).
    pub fn from_tcp_listener<F: Factory>(
        self,
        listener: TcpListener,
        factory: F,
    ) -> io::Result<ReactorServer<F>> {
        let t = TcpTransport::from_listener(listener)?;
        let l = Listener::tcp(t, self.opts.nodelay)?;
        ReactorServer::new(vec![l], factory, self.opts)
    }

    /// Binds a Unix stream server at `path` (a stale socket file is
    /// removed first; the path is removed on close).
    #[cfg(unix)]
    pub fn bind_unix_stream<P: AsRef<Path>, F: Factory>(
        self,
        path: P,
        factory: F,
    ) -> io::Result<ReactorServer<F>> {
        let t = UnixStreamTransport::bind(path.as_ref(), &self.config)?;
        ReactorServer::new(vec![Listener::Unix(t)], factory, self.opts)
    }
}

/// A stream server whose connections are served by event loops: a
/// [`Protocol`](super::Protocol) per connection instead of a thread.
///
/// The lifecycle is the crate's [`Server`](crate::Server)'s:
/// [`serve_forever`](Self::serve_forever) until
/// [`shutdown`](Self::shutdown) (from any thread, or from a protocol via
/// [`Conn::server`](super::Conn::server)), then
/// [`server_close`](Self::server_close), which closes the listener, closes
/// idle connections at once, lets busy ones finish up to the drain
/// deadline and returns a [`DrainReport`]. Dropping the server closes it.
///
/// ```
/// use std::io::{Read, Write};
/// use socketserver::reactor::{Conn, Protocol, ReactorServer};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, data: &[u8], conn: &mut Conn<'_>) -> std::io::Result<usize> {
///         conn.write(data);
///         Ok(data.len())
///     }
/// }
///
/// let server = ReactorServer::bind("127.0.0.1:0", |_: &socketserver::Addr| Echo)?;
/// let addr = server.server_address().as_inet().unwrap();
/// std::thread::scope(|s| {
///     s.spawn(|| server.serve_forever());
///     let mut client = std::net::TcpStream::connect(addr)?;
///     client.write_all(b"ping")?;
///     let mut reply = [0; 4];
///     client.read_exact(&mut reply)?;
///     assert_eq!(&reply, b"ping");
///     server.shutdown();
///     Ok::<_, std::io::Error>(())
/// })?;
/// let report = server.server_close()?;
/// assert_eq!(report.forced, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ReactorServer<F: Factory> {
    shared: Arc<Shared<F>>,
    local: Addr,
    /// `serve_forever` waits here for a stop (the handle's waker).
    waiter: Mutex<Poll>,
    /// Loops built and not yet started.
    idle: Mutex<Vec<(Poll, Receiver<Delivery>)>>,
    threads: Mutex<Vec<(ThreadId, JoinHandle<()>)>>,
    closed: Mutex<Option<DrainReport>>,
}

impl<F: Factory> fmt::Debug for ReactorServer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactorServer")
            .field("server_address", &self.local)
            .field("loops", &self.shared.opts.loops)
            .field("active_connections", &self.active_connections())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<F: Factory> ReactorServer<F> {
    /// Binds a TCP server with every default (see [`ReactorBuilder`]).
    pub fn bind<A: ToSocketAddrs>(addr: A, factory: F) -> io::Result<ReactorServer<F>> {
        ReactorBuilder::new().bind_tcp(addr, factory)
    }

    fn new(listeners: Vec<Listener>, factory: F, opts: Options) -> io::Result<Self> {
        let local = listeners[0].local_addr().clone();
        let waiter = Poll::new()?;
        let handle = new_handle(Waker::new(waiter.registry(), WAKER)?);
        let mut idle = Vec::new();
        let mut remotes = Vec::new();
        for _ in 0..opts.loops {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (inbox, rx) = Inbox::new(waker);
            remotes.push(Remote::new(inbox));
            idle.push((poll, rx));
        }
        let shared = Arc::new(Shared::new(factory, handle, opts, listeners, remotes));
        Ok(ReactorServer {
            shared,
            local,
            waiter: Mutex::new(waiter),
            idle: Mutex::new(idle),
            threads: Mutex::new(Vec::new()),
            closed: Mutex::new(None),
        })
    }

    /// The bound address: with port 0, the port the OS picked.
    pub fn server_address(&self) -> &Addr {
        &self.local
    }

    /// A cloneable handle to stop the server from any thread.
    pub fn handle(&self) -> ServerHandle {
        self.shared.handle.clone()
    }

    /// The factory, on which the server hooks run.
    pub fn factory(&self) -> &F {
        &self.shared.factory
    }

    /// Stops [`serve_forever`](Self::serve_forever) at once, without
    /// blocking (see [`ServerHandle::shutdown`]).
    pub fn shutdown(&self) {
        self.shared.handle.shutdown();
    }

    /// True once shutdown has been requested.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.handle.is_shutting_down()
    }

    /// Connections open now.
    pub fn active_connections(&self) -> usize {
        self.shared.handle.active_connections()
    }

    fn start_loops(&self) -> io::Result<()> {
        let mut idle = lock(&self.idle);
        let mut threads = lock(&self.threads);
        let first = threads.len();
        for (i, (poll, rx)) in idle.drain(..).enumerate() {
            let shared = Arc::clone(&self.shared);
            let index = first + i;
            let t = std::thread::Builder::new()
                .name(format!("reactor-{index}"))
                .spawn(move || Loop::new(index, shared, poll, rx).run())?;
            threads.push((t.thread().id(), t));
        }
        Ok(())
    }

    /// Serves until [`shutdown`](Self::shutdown) (Python's
    /// `serve_forever`); the loops start on the first call. On return the
    /// loops stop accepting; open connections go on being served until
    /// [`server_close`](Self::server_close) drains them (idle ones close at
    /// once). A later call serves again. After `server_close` it fails
    /// with `NotConnected`.
    pub fn serve_forever(&self) -> io::Result<()> {
        let mut waiter = lock(&self.waiter);
        if lock(&self.closed).is_some() {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "server closed"));
        }
        let control = control(&self.shared.handle);
        if !control.begin_serve() {
            return Ok(());
        }
        let started = self.start_loops();
        if started.is_ok() {
            self.shared
                .accepting
                .store(true, std::sync::atomic::Ordering::SeqCst);
            self.shared.wake_all();
            let mut events = Events::with_capacity(4);
            while !control.stop_requested() {
                if let Err(e) = waiter.poll(&mut events, None)
                    && e.kind() != io::ErrorKind::Interrupted
                {
                    log::error!("socketserver: reactor wait failed: {e}");
                    break;
                }
            }
        }
        self.shared
            .accepting
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.shared.wake_all();
        control.end_serve();
        started
    }

    /// Closes the server (Python's `server_close`): stops a running
    /// `serve_forever`, closes the listening socket (the port is free at
    /// once), closes idle connections, waits up to the
    /// [`drain_timeout`](ReactorBuilder::drain_timeout) for busy ones, cuts
    /// the rest with `shutdown(SHUT_RDWR)`, stops the loops and reports.
    /// Calling it again returns the first report. From a protocol callback
    /// it refuses (`Deadlock`): the loop would wait for itself; call
    /// [`shutdown`](Self::shutdown) there.
    pub fn server_close(&self) -> io::Result<DrainReport> {
        let mut closed = lock(&self.closed);
        if let Some(report) = *closed {
            return Ok(report);
        }
        let me = std::thread::current().id();
        if lock(&self.threads).iter().any(|(id, _)| *id == me) {
            return Err(io::Error::new(
                io::ErrorKind::Deadlock,
                "server_close called from a protocol on a loop thread; use shutdown()",
            ));
        }
        control(&self.shared.handle).close();
        drop(lock(&self.waiter)); // serve_forever has returned
        for i in 0..self.shared.listeners.len() {
            drop(self.shared.listener(i).take());
        }
        self.shared.wake_all();
        let report = drain(&self.shared.handle, self.shared.opts.drain_timeout);
        super::glue::stats(&self.shared.handle).closed();
        self.shared
            .exit
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.wake_all();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for (_, t) in threads {
            if report.abandoned == 0 {
                let _ = t.join();
            }
        }
        *closed = Some(report);
        Ok(report)
    }
}

impl<F: Factory> Drop for ReactorServer<F> {
    fn drop(&mut self) {
        let _ = self.server_close();
    }
}
