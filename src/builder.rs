//! [`ServerBuilder`]: everything optional, each setter stating its default;
//! and the Python-style constructors (`TcpServer::bind(addr, handler)`, ...)
//! that use every default.

use std::io;
use std::net::{TcpListener, ToSocketAddrs, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::Path;
use std::time::Duration;

use crate::config::Config;
use crate::deadline::Deadlines;
use crate::handler::{DatagramHandler, StreamHandler};
use crate::proxy::ProxyProtocol;
use crate::server::Server;
use crate::strategy::{Execute, Sequential, Strategy};
#[cfg(feature = "tls")]
use crate::tls::TlsConfig;
use crate::transport::{
    Connection, Datagram, TcpTransport, UdpTransport, UnixDatagramTransport, UnixStreamTransport,
};

/// Configures and binds a server: transport, strategy and every option.
///
/// ```
/// use std::time::Duration;
/// use socketserver::{ServerBuilder, StreamRequest, ThreadPool};
/// # fn main() -> std::io::Result<()> {
/// let server = ServerBuilder::new()
///     .strategy(ThreadPool::new(4))
///     .max_connections(100)
///     .read_timeout(Duration::from_secs(30))
///     .drain_timeout(Duration::from_secs(5))
///     .bind_tcp("127.0.0.1:0", |req: &mut StreamRequest| {
///         std::io::copy(&mut req.rfile, &mut req.wfile)?;
///         Ok(())
///     })?;
/// println!("listening on {}", server.server_address());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until one of its bind methods is called"]
pub struct ServerBuilder<S = Sequential> {
    pub(crate) config: Config,
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
    /// [`ThreadPool`](crate::ThreadPool), [`Forking`](crate::Forking) and,
    /// for a choice made at run time, [`AnyStrategy`](crate::AnyStrategy).
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

    /// Read timeout (`SO_RCVTIMEO`) set on every accepted connection before
    /// `setup` runs: a read that waits longer fails and the error reaches
    /// `handle_error`. Default: none, reads may block forever (as in
    /// Python), so a silent client holds its worker until it leaves: with
    /// [`Sequential`] one silent client stops the server, with a pool or
    /// forking N of them do (slowloris). Set it for untrusted clients.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.config.read_timeout = Some(timeout).filter(|t| !t.is_zero());
        self
    }

    /// Write timeout (`SO_SNDTIMEO`) set on every accepted connection: a
    /// client that stops reading cannot hold a handler in `write` forever.
    /// Default: none.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.config.write_timeout = Some(timeout).filter(|t| !t.is_zero());
        self
    }

    /// The most requests in flight at once, in every strategy. At the limit
    /// the loop stops accepting (the kernel backlog holds newcomers) and
    /// resumes as soon as one ends. Default: no limit, except the pool's
    /// `workers + queue` and forking's `max_children`, and 1024 datagrams
    /// in flight for a datagram server (what a flood can make it hold).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = Some(max);
        self
    }

    /// The most connections one client IP may hold at once (TCP; Unix and
    /// datagram peers are not counted). A connection over the cap is closed
    /// as soon as it is accepted, before any handler runs, and logged at
    /// debug level. Default: no cap. With [`max_connections`](Self::max_connections)
    /// alone, a few clients that open connections and send nothing
    /// (slowloris) can hold every slot; this keeps one address from doing
    /// so (a botnet of many addresses needs timeouts too).
    pub fn max_connections_per_ip(mut self, max: usize) -> Self {
        self.config.max_connections_per_ip = Some(max);
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
    /// `serve_forever` ignores it. Default: wait forever.
    pub fn handle_request_timeout(mut self, timeout: Duration) -> Self {
        self.config.handle_request_timeout = Some(timeout);
        self
    }

    /// How long [`server_close`](Server::server_close) waits for requests in
    /// flight before cutting their connections and signalling forked
    /// children. Default: wait for every handler to return (Python's
    /// `block_on_close`).
    ///
    /// Connections idle in
    /// [`next_request`](crate::StreamRequest::next_request) are closed at
    /// the drain's start. At the deadline, live connections get
    /// `shutdown(SHUT_RDWR)` and children `SIGTERM`; the drain then waits as
    /// long again, at most 5 s, and reports the rest as abandoned.
    /// `Duration::ZERO` cuts at once (Python's `daemon_threads`).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.config.drain_timeout = Some(timeout);
        self
    }

    /// Wakes `serve_forever` at least this often, so `service_actions` runs
    /// even when no request arrives (a chat room dropping idle members).
    /// Default: the loop sleeps until a request or a shutdown arrives; there
    /// is no polling.
    pub fn service_interval(mut self, interval: Duration) -> Self {
        self.config.service_interval = Some(interval).filter(|i| !i.is_zero());
        self
    }

    /// Reports a handler's panic to `handle_error` only, without std's
    /// panic message on stderr first. Default: off (std's hook prints the
    /// message, and a backtrace with `RUST_BACKTRACE=1`, before the server
    /// catches the panic). The hook is silenced only on threads while they
    /// run this server's requests.
    pub fn quiet_panics(mut self, on: bool) -> Self {
        self.config.quiet_panics = on;
        self
    }

    /// Binds a TCP server (`socket(2)`, `bind(2)`, `listen(2)`). The
    /// address family comes from the address, so `"[::1]:0"` gives IPv6.
    /// Port 0 lets the OS pick; [`server_address`](Server::server_address)
    /// tells which.
    pub fn bind_tcp<A, H>(self, addr: A, handler: H) -> io::Result<Server<TcpTransport, H, S>>
    where
        A: ToSocketAddrs,
        H: StreamHandler + 'static,
        S: Execute<Connection, H>,
    {
        let transport = TcpTransport::bind(addr, &self.config)?;
        Server::new(transport, handler, self.strategy, self.config)
    }

    /// Serves on an already bound and listening TCP listener (socket
    /// activation, tests, `SO_REUSEPORT` set up by the caller).
    pub fn from_tcp_listener<H>(
        self,
        listener: TcpListener,
        handler: H,
    ) -> io::Result<Server<TcpTransport, H, S>>
    where
        H: StreamHandler + 'static,
        S: Execute<Connection, H>,
    {
        let transport = TcpTransport::from_listener(listener)?;
        Server::new(transport, handler, self.strategy, self.config)
    }

    /// Binds a UDP server (`socket(2)`, `bind(2)`).
    pub fn bind_udp<A, H>(self, addr: A, handler: H) -> io::Result<Server<UdpTransport, H, S>>
    where
        A: ToSocketAddrs,
        H: DatagramHandler + 'static,
        S: Execute<Datagram, H>,
    {
        let transport = UdpTransport::bind(addr, &self.config)?;
        Server::new(transport, handler, self.strategy, self.config)
    }

    /// Serves on an already bound UDP socket.
    pub fn from_udp_socket<H>(
        self,
        socket: UdpSocket,
        handler: H,
    ) -> io::Result<Server<UdpTransport, H, S>>
    where
        H: DatagramHandler + 'static,
        S: Execute<Datagram, H>,
    {
        let transport = UdpTransport::from_socket(socket, &self.config)?;
        Server::new(transport, handler, self.strategy, self.config)
    }

    /// Binds a Unix stream server at `path`. A socket file left there by a
    /// server that is gone is replaced; if a server still answers on it the
    /// bind fails with `AddrInUse`. The server removes the path it created
    /// when it closes.
    pub fn bind_unix_stream<P, H>(
        self,
        path: P,
        handler: H,
    ) -> io::Result<Server<UnixStreamTransport, H, S>>
    where
        P: AsRef<Path>,
        H: StreamHandler + 'static,
        S: Execute<Connection, H>,
    {
        let transport = UnixStreamTransport::bind(path.as_ref(), &self.config)?;
        Server::new(transport, handler, self.strategy, self.config)
    }

    /// Serves on an already listening Unix stream listener (its path is left
    /// alone on close).
    pub fn from_unix_listener<H>(
        self,
        listener: UnixListener,
        handler: H,
    ) -> io::Result<Server<UnixStreamTransport, H, S>>
    where
        H: StreamHandler + 'static,
        S: Execute<Connection, H>,
    {
        let transport = UnixStreamTransport::from_listener(listener)?;
        Server::new(transport, handler, self.strategy, self.config)
    }

    /// Binds a Unix datagram server at `path` (a stale socket file is
    /// replaced, a live one is `AddrInUse`; the path is removed on close).
    pub fn bind_unix_datagram<P, H>(
        self,
        path: P,
        handler: H,
    ) -> io::Result<Server<UnixDatagramTransport, H, S>>
    where
        P: AsRef<Path>,
        H: DatagramHandler + 'static,
        S: Execute<Datagram, H>,
    {
        let transport = UnixDatagramTransport::bind(path.as_ref(), &self.config)?;
        Server::new(transport, handler, self.strategy, self.config)
    }

    /// Serves on an already bound Unix datagram socket.
    pub fn from_unix_datagram<H>(
        self,
        socket: UnixDatagram,
        handler: H,
    ) -> io::Result<Server<UnixDatagramTransport, H, S>>
    where
        H: DatagramHandler + 'static,
        S: Execute<Datagram, H>,
    {
        let transport = UnixDatagramTransport::from_socket(socket, &self.config)?;
        Server::new(transport, handler, self.strategy, self.config)
    }
}

