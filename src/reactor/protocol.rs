//! The handler side of the reactor: [`Protocol`] (Python's
//! `asyncio.Protocol`), the [`Conn`] it writes to (asyncio's transport),
//! and the [`Factory`] that makes one protocol per connection.

use std::any::Any;
use std::fmt;
use std::io;

use super::buffers::OutBuf;
use super::glue::{Addr, ServerHandle};
use super::offload::{Mailbox, Pool};
use crate::HandlerError;

/// A value sent to a connection from outside its callbacks: the result of
/// [`Conn::offload`], or anything sent through a [`Mailbox`].
pub type Message = Box<dyn Any + Send>;

/// Which timeout fired (see [`Protocol::timed_out`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timeout {
    /// No byte arrived for the idle timeout, with nothing to send.
    Idle,
    /// A frame was started (unconsumed input) and not completed in time.
    IncompleteFrame,
    /// Output waited and the peer took none of it in time.
    WriteStall,
}

/// One connection's handler in event-loop style, with asyncio's names.
///
/// The loop calls these methods on the loop's own thread; none of them may
/// block (hand blocking work to [`Conn::offload`]). Replies go into the
/// connection's output buffer with [`Conn::write`] and leave in one
/// `write(2)` at the end of the loop turn. A panic in any method is caught,
/// reported to [`Factory::handle_error`] and closes that connection only.
///
/// An echo server's whole protocol:
///
/// ```
/// use socketserver::reactor::{Conn, Protocol};
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, data: &[u8], conn: &mut Conn<'_>) -> std::io::Result<usize> {
///         conn.write(data);
///         Ok(data.len()) // every byte consumed
///     }
/// }
/// ```
pub trait Protocol: 'static {
    /// The connection is accepted and verified; nothing has been read yet.
    fn connection_made(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// Bytes arrived. `data` is what the previous calls left unconsumed
    /// followed by the new bytes; return how many bytes from its start you
    /// consumed (complete frames). The rest is kept and offered again,
    /// with more bytes, next time: up to the server's
    /// [`max_input`](super::ReactorBuilder::max_input), beyond which the
    /// connection is closed. The framing helpers in
    /// [`reactor::framing`](super::framing) return this count.
    ///
    /// An `Err` goes to [`Factory::handle_error`] and closes the
    /// connection after what was already written is flushed (write an
    /// error reply first, then return the error).
    fn data_received(&mut self, data: &[u8], conn: &mut Conn<'_>) -> io::Result<usize>;

    /// The end of one read batch: every byte the socket had was offered to
    /// [`data_received`](Self::data_received) (Netty's
    /// `channelReadComplete`). The output is flushed right after.
    fn read_complete(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// The peer closed its sending side. Return true to keep the connection
    /// half-open (you will [`close`](Conn::close) it later); the default,
    /// false, closes it once the output is flushed.
    fn eof_received(&mut self, conn: &mut Conn<'_>) -> bool {
        let _ = conn;
        false
    }

    /// A timeout of the server fired. Return true to keep the connection
    /// (the timeout is re-armed); the default, false, closes it.
    fn timed_out(&mut self, kind: Timeout, conn: &mut Conn<'_>) -> bool {
        let _ = (kind, conn);
        false
    }

    /// A [`Message`] arrived: an [`offload`](Conn::offload) result or a
    /// value sent through a [`Mailbox`]. Ignored by default.
    fn message_received(&mut self, message: Message, conn: &mut Conn<'_>) {
        let _ = (message, conn);
    }

    /// The connection is closed; `error` is the I/O error that ended it, if
    /// one did. Called once, last.
    fn connection_lost(&mut self, error: Option<&io::Error>) {
        let _ = error;
    }
}

/// Makes one [`Protocol`] per connection and holds the server hooks
/// (Python's `verify_request` and `handle_error`). A closure
/// `|peer: &Addr| MyProtocol::new()` is a factory.
pub trait Factory: Send + Sync + 'static {
    /// The protocol each connection gets.
    type Protocol: Protocol;

    /// A protocol for a new connection from `peer`.
    fn build(&self, peer: &Addr) -> Self::Protocol;

    /// Accept the connection from `peer`? A refused one is closed before
    /// any protocol exists. Default: true.
    fn verify_request(&self, peer: &Addr) -> bool {
        let _ = peer;
        true
    }

    /// A protocol returned an error or panicked. Default: log it.
    fn handle_error(&self, peer: &Addr, error: &HandlerError) {
        log::error!("socketserver: error in the protocol for {peer}: {error}");
    }
}

impl<F, P> Factory for F
where
    F: Fn(&Addr) -> P + Send + Sync + 'static,
    P: Protocol,
{
    type Protocol = P;
    fn build(&self, peer: &Addr) -> P {
        self(peer)
    }
}

/// What a callback may ask of its connection's state, kept by the loop.
#[derive(Debug, Default)]
pub(crate) struct Asks {
    /// Close once the output is flushed.
    pub(crate) close: bool,
    /// Close now, dropping unsent output.
    pub(crate) abort: bool,
    /// The protocol paused reading.
    pub(crate) paused: bool,
    /// Offloaded jobs not yet delivered.
    pub(crate) jobs: u32,
}

/// A connection as its protocol sees it during a callback: the output
/// buffer and the connection's controls (asyncio's transport).
///
/// `Conn` is also [`io::Write`], so `write!(conn, ...)` appends formatted
/// text to the output buffer.
pub struct Conn<'a> {
    pub(crate) out: &'a mut OutBuf,
    pub(crate) asks: &'a mut Asks,
    pub(crate) peer: &'a Addr,
    pub(crate) handle: &'a ServerHandle,
    pub(crate) mailbox: &'a dyn Fn() -> Mailbox,
    pub(crate) pool: &'a Pool,
}

