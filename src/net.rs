//! The socket types a handler sees: one address type, one stream type and one
//! datagram socket type for every transport.
//!
//! A [`StreamHandler`](crate::StreamHandler) is written once and runs on TCP
//! and on Unix stream sockets; a [`DatagramHandler`](crate::DatagramHandler)
//! runs on UDP and on Unix datagram sockets. These enums are what makes that
//! possible: they hold either kind and forward to the std type inside.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

/// The address of a server or of a peer.
///
/// Python's `client_address` is an `(host, port)` tuple for TCP and UDP and a
/// path string for Unix sockets; here both are one enum so hooks such as
/// [`verify_request`](crate::StreamHandler::verify_request) have one
/// signature for every transport.
///
/// ```
/// use socketserver::Addr;
/// let addr = Addr::Inet("127.0.0.1:9999".parse().unwrap());
/// assert_eq!(addr.to_string(), "127.0.0.1:9999");
/// assert_eq!(addr.as_inet().unwrap().port(), 9999);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    /// An IPv4 or IPv6 socket address (TCP and UDP).
    ///
    /// On a dual-stack listener, IPv4 peers appear in the IPv6 mapped form
    /// `[::ffff:a.b.c.d]:port`.
    Inet(SocketAddr),
    /// A Unix socket path; `None` for an unnamed socket (a client that did
    /// not `bind`, which is the usual case for stream clients).
    Unix(Option<PathBuf>),
}

impl Addr {
    /// The IP socket address, if this is one.
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            Addr::Inet(a) => Some(*a),
            Addr::Unix(_) => None,
        }
    }

    /// The peer's IP in canonical form: an IPv4 client of a dual-stack
    /// listener is `127.0.0.1`, not `::ffff:127.0.0.1`
    /// ([`IpAddr::to_canonical`](std::net::IpAddr::to_canonical)). `None`
    /// for Unix addresses.
    ///
    /// ```
    /// use socketserver::Addr;
    /// let mapped = Addr::Inet("[::ffff:127.0.0.1]:5000".parse().unwrap());
    /// assert_eq!(mapped.ip(), Some("127.0.0.1".parse().unwrap()));
    /// assert!(mapped.is_loopback());
    /// ```
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.as_inet().map(|a| a.ip().to_canonical())
    }

    /// True for a loopback IP (`127.0.0.0/8`, `::1`, and their IPv4-mapped
    /// forms) and for every Unix socket address, which is local by nature.
    pub fn is_loopback(&self) -> bool {
        self.ip().is_none_or(|ip| ip.is_loopback())
    }

    /// The Unix socket path, if this is a named Unix address.
    pub fn as_path(&self) -> Option<&std::path::Path> {
        match self {
            Addr::Unix(Some(p)) => Some(p),
            _ => None,
        }
    }

    pub(crate) fn from_unix(addr: &std::os::unix::net::SocketAddr) -> Addr {
        Addr::Unix(addr.as_pathname().map(PathBuf::from))
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Inet(a) => a.fmt(f),
            Addr::Unix(Some(p)) => p.display().fmt(f),
            Addr::Unix(None) => f.write_str("(unnamed unix socket)"),
        }
    }
}

impl From<SocketAddr> for Addr {
    fn from(a: SocketAddr) -> Addr {
        Addr::Inet(a)
    }
}

/// A connected stream socket: TCP or Unix.
///
/// Reading and writing go straight to the socket (`read(2)`/`write(2)`), and
/// are implemented for `&Stream` too, so one shared stream can be read and
/// written from two places, as [`StreamRequest`](crate::StreamRequest) does.
/// Dropping the last owner closes the socket.
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix stream connection.
    Unix(UnixStream),
}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Stream::Tcp($s) => $e,
            Stream::Unix($s) => $e,
        }
    };
}

impl Stream {
    /// The peer's address (`getpeername(2)`).
    pub fn peer_addr(&self) -> io::Result<Addr> {
        match self {
            Stream::Tcp(s) => s.peer_addr().map(Addr::Inet),
            Stream::Unix(s) => s.peer_addr().map(|a| Addr::from_unix(&a)),
        }
    }

