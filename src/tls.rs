//! TLS for stream servers (feature `tls`): [rustls] with the *ring*
//! provider, always passed explicitly, so the process-wide default provider
//! (and the "no process-level CryptoProvider" panic when a dependency graph
//! enables two) never matters.
//!
//! - **Where the handshake runs**: where the handler runs (a worker thread, a
//!   forked child, or the loop's thread under `Sequential`), never on the
//!   accept loop, and within [`handshake_timeout`](TlsConfig::handshake_timeout)
//!   (default 10 s). A silent client holds one worker for at most that long.
//!   A failed handshake (a plain-text client, a truncated ClientHello, a
//!   certificate the client rejects, a timeout) never reaches the handler;
//!   it is counted in
//!   [`ServerStats::tls_handshake_failures`](crate::ServerStats::tls_handshake_failures)
//!   and logged at debug level.
//! - **`rfile` and `wfile` work unchanged**: they read and write plaintext.
//!   Reads and writes may run on two threads at once: a read waits for the
//!   socket without holding the connection's lock, so a `wfile` moved to
//!   another thread is not blocked by a pending read.
//!   [`StreamRequest::stream`](crate::StreamRequest::stream) is the raw
//!   socket and bypasses TLS.
//! - **Closing**: when the handler returns, a `close_notify` alert is sent
//!   before the write half is shut.
//! - **Ragged EOF**: a peer that closes without `close_notify` reads as a
//!   plain EOF, as with Python's `suppress_ragged_eofs=True` (the default
//!   there too); turn [`suppress_ragged_eofs`](TlsConfig::suppress_ragged_eofs)
//!   off to get `UnexpectedEof` instead, for protocols whose messages have no
//!   length of their own.
//! - **Certificates can be replaced while serving**:
//!   [`TlsConfig::replace`] and [`TlsConfig::reload_pem_files`] swap the
//!   configuration every new handshake takes; connections already up keep
//!   theirs.
//! - What the handshake agreed (SNI, ALPN, version, cipher suite, client
//!   certificates) is in [`StreamRequest::tls`](crate::StreamRequest::tls).

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use rustls::ServerConnection;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::deadline::Sock;

pub use rustls;

/// A TLS server configuration, shared by every connection of a server and
/// replaceable while it serves. Cloning it gives another handle to the same
/// configuration: keep one to reload certificates later.
///
/// ```no_run
/// use socketserver::{ServerBuilder, StreamRequest, TlsConfig, Threading};
/// # fn main() -> std::io::Result<()> {
/// let tls = TlsConfig::from_pem_files("cert.pem", "key.pem")?;
/// let server = ServerBuilder::new()
///     .strategy(Threading::new())
///     .tls(tls.clone())
///     .bind_tcp("127.0.0.1:8443", |req: &mut StreamRequest| {
///         std::io::copy(&mut req.rfile, &mut req.wfile)?;
///         Ok(())
///     })?;
/// // later, e.g. on SIGHUP: new handshakes use the new certificate
/// tls.reload_pem_files("cert.pem", "key.pem")?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    current: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    handshake_timeout: Duration,
    suppress_ragged_eofs: bool,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("suppress_ragged_eofs", &self.suppress_ragged_eofs)
            .finish_non_exhaustive()
    }
}

