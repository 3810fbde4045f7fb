//! Transports: how a request arrives.
//!
//! | Transport | Python class | A request is |
//! |---|---|---|
//! | [`TcpTransport`] | `TCPServer` | an accepted connection (`accept(2)`) |
//! | [`UdpTransport`] | `UDPServer` | one datagram (`recvmsg(2)`) |
//! | [`UnixStreamTransport`] | `UnixStreamServer` | an accepted connection |
//! | [`UnixDatagramTransport`] | `UnixDatagramServer` | one datagram |
//!
//! The listening socket is non-blocking and registered with the loop's
//! poller; accepted connections are blocking, so handlers use plain `Read`
//! and `Write`. This module also holds what a transport yields before a
//! handler sees it ([`Connection`], [`Datagram`]) and the socket set-up the
//! transports share.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;
use crate::inflight::{Cut, Phase};
use crate::net::{Addr, DatagramSocket, Stream};

mod batch;
mod tcp;
mod udp;
mod unix;

pub(crate) use batch::{Outbox, Receiver, SharedRecv};

pub use tcp::TcpTransport;
pub use udp::UdpTransport;
pub use unix::{UnixDatagramTransport, UnixStreamTransport};

/// An accepted connection, before a handler sees it.
#[derive(Debug)]
pub struct Connection {
    pub(crate) stream: Arc<Stream>,
    pub(crate) phase: Arc<Phase>,
}

impl Connection {
    pub(crate) fn new(stream: Stream) -> Connection {
        Connection {
            stream: Arc::new(stream),
            phase: Arc::default(),
        }
    }
}

/// A received datagram, before a handler sees it.
#[derive(Debug)]
pub struct Datagram {
    pub(crate) data: Vec<u8>,
    pub(crate) socket: Arc<DatagramSocket>,
}

/// What one non-blocking attempt to take a request gave.
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
    fn from_error(e: io::Error) -> Incoming<R> {
        if e.kind() == io::ErrorKind::WouldBlock {
            Incoming::WouldBlock
        } else {
            Incoming::Error(e)
        }
    }
}

pub(crate) mod sealed {
    use super::{Addr, DatagramSocket, Incoming};

    /// The crate-private side of [`Transport`](super::Transport).
    pub trait TransportImpl: Send + 'static {
        /// What one request is: a [`Connection`](super::Connection) or a
        /// [`Datagram`](super::Datagram).
        type Request: Arrival;
        /// The bound address.
        fn local_addr(&self) -> &Addr;
        /// Takes one request without blocking.
        fn next(&mut self) -> Incoming<Self::Request>;
        /// Takes up to `max` requests without blocking, passing each to
        /// `each`: one `recvmmsg(2)` for datagram transports, one [`next`]
        /// otherwise.
        ///
        /// [`next`]: TransportImpl::next
        fn next_batch(&mut self, max: usize, each: &mut dyn FnMut(Incoming<Self::Request>)) {
            let _ = max;
            each(self.next());
        }
        /// The socket the loop waits on.
        fn raw_fd(&self) -> std::os::fd::RawFd;
        /// A receive function other threads may call (a pool worker taking
        /// the next batch itself), with receive slots of its own; `None`
        /// for streams.
        fn shared_recv(&self) -> Option<super::SharedRecv<Self::Request>> {
            None
        }
        /// The shared socket of a datagram transport (`None` for streams).
        fn datagram_socket(&self) -> Option<&std::sync::Arc<DatagramSocket>> {
            None
        }
        /// The listener a forked child closes (a datagram child keeps its
        /// socket to reply).
        fn listener_fd(&self) -> Option<std::os::fd::RawFd>;
    }

    /// A request as a transport delivers it.
    pub trait Arrival: Send + 'static {
        /// Datagrams arrive, run and are answered in batches; connections
        /// one at a time.
        const BATCHED: bool = false;
        /// The socket replies go out on, for a batch's outbox.
        fn reply_socket(&self) -> Option<&std::sync::Arc<DatagramSocket>> {
            None
        }
        /// What a drain can cut.
        fn cut(&self) -> crate::inflight::Cut;
        /// Closes a request that `verify_request` refused.
        fn reject(self);
    }
}

pub(crate) use sealed::{Arrival, TransportImpl};

/// A way for requests to arrive: implemented by the four transports of this
/// crate ([`TcpTransport`], [`UdpTransport`], [`UnixStreamTransport`],
/// [`UnixDatagramTransport`]) and sealed, so the loop can change without
/// breaking anyone. Name it to write code generic over the transport.
pub trait Transport: TransportImpl {}

impl Arrival for Connection {
    fn cut(&self) -> Cut {
        Cut::Stream(Arc::clone(&self.stream), Arc::clone(&self.phase))
    }
    fn reject(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }
}

impl Arrival for Datagram {
    const BATCHED: bool = true;
    fn reply_socket(&self) -> Option<&Arc<DatagramSocket>> {
        Some(&self.socket)
    }
    fn cut(&self) -> Cut {
        Cut::Datagram
    }
    fn reject(self) {}
}

/// Resolves `addr` and calls `f` on each result until one succeeds (std's
/// `each_addr`).
fn each_addr<A: ToSocketAddrs, T>(
    addr: A,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match f(a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "address resolved to nothing")
    }))
}

/// `socket(2)` for `addr`'s family, with the IPv6 and reuse options.
fn socket_for(addr: &SocketAddr, ty: Type, config: &Config) -> io::Result<Socket> {
    let proto = if ty == Type::STREAM {
        Protocol::TCP
    } else {
        Protocol::UDP
    };
    let socket = Socket::new(Domain::for_address(*addr), ty, Some(proto))?;
    if let (SocketAddr::V6(_), Some(only)) = (addr, config.only_v6) {
        socket.set_only_v6(only)?;
    }
    if config.reuse_port {
        socket.set_reuse_port(true)?;
    }
    Ok(socket)
}
