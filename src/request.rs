//! What a handler is given: [`StreamRequest`] for a connection,
//! [`DatagramRequest`] for one datagram.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::edge::{Opened, Wire};
use crate::inflight::Phase;
use crate::net::{Addr, DatagramSocket, Stream};
use crate::proxy::ProxyInfo;
use crate::shutdown::ServerHandle;
use crate::transport::Outbox;

/// One accepted connection, as Python's `StreamRequestHandler` sees it.
///
/// | Python | Rust |
/// |---|---|
/// | `self.rfile` (buffered) | [`rfile`](Self::rfile): [`BufRead`], so `read_line`, `fill_buf` work |
/// | `for line in self.rfile` | [`for line in req.rfile.lines()`](Rfile::lines) |
/// | `self.wfile` (unbuffered, `sendall`) | [`wfile`](Self::wfile): every `write` is a whole write |
/// | `self.request` / `self.connection` | [`stream`](Self::stream) |
/// | `self.client_address` | [`peer`](Self::peer) |
/// | `self.timeout` | [`set_read_timeout`](Self::set_read_timeout), [`set_write_timeout`](Self::set_write_timeout) |
/// | `self.server.shutdown()` | [`server`](Self::server)`.shutdown()` |
///
/// `rfile`, `wfile`, `peer` and `server` are separate fields (like
/// `std::process::Child`'s pipes) so each can be borrowed on its own:
/// `std::io::copy(&mut req.rfile, &mut req.wfile)?` is a complete echo, and
/// writing the peer's address is one statement:
///
/// ```
/// use std::io::Write;
/// use socketserver::{HandlerResult, StreamRequest};
///
/// fn greet(req: &mut StreamRequest) -> HandlerResult {
///     writeln!(req.wfile, "hello, {}", req.peer)?; // one send(2)
///     Ok(())
/// }
/// ```
///
/// When the handler returns, the server shuts the write half down (the
/// client reads EOF) and closes the socket.
#[derive(Debug)]
pub struct StreamRequest {
    /// The buffered reading side (Python's `rfile`).
    pub rfile: Rfile,
    /// The unbuffered writing side (Python's `wfile`): every `write` sends
    /// the whole buffer or fails, so there are no partial writes and no
    /// flush is needed; one `write!`/`writeln!` is formatted first and sent
    /// as one `send(2)`.
    pub wfile: Wfile,
    /// The peer's address (Python's `client_address`).
    #[doc(alias = "client_address")]
    pub peer: Addr,
    /// A handle to the server, to stop it from inside a handler (Python's
    /// `self.server.shutdown()`).
    pub server: ServerHandle,
    phase: Arc<Phase>,
    wire: Arc<Wire>,
    proxy: Option<ProxyInfo>,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsInfo>,
}

impl StreamRequest {
    pub(crate) fn new(opened: Opened, phase: Arc<Phase>, server: ServerHandle) -> StreamRequest {
        let wire = opened.wire;
        StreamRequest {
            rfile: Rfile(BufReader::new(RawReader(Arc::clone(&wire)))),
            wfile: Wfile(Arc::clone(&wire)),
            peer: opened.peer,
            server,
            phase,
            wire,
            proxy: opened.proxy,
            #[cfg(feature = "tls")]
            tls: opened.tls,
        }
    }

    /// What the PROXY protocol header said (the proxy's own address, the
    /// original destination), when the listener requires one; `None`
    /// otherwise. [`peer`](Self::peer) is already the client's address.
    pub fn proxy(&self) -> Option<&ProxyInfo> {
        self.proxy.as_ref()
    }

    /// What the TLS handshake agreed (SNI, ALPN, client certificates), on a
    /// TLS server; `None` on a plain one (feature `tls`).
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&crate::tls::TlsInfo> {
        self.tls.as_ref()
    }

    /// Starts the [`Deadlines`](crate::Deadlines) again: the idle time, the
    /// request deadline and the rate all count from now.
    /// [`next_request`](Self::next_request) does this itself.
    pub fn restart_deadlines(&self) -> io::Result<()> {
        self.wire.clock.restart(&self.wire.stream, false)
    }