impl fmt::Debug for Conn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("peer", self.peer)
            .field("pending_output", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Conn<'_> {
    /// Appends `bytes` to the output buffer; they leave at the end of the
    /// loop turn (Python's `transport.write`).
    pub fn write(&mut self, bytes: &[u8]) {
        self.out.push(bytes);
    }

    /// The output buffer itself, to encode a reply in place.
    pub fn output(&mut self) -> &mut Vec<u8> {
        self.out.vec()
    }

    /// Bytes written and not yet sent (asyncio's
    /// `get_write_buffer_size`).
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    /// Closes the connection once the output is flushed (asyncio's
    /// `transport.close`); no more input is offered.
    pub fn close(&mut self) {
        self.asks.close = true;
    }

    /// Closes the connection now, dropping unsent output
    /// (asyncio's `transport.abort`).
    pub fn abort(&mut self) {
        self.asks.abort = true;
    }

    /// Stops reading this connection until [`resume_reading`](Self::resume_reading).
    pub fn pause_reading(&mut self) {
        self.asks.paused = true;
    }

    /// Reads this connection again after [`pause_reading`](Self::pause_reading).
    pub fn resume_reading(&mut self) {
        self.asks.paused = false;
    }

    /// The peer's address.
    pub fn peer(&self) -> &Addr {
        self.peer
    }

    /// The server: [`shutdown`](ServerHandle::shutdown) works from here.
    pub fn server(&self) -> &ServerHandle {
        self.handle
    }

    /// True once the server is shutting down: finish politely.
    pub fn is_shutting_down(&self) -> bool {
        self.handle.is_shutting_down()
    }

    /// A handle that sends [`Message`]s to this connection from any thread
    /// (a publisher reaching a subscriber on another loop).
    pub fn mailbox(&self) -> Mailbox {
        (self.mailbox)()
    }

    /// Runs `job` on the server's blocking pool (a shell command, a disk
    /// write) and delivers its result to
    /// [`message_received`](Protocol::message_received) on this loop.
    /// The connection counts as busy until then, so a drain waits for it.
    /// A job that panics delivers a [`PanicError`](crate::PanicError)
    /// instead of its result.
    pub fn offload<T, J>(&mut self, job: J)
    where
        T: Send + 'static,
        J: FnOnce() -> T + Send + 'static,
    {
        self.asks.jobs += 1;
        let mailbox = self.mailbox();
        self.pool.run(Box::new(move || {
            mailbox.deliver(super::offload::run_caught(job), true);
        }));
    }
}

impl io::Write for Conn<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.push(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
