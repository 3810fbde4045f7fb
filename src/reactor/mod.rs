//! The event-loop strategy: one readiness loop per core, each owning many
//! connections, and a handler in Python's `asyncio.Protocol` style.
//!
//! The other strategies give each connection a blocked thread that reads,
//! handles and writes (one wake-up, so one context switch, per message).
//! Here a loop (`epoll`/`kqueue` via mio) waits on all its connections at
//! once, hands the bytes of every ready one to its [`Protocol`], and sends
//! each connection's replies in one `write(2)` at the end of the turn.
//! No thread per connection, no task scheduler, no allocation per message.
//!
//! | Python | here |
//! |---|---|
//! | `asyncio.Protocol` | [`Protocol`] |
//! | `connection_made(transport)` | [`Protocol::connection_made`] |
//! | `data_received(data)` | [`Protocol::data_received`] (returns the bytes consumed) |
//! | `eof_received()` | [`Protocol::eof_received`] |
//! | `connection_lost(exc)` | [`Protocol::connection_lost`] |
//! | (Netty's `channelReadComplete`) | [`Protocol::read_complete`] |
//! | `transport.write / close / abort` | [`Conn::write`], [`Conn::close`], [`Conn::abort`] |
//! | `pause_reading` / high-water marks | [`Conn::pause_reading`], [`ReactorBuilder::high_water`] |
//! | `loop.run_in_executor` | [`Conn::offload`] |
//! | `selectors.DefaultSelector` | one [`mio::Poll`] per loop |
//!
//! A whole echo server:
//!
//! ```no_run
//! use socketserver::reactor::{Conn, Protocol, ReactorServer};
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, data: &[u8], conn: &mut Conn<'_>) -> std::io::Result<usize> {
//!         conn.write(data);
//!         Ok(data.len())
//!     }
//! }
//! let server = ReactorServer::bind("127.0.0.1:9999", |_: &socketserver::Addr| Echo)?;
//! server.serve_forever()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A protocol must not block: a slow call stalls every connection of its
//! loop. Hand blocking work to [`Conn::offload`], or use the
//! [`Threading`](crate::Threading) / [`ThreadPool`](crate::ThreadPool)
//! strategies for blocking handlers.

mod buffers;
mod event_loop;
pub mod framing;
mod glue;
mod offload;
mod protocol;
mod server;
mod timer;

pub use crate::net::Addr;
pub use offload::Mailbox;
pub use protocol::{Conn, Factory, Message, Protocol, Timeout};
pub use server::{ReactorBuilder, ReactorServer};
