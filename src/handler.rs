//! The handler traits: what the user writes.
//!
//! Python's handler is a class: the server makes a fresh instance per
//! request and calls `setup()`, `handle()`, then `finish()` (in a `finally`,
//! so it runs even when `handle` fails, but not when `setup` fails). Here the
//! handler is a value that is cloned per request, so `setup` can set fields
//! that `handle` and `finish` read; state shared by all requests lives behind
//! an `Arc` in the handler. The server's hooks (`verify_request`,
//! `handle_error`, `handle_timeout`, `service_actions`) are provided methods
//! on the same trait, called on the server's own copy.
//!
//! A closure `Fn(&mut StreamRequest) -> HandlerResult + Clone` is a
//! [`StreamHandler`] too, and `Fn(&mut DatagramRequest) -> HandlerResult +
//! Clone` a [`DatagramHandler`].

use crate::error::{HandlerError, HandlerResult};
use crate::net::Addr;
use crate::request::{DatagramRequest, StreamRequest};

/// Handles connections on a stream transport (TCP or Unix stream): Python's
/// `StreamRequestHandler`.
///
/// ```
/// use std::io::Write;
/// use socketserver::{HandlerResult, StreamHandler, StreamRequest};
///
/// /// Answers each line with its length.
/// #[derive(Clone, Default)]
/// struct LineLength {
///     lines: usize, // fresh for every connection: the handler is cloned per request
/// }
///
/// impl StreamHandler for LineLength {
///     fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
///         for line in req.rfile.lines() {
///             self.lines += 1;
///             writeln!(req.wfile, "{}", line?.len())?; // one send per line
///         }
///         Ok(())
///     }
///
///     fn finish(&mut self, req: &mut StreamRequest) -> HandlerResult {
///         log::info!("{} sent {} lines", req.peer, self.lines);
///         Ok(())
///     }
/// }
/// ```
pub trait StreamHandler: Clone {
    /// Runs before [`handle`](Self::handle). If it fails, neither `handle`
    /// nor `finish` runs and the error goes to `handle_error`.
    fn setup(&mut self, req: &mut StreamRequest) -> HandlerResult {
        let _ = req;
        Ok(())
    }

    /// Serves one connection. Return when the conversation is over; the
    /// server then closes the connection. An `Err` (or a panic) is reported
    /// to [`handle_error`](Self::handle_error).
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult;

    /// Runs after `handle`, even when `handle` failed or panicked.
    fn finish(&mut self, req: &mut StreamRequest) -> HandlerResult {
        let _ = req;
        Ok(())
    }

    /// Decides whether to serve a new connection, before any handler runs.
    /// Returning false closes the connection at once, exactly once. Default:
    /// accept everyone. Runs on the accept loop: keep it fast and never do
    /// I/O with the peer here. [`Addr::ip`] gives the canonical IP (an IPv4
    /// client of a dual-stack listener as `127.0.0.1`, not `::ffff:127.0.0.1`):
    ///
    /// ```
    /// use socketserver::{Addr, HandlerResult, StreamHandler, StreamRequest};
    ///
    /// #[derive(Clone)]
    /// struct LocalOnly;
    ///
    /// impl StreamHandler for LocalOnly {
    ///     fn verify_request(&self, peer: &Addr) -> bool {
    ///         peer.is_loopback()
    ///     }
    ///     fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
    ///         std::io::copy(&mut req.rfile, &mut req.wfile)?;
    ///         Ok(())
    ///     }
    /// }
    /// ```
    fn verify_request(&self, peer: &Addr) -> bool {
        let _ = peer;
        true
    }

