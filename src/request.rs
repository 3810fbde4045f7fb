//! What a handler is given: [`StreamRequest`] for a connection,
//! [`DatagramRequest`] for one datagram.

use std::io::{self, BufReader, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::control::ServerHandle;
use crate::net::{Addr, DatagramSocket, Stream};

/// One accepted connection, as Python's `StreamRequestHandler` sees it.
///
/// | Python | Rust |
/// |---|---|
/// | `self.rfile` (buffered) | [`rfile`](Self::rfile): a [`BufReader`], so `read_line`, `lines()`, `fill_buf` work |
/// | `self.wfile` (unbuffered, `sendall`) | [`wfile`](Self::wfile): every `write` is a whole write |
/// | `self.request` / `self.connection` | [`stream`](Self::stream) |
/// | `self.client_address` | [`peer`](Self::peer) |
/// | `self.timeout` | [`set_read_timeout`](Self::set_read_timeout), [`set_write_timeout`](Self::set_write_timeout) |
/// | `self.server.shutdown()` | [`server`](Self::server)`().shutdown()` |
///
/// `rfile` and `wfile` are separate fields so both can be borrowed at once:
/// `std::io::copy(&mut req.rfile, &mut req.wfile)?` is a complete echo.
/// A method such as [`peer`](Self::peer) borrows the whole request, so copy
/// what you need first when writing it:
///
/// ```
/// use std::io::Write;
/// use socketserver::{HandlerResult, StreamRequest};
///
/// fn greet(req: &mut StreamRequest) -> HandlerResult {
///     let peer = req.peer().clone(); // `writeln!(req.wfile, "{}", req.peer())` would not compile
///     writeln!(req.wfile, "hello, {peer}")?;
///     Ok(())
/// }
/// ```
///
/// When the handler returns, the server shuts the write half down (the
/// client reads EOF) and closes the socket.
#[derive(Debug)]
pub struct StreamRequest {
    /// The buffered reading side (Python's `rfile`).
    pub rfile: BufReader<Reader>,
    /// The unbuffered writing side (Python's `wfile`): every `write` sends
    /// the whole buffer or fails, so there are no partial writes and no
    /// flush is needed.
    pub wfile: Writer,
    stream: Arc<Stream>,
    peer: Addr,
    server: ServerHandle,
}

impl StreamRequest {
    pub(crate) fn new(stream: Arc<Stream>, peer: Addr, server: ServerHandle) -> StreamRequest {
        StreamRequest {
            rfile: BufReader::new(Reader(Arc::clone(&stream))),
            wfile: Writer(Arc::clone(&stream)),
            stream,
            peer,
            server,
        }
    }

    /// The peer's address (Python's `client_address`).
    #[doc(alias = "client_address")]
    pub fn peer(&self) -> &Addr {
        &self.peer
    }

    /// The raw connected socket (Python's `request` / `connection`).
    ///
    /// Reading from it directly skips whatever `rfile` has buffered.
    #[doc(alias = "connection")]
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Sets this connection's read timeout (`SO_RCVTIMEO`); a read that
    /// times out fails with `WouldBlock`/`TimedOut`. The server's
    /// [`read_timeout`](crate::ServerBuilder::read_timeout) is applied before
    /// `setup` runs.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }

    /// Sets this connection's write timeout (`SO_SNDTIMEO`).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_write_timeout(timeout)
    }

    /// A handle to the server, to stop it from inside a handler.
    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// True once the server is shutting down: a long-lived handler should
    /// finish what it is doing and return.
    pub fn is_shutting_down(&self) -> bool {
        self.server.is_shutting_down()
    }
}

/// The reading half of a connection; [`StreamRequest::rfile`] buffers it.
#[derive(Debug)]
pub struct Reader(Arc<Stream>);

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

/// The writing half of a connection (Python's `_SocketWriter`).
///
/// `write` never writes part of a buffer: it loops until all of it is sent
/// (retrying on `EINTR`), like Python's `sendall`, and returns its length.
/// There is no buffer, so `flush` does nothing and nothing waits in memory.
#[derive(Debug)]
pub struct Writer(Arc<Stream>);

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        (&*self.0).write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for Writer {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// One received datagram, as Python's `DatagramRequestHandler` sees it.
///
/// Unlike Python, nothing is sent unless the handler calls
/// [`reply`](Self::reply) (Python always sends `wfile`'s contents, even an
/// empty datagram, even after an error).
#[derive(Debug)]
pub struct DatagramRequest {
    data: Vec<u8>,
    peer: Addr,
    socket: Arc<DatagramSocket>,
    server: ServerHandle,
}

impl DatagramRequest {
    pub(crate) fn new(
        data: Vec<u8>,
        peer: Addr,
        socket: Arc<DatagramSocket>,
        server: ServerHandle,
    ) -> DatagramRequest {
        DatagramRequest {
            data,
            peer,
            socket,
            server,
        }
    }

    /// The datagram's bytes (Python's `self.request[0]`, or `rfile`'s
    /// contents). `&[u8]` implements `Read` and `BufRead`.
    #[doc(alias = "rfile")]
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Takes the datagram's bytes out of the request.
    pub fn take_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }

    /// The sender's address (Python's `client_address`).
    #[doc(alias = "client_address")]
    pub fn peer(&self) -> &Addr {
        &self.peer
    }

    /// Sends one datagram back to the sender (`sendto(2)`).
    ///
    /// Fails with `WriteZero` if the kernel sent less than the whole
    /// datagram, and with `InvalidInput` if the sender is an unnamed Unix
    /// socket.
    pub fn reply(&self, buf: &[u8]) -> io::Result<()> {
        let n = self.socket.send_to(buf, &self.peer)?;
        if n == buf.len() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {n} of {} bytes of a datagram", buf.len()),
            ))
        }
    }

    /// The server's socket (Python's `self.request[1]`), to send to other
    /// peers, as a chat room does.
    pub fn socket(&self) -> &Arc<DatagramSocket> {
        &self.socket
    }

    /// A handle to the server, to stop it from inside a handler.
    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// True once the server is shutting down.
    pub fn is_shutting_down(&self) -> bool {
        self.server.is_shutting_down()
    }
}
