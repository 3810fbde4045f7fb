//! Every crate internal the reactor uses, in one place: the settings, the
//! stop state machine, the in-flight tracker and its drain, panic catching
//! and the stream transports. The reactor writes none of them twice.

use std::sync::Arc;
use std::time::Duration;

pub(crate) use crate::builder::Config;
pub(crate) use crate::control::{Control, ServerHandle};
pub(crate) use crate::drain::{DrainReport, Guard, Live, Tracker};
pub(crate) use crate::handler::{catch, catch_hook};
pub(crate) use crate::net::{Addr, Stream};
#[cfg(unix)]
pub(crate) use crate::transport::UnixStreamTransport;
pub(crate) use crate::transport::{Incoming, TcpTransport, Transport};

/// A server handle whose stop requests wake `waker`. The tracker has no
/// limit: the reactor reserves connection slots itself, before `accept`.
pub(crate) fn new_handle(waker: mio::Waker) -> ServerHandle {
    let control = Arc::new(Control::new(waker));
    let tracker = Arc::new(Tracker::new(None, Arc::clone(&control)));
    ServerHandle { control, tracker }
}

/// The stop state machine behind a handle.
pub(crate) fn control(handle: &ServerHandle) -> &Control {
    &handle.control
}

/// Starts the accounting of one connection (a forced drain cuts `stream`).
pub(crate) fn track(handle: &ServerHandle, stream: Arc<Stream>) -> Guard {
    handle.tracker.register(Live::Stream(stream))
}

/// Waits up to `grace` for every connection to end, then cuts the rest.
pub(crate) fn drain(handle: &ServerHandle, grace: Option<Duration>) -> DrainReport {
    handle.tracker.drain(grace, None, &|| {})
}

/// The accepted stream of a transport's request.
pub(crate) fn stream_of(conn: crate::handler::Connection) -> Arc<Stream> {
    conn.stream
}
