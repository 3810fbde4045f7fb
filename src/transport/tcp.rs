//! TCP: `TCPServer`.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use super::Incoming;
use crate::builder::Config;
use crate::handler::Connection;
use crate::net::{Addr, Stream};

/// A TCP listener: each request is one accepted connection.
#[derive(Debug)]
pub struct TcpTransport {
    listener: TcpListener,
    addr: Addr,
}

/// Resolves `addr` and calls `f` on each result until one succeeds.
pub(super) fn each_addr<A: ToSocketAddrs, T>(
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
pub(super) fn socket_for(addr: &SocketAddr, ty: Type, config: &Config) -> io::Result<Socket> {
    let proto = if ty == Type::STREAM {
        Protocol::TCP
    } else {
        Protocol::UDP
    };
    let socket = Socket::new(Domain::for_address(*addr), ty, Some(proto))?;
    if let (SocketAddr::V6(_), Some(only)) = (addr, config.only_v6) {
        socket.set_only_v6(only)?;
    }
    #[cfg(unix)]
    if config.reuse_port {
        socket.set_reuse_port(true)?;
    }
    Ok(socket)
}

impl TcpTransport {
    pub(crate) fn bind<A: ToSocketAddrs>(addr: A, config: &Config) -> io::Result<TcpTransport> {
        each_addr(addr, |a| {
            // On error the socket drops here: no descriptor leaks
            // (CPython's bind-leak test, bpo-22435).
            let socket = socket_for(&a, Type::STREAM, config)?;
            #[cfg(unix)]
            socket.set_reuse_address(config.reuse_address)?;
            socket.bind(&a.into())?;
            socket.listen(config.backlog)?;
            TcpTransport::from_listener(socket.into())
        })
    }

    pub(crate) fn from_listener(listener: TcpListener) -> io::Result<TcpTransport> {
        listener.set_nonblocking(true)?;
        let addr = Addr::Inet(listener.local_addr()?);
        Ok(TcpTransport { listener, addr })
    }
}

impl super::Transport for TcpTransport {
    type Request = Connection;

    fn local_addr(&self) -> &Addr {
        &self.addr
    }

    fn next(&mut self) -> Incoming<Connection> {
        match self.listener.accept() {
            Ok((stream, peer)) => Incoming::Request(
                Connection {
                    stream: Arc::new(Stream::Tcp(stream)),
                },
                Addr::Inet(peer),
            ),
            Err(e) => Incoming::from_error(e),
        }
    }

    #[cfg(unix)]
    fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.listener)
    }

    #[cfg(unix)]
    fn child_closes(&self) -> Option<std::os::fd::RawFd> {
        Some(self.raw_fd())
    }
}
