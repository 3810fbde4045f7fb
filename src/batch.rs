//! A batch of datagram requests, received together by one `recvmmsg(2)`
//! and run together by one strategy hand-off: the handlers run one after
//! another on one thread, their replies are queued in that thread's
//! [`Outbox`] and leave in one `sendmmsg(2)` when the last handler returns.

use std::sync::Arc;

use crate::dispatch::{Handles, Job};
use crate::error::HandlerError;
use crate::transport::{Arrival, Outbox};
use crate::unwind::catch_hook;

/// Where a strategy reports a request it could not start.
pub(crate) type Report<'a> = dyn Fn(&crate::net::Addr, std::io::Error) + 'a;

/// Requests received together, each verified and counted in flight.
#[derive(Debug)]
pub struct Batch<R, H> {
    pub(crate) jobs: Vec<Job<R, H>>,
}

impl<R: Arrival, H: Handles<R>> Batch<R, H> {
    /// Runs every request in arrival order (each with its own handler clone,
    /// as [`Job::run`] does), then sends the queued replies; a reply the
    /// kernel refused goes to `handle_error` with its peer. The requests
    /// stay in flight until their replies have left, so a drain that sees
    /// them finish knows the replies are sent.
    pub(crate) fn run(self) {
        let Some(first) = self.jobs.first() else {
            return;
        };
        let context = Arc::clone(&first.context);
        let scope = first.request.reply_socket().and_then(Outbox::enter);
        let mut guards = Vec::with_capacity(self.jobs.len());
        for job in self.jobs {
            let Job {
                context,
                request,
                peer,
                guard,
            } = job;
            context
                .handler
                .serve(request, peer, context.handle.clone(), &context.config);
            guards.push(guard);
        }
        if let Some(scope) = scope {
            for (peer, e) in scope.finish() {
                let e = HandlerError::from(e);
                let _ = catch_hook(|| context.handler.handle_error(&peer, &e));
            }
        }
        drop(guards);
    }
}
