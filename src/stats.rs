//! Counters a running server keeps, read with
//! [`ServerHandle::stats`](crate::ServerHandle::stats).
//!
//! Every counter is a relaxed [`AtomicU64`]: bumping one costs an
//! uncontended atomic add, and no lock is taken. A snapshot is a plain
//! [`ServerStats`] value; counters are read one after another, so a snapshot
//! taken while requests run may be a few events apart between fields.
//!
//! Under the `Forking` strategy the parent counts what the accept loop sees
//! (accepted, refused, paused, accept errors, active, peak); what happens
//! inside a forked child (handler errors, timeouts, TLS and PROXY refusals,
//! bytes) stays in the child's copy of the counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Which deadline or timeout closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// No first byte within the [`idle`](crate::Deadlines::idle) time.
    Idle,
    /// The whole-request [`deadline`](crate::Deadlines::request) passed.
    Request,
    /// The client sent slower than the [`min_rate`](crate::Deadlines::min_rate).
    MinRate,
    /// The TLS handshake did not finish in time.
    TlsHandshake,
    /// The PROXY protocol header did not arrive in time.
    ProxyHeader,
}

impl TimeoutKind {
    /// A short lower-case name: `idle`, `request`, `min_rate`,
    /// `tls_handshake`, `proxy_header`.
    pub fn name(self) -> &'static str {
        match self {
            TimeoutKind::Idle => "idle",
            TimeoutKind::Request => "request",
            TimeoutKind::MinRate => "min_rate",
            TimeoutKind::TlsHandshake => "tls_handshake",
            TimeoutKind::ProxyHeader => "proxy_header",
        }
    }
}

/// The live counters (crate-private); [`ServerStats`] is their snapshot.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) accepted: AtomicU64,
    pub(crate) peak_active: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) paused: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
    pub(crate) emfile_backoffs: AtomicU64,
    pub(crate) handler_errors: AtomicU64,
    pub(crate) handler_panics: AtomicU64,
    timeouts: [AtomicU64; 5],
    pub(crate) tls_handshake_failures: AtomicU64,
    pub(crate) proxy_rejects: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    closed: std::sync::atomic::AtomicBool,
}

impl Stats {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Relaxed);
    }

    /// Records that `active` requests are in flight now (for the peak).
    pub(crate) fn note_active(&self, active: usize) {
        self.peak_active.fetch_max(active as u64, Relaxed);
    }

    pub(crate) fn timeout(&self, kind: TimeoutKind) {
        Stats::bump(&self.timeouts[kind as usize]);
    }

    /// Counts a failed request by what failed: a panic or an error.
    pub(crate) fn handler_failed(&self, error: &crate::HandlerError) {
        if error.is::<crate::PanicError>() {
            Stats::bump(&self.handler_panics);
        } else {
            Stats::bump(&self.handler_errors);
        }
    }

    pub(crate) fn closed(&self) {
        self.closed.store(true, Relaxed);
    }

    pub(crate) fn snapshot(&self, active: usize, draining: bool) -> ServerStats {
        let drain = if self.closed.load(Relaxed) {
            DrainState::Closed
        } else if draining {
            DrainState::Draining
        } else {
            DrainState::Running
        };
        let get = |c: &AtomicU64| c.load(Relaxed);
        let t = |k: TimeoutKind| get(&self.timeouts[k as usize]);
        ServerStats {
            accepted: get(&self.accepted),
            active,
            peak_active: get(&self.peak_active).max(active as u64),
            refused: get(&self.refused),
            paused_at_max_connections: get(&self.paused),
            accept_errors: get(&self.accept_errors),
            emfile_backoffs: get(&self.emfile_backoffs),
            handler_errors: get(&self.handler_errors),
            handler_panics: get(&self.handler_panics),
            idle_timeouts: t(TimeoutKind::Idle),
            request_timeouts: t(TimeoutKind::Request),
            min_rate_timeouts: t(TimeoutKind::MinRate),
            tls_handshake_timeouts: t(TimeoutKind::TlsHandshake),
            proxy_header_timeouts: t(TimeoutKind::ProxyHeader),
            tls_handshake_failures: get(&self.tls_handshake_failures),
            proxy_rejects: get(&self.proxy_rejects),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            drain,
        }
    }
}