fn invalid(what: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// The *ring* crypto provider, the one this crate uses everywhere.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate from a PEM file (the leaf first, then its
/// chain).
pub fn load_certs(path: impl AsRef<Path>) -> io::Result<Vec<CertificateDer<'static>>> {
    let path = path.as_ref();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(format!("{}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(invalid(format!("{}: no certificate", path.display())));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) from a PEM file.
pub fn load_key(path: impl AsRef<Path>) -> io::Result<PrivateKeyDer<'static>> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path).map_err(|e| invalid(format!("{}: {e}", path.display())))
}

/// A server configuration for one certificate chain and key, with the ring
/// provider, TLS 1.2 and 1.3, no client authentication, and no TLS 1.3
/// session tickets.
fn single_cert(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> io::Result<Arc<rustls::ServerConfig>> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(invalid)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(invalid)?;
    // No TLS 1.3 session tickets: they are data the server sends unasked
    // right after the handshake, and a client that sends and closes without
    // reading (the lesson's upload client) would leave them unread, so its
    // kernel resets the connection while the server still reads the body.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

impl TlsConfig {
    /// Wraps a rustls configuration built by hand (ALPN, SNI resolvers,
    /// client certificates); build it with
    /// `rustls::ServerConfig::builder_with_provider(socketserver::tls::provider())`.
    pub fn new(config: Arc<rustls::ServerConfig>) -> TlsConfig {
        TlsConfig {
            current: Arc::new(RwLock::new(config)),
            handshake_timeout: Duration::from_secs(10),
            suppress_ragged_eofs: true,
        }
    }

    /// A configuration from a PEM certificate chain file and a PEM private
    /// key file: TLS 1.2 and 1.3, no client authentication, and no TLS 1.3
    /// session tickets (sent unasked after the handshake, they reset the
    /// connection of a client that sends and closes without reading; build a
    /// `rustls::ServerConfig` yourself for resumption by ticket).
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> io::Result<TlsConfig> {
        Ok(TlsConfig::new(single_cert(
            load_certs(cert)?,
            load_key(key)?,
        )?))
    }

    /// How long a handshake may take, from the connection's hand-over to
    /// the worker (after any PROXY header). Default: 10 s.
    pub fn handshake_timeout(mut self, limit: Duration) -> TlsConfig {
        self.handshake_timeout = limit;
        self
    }

    /// Whether a peer closing without `close_notify` reads as a plain EOF
    /// (`true`, Python's default) or fails with `UnexpectedEof`. Default:
    /// `true`.
    pub fn suppress_ragged_eofs(mut self, on: bool) -> TlsConfig {
        self.suppress_ragged_eofs = on;
        self
    }

    /// Replaces the configuration: handshakes that start from now on use
    /// `config`; connections already up keep theirs.
    pub fn replace(&self, config: Arc<rustls::ServerConfig>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
    }

    /// Reloads the certificate and key files. If either cannot be read or
    /// they do not match, the error is returned and the old configuration
    /// stays in force.
    pub fn reload_pem_files(
        &self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> io::Result<()> {
        self.replace(single_cert(load_certs(cert)?, load_key(key)?)?);
        Ok(())
    }

    /// The configuration in force now.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn limit(&self) -> Duration {
        self.handshake_timeout
    }
}

/// What a connection's TLS handshake agreed, from
/// [`StreamRequest::tls`](crate::StreamRequest::tls).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The server name the client asked for (SNI).
    pub sni: Option<String>,
    /// The application protocol agreed with ALPN.
    pub alpn: Option<Vec<u8>>,
    /// The protocol version, such as `TLSv1_3`.
    pub version: Option<String>,
    /// The cipher suite, such as `TLS13_AES_256_GCM_SHA384`.
    pub cipher: Option<String>,
    /// The client's certificate chain, if client authentication was
    /// configured and the client sent one.
    pub peer_certificates: Vec<CertificateDer<'static>>,
}

struct Inner {
    conn: ServerConnection,
    /// Bytes read from the socket that rustls has not taken yet.
    pending: Vec<u8>,
}

/// One connection's TLS state, shared by `rfile` and `wfile`.
pub(crate) struct Session {
    inner: Mutex<Inner>,
    suppress_ragged_eofs: bool,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

/// The most socket reads and writes a handshake may take; the deadline
/// bounds it in time, this in iterations.
const HANDSHAKE_STEPS: usize = 256;

fn tls_error(e: rustls::Error) -> io::Error {
    invalid(e)
}

impl Inner {
    /// Sends whatever rustls has queued (handshake messages, alerts).
    fn flush(&mut self, sock: &mut Sock<'_>) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(sock)?;
        }
        Ok(())
    }

    /// Hands pending bytes to rustls and processes them, until some
    /// plaintext is ready or nothing is pending; called only when no
    /// plaintext is buffered, so rustls's plaintext buffer (16 KiB, one
    /// record) never overflows. An alert for a bad record is sent before
    /// the error returns. True if it made progress.
    fn feed(&mut self, sock: &mut Sock<'_>) -> io::Result<bool> {
        let before = self.pending.len();
        while !self.pending.is_empty() {
            let used = self.conn.read_tls(&mut &self.pending[..])?;
            self.pending.drain(..used);
            let state = match self.conn.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    let _ = self.flush(sock);
                    return Err(tls_error(e));
                }
            };
            if used == 0 || state.plaintext_bytes_to_read() > 0 {
                break;
            }
        }
        self.flush(sock)?; // answers the peer's records asked for (key updates)
        Ok(self.pending.len() != before)
    }
}