/// The connection's edge: deadlines, the PROXY protocol, TLS, and what a
/// close does with the backlog (run where the handler runs; see `edge.rs`).
impl<S: Strategy> ServerBuilder<S> {
    /// Deadlines for every connection's reads: idle time before the first
    /// byte, a whole-request limit, a minimum rate (see [`Deadlines`]).
    /// Default: none.
    pub fn deadlines(mut self, deadlines: Deadlines) -> Self {
        self.config.edge.deadlines = deadlines;
        self
    }

    /// Requires a PROXY protocol header (v1 or v2) on every connection, from
    /// the trusted proxies only (see [`ProxyProtocol`]). Default: off, no
    /// header is read and the socket's peer is the client.
    pub fn proxy_protocol(mut self, policy: ProxyProtocol) -> Self {
        self.config.edge.proxy = Some(policy);
        self
    }

    /// Whether [`server_close`](crate::Server::server_close) first accepts
    /// and serves the connections already waiting in the listen backlog.
    /// Closing the listener resets them, and a load balancer that had
    /// already forwarded a client there cannot retry it elsewhere; with
    /// this on, only a connection arriving in the microseconds between the
    /// last `accept` and the `close` is lost, and later ones are refused
    /// (which a balancer does retry). Default: off (Python's behaviour:
    /// queued connections are reset). Stream servers only: a datagram
    /// server's queued datagrams are not reset, and not served, by a close.
    pub fn serve_backlog_on_close(mut self, on: bool) -> Self {
        self.config.edge.serve_backlog = on;
        self
    }

