//! Joins a handler to what a transport delivers: the [`Handles`] bridge
//! (stream handlers serve connections, datagram handlers serve datagrams),
//! the [`Context`] every request of a server shares, and the [`Job`] a
//! strategy runs. Nothing here is public: users name only the handler
//! traits.

use std::sync::Arc;

use crate::config::Config;
use crate::error::{HandlerError, HandlerResult};
use crate::handler::{DatagramHandler, StreamHandler};
use crate::inflight::Guard;
use crate::net::Addr;
use crate::request::{DatagramRequest, StreamRequest};
use crate::shutdown::ServerHandle;
use crate::transport::{Connection, Datagram};
use crate::unwind::{catch, catch_hook, quiet_if};

pub(crate) mod sealed {
    use super::*;

    /// Connects a handler trait to the kind of request a transport
    /// produces: implemented for every [`StreamHandler`] on connections and
    /// every [`DatagramHandler`] on datagrams. The hooks keep Python's names
    /// so a search for `verify_request` finds the loop's call.
    pub trait Handles<R>: Clone + 'static {
        fn verify_request(&self, peer: &Addr) -> bool;
        fn handle_error(&self, peer: &Addr, error: &HandlerError);
        fn handle_timeout(&self);
        fn service_actions(&self);
        /// Runs one request on a clone; false if any step failed.
        fn serve(&self, request: R, peer: Addr, server: ServerHandle, config: &Config) -> bool;
    }
}

pub(crate) use sealed::Handles;

/// What every request of a server shares: the server's own handler value
/// (the hooks run on it; requests run on clones), the settings and a handle.
#[derive(Debug)]
pub(crate) struct Context<H> {
    pub(crate) handler: H,
    pub(crate) config: Config,
    pub(crate) handle: ServerHandle,
    /// The listening socket, which a forked child closes.
    pub(crate) listener_fd: Option<std::os::fd::RawFd>,
}

/// One request, accepted and verified, bound to its handler: what a
/// strategy runs.
#[derive(Debug)]
pub struct Job<R, H> {
    pub(crate) context: Arc<Context<H>>,
    pub(crate) request: R,
    pub(crate) peer: Addr,
    pub(crate) guard: Guard,
}

impl<R, H: Handles<R>> Job<R, H> {
    /// Runs the handler's `setup`, `handle` and `finish` on a fresh clone,
    /// reporting errors and panics to `handle_error`; returns false if any
    /// failed. The request's accounting ends when this returns.
    pub(crate) fn run(self) -> bool {
        let Job {
            context,
            request,
            peer,
            guard,
        } = self;
        let ok = context
            .handler
            .serve(request, peer, context.handle.clone(), &context.config);
        drop(guard);
        ok
    }
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

impl<H: StreamHandler + 'static> Handles<Connection> for H {
    fn verify_request(&self, peer: &Addr) -> bool {
        StreamHandler::verify_request(self, peer)
    }
    fn handle_error(&self, peer: &Addr, error: &HandlerError) {
        StreamHandler::handle_error(self, peer, error)
    }
    fn handle_timeout(&self) {
        StreamHandler::handle_timeout(self)
    }
    fn service_actions(&self) {
        StreamHandler::service_actions(self)
    }
    fn serve(&self, conn: Connection, peer: Addr, server: ServerHandle, config: &Config) -> bool {
        let stats = Arc::clone(&server.stats);
        let opened = match crate::edge::open(conn.stream, peer.clone(), config, &stats) {
            Ok(opened) => opened,
            Err(crate::edge::OpenError::Refused) => return false,
            Err(crate::edge::OpenError::Socket(e)) => {
                let e: HandlerError = e.into();
                stats.handler_failed(&e);
                let _ = catch_hook(|| StreamHandler::handle_error(self, &peer, &e));
                return false;
            }
        };
        let peer = opened.peer.clone();
        let wire = Arc::clone(&opened.wire);
        let report = |e: &HandlerError| {
            stats.handler_failed(e);
            let _ = catch_hook(|| StreamHandler::handle_error(self, &peer, e));
        };
        let mut req = StreamRequest::new(opened, conn.phase, server);
        let ok = quiet_if(config.quiet_panics, || {
            lifecycle(
                self.clone(),
                &mut req,
                H::setup,
                H::handle,
                H::finish,
                &report,
            )
        });
        drop(req);
        // Python's shutdown_request: close_notify (TLS), SHUT_WR so the
        // client reads EOF, then close (when the last handle drops).
        wire.close();
        ok
    }
}

impl<H: DatagramHandler + 'static> Handles<Datagram> for H {
    fn verify_request(&self, peer: &Addr) -> bool {
        DatagramHandler::verify_request(self, peer)
    }
    fn handle_error(&self, peer: &Addr, error: &HandlerError) {
        DatagramHandler::handle_error(self, peer, error)
    }
    fn handle_timeout(&self) {
        DatagramHandler::handle_timeout(self)
    }
    fn service_actions(&self) {
        DatagramHandler::service_actions(self)
    }
    fn serve(&self, dgram: Datagram, peer: Addr, server: ServerHandle, config: &Config) -> bool {
        let stats = Arc::clone(&server.stats);
        let report = |e: &HandlerError| {
            stats.handler_failed(e);
            let _ = catch_hook(|| DatagramHandler::handle_error(self, &peer, e));
        };
        let mut req = DatagramRequest::new(dgram.data, peer.clone(), dgram.socket, server);
        quiet_if(config.quiet_panics, || {
            lifecycle(
                self.clone(),
                &mut req,
                H::setup,
                H::handle,
                H::finish,
                &report,
            )
        })
    }
}