    /// Waits for the next request on a long-lived connection: returns
    /// `Ok(true)` once its first byte can be read from `rfile`, `Ok(false)`
    /// at end of input or when the server shuts down. No polling: a drain
    /// ([`server_close`](crate::Server::server_close)) closes a connection
    /// waiting here at once, while requests being served run to the drain
    /// deadline.
    ///
    /// ```
    /// use std::io::Write;
    /// use socketserver::{HandlerResult, StreamRequest};
    ///
    /// fn one_command_per_line(req: &mut StreamRequest) -> HandlerResult {
    ///     while req.next_request()? {
    ///         let mut line = String::new();
    ///         req.rfile.read_line(&mut line)?;
    ///         writeln!(req.wfile, "ran {}", line.trim_end())?;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    ///
    /// A read timeout set on the connection still applies: an idle client
    /// then gets a `WouldBlock`/`TimedOut` error here.
    ///
    /// The [`Deadlines`](crate::Deadlines) start again here: the idle time
    /// bounds this wait, the request deadline and the rate count from it.
    pub fn next_request(&mut self) -> io::Result<bool> {
        let buffered = !self.rfile.buffer().is_empty();
        self.wire.clock.restart(&self.wire.stream, buffered)?;
        if buffered {
            return Ok(true);
        }
        self.phase.set_idle();
        // Publishing "idle" before checking the flag pairs with the drain,
        // which sets the flag before it closes idle connections: one of the
        // two sees the other.
        if self.server.is_shutting_down() || self.phase.is_cut() {
            self.phase.set_busy();
            return Ok(false);
        }
        let filled = loop {
            match self.rfile.fill_buf() {
                // A signal (a Ctrl-C handler's) interrupted the wait: wait on.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other.map(|b| !b.is_empty()),
            }
        };
        let still_open = self.phase.set_busy();
        match filled {
            Ok(got) => Ok(got && still_open),
            Err(_) if !still_open => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The raw connected socket (Python's `request` / `connection`).
    ///
    /// Reading from it directly skips whatever `rfile` has buffered.
    #[doc(alias = "connection")]
    pub fn stream(&self) -> &Stream {
        &self.wire.stream
    }

    /// Sets this connection's read timeout (`SO_RCVTIMEO`); a read that
    /// times out fails with `WouldBlock`/`TimedOut`. The server's
    /// [`read_timeout`](crate::ServerBuilder::read_timeout) is applied before
    /// `setup` runs.
    ///
    /// With [`Deadlines`](crate::Deadlines) set, a read waits at most the
    /// shorter of this timeout and the time left to the nearest deadline.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.wire.clock.set_user_read(&self.wire.stream, timeout)
    }

    /// Sets this connection's write timeout (`SO_SNDTIMEO`).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.wire.clock.set_user_write(&self.wire.stream, timeout)
    }

    /// True once the server is shutting down: a long-lived handler should
    /// finish what it is doing and return.
    pub fn is_shutting_down(&self) -> bool {
        self.server.is_shutting_down()
    }
}

/// The reading half of a connection, unbuffered (plaintext under TLS).
#[derive(Debug)]
struct RawReader(Arc<Wire>);

impl Read for RawReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// The buffered reading side of a connection (Python's `rfile`): [`Read`],
/// and [`BufRead`] through `&mut Rfile`, over an 8 KiB buffer.
///
/// Its own [`lines`](Self::lines), [`read_line`](Self::read_line) and
/// [`fill_buf`](Self::fill_buf) borrow only `rfile`, never the whole
/// request, so `for line in req.rfile.lines()` compiles (as Python's
/// `for line in self.rfile`) and its body can write to `req.wfile`. Pass
/// `&mut req.rfile` where a `BufRead` is expected.
#[derive(Debug)]
pub struct Rfile(BufReader<RawReader>);

impl Rfile {
    /// The lines the client sends, without their line endings (Python's
    /// `for line in self.rfile`); ends at end of input.
    ///
    /// ```
    /// use std::io::Write;
    /// use socketserver::{HandlerResult, StreamRequest};
    ///
    /// fn shout(req: &mut StreamRequest) -> HandlerResult {
    ///     for line in req.rfile.lines() {
    ///         writeln!(req.wfile, "{}", line?.to_uppercase())?;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn lines(&mut self) -> io::Lines<&mut Rfile> {
        BufRead::lines(self)
    }

