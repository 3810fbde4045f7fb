//! Unix domain sockets: `UnixStreamServer` and `UnixDatagramServer`.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use socket2::{Domain, SockAddr, Socket, Type};

use super::{Connection, Datagram, Incoming, Receiver, Transport, TransportImpl};
use crate::config::Config;
use crate::net::{Addr, DatagramSocket, Stream};

/// The socket file a server created, removed when the server closes, but
/// only if it is still the same file (another server may have replaced it).
#[derive(Debug)]
struct SocketPath {
    path: PathBuf,
    id: (u64, u64),
}

impl SocketPath {
    /// Binds `ty` at `path`. A socket file already there is removed only if
    /// it is stale: when a server still answers a `connect(2)` on it, the
    /// bind fails with `AddrInUse` and the live server keeps its path (as
    /// Python's `bind` fails). Anything that is not a socket is refused.
    fn bind(path: &Path, ty: Type) -> io::Result<(Socket, SocketPath)> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if someone_answers(path, ty) {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("{} is in use by a running server", path.display()),
                    ));
                }
                fs::remove_file(path)?
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let socket = Socket::new(Domain::UNIX, ty, None)?;
        socket.bind(&SockAddr::unix(path)?)?;
        let meta = fs::symlink_metadata(path)?;
        let guard = SocketPath {
            path: path.to_path_buf(),
            id: (meta.dev(), meta.ino()),
        };
        Ok((socket, guard))
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.id
        {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// True if a server is bound at `path`: a stream socket accepts a connect,
/// a datagram socket accepts a connect (it refuses with `ECONNREFUSED` when
/// nobody holds it).
fn someone_answers(path: &Path, ty: Type) -> bool {
    let Ok(probe) = Socket::new(Domain::UNIX, ty, None) else {
        return false;
    };
    match SockAddr::unix(path) {
        Ok(addr) => probe.connect(&addr).is_ok(),
        Err(_) => false,
    }
}

fn unix_addr(a: &SockAddr) -> Addr {
    Addr::Unix(a.as_pathname().map(Path::to_path_buf))
}

/// A Unix stream listener: each request is one accepted connection.
/// `TCP_NODELAY` is never applied here.
#[derive(Debug)]
pub struct UnixStreamTransport {
    listener: UnixListener,
    addr: Addr,
    // Dropped after the listener: close, then unlink.
    _path: Option<SocketPath>,
}

impl UnixStreamTransport {
    pub(crate) fn bind(path: &Path, config: &Config) -> io::Result<UnixStreamTransport> {
        let (socket, guard) = SocketPath::bind(path, Type::STREAM)?;
        socket.listen(config.backlog)?;
        let mut t = UnixStreamTransport::from_listener(socket.into())?;
        t._path = Some(guard);
        Ok(t)
    }

    pub(crate) fn from_listener(listener: UnixListener) -> io::Result<UnixStreamTransport> {
        listener.set_nonblocking(true)?;
        let addr = Addr::from_unix(&listener.local_addr()?);
        Ok(UnixStreamTransport {
            listener,
            addr,
            _path: None,
        })
    }
}

impl TransportImpl for UnixStreamTransport {
    type Request = Connection;

    fn local_addr(&self) -> &Addr {
        &self.addr
    }

    fn next(&mut self) -> Incoming<Connection> {
        match self.listener.accept() {
            Ok((stream, peer)) => Incoming::Request(
                Connection::new(Stream::Unix(stream)),
                Addr::from_unix(&peer),
            ),
            Err(e) => Incoming::from_error(e),
        }
    }

    fn raw_fd(&self) -> std::os::fd::RawFd {
        self.listener.as_raw_fd()
    }

    fn listener_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(self.raw_fd())
    }
}

/// A Unix datagram socket: each request is one datagram. A client must bind
/// its own path to get replies.
///
/// As for [`UdpTransport`](crate::UdpTransport), datagrams arrive in batches
/// of up to 32 per `recvmmsg(2)` (Linux; `recvmsg(2)` in a loop elsewhere)
/// and the replies made while a batch runs leave in one `sendmmsg(2)`.
#[derive(Debug)]
pub struct UnixDatagramTransport {
    socket: Arc<DatagramSocket>,
    receiver: Receiver,
    addr: Addr,
    _path: Option<SocketPath>,
}

impl UnixDatagramTransport {
    pub(crate) fn bind(path: &Path, config: &Config) -> io::Result<UnixDatagramTransport> {
        let (socket, guard) = SocketPath::bind(path, Type::DGRAM)?;
        let mut t = UnixDatagramTransport::from_socket(socket.into(), config)?;
        t._path = Some(guard);
        Ok(t)
    }

    pub(crate) fn from_socket(
        socket: UnixDatagram,
        config: &Config,
    ) -> io::Result<UnixDatagramTransport> {
        let addr = Addr::from_unix(&socket.local_addr()?);
        Ok(UnixDatagramTransport {
            socket: Arc::new(DatagramSocket::Unix(socket)),
            receiver: Receiver::new(config.max_packet_size),
            addr,
            _path: None,
        })
    }
}

impl TransportImpl for UnixDatagramTransport {
    type Request = Datagram;

    fn datagram_socket(&self) -> Option<&Arc<DatagramSocket>> {
        Some(&self.socket)
    }

    fn local_addr(&self) -> &Addr {
        &self.addr
    }

    fn next(&mut self) -> Incoming<Datagram> {
        let mut one = Incoming::WouldBlock;
        self.next_batch(1, &mut |i| one = i);
        one
    }

    fn shared_recv(&self) -> Option<super::SharedRecv<Datagram>> {
        Some(self.receiver.shared(&self.socket, unix_addr))
    }

    fn next_batch(&mut self, max: usize, each: &mut dyn FnMut(Incoming<Datagram>)) {
        self.receiver.recv(&self.socket, max, unix_addr, each);
    }

    fn raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }

    fn listener_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
}

impl Transport for UnixStreamTransport {}

impl Transport for UnixDatagramTransport {}
