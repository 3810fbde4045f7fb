//! Every crate internal the reactor uses, in one place: the settings, the
//! stop state machine, the in-flight tracker and its drain, panic catching
//! and the stream transports. The reactor writes none of them twice.

use std::sync::Arc;
use std::time::Duration;

pub(crate) use crate::config::Config;
pub(crate) use crate::inflight::{Cut, DrainReport, Guard, InFlight};
pub(crate) use crate::net::{Addr, Stream};
pub(crate) use crate::shutdown::{Lifecycle, ServerHandle};
pub(crate) use crate::stats::{Stats, TimeoutKind};
pub(crate) use crate::transport::{
    Connection, Incoming, TcpTransport, TransportImpl, UnixStreamTransport,
};
pub(crate) use crate::unwind::{catch, catch_hook};

/// A server handle whose stop requests wake `waker`. The tracker has no
/// limit: the reactor reserves connection slots itself, before `accept`.
pub(crate) fn new_handle(waker: mio::Waker) -> ServerHandle {
    let waker = Arc::new(waker);
    ServerHandle {
        lifecycle: Arc::new(Lifecycle::new(Arc::clone(&waker))),
        in_flight: Arc::new(InFlight::new(None, waker)),
        stats: Arc::default(),
    }
}

/// The counters behind [`ServerHandle::stats`].
pub(crate) fn stats(handle: &ServerHandle) -> &Stats {
    &handle.stats
}

/// The stop state machine behind a handle.
pub(crate) fn control(handle: &ServerHandle) -> &Lifecycle {
    &handle.lifecycle
}

/// Starts the accounting of one connection (a forced drain cuts `stream`).
/// Its phase stays busy, so the drain's own idle sweep leaves it alone:
/// the loop closes its idle connections itself.
pub(crate) fn track(handle: &ServerHandle, stream: Arc<Stream>) -> Guard {
    handle
        .in_flight
        .register(Cut::Stream(stream, Arc::default()))
}

/// Waits up to `grace` for every connection to end, then cuts the rest.
pub(crate) fn drain(handle: &ServerHandle, grace: Option<Duration>) -> DrainReport {
    handle.in_flight.drain(grace, None, &|| {})
}

/// The accepted stream of a transport's request.
pub(crate) fn stream_of(conn: Connection) -> Arc<Stream> {
    conn.stream
}
