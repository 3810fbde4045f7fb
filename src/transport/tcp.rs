//! TCP: `TCPServer`.

use std::io;
use std::net::{TcpListener, ToSocketAddrs};

use socket2::Type;

use super::{Connection, Incoming, Transport, TransportImpl, each_addr, socket_for};
use crate::config::Config;
use crate::net::{Addr, Stream};

/// A TCP listener: each request is one accepted connection.
#[derive(Debug)]
pub struct TcpTransport {
    listener: TcpListener,
    addr: Addr,
}

impl TcpTransport {
    pub(crate) fn bind<A: ToSocketAddrs>(addr: A, config: &Config) -> io::Result<TcpTransport> {
        each_addr(addr, |a| {
            // On error the socket drops here: no descriptor leaks
            // (CPython's bind-leak test, bpo-22435).
            let socket = socket_for(&a, Type::STREAM, config)?;
            socket.set_reuse_address(config.reuse_address)?;
            socket.bind(&a.into())?;
            socket.listen(config.backlog)?;
            TcpTransport::from_listener(socket.into())
        })
    }

    /// The listening socket itself (the reactor accepts through mio, which
    /// makes accepted sockets non-blocking in the same `accept4`).
    pub(crate) fn into_listener(self) -> TcpListener {
        self.listener
    }

    pub(crate) fn from_listener(listener: TcpListener) -> io::Result<TcpTransport> {
        listener.set_nonblocking(true)?;
        let addr = Addr::Inet(listener.local_addr()?);
        Ok(TcpTransport { listener, addr })
    }
}

impl TransportImpl for TcpTransport {
    type Request = Connection;

    fn local_addr(&self) -> &Addr {
        &self.addr
    }

    fn next(&mut self) -> Incoming<Connection> {
        match self.listener.accept() {
            Ok((stream, peer)) => {
                Incoming::Request(Connection::new(Stream::Tcp(stream)), Addr::Inet(peer))
            }
            Err(e) => Incoming::from_error(e),
        }
    }

    fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.listener)
    }

    fn listener_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(self.raw_fd())
    }
}

impl Transport for TcpTransport {}
