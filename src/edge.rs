//! The edge of a connection: what runs between `accept` and `setup`, on the
//! thread (or in the child) that runs the handler, and the byte stream
//! `rfile`/`wfile` read and write afterwards.
//!
//! ```text
//! accept loop:  accept → verify_request → strategy      (no I/O with the peer)
//! worker:       socket options
//!               PROXY header      (if required; its own deadline, 1 s)
//!               TLS handshake     (if configured; its own deadline, 10 s)
//!               setup → handle → finish   (reads under the Deadlines)
//!               close_notify (TLS), shutdown(SHUT_WR), close
//! ```
//!
//! A connection refused at the PROXY or TLS step is counted in
//! [`ServerStats`](crate::ServerStats), logged at debug level, and closed;
//! the handler never sees it and `handle_error` is not called.

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::config::Config;
use crate::deadline::{Clock, Sock};
use crate::net::{Addr, Stream};
use crate::proxy::{self, ProxyInfo, ProxyProtocol};
use crate::stats::{Stats, TimeoutKind};
#[cfg(feature = "tls")]
use crate::tls::{Session, TlsInfo};

/// A connection's byte stream: the socket, its deadlines and counters, and
/// its TLS session if any. `rfile` and `wfile` share it.
pub(crate) struct Wire {
    pub(crate) stream: Arc<Stream>,
    pub(crate) clock: Clock,
    stats: Arc<Stats>,
    #[cfg(feature = "tls")]
    tls: Option<Session>,
}

impl fmt::Debug for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wire")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl Wire {
    fn sock(&self) -> Sock<'_> {
        Sock {
            stream: &self.stream,
            clock: &self.clock,
            stats: &self.stats,
        }
    }

    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return tls.read(self.sock(), buf);
        }
        io::Read::read(&mut self.sock(), buf)
    }

    pub(crate) fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return tls.write_all(self.sock(), buf);
        }
        io::Write::write_all(&mut self.sock(), buf)
    }

    /// Ends the conversation: `close_notify` under TLS, then `SHUT_WR` so
    /// the client reads EOF (Python's `shutdown_request`).
    pub(crate) fn close(&self) {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let _ = tls.close(self.sock());
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }
}

/// A connection ready for its handler.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) wire: Arc<Wire>,
    /// The client: from the PROXY header, else the socket's peer.
    pub(crate) peer: Addr,
    pub(crate) proxy: Option<ProxyInfo>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<TlsInfo>,
}

/// Why a connection did not reach its handler.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// Setting socket options failed: reported to `handle_error`.
    Socket(io::Error),
    /// Refused at the PROXY or TLS step: counted, logged, closed.
    Refused,
}

/// Runs the edge steps on an accepted connection.
pub(crate) fn open(
    stream: Arc<Stream>,
    peer: Addr,
    config: &Config,
    stats: &Arc<Stats>,
) -> Result<Opened, OpenError> {
    config.prepare(&stream).map_err(OpenError::Socket)?;
    let edge = &config.edge;
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    let mut wire = Wire {
        clock: Clock::new(edge.deadlines, config.read_timeout, config.write_timeout),
        stream,
        stats: Arc::clone(stats),
        #[cfg(feature = "tls")]
        tls: None,
    };
    let mut opened_peer = peer.clone();
    let mut proxy_info = None;
    if let Some(policy) = &edge.proxy {
        match read_proxy(&wire, policy, &peer) {
            Ok(info) => {
                opened_peer = info.peer();
                log::debug!(
                    "socketserver: {peer}: PROXY v{} {}: client {opened_peer}",
                    info.version,
                    if info.local { "LOCAL" } else { "PROXY" },
                );
                proxy_info = Some(info);
            }
            Err(why) => {
                Stats::bump(&stats.proxy_rejects);
                log::debug!("socketserver: {peer}: PROXY header refused: {why}");
                refuse(&wire);
                return Err(OpenError::Refused);
            }
        }
    }
    #[cfg(feature = "tls")]
    let mut tls_info = None;
    #[cfg(feature = "tls")]
    if let Some(tls) = &edge.tls {
        wire.clock.preamble(tls.limit(), TimeoutKind::TlsHandshake);
        match Session::handshake(tls, wire.sock()) {
            Ok((session, info)) => {
                wire.tls = Some(session);
                tls_info = Some(info);
            }
            Err(e) => {
                Stats::bump(&stats.tls_handshake_failures);
                log::debug!("socketserver: {opened_peer}: TLS handshake failed: {e}");
                refuse(&wire);
                return Err(OpenError::Refused);
            }
        }
    }
    if let Err(e) = wire.clock.restart(&wire.stream, false) {
        refuse(&wire);
        return Err(OpenError::Socket(e));
    }
    Ok(Opened {
        wire: Arc::new(wire),
        peer: opened_peer,
        proxy: proxy_info,
        #[cfg(feature = "tls")]
        tls: tls_info,
    })
}

fn read_proxy(
    wire: &Wire,
    policy: &ProxyProtocol,
    peer: &Addr,
) -> Result<ProxyInfo, proxy::Refusal> {
    if !policy.trusts(peer) {
        return Err(proxy::Refusal::Untrusted);
    }
    wire.clock
        .preamble(policy.limit(), TimeoutKind::ProxyHeader);
    proxy::read_header(wire.sock(), peer.clone())
}

/// Closes a refused connection at once: both halves, so a client still
/// sending gets an error rather than a hang.
fn refuse(wire: &Wire) {
    let _ = wire.stream.shutdown(std::net::Shutdown::Both);
}