impl Session {
    /// Runs the server side of the handshake on `sock`, whose reads and
    /// writes the caller has bounded by the handshake deadline.
    pub(crate) fn handshake(
        config: &TlsConfig,
        mut sock: Sock<'_>,
    ) -> io::Result<(Session, TlsInfo)> {
        let mut conn = ServerConnection::new(config.current()).map_err(tls_error)?;
        let mut steps = 0;
        while conn.is_handshaking() {
            steps += 1;
            if steps > HANDSHAKE_STEPS {
                return Err(invalid("TLS handshake took too many steps"));
            }
            conn.complete_io(&mut sock)?;
        }
        while conn.wants_write() {
            conn.write_tls(&mut sock)?;
        }
        let info = TlsInfo {
            sni: conn.server_name().map(str::to_owned),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            version: conn.protocol_version().map(|v| format!("{v:?}")),
            cipher: conn
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite())),
            peer_certificates: conn
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default(),
        };
        let session = Session {
            inner: Mutex::new(Inner {
                conn,
                pending: Vec::new(),
            }),
            suppress_ragged_eofs: config.suppress_ragged_eofs,
        };
        Ok((session, info))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads plaintext. The socket read itself runs without the lock, so a
    /// writer on another thread is not held up by a read that waits.
    pub(crate) fn read(&self, mut sock: Sock<'_>, buf: &mut [u8]) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            {
                let mut inner = self.lock();
                match inner.conn.reader().read(buf) {
                    Ok(n) => return Ok(n), // 0: the peer sent close_notify
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return if self.suppress_ragged_eofs {
                            Ok(0)
                        } else {
                            Err(e)
                        };
                    }
                    Err(e) => return Err(e),
                }
                // No plaintext: decrypt what is pending before waiting.
                if !inner.pending.is_empty() && inner.feed(&mut sock)? {
                    continue;
                }
            }
            let n = sock.read(&mut chunk)?;
            let mut inner = self.lock();
            if n == 0 {
                // The socket's EOF: rustls decides whether it was clean.
                inner.conn.read_tls(&mut &[][..])?;
                if let Err(e) = inner.conn.process_new_packets() {
                    return Err(tls_error(e));
                }
            } else {
                inner.pending.extend_from_slice(&chunk[..n]);
            }
        }
    }

    /// Encrypts and sends all of `buf`.
    pub(crate) fn write_all(&self, mut sock: Sock<'_>, mut buf: &[u8]) -> io::Result<()> {
        let mut inner = self.lock();
        while !buf.is_empty() {
            let n = inner.conn.writer().write(buf)?;
            buf = &buf[n..];
            inner.flush(&mut sock)?;
        }
        Ok(())
    }

    /// Sends `close_notify`.
    pub(crate) fn close(&self, mut sock: Sock<'_>) -> io::Result<()> {
        let mut inner = self.lock();
        inner.conn.send_close_notify();
        inner.flush(&mut sock)
    }
}