    /// Serves TLS on every connection of a stream server (feature `tls`; see
    /// [`TlsConfig`]). Default: off, plain TCP.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: TlsConfig) -> Self {
        self.config.edge.tls = Some(config);
        self
    }
}

fn builder<S: Strategy + Default>() -> ServerBuilder<S> {
    ServerBuilder::new().strategy(S::default())
}

impl<H, S> Server<TcpTransport, H, S>
where
    H: StreamHandler + 'static,
    S: Execute<Connection, H> + Default,
{
    /// Binds a TCP server with every default (Python's
    /// `TCPServer(server_address, RequestHandlerClass)`); the strategy is
    /// the alias's: `TcpServer::bind` runs requests one at a time,
    /// `ThreadingTcpServer::bind` a thread each. Port 0 lets the OS pick; a
    /// failed bind returns `Err` and leaks no descriptor.
    pub fn bind<A: ToSocketAddrs>(addr: A, handler: H) -> io::Result<Self> {
        builder().bind_tcp(addr, handler)
    }

    /// Serves on an already listening TCP listener (socket activation,
    /// tests).
    pub fn from_listener(listener: TcpListener, handler: H) -> io::Result<Self> {
        builder().from_tcp_listener(listener, handler)
    }
}

impl<H, S> Server<UdpTransport, H, S>
where
    H: DatagramHandler + 'static,
    S: Execute<Datagram, H> + Default,
{
    /// Binds a UDP server with every default (Python's `UDPServer`).
    pub fn bind<A: ToSocketAddrs>(addr: A, handler: H) -> io::Result<Self> {
        builder().bind_udp(addr, handler)
    }

    /// Serves on an already bound UDP socket.
    pub fn from_socket(socket: UdpSocket, handler: H) -> io::Result<Self> {
        builder().from_udp_socket(socket, handler)
    }
}

impl<H, S> Server<UnixStreamTransport, H, S>
where
    H: StreamHandler + 'static,
    S: Execute<Connection, H> + Default,
{
    /// Binds a Unix stream server at `path` (Python's `UnixStreamServer`);
    /// a stale socket file there is replaced, a live one is `AddrInUse`, and
    /// the path is removed when the server closes.
    pub fn bind<P: AsRef<Path>>(path: P, handler: H) -> io::Result<Self> {
        builder().bind_unix_stream(path, handler)
    }

    /// Serves on an already listening Unix listener.
    pub fn from_listener(listener: UnixListener, handler: H) -> io::Result<Self> {
        builder().from_unix_listener(listener, handler)
    }
}

impl<H, S> Server<UnixDatagramTransport, H, S>
where
    H: DatagramHandler + 'static,
    S: Execute<Datagram, H> + Default,
{
    /// Binds a Unix datagram server at `path` (Python's
    /// `UnixDatagramServer`).
    pub fn bind<P: AsRef<Path>>(path: P, handler: H) -> io::Result<Self> {
        builder().bind_unix_datagram(path, handler)
    }

    /// Serves on an already bound Unix datagram socket.
    pub fn from_socket(socket: UnixDatagram, handler: H) -> io::Result<Self> {
        builder().from_unix_datagram(socket, handler)
    }
}