    /// This end's address (`getsockname(2)`).
    pub fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Stream::Tcp(s) => s.local_addr().map(Addr::Inet),
            Stream::Unix(s) => s.local_addr().map(|a| Addr::from_unix(&a)),
        }
    }

    /// Shuts down the read half, the write half or both (`shutdown(2)`).
    ///
    /// `Shutdown::Both` wakes a thread blocked in `read` on this socket,
    /// which is how a forced drain ends stuck handlers.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        each!(self, s => s.shutdown(how))
    }

    /// Sets the read timeout (`SO_RCVTIMEO`); `None` blocks forever.
    ///
    /// A read that times out fails with `WouldBlock` or `TimedOut`.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        each!(self, s => s.set_read_timeout(timeout))
    }

    /// Sets the write timeout (`SO_SNDTIMEO`); `None` blocks forever.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        each!(self, s => s.set_write_timeout(timeout))
    }

    /// Switches the socket between blocking and non-blocking mode
    /// (`O_NONBLOCK`).
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        each!(self, s => s.set_nonblocking(nonblocking))
    }

    /// Sets `TCP_NODELAY` on a TCP stream; does nothing on a Unix stream,
    /// where the option does not exist (Python raises `EOPNOTSUPP` there).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(nodelay),
            Stream::Unix(_) => Ok(()),
        }
    }

    /// The TCP stream inside, if this is one.
    pub fn as_tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Tcp(s) => Some(s),
            Stream::Unix(_) => None,
        }
    }

    /// The Unix stream inside, if this is one.
    pub fn as_unix(&self) -> Option<&UnixStream> {
        match self {
            Stream::Unix(s) => Some(s),
            Stream::Tcp(_) => None,
        }
    }

    /// A second handle to the same socket (`dup(2)`).
    pub fn try_clone(&self) -> io::Result<Stream> {
        match self {
            Stream::Tcp(s) => s.try_clone().map(Stream::Tcp),
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
        }
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        each!(*self, s => (&*s).read(buf))
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        each!(*self, s => (&*s).read_vectored(bufs))
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        each!(*self, s => (&*s).write(buf))
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        each!(*self, s => (&*s).write_vectored(bufs))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::os::fd::AsRawFd for Stream {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        each!(self, s => s.as_raw_fd())
    }
}

impl std::os::fd::AsFd for Stream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        each!(self, s => s.as_fd())
    }
}

/// A datagram socket: UDP or Unix datagram.
///
/// The server's own socket, shared (behind an `Arc`) by every
/// [`DatagramRequest`](crate::DatagramRequest), so a handler can reply to its
/// peer or send to any other address, as a chat room must.
#[derive(Debug)]
pub enum DatagramSocket {
    /// A UDP socket.
    Udp(UdpSocket),
    /// A Unix datagram socket.
    Unix(UnixDatagram),
}

impl DatagramSocket {
    /// Sends one datagram to `addr` (`sendto(2)`); returns the bytes sent.
    ///
    /// Fails with `InvalidInput` when the address family does not match the
    /// socket, or when the peer is an unnamed Unix socket (it cannot be
    /// answered).
    pub fn send_to(&self, buf: &[u8], addr: &Addr) -> io::Result<usize> {
        match (self, addr) {
            (DatagramSocket::Udp(s), Addr::Inet(a)) => s.send_to(buf, a),
            (DatagramSocket::Unix(s), Addr::Unix(Some(p))) => s.send_to(buf, p),
            (DatagramSocket::Unix(_), Addr::Unix(None)) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the peer is an unnamed unix socket and cannot be sent to",
            )),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("address {addr} does not match the socket's family"),
            )),
        }
    }

    /// This socket's address (`getsockname(2)`).
    pub fn local_addr(&self) -> io::Result<Addr> {
        match self {
            DatagramSocket::Udp(s) => s.local_addr().map(Addr::Inet),
            DatagramSocket::Unix(s) => s.local_addr().map(|a| Addr::from_unix(&a)),
        }
    }

    /// The UDP socket inside, if this is one.
    pub fn as_udp(&self) -> Option<&UdpSocket> {
        match self {
            DatagramSocket::Udp(s) => Some(s),
            DatagramSocket::Unix(_) => None,
        }
    }
}

impl std::os::fd::AsFd for DatagramSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            DatagramSocket::Udp(s) => s.as_fd(),
            DatagramSocket::Unix(s) => s.as_fd(),
        }
    }
}

impl std::os::fd::AsRawFd for DatagramSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.as_fd().as_raw_fd()
    }
}
