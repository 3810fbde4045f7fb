//! Python's `socketserver`, in Rust: a server is a **transport** (TCP, UDP,
//! Unix stream, Unix datagram), a **handler** you write in a few lines, and
//! a **strategy** that decides how requests run (one at a time, a thread
//! each, a thread pool, a forked process each).
//!
//! # Hello, echo
//!
//! A complete echo server that binds a port the OS picks, talks to itself,
//! and shuts down:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{Shutdown, TcpStream};
//! use socketserver::{StreamRequest, ThreadingTcpServer};
//!
//! fn main() -> std::io::Result<()> {
//!     // The handler: echo every byte back as it arrives.
//!     let server = ThreadingTcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
//!         std::io::copy(&mut req.rfile, &mut req.wfile)?;
//!         Ok(())
//!     })?;
//!     let addr = server.server_address().as_inet().unwrap();
//!
//!     std::thread::scope(|s| {
//!         s.spawn(|| server.serve_forever());
//!
//!         let mut client = TcpStream::connect(addr)?;
//!         client.write_all(b"hello world\n")?;
//!         client.shutdown(Shutdown::Write)?;
//!         let mut echoed = String::new();
//!         client.read_to_string(&mut echoed)?;
//!         assert_eq!(echoed, "hello world\n");
//!
//!         server.shutdown(); // wakes the loop at once: no poll interval
//!         Ok::<_, std::io::Error>(())
//!     })?;
//!     let report = server.server_close()?; // closes the port, drains handlers
//!     assert_eq!(report.forced, 0);
//!     Ok(())
//! }
//! ```
//!
//! # The three axes
//!
//! - **Transports**: [`TcpServer`], [`UdpServer`], [`UnixStreamServer`],
//!   [`UnixDatagramServer`] (built on [`TcpTransport`], [`UdpTransport`],
//!   [`UnixStreamTransport`], [`UnixDatagramTransport`]).
//! - **Handlers** ([`StreamHandler`], [`DatagramHandler`]): `setup`,
//!   `handle`, `finish` in Python's order, on a fresh clone per request; the
//!   server hooks `verify_request`, `handle_error`, `handle_timeout` and
//!   `service_actions` are provided methods. A closure is a handler too.
//! - **Strategies** ([`Strategy`]): [`Sequential`] (default), [`Threading`],
//!   [`ThreadPool`], [`Forking`], and [`AnyStrategy`] to choose at run time.
//!
//! Ctrl-C: [`shutdown_on_signals`] (feature `signals`, on by default).
//!
//! # Where it differs from Python, on purpose
//!
//! | Python | here |
//! |---|---|
//! | `shutdown()` waits up to `poll_interval` (0.5 s) and deadlocks from a handler | wakes the loop at once through a waker; never blocks; works from a handler |
//! | a long-lived handler polls `self.server` for a shutdown | [`next_request`](StreamRequest::next_request) waits without polling; a drain closes idle connections at once |
//! | a shutdown after the loop stopped is sticky | it is not: a later `serve_forever` serves again |
//! | `server_close()` waits forever for threads (`block_on_close`) | waits up to [`drain_timeout`](ServerBuilder::drain_timeout), then cuts connections, and reports ([`DrainReport`]) |
//! | unlimited threads | [`max_connections`](ServerBuilder::max_connections) in every strategy; the pool's queue is bounded |
//! | backlog 5, `SO_REUSEADDR` off, IPv4 only | backlog `SOMAXCONN`, `SO_REUSEADDR` on, family from the address |
//! | UDP datagrams silently cut at 8192 bytes; empty replies sent | 65535-byte buffer, truncation reported to `handle_error`; a reply only when you call [`reply`](DatagramRequest::reply) |
//! | accept errors silently ignored | logged, with a growing back-off on `EMFILE` |
//! | an exception in `verify_request` leaks the socket | panics anywhere in a handler or hook are caught and reported |
//!
//! # Facing the internet
//!
//! What runs before the handler, on the thread (or in the child) that runs
//! it, never on the accept loop:
//! [`proxy_protocol`](ServerBuilder::proxy_protocol) (PROXY v1/v2 from
//! trusted proxies, so [`StreamRequest::peer`] is the client), `tls`
//! (feature `tls`: rustls, certificates replaceable while serving), and
//! [`deadlines`](ServerBuilder::deadlines) against slow clients.
//! [`ServerHandle::stats`] counts what happened. [`systemd`] takes
//! listening sockets from the service manager and notifies it;
//! [`restart`] hands the listening socket to a new process so a restart
//! drops no connection. See docs/guide/08-production.md.
//!
//! # Platform
//!
//! Unix (Linux, macOS, the BSDs). The `unsafe` code (fork, waitpid, kill,
//! pidfd, recvmsg) lives in one private module, `sys/unix.rs`. A panic is
//! caught per request only with `panic = "unwind"` (the default): with
//! `panic = "abort"` the first one ends the process.
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![deny(unsafe_code)]
#![doc(test(attr(deny(warnings), allow(dead_code, unused_variables))))]

