//! [`ServerBuilder`]: everything optional, each setter stating its default.

use std::io;
use std::net::{TcpListener, ToSocketAddrs, UdpSocket};
#[cfg(unix)]
use std::os::unix::net::{UnixDatagram, UnixListener};
#[cfg(unix)]
use std::path::Path;
use std::time::Duration;

use crate::handler::{DatagramHandler, StreamHandler};
use crate::net::Stream;
use crate::server::Server;
use crate::strategy::{Sequential, Strategy};
use crate::transport::{TcpTransport, UdpTransport};
#[cfg(unix)]
use crate::transport::{UnixDatagramTransport, UnixStreamTransport};

/// The settings a [`ServerBuilder`] collects.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) backlog: i32,
    pub(crate) reuse_address: bool,
    pub(crate) reuse_port: bool,
    pub(crate) only_v6: Option<bool>,
    pub(crate) nodelay: bool,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) max_connections: Option<usize>,
    pub(crate) max_packet_size: usize,
    pub(crate) timeout: Option<Duration>,
    pub(crate) drain_timeout: Option<Duration>,
    pub(crate) service_interval: Option<Duration>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            backlog: crate::transport::SOMAXCONN,
            reuse_address: true,
            reuse_port: false,
            only_v6: None,
            nodelay: false,
            read_timeout: None,
            write_timeout: None,
            max_connections: None,
            max_packet_size: 65535,
            timeout: None,
            drain_timeout: None,
            service_interval: None,
        }
    }
}

impl Config {
    /// Applies the per-connection options to an accepted stream; runs on the
    /// worker, not on the accept loop.
    pub(crate) fn prepare(&self, stream: &Stream) -> io::Result<()> {
        // Linux's accept(2) never passes O_NONBLOCK on; BSDs and macOS do.
        #[cfg(not(target_os = "linux"))]
        stream.set_nonblocking(false)?;
        if self.read_timeout.is_some() {
            stream.set_read_timeout(self.read_timeout)?;
        }
        if self.write_timeout.is_some() {
            stream.set_write_timeout(self.write_timeout)?;
        }
        if self.nodelay {
            stream.set_nodelay(true)?;
        }
        Ok(())
    }
}

/// Configures and binds a server: transport, strategy and every option.
///
/// ```
/// use std::time::Duration;
/// use socketserver::{ServerBuilder, StreamRequest, ThreadPool};
/// # fn main() -> std::io::Result<()> {
/// let server = ServerBuilder::new()
///     .strategy(ThreadPool::new(4))
///     .max_connections(100)
///     .read_timeout(Some(Duration::from_secs(30)))
///     .drain_timeout(Some(Duration::from_secs(5)))
///     .tcp("127.0.0.1:0", |req: &mut StreamRequest| {
///         std::io::copy(&mut req.rfile, &mut req.wfile)?;
///         Ok(())
///     })?;
/// println!("listening on {}", server.server_address());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until one of its bind methods is called"]
pub struct ServerBuilder<S = Sequential> {
    config: Config,
    strategy: S,
}

impl Default for ServerBuilder<Sequential> {
    fn default() -> Self {
        ServerBuilder::new()
    }
}

impl ServerBuilder<Sequential> {
    /// A builder with every default: the [`Sequential`] strategy, a
    /// `SOMAXCONN` backlog, `SO_REUSEADDR` on, no timeouts, no connection
    /// limit.
    pub fn new() -> Self {
        ServerBuilder {
            config: Config::default(),
            strategy: Sequential,
        }
    }
}

impl<S: Strategy> ServerBuilder<S> {
    /// How requests run. Default: [`Sequential`] (one at a time, on the
    /// loop's thread). See [`Threading`](crate::Threading),
    /// [`ThreadPool`](crate::ThreadPool) and `Forking` (unix).
    pub fn strategy<S2: Strategy>(self, strategy: S2) -> ServerBuilder<S2> {
        ServerBuilder {
            config: self.config,
            strategy,
        }
    }

