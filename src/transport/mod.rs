//! Transports: how a request arrives.
//!
//! | Transport | Python class | A request is |
//! |---|---|---|
//! | [`TcpTransport`] | `TCPServer` | an accepted connection (`accept(2)`) |
//! | [`UdpTransport`] | `UDPServer` | one datagram (`recvmsg(2)`) |
//! | [`UnixStreamTransport`] (unix) | `UnixStreamServer` | an accepted connection |
//! | [`UnixDatagramTransport`] (unix) | `UnixDatagramServer` | one datagram |
//!
//! The listening socket is non-blocking and registered with the loop's
//! poller; accepted connections are blocking, so handlers use plain `Read`
//! and `Write`.

use std::io;

use crate::drain::Live;
use crate::handler::{Connection, Datagram};
use crate::net::Addr;

mod tcp;
mod udp;
#[cfg(unix)]
mod unix;

pub use tcp::TcpTransport;
pub use udp::UdpTransport;
#[cfg(unix)]
pub use unix::{UnixDatagramTransport, UnixStreamTransport};

/// The `listen(2)` backlog used unless configured: the system's maximum.
pub(crate) const SOMAXCONN: i32 = crate::sys::SOMAXCONN;

/// What one non-blocking attempt to take a request gave.
#[doc(hidden)]
#[derive(Debug)]
pub enum Incoming<R> {
    /// A request and its peer.
    Request(R, Addr),
    /// Nothing is waiting.
    WouldBlock,
    /// A datagram did not fit the buffer and was dropped.
    Truncated(Addr),
    /// `accept`/`recvmsg` failed.
    Error(io::Error),
}

impl<R> Incoming<R> {
    pub(crate) fn from_error(e: io::Error) -> Incoming<R> {
        if e.kind() == io::ErrorKind::WouldBlock {
            Incoming::WouldBlock
        } else {
            Incoming::Error(e)
        }
    }
}

/// A way for requests to arrive. Implemented by the four transports of this
/// crate; the server loop is generic over it.
pub trait Transport: Send + 'static {
    /// What one request is: a connection or a datagram.
    type Request: Request;

    /// The bound address (Python's `server_address`).
    fn local_addr(&self) -> &Addr;

    /// Takes one request without blocking.
    #[doc(hidden)]
    fn next(&mut self) -> Incoming<Self::Request>;

    /// The socket the loop waits on.
    #[doc(hidden)]
    #[cfg(unix)]
    fn raw_fd(&self) -> std::os::fd::RawFd;

    /// The shared socket of a datagram transport (`None` for streams).
    #[doc(hidden)]
    fn datagram_socket(&self) -> Option<&std::sync::Arc<crate::net::DatagramSocket>> {
        None
    }

    /// The descriptor a forked child closes: the listener of a stream
    /// transport (a datagram child keeps its socket to reply).
    #[doc(hidden)]
    #[cfg(unix)]
    fn child_closes(&self) -> Option<std::os::fd::RawFd>;
}

/// A request as a transport delivers it, before a handler sees it.
#[doc(hidden)]
pub trait Request: Send + 'static {
    /// What a forced drain can cut.
    #[doc(hidden)]
    fn live(&self) -> Live;
    /// Closes a request that `verify_request` refused.
    #[doc(hidden)]
    fn reject(self);
}

impl Request for Connection {
    fn live(&self) -> Live {
        Live::Stream(std::sync::Arc::clone(&self.stream))
    }
    fn reject(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }
}

impl Request for Datagram {
    fn live(&self) -> Live {
        Live::Datagram
    }
    fn reject(self) {}
}