#[cfg(not(unix))]
compile_error!("socketserver supports unix platforms for now");

mod batch;
mod builder;
mod config;
mod deadline;
mod dispatch;
mod edge;
mod error;
pub mod framing;
mod handler;
mod inflight;
mod net;
pub mod proxy;
pub mod reactor;
mod request;
pub mod restart;
mod server;
mod shutdown;
#[cfg(feature = "signals")]
mod signals;
mod stats;
mod strategy;
pub mod systemd;
#[cfg(feature = "tls")]
pub mod tls;
mod transport;
mod unwind;

#[allow(unsafe_code)]
#[path = "sys/unix.rs"]
mod sys;

#[cfg(doctest)]
mod doctests;

pub use builder::ServerBuilder;
pub use deadline::{DeadlinePassed, Deadlines};
pub use error::{ChildKilled, HandlerError, HandlerResult, PanicError, TruncatedDatagram};
pub use handler::{DatagramHandler, StreamHandler};
pub use inflight::DrainReport;
pub use net::{Addr, DatagramSocket, Stream};
pub use proxy::{ProxyInfo, ProxyProtocol, TrustedNet};
pub use request::{DatagramRequest, Rfile, StreamRequest, Wfile};
pub use server::Server;
pub use shutdown::ServerHandle;
#[cfg(feature = "signals")]
pub use signals::shutdown_on_signals;
pub use stats::{DrainState, ServerStats, TimeoutKind};
pub use strategy::{AnyStrategy, Forking, Sequential, Strategy, ThreadPool, Threading};
#[cfg(feature = "tls")]
pub use tls::{TlsConfig, TlsInfo};
pub use transport::{
    TcpTransport, Transport, UdpTransport, UnixDatagramTransport, UnixStreamTransport,
};

/// A TCP server (Python's `TCPServer`): one request at a time.
pub type TcpServer<H> = Server<TcpTransport, H>;
/// A UDP server (Python's `UDPServer`).
pub type UdpServer<H> = Server<UdpTransport, H>;
/// A Unix stream server (Python's `UnixStreamServer`).
pub type UnixStreamServer<H> = Server<UnixStreamTransport, H>;
/// A Unix datagram server (Python's `UnixDatagramServer`).
pub type UnixDatagramServer<H> = Server<UnixDatagramTransport, H>;

/// Python's `ThreadingTCPServer`: a thread per connection.
pub type ThreadingTcpServer<H> = Server<TcpTransport, H, Threading>;
/// Python's `ThreadingUDPServer`: a thread per datagram.
pub type ThreadingUdpServer<H> = Server<UdpTransport, H, Threading>;
/// Python's `ThreadingUnixStreamServer`.
pub type ThreadingUnixStreamServer<H> = Server<UnixStreamTransport, H, Threading>;
/// Python's `ThreadingUnixDatagramServer`.
pub type ThreadingUnixDatagramServer<H> = Server<UnixDatagramTransport, H, Threading>;
/// Python's `ForkingTCPServer`: a child process per connection.
pub type ForkingTcpServer<H> = Server<TcpTransport, H, Forking>;
/// Python's `ForkingUDPServer`.
pub type ForkingUdpServer<H> = Server<UdpTransport, H, Forking>;
/// Python's `ForkingUnixStreamServer`.
pub type ForkingUnixStreamServer<H> = Server<UnixStreamTransport, H, Forking>;
/// Python's `ForkingUnixDatagramServer`.
pub type ForkingUnixDatagramServer<H> = Server<UnixDatagramTransport, H, Forking>;