    /// The `listen(2)` backlog: how many connections the kernel queues while
    /// the server is not accepting. Default: `SOMAXCONN` (Python: 5). The
    /// kernel caps it at `net.core.somaxconn`.
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.config.backlog = backlog;
        self
    }

    /// `SO_REUSEADDR` on TCP listeners, so a restarted server can bind while
    /// old connections sit in `TIME_WAIT`. Default: on (Python: off).
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.config.reuse_address = on;
        self
    }

    /// `SO_REUSEPORT` (unix): several sockets bound to one port, the kernel
    /// spreading connections between them, including to stale processes
    /// still bound to it. Default: off.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.config.reuse_port = on;
        self
    }

    /// For an IPv6 address: `true` accepts IPv4 clients too (`IPV6_V6ONLY`
    /// off); their addresses then look like `[::ffff:127.0.0.1]:port`.
    /// Default: the system's setting (on Linux, usually dual-stack).
    pub fn dual_stack(mut self, on: bool) -> Self {
        self.config.only_v6 = Some(!on);
        self
    }

    /// `TCP_NODELAY` on every accepted TCP connection (never on Unix
    /// sockets, where it does not exist). Default: off.
    ///
    /// Turn it on when a handler answers one request with several writes,
    /// as an `io::copy` echo does with its 8 KiB pieces: with Nagle's
    /// algorithm the second piece waits for the client's delayed ACK of the
    /// first, up to 40 ms (measured: a 16 KiB echo at 0.06× the speed it
    /// has with `nodelay(true)`; see docs/benchmarks.md).
    pub fn nodelay(mut self, on: bool) -> Self {
        self.config.nodelay = on;
        self
    }

    /// Read timeout set on every accepted connection before `setup` runs: a
    /// read that waits longer fails and the error reaches `handle_error`.
    /// Default: `None`, reads may block forever (as in Python), so a silent
    /// client holds its worker until it leaves.
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.read_timeout = timeout;
        self
    }

    /// Write timeout set on every accepted connection. Default: `None`.
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.write_timeout = timeout;
        self
    }

    /// The most requests in flight at once, in every strategy. At the limit
    /// the loop stops accepting (the kernel backlog holds newcomers) and
    /// resumes as soon as one ends. Default: no limit, except the pool's
    /// `workers + queue` and forking's `max_children`.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = Some(max);
        self
    }

    /// Receive buffer for datagram transports; a longer datagram is reported
    /// to `handle_error` as [`TruncatedDatagram`](crate::TruncatedDatagram)
    /// and dropped. Default: 65535 (Python: 8192, truncating silently).
    pub fn max_packet_size(mut self, size: usize) -> Self {
        self.config.max_packet_size = size.max(1);
        self
    }

    /// How long [`handle_request`](Server::handle_request) waits for a
    /// request before calling `handle_timeout` (Python's `timeout`).
    /// `serve_forever` ignores it. Default: `None`, wait forever.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// How long [`server_close`](Server::server_close) waits for requests in
    /// flight before cutting their connections (`shutdown(SHUT_RDWR)`) and
    /// sending forked children `SIGTERM`; it then waits as long again (at
    /// most 5 s) for the cut handlers to return and reports the rest as
    /// abandoned. `Some(Duration::ZERO)` cuts at once and does not wait
    /// (Python's `daemon_threads`). Default: `None`, wait for every handler
    /// to return (Python's `block_on_close`).
    pub fn drain_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.drain_timeout = timeout;
        self
    }

    /// Wake `serve_forever` at least this often, so `service_actions` runs
    /// even when no request arrives (a chat room dropping idle members).
    /// Default: `None`, the loop sleeps until a request or a shutdown
    /// arrives; there is no polling.
    pub fn service_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.service_interval = interval;
        self
    }

    /// Binds a TCP server (`socket`, `bind`, `listen`). The address family
    /// comes from the address, so `"[::1]:0"` gives IPv6. Port 0 lets the OS
    /// pick; [`server_address`](Server::server_address) tells which.
    pub fn tcp<A: ToSocketAddrs, H: StreamHandler + 'static>(
        self,
        addr: A,
        handler: H,
    ) -> io::Result<Server<TcpTransport, H, S>> {
        let transport = TcpTransport::bind(addr, &self.config)?;
        Server::new(transport, handler, self.strategy, self.config)
    }

    /// Adopts an already bound and listening TCP listener (socket
    /// activation, tests, `SO_REUSEPORT` set up by the caller).
    pub fn tcp_listener<H: StreamHandler + 'static>(
        self,
        listener: TcpListener,
        handler: H,
    ) -> io::Result<Server<TcpTransport, H, S>> {
        let transport = TcpTransport::from_listener(listener)?;
        Server::new(transport, handler, self.strategy, self.config)
    }

    /// Binds a UDP server.
    pub fn udp<A: ToSocketAddrs, H: DatagramHandler + 'static>(
        self,
        addr: A,
        handler: H,
    ) -> io::Result<Server<UdpTransport, H, S>> {
        let transport = UdpTransport::bind(addr, &self.config)?;
        Server::new(transport, handler, self.strategy, self.config)
    }

    /// Adopts an already bound UDP socket.
    pub fn udp_socket<H: DatagramHandler + 'static>(
        self,
        socket: UdpSocket,
        handler: H,
    ) -> io::Result<Server<UdpTransport, H, S>> {
        let transport = UdpTransport::from_socket(socket, &self.config)?;
        Server::new(transport, handler, self.strategy, self.config)
    }

    /// Binds a Unix stream server at `path`. A stale socket file left there
    /// is removed first (only if it is a socket); the server removes the
    /// path it created when it closes.
    #[cfg(unix)]
    pub fn unix_stream<P: AsRef<Path>, H: StreamHandler + 'static>(
        self,
        path: P,
        handler: H,
    ) -> io::Result<Server<UnixStreamTransport, H, S>> {
        let transport = UnixStreamTransport::bind(path.as_ref(), &self.config)?;
        Server::new(transport, handler, self.strategy, self.config)
    }

    /// Adopts an already listening Unix stream listener (its path is left
    /// alone on close).
    #[cfg(unix)]
    pub fn unix_listener<H: StreamHandler + 'static>(
        self,
        listener: UnixListener,
        handler: H,
    ) -> io::Result<Server<UnixStreamTransport, H, S>> {
        let transport = UnixStreamTransport::from_listener(listener)?;
        Server::new(transport, handler, self.strategy, self.config)
    }

    /// Binds a Unix datagram server at `path` (stale socket removed first,
    /// path removed on close).
    #[cfg(unix)]
    pub fn unix_datagram<P: AsRef<Path>, H: DatagramHandler + 'static>(
        self,
        path: P,
        handler: H,
    ) -> io::Result<Server<UnixDatagramTransport, H, S>> {
        let transport = UnixDatagramTransport::bind(path.as_ref(), &self.config)?;
        Server::new(transport, handler, self.strategy, self.config)
    }

    /// Adopts an already bound Unix datagram socket.
    #[cfg(unix)]
    pub fn unix_datagram_socket<H: DatagramHandler + 'static>(
        self,
        socket: UnixDatagram,
        handler: H,
    ) -> io::Result<Server<UnixDatagramTransport, H, S>> {
        let transport = UnixDatagramTransport::from_socket(socket, &self.config)?;
        Server::new(transport, handler, self.strategy, self.config)
    }
}