    /// Appends one line, with its `\n`, to `buf`; returns its length, 0 at
    /// end of input (Python's `rfile.readline()`). See [`BufRead::read_line`].
    pub fn read_line(&mut self, buf: &mut String) -> io::Result<usize> {
        self.0.read_line(buf)
    }

    /// Appends bytes up to and including `byte` to `buf`; see
    /// [`BufRead::read_until`].
    pub fn read_until(&mut self, byte: u8, buf: &mut Vec<u8>) -> io::Result<usize> {
        self.0.read_until(byte, buf)
    }

    /// Fills the buffer if it is empty (one `recv(2)`) and returns it; see
    /// [`BufRead::fill_buf`].
    pub fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.0.fill_buf()
    }

    /// Marks `amount` buffered bytes as read; see [`BufRead::consume`].
    pub fn consume(&mut self, amount: usize) {
        self.0.consume(amount)
    }

    /// What has been received and buffered but not yet read.
    pub fn buffer(&self) -> &[u8] {
        self.0.buffer()
    }
}

impl Read for Rfile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl BufRead for &mut Rfile {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.0.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.0.consume(amount)
    }
}

/// The writing side of a connection (Python's `wfile`, a `_SocketWriter`).
///
/// `write` never writes part of a buffer: it loops until all of it is sent
/// (retrying on `EINTR`), like Python's `sendall`, and returns its length.
/// There is no buffer, so `flush` does nothing and nothing waits in memory.
/// On a TLS server it encrypts, and a write returns once its records are
/// sent.
#[derive(Debug)]
pub struct Wfile(Arc<Wire>);

impl Write for Wfile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    /// Formats all of `args` first, then sends it with one `send(2)`: a
    /// `writeln!(req.wfile, "{x}")` is one segment on the wire, not one per
    /// piece (which, with Nagle's algorithm, waits for the client's delayed
    /// ACK: 40 ms per reply).
    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> io::Result<()> {
        match args.as_str() {
            Some(s) => self.write_all(s.as_bytes()),
            None => self.write_all(fmt::format(args).as_bytes()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::os::fd::AsRawFd for Wfile {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.stream.as_raw_fd()
    }
}

/// One received datagram, as Python's `DatagramRequestHandler` sees it.
///
/// Unlike Python, nothing is sent unless the handler calls
/// [`reply`](Self::reply) (Python always sends `wfile`'s contents, even an
/// empty datagram, even after an error).
#[derive(Debug)]
pub struct DatagramRequest {
    /// The sender's address (Python's `client_address`).
    #[doc(alias = "client_address")]
    pub peer: Addr,
    /// A handle to the server, to stop it from inside a handler.
    pub server: ServerHandle,
    data: Vec<u8>,
    socket: Arc<DatagramSocket>,
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

    /// Sends one datagram back to the sender.
    ///
    /// Inside a handler the reply is queued and leaves with the replies of
    /// the rest of its batch (the datagrams one `recvmmsg(2)` took) in one
    /// `sendmmsg(2)` as soon as the batch's last handler returns (on Linux;
    /// `sendto(2)` per reply elsewhere); a reply the kernel refuses then
    /// goes to `handle_error` with this peer. Called on another thread, or
    /// for a reply over 256 KiB, it is one `sendto(2)` at once and its
    /// error is returned. To send at once from a handler, use
    /// [`socket`](Self::socket)`().send_to(..)`.
    ///
    /// Fails with `WriteZero` if the kernel sent less than the whole
    /// datagram, and with `InvalidInput` if the sender is an unnamed Unix
    /// socket.
    pub fn reply(&self, buf: &[u8]) -> io::Result<()> {
        if Outbox::queue(&self.socket, buf, &self.peer).is_some() {
            return Ok(());
        }
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

    /// True once the server is shutting down.
    pub fn is_shutting_down(&self) -> bool {
        self.server.is_shutting_down()
    }
}