/// Where the server is in its life, as far as draining goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DrainState {
    /// Serving (or not started): no shutdown asked for.
    Running,
    /// A shutdown was asked for; requests in flight are finishing.
    Draining,
    /// [`server_close`](crate::Server::server_close) has finished.
    Closed,
}

/// A snapshot of a server's counters, from
/// [`ServerHandle::stats`](crate::ServerHandle::stats).
///
/// Counters start at zero when the server is built and only grow, except
/// `active` and `drain`, which tell the present. New fields may be added,
/// so the struct cannot be built or matched exhaustively outside the crate.
///
/// ```
/// use socketserver::{StreamRequest, TcpServer};
/// # fn main() -> std::io::Result<()> {
/// let server = TcpServer::bind("127.0.0.1:0", |_req: &mut StreamRequest| Ok(()))?;
/// let stats = server.handle().stats();
/// assert_eq!((stats.accepted, stats.active, stats.bytes_in), (0, 0, 0));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections accepted and datagrams received.
    pub accepted: u64,
    /// Requests in flight now.
    pub active: usize,
    /// The most requests in flight at once so far.
    pub peak_active: u64,
    /// Requests `verify_request` refused (or that panicked in it), and
    /// connections over `max_connections_per_ip`.
    pub refused: u64,
    /// Times the loop stopped accepting because `max_connections` requests
    /// were in flight.
    pub paused_at_max_connections: u64,
    /// `accept`/`recvmsg` failures other than a client giving up early.
    pub accept_errors: u64,
    /// Of those, `EMFILE`/`ENFILE` (out of descriptors), each followed by a
    /// back-off pause.
    pub emfile_backoffs: u64,
    /// Requests whose `setup`, `handle` or `finish` returned an error.
    pub handler_errors: u64,
    /// Requests whose `setup`, `handle` or `finish` panicked.
    pub handler_panics: u64,
    /// Connections closed for sending nothing within the idle time.
    pub idle_timeouts: u64,
    /// Connections closed at the whole-request deadline.
    pub request_timeouts: u64,
    /// Connections closed for sending slower than the minimum rate.
    pub min_rate_timeouts: u64,
    /// TLS handshakes that did not finish within the handshake timeout
    /// (also counted in `tls_handshake_failures`).
    pub tls_handshake_timeouts: u64,
    /// PROXY headers that did not arrive in time (also counted in
    /// `proxy_rejects`).
    pub proxy_header_timeouts: u64,
    /// Connections whose TLS handshake failed (a plain-text client, a bad
    /// certificate, a truncated hello, a timeout): the handler never ran.
    pub tls_handshake_failures: u64,
    /// Connections refused by the PROXY protocol check (untrusted source,
    /// malformed or late header): the handler never ran.
    pub proxy_rejects: u64,
    /// Bytes received on connections (TLS records included, PROXY headers
    /// included).
    pub bytes_in: u64,
    /// Bytes sent on connections (TLS records included).
    pub bytes_out: u64,
    /// Whether the server is running, draining or closed.
    pub drain: DrainState,
}

impl ServerStats {
    /// The timeouts of one kind.
    pub fn timeouts(&self, kind: TimeoutKind) -> u64 {
        match kind {
            TimeoutKind::Idle => self.idle_timeouts,
            TimeoutKind::Request => self.request_timeouts,
            TimeoutKind::MinRate => self.min_rate_timeouts,
            TimeoutKind::TlsHandshake => self.tls_handshake_timeouts,
            TimeoutKind::ProxyHeader => self.proxy_header_timeouts,
        }
    }
}
