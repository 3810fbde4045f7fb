//! Python-style constructors on each server type: `TcpServer::bind(addr,
//! handler)` and friends, with every option at its default and the
//! strategy's `Default`. Use [`ServerBuilder`] for anything else.
//!
//! A Rust wrinkle: in an expression, `TcpServer::bind(..)` leaves the
//! strategy to inference (a type alias's default applies only when its
//! parameters are written), so the sequential server is spelled
//! `TcpServer::<_>::bind(..)`, or built with `ServerBuilder::new().tcp(..)`.
//! The strategy aliases (`ThreadingTcpServer::bind`, ...) fix it already.

use std::io;
use std::net::{TcpListener, ToSocketAddrs, UdpSocket};
#[cfg(unix)]
use std::os::unix::net::{UnixDatagram, UnixListener};
#[cfg(unix)]
use std::path::Path;

use crate::builder::ServerBuilder;
use crate::handler::{DatagramHandler, StreamHandler};
use crate::server::Server;
use crate::strategy::Strategy;
use crate::transport::{TcpTransport, UdpTransport};
#[cfg(unix)]
use crate::transport::{UnixDatagramTransport, UnixStreamTransport};

fn builder<S: Strategy + Default>() -> ServerBuilder<S> {
    ServerBuilder::new().strategy(S::default())
}

impl<H: StreamHandler + 'static, S: Strategy + Default> Server<TcpTransport, H, S> {
    /// Binds a TCP server with default options (Python's
    /// `TCPServer(server_address, RequestHandlerClass)`). Port 0 lets the OS
    /// pick; an invalid address or a failed bind returns `Err` and leaks no
    /// descriptor.
    pub fn bind<A: ToSocketAddrs>(addr: A, handler: H) -> io::Result<Self> {
        builder().tcp(addr, handler)
    }

    /// Serves on an already listening TCP listener (socket activation,
    /// tests).
    pub fn from_listener(listener: TcpListener, handler: H) -> io::Result<Self> {
        builder().tcp_listener(listener, handler)
    }
}

impl<H: DatagramHandler + 'static, S: Strategy + Default> Server<UdpTransport, H, S> {
    /// Binds a UDP server with default options (Python's `UDPServer`).
    pub fn bind<A: ToSocketAddrs>(addr: A, handler: H) -> io::Result<Self> {
        builder().udp(addr, handler)
    }

    /// Serves on an already bound UDP socket.
    pub fn from_socket(socket: UdpSocket, handler: H) -> io::Result<Self> {
        builder().udp_socket(socket, handler)
    }
}

#[cfg(unix)]
impl<H: StreamHandler + 'static, S: Strategy + Default> Server<UnixStreamTransport, H, S> {
    /// Binds a Unix stream server at `path` (Python's `UnixStreamServer`);
    /// a stale socket file there is replaced, and the path is removed when
    /// the server closes.
    pub fn bind<P: AsRef<Path>>(path: P, handler: H) -> io::Result<Self> {
        builder().unix_stream(path, handler)
    }

    /// Serves on an already listening Unix listener.
    pub fn from_listener(listener: UnixListener, handler: H) -> io::Result<Self> {
        builder().unix_listener(listener, handler)
    }
}

#[cfg(unix)]
impl<H: DatagramHandler + 'static, S: Strategy + Default> Server<UnixDatagramTransport, H, S> {
    /// Binds a Unix datagram server at `path` (Python's
    /// `UnixDatagramServer`).
    pub fn bind<P: AsRef<Path>>(path: P, handler: H) -> io::Result<Self> {
        builder().unix_datagram(path, handler)
    }

    /// Serves on an already bound Unix datagram socket.
    pub fn from_socket(socket: UnixDatagram, handler: H) -> io::Result<Self> {
        builder().unix_datagram_socket(socket, handler)
    }
}
