//! Error types: what a handler returns, and what the server reports to
//! [`handle_error`](crate::StreamHandler::handle_error).

use std::any::Any;
use std::fmt;

/// The error a handler returns: any error, boxed.
///
/// Because it is a `Box<dyn Error>`, `?` works on `io::Error`, parse errors,
/// `serde_json::Error` and your own types alike. Python's equivalent is "any
/// `Exception` raised by `handle()`".
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What `setup`, `handle` and `finish` return.
pub type HandlerResult = Result<(), HandlerError>;

/// A handler panicked; reported to `handle_error` like any other error.
///
/// Python's `handle_error` sees only `Exception`s; a panic is the Rust
/// equivalent of an unexpected one. The server catches it per request
/// (`catch_unwind`), so one bad request never takes the server down.
/// Downcast a [`HandlerError`] to find it:
///
/// ```
/// use socketserver::{HandlerError, PanicError};
/// fn is_panic(e: &HandlerError) -> bool {
///     e.downcast_ref::<PanicError>().is_some()
/// }
/// ```
#[derive(Debug, Clone)]
pub struct PanicError {
    message: String,
}

impl PanicError {
    pub(crate) fn from_payload(payload: Box<dyn Any + Send>) -> PanicError {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-string panic payload".to_string()
        };
        PanicError { message }
    }

    /// The panic message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "handler panicked: {}", self.message)
    }
}

impl std::error::Error for PanicError {}

/// A datagram was longer than the receive buffer and was cut (`MSG_TRUNC`).
///
/// Python's `UDPServer` silently truncates at 8192 bytes; this crate reads
/// up to [`max_packet_size`](crate::ServerBuilder::max_packet_size) bytes
/// (65535 by default) and reports anything longer to `handle_error` instead
/// of handling a partial message.
#[derive(Debug, Clone)]
pub struct TruncatedDatagram {
    /// The receive buffer size the datagram did not fit in.
    pub buffer_size: usize,
}

impl fmt::Display for TruncatedDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "datagram longer than the {}-byte receive buffer was truncated and dropped",
            self.buffer_size
        )
    }
}

impl std::error::Error for TruncatedDatagram {}

/// A forked child ([`Forking`](crate::Forking)) was killed by a signal
/// before its handler finished (`abort()`, a segfault, `SIGKILL`): reported
/// to the parent's `handle_error`, since the child could not report it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildKilled {
    /// The child's process id.
    pub pid: i32,
    /// The signal number (`SIGABRT` is 6 on Linux).
    pub signal: i32,
}

impl fmt::Display for ChildKilled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(pid {}) was killed by signal {}", self.pid, self.signal)
    }
}

impl std::error::Error for ChildKilled {}