    /// Reports a failed request (an `Err` from `setup`/`handle`/`finish`, a
    /// panic as [`PanicError`](crate::PanicError), or a strategy that could not start the
    /// request). Default: `log::error!` with the peer address, or a line on
    /// stderr when no logger is installed. The server keeps serving whatever
    /// this does. With [`Forking`](crate::Forking) it runs in the child for
    /// the child's own errors, and in the parent for a child killed by a
    /// signal ([`ChildKilled`](crate::ChildKilled)).
    fn handle_error(&self, peer: &Addr, error: &HandlerError) {
        report_default("a request", peer, error);
    }

    /// Called by [`handle_request`](crate::Server::handle_request) when its
    /// [`handle_request_timeout`](crate::ServerBuilder::handle_request_timeout) passes with no request.
    fn handle_timeout(&self) {}

    /// Called once per iteration of `serve_forever`, on the loop's thread
    /// (see [`service_interval`](crate::ServerBuilder::service_interval) to
    /// have it called periodically when no request arrives).
    fn service_actions(&self) {}
}

/// Handles datagrams on a datagram transport (UDP or Unix datagram):
/// Python's `DatagramRequestHandler`.
///
/// ```
/// use socketserver::{DatagramHandler, DatagramRequest, HandlerResult};
///
/// #[derive(Clone)]
/// struct Upper;
///
/// impl DatagramHandler for Upper {
///     fn handle(&mut self, req: &mut DatagramRequest) -> HandlerResult {
///         req.reply(&req.data().to_ascii_uppercase())?;
///         Ok(())
///     }
/// }
/// ```
pub trait DatagramHandler: Clone {
    /// Runs before [`handle`](Self::handle); if it fails, neither `handle`
    /// nor `finish` runs.
    fn setup(&mut self, req: &mut DatagramRequest) -> HandlerResult {
        let _ = req;
        Ok(())
    }

    /// Handles one datagram. Nothing is sent back unless it calls
    /// [`DatagramRequest::reply`].
    fn handle(&mut self, req: &mut DatagramRequest) -> HandlerResult;

    /// Runs after `handle`, even when `handle` failed or panicked.
    fn finish(&mut self, req: &mut DatagramRequest) -> HandlerResult {
        let _ = req;
        Ok(())
    }

    /// Decides whether to handle a datagram from `peer`; false drops it.
    ///
    /// It runs on the loop's thread, and under `Threading` and `ThreadPool`
    /// also on the thread that takes the next batch of datagrams itself
    /// (see [`Threading`](crate::Threading)), so it may run on two threads
    /// at once; those strategies already require a `Sync` handler.
    fn verify_request(&self, peer: &Addr) -> bool {
        let _ = peer;
        true
    }

    /// Reports a failed request, including a datagram that was too long for
    /// the receive buffer ([`TruncatedDatagram`](crate::TruncatedDatagram)).
    /// Default: `log::error!` with the peer address, or stderr when no
    /// logger is installed.
    fn handle_error(&self, peer: &Addr, error: &HandlerError) {
        report_default("a datagram", peer, error);
    }

    /// Called by [`handle_request`](crate::Server::handle_request) when its
    /// timeout passes with no datagram.
    fn handle_timeout(&self) {}

    /// Called once per iteration of `serve_forever`, on the loop's thread.
    fn service_actions(&self) {}
}

impl<F> StreamHandler for F
where
    F: Fn(&mut StreamRequest) -> HandlerResult + Clone,
{
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        self(req)
    }
}

impl<F> DatagramHandler for F
where
    F: Fn(&mut DatagramRequest) -> HandlerResult + Clone,
{
    fn handle(&mut self, req: &mut DatagramRequest) -> HandlerResult {
        self(req)
    }
}

/// The default `handle_error`: through `log` when a logger takes errors,
/// else on stderr (Python prints a traceback there), so a failed handler is
/// never silent.
pub(crate) fn report_default(what: &str, peer: &Addr, error: &HandlerError) {
    if log::log_enabled!(log::Level::Error) {
        log::error!("error while handling {what} from {peer}: {error}");
    } else {
        eprintln!("socketserver: error while handling {what} from {peer}: {error}");
    }
}
