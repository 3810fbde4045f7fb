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

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::builder::Config;
use crate::control::ServerHandle;
use crate::error::{HandlerError, HandlerResult, PanicError};
use crate::net::{Addr, DatagramSocket, Stream};
use crate::request::{DatagramRequest, StreamRequest};

/// Handles connections on a stream transport (TCP or Unix stream): Python's
/// `StreamRequestHandler`.
///
/// ```
/// use std::io::{BufRead, Write};
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
///         let mut line = String::new();
///         while req.rfile.read_line(&mut line)? > 0 {
///             self.lines += 1;
///             writeln!(req.wfile, "{}", line.trim_end().len())?;
///             line.clear();
///         }
///         Ok(())
///     }
///
///     fn finish(&mut self, req: &mut StreamRequest) -> HandlerResult {
///         log::info!("{} sent {} lines", req.peer(), self.lines);
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
    /// I/O with the peer here.
    fn verify_request(&self, peer: &Addr) -> bool {
        let _ = peer;
        true
    }

    /// Reports a failed request (an `Err` from `setup`/`handle`/`finish`, a
    /// panic as [`PanicError`], or a strategy that could not start the
    /// request). Default: `log::error!` with the peer address. The server
    /// keeps serving whatever this does.
    fn handle_error(&self, peer: &Addr, error: &HandlerError) {
        log::error!("error while handling a request from {peer}: {error}");
    }

    /// Called by [`handle_request`](crate::Server::handle_request) when its
    /// [`timeout`](crate::ServerBuilder::timeout) passes with no request.
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
    fn verify_request(&self, peer: &Addr) -> bool {
        let _ = peer;
        true
    }

    /// Reports a failed request, including a datagram that was too long for
    /// the receive buffer ([`TruncatedDatagram`](crate::TruncatedDatagram)).
    /// Default: `log::error!` with the peer address.
    fn handle_error(&self, peer: &Addr, error: &HandlerError) {
        log::error!("error while handling a datagram from {peer}: {error}");
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

/// Runs `f`, turning a panic into a [`PanicError`].
pub(crate) fn catch<T>(f: impl FnOnce() -> Result<T, HandlerError>) -> Result<T, HandlerError> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|payload| Err(Box::new(PanicError::from_payload(payload))))
}

/// Runs a hook that returns nothing, turning a panic into an error.
pub(crate) fn catch_hook(f: impl FnOnce()) -> HandlerResult {
    catch(|| {
        f();
        Ok(())
    })
}

/// Python's order: `setup`, then `handle`, then `finish` even if `handle`
/// failed; every error goes to `report`.
fn lifecycle<H, R>(
    mut handler: H,
    req: &mut R,
    setup: fn(&mut H, &mut R) -> HandlerResult,
    handle: fn(&mut H, &mut R) -> HandlerResult,
    finish: fn(&mut H, &mut R) -> HandlerResult,
    report: &dyn Fn(&HandlerError),
) -> bool {
    if let Err(e) = catch(|| setup(&mut handler, req)) {
        report(&e);
        return false;
    }
    let handled = catch(|| handle(&mut handler, req));
    let finished = catch(|| finish(&mut handler, req));
    let mut ok = true;
    for e in [handled.err(), finished.err()].iter().flatten() {
        report(e);
        ok = false;
    }
    ok
}

/// An accepted connection, before a handler sees it.
#[doc(hidden)]
#[derive(Debug)]
pub struct Connection {
    pub(crate) stream: Arc<Stream>,
}

/// A received datagram, before a handler sees it.
#[doc(hidden)]
#[derive(Debug)]
pub struct Datagram {
    pub(crate) data: Vec<u8>,
    pub(crate) socket: Arc<DatagramSocket>,
}

/// Connects a handler trait to the kind of request a transport produces:
/// implemented for every [`StreamHandler`] on connections and every
/// [`DatagramHandler`] on datagrams. You never implement it yourself.
pub trait Handles<R>: Clone + 'static {
    #[doc(hidden)]
    fn verify(&self, peer: &Addr) -> bool;
    #[doc(hidden)]
    fn error(&self, peer: &Addr, error: &HandlerError);
    #[doc(hidden)]
    fn timeout(&self);
    #[doc(hidden)]
    fn service(&self);
    #[doc(hidden)]
    fn serve(&self, request: R, peer: Addr, server: ServerHandle, config: &Config) -> bool;
}

impl<H: StreamHandler + 'static> Handles<Connection> for H {
    fn verify(&self, peer: &Addr) -> bool {
        self.verify_request(peer)
    }
    fn error(&self, peer: &Addr, error: &HandlerError) {
        self.handle_error(peer, error)
    }
    fn timeout(&self) {
        self.handle_timeout()
    }
    fn service(&self) {
        self.service_actions()
    }
    fn serve(&self, conn: Connection, peer: Addr, server: ServerHandle, config: &Config) -> bool {
        let stream = conn.stream;
        let report = |e: &HandlerError| {
            let _ = catch_hook(|| self.handle_error(&peer, e));
        };
        if let Err(e) = config.prepare(&stream) {
            report(&e.into());
            return false;
        }
        let mut req = StreamRequest::new(Arc::clone(&stream), peer.clone(), server);
        let ok = lifecycle(
            self.clone(),
            &mut req,
            H::setup,
            H::handle,
            H::finish,
            &report,
        );
        drop(req);
        // Python's shutdown_request: SHUT_WR so the client reads EOF, then
        // close (when the last handle drops). ENOTCONN is fine here.
        let _ = stream.shutdown(std::net::Shutdown::Write);
        ok
    }
}

impl<H: DatagramHandler + 'static> Handles<Datagram> for H {
    fn verify(&self, peer: &Addr) -> bool {
        self.verify_request(peer)
    }
    fn error(&self, peer: &Addr, error: &HandlerError) {
        self.handle_error(peer, error)
    }
    fn timeout(&self) {
        self.handle_timeout()
    }
    fn service(&self) {
        self.service_actions()
    }
    fn serve(&self, dgram: Datagram, peer: Addr, server: ServerHandle, _config: &Config) -> bool {
        let report = |e: &HandlerError| {
            let _ = catch_hook(|| self.handle_error(&peer, e));
        };
        let mut req = DatagramRequest::new(dgram.data, peer.clone(), dgram.socket, server);
        lifecycle(
            self.clone(),
            &mut req,
            H::setup,
            H::handle,
            H::finish,
            &report,
        )
    }
}
