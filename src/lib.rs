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
//! - **Transports** ([`transport`]): [`TcpServer`], [`UdpServer`],
//!   [`UnixStreamServer`], [`UnixDatagramServer`].
//! - **Handlers** ([`StreamHandler`], [`DatagramHandler`]): `setup`,
//!   `handle`, `finish` in Python's order, on a fresh clone per request; the
//!   server hooks `verify_request`, `handle_error`, `handle_timeout` and
//!   `service_actions` are provided methods. A closure is a handler too.
//! - **Strategies** ([`strategy`]): [`Sequential`] (default), [`Threading`],
//!   [`ThreadPool`], `Forking` (unix).
//!
//! # Where it differs from Python, on purpose
//!
//! | Python | here |
//! |---|---|
//! | `shutdown()` waits up to `poll_interval` (0.5 s) and deadlocks from a handler | wakes the loop at once through a waker; never blocks; works from a handler |
//! | a shutdown after the loop stopped is sticky | it is not: a later `serve_forever` serves again |
//! | `server_close()` waits forever for threads (`block_on_close`) | waits up to [`drain_timeout`](ServerBuilder::drain_timeout), then cuts connections, and reports ([`DrainReport`]) |
//! | unlimited threads | [`max_connections`](ServerBuilder::max_connections) in every strategy; the pool's queue is bounded |
//! | backlog 5, `SO_REUSEADDR` off, IPv4 only | backlog `SOMAXCONN`, `SO_REUSEADDR` on, family from the address |
//! | UDP datagrams silently cut at 8192 bytes; empty replies sent | 65535-byte buffer, truncation reported to `handle_error`; a reply only when you call [`reply`](DatagramRequest::reply) |
//! | accept errors silently ignored | logged, with a growing back-off on `EMFILE` |
//! | an exception in `verify_request` leaks the socket | panics anywhere in a handler or hook are caught and reported |
//!
//! # Platform
//!
//! Unix (Linux, macOS, the BSDs). The `unsafe` code (fork, waitpid, kill,
//! pidfd, recvmsg) lives in one private module, `sys/unix.rs`.
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![deny(unsafe_code)]
#![doc(test(attr(deny(warnings), allow(dead_code, unused_variables))))]

#[cfg(not(unix))]
compile_error!("socketserver supports unix platforms for now");

mod builder;
mod control;
mod drain;
mod error;
pub mod framing;
mod handler;
mod net;
mod request;
mod server;
pub mod strategy;
pub mod transport;

#[allow(unsafe_code)]
#[cfg_attr(unix, path = "sys/unix.rs")]
mod sys;

pub use builder::ServerBuilder;
pub use control::ServerHandle;
pub use drain::DrainReport;
pub use error::{HandlerError, HandlerResult, PanicError, TruncatedDatagram};
pub use handler::{DatagramHandler, Handles, StreamHandler};
pub use net::{Addr, DatagramSocket, Stream};
pub use request::{DatagramRequest, Reader, StreamRequest, Writer};
pub use server::Server;
#[cfg(unix)]
pub use strategy::Forking;
pub use strategy::{Execute, Job, Sequential, Strategy, ThreadPool, Threading};
use transport::{TcpTransport, UdpTransport};
#[cfg(unix)]
use transport::{UnixDatagramTransport, UnixStreamTransport};

/// A TCP server (Python's `TCPServer`); `S` defaults to [`Sequential`].
pub type TcpServer<H, S = Sequential> = Server<TcpTransport, H, S>;
/// A UDP server (Python's `UDPServer`).
pub type UdpServer<H, S = Sequential> = Server<UdpTransport, H, S>;
/// A Unix stream server (Python's `UnixStreamServer`).
#[cfg(unix)]
pub type UnixStreamServer<H, S = Sequential> = Server<UnixStreamTransport, H, S>;
/// A Unix datagram server (Python's `UnixDatagramServer`).
#[cfg(unix)]
pub type UnixDatagramServer<H, S = Sequential> = Server<UnixDatagramTransport, H, S>;

/// Python's `ThreadingTCPServer`: a thread per connection.
pub type ThreadingTcpServer<H> = TcpServer<H, Threading>;
/// Python's `ThreadingUDPServer`: a thread per datagram.
pub type ThreadingUdpServer<H> = UdpServer<H, Threading>;
/// Python's `ThreadingUnixStreamServer`.
#[cfg(unix)]
pub type ThreadingUnixStreamServer<H> = UnixStreamServer<H, Threading>;
/// Python's `ThreadingUnixDatagramServer`.
#[cfg(unix)]
pub type ThreadingUnixDatagramServer<H> = UnixDatagramServer<H, Threading>;
/// Python's `ForkingTCPServer`: a child process per connection.
#[cfg(unix)]
pub type ForkingTcpServer<H> = TcpServer<H, Forking>;
/// Python's `ForkingUDPServer`.
#[cfg(unix)]
pub type ForkingUdpServer<H> = UdpServer<H, Forking>;
/// Python's `ForkingUnixStreamServer`.
#[cfg(unix)]
pub type ForkingUnixStreamServer<H> = UnixStreamServer<H, Forking>;
/// Python's `ForkingUnixDatagramServer`.
#[cfg(unix)]
pub type ForkingUnixDatagramServer<H> = UnixDatagramServer<H, Forking>;

mod constructors;

#[cfg(doctest)]
mod doctests;
