//! What the example servers need to face the internet: `--tls-cert` /
//! `--tls-key`, `--proxy-protocol` with `--trusted-proxy CIDR`, a systemd
//! socket when `LISTEN_FDS` is set for this process (else `--addr`),
//! `READY=1`/`STOPPING=1` when `NOTIFY_SOCKET` is set, and SIGHUP: hand the
//! listening socket to a fresh copy of the program, drain, exit 0.

use std::io;
use std::net::{TcpListener, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clap::Args;
use signal_hook::consts::SIGHUP;
use signal_hook::iterator::Signals;
use socketserver::systemd::{self, Socket};
use socketserver::{
    Addr, AnyStrategy, DatagramHandler, ProxyProtocol, Server, ServerBuilder, ServerHandle,
    Strategy, StreamHandler, TcpTransport, TrustedNet, UdpTransport,
};

/// TLS and PROXY protocol options of a stream example.
#[derive(Debug, Clone, Args)]
pub struct EdgeArgs {
    /// Serve TLS with this PEM certificate chain (needs --tls-key and the
    /// `tls` feature).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require a PROXY protocol header (v1 or v2) on every connection.
    #[arg(long, requires = "trusted_proxy")]
    pub proxy_protocol: bool,
    /// A network whose proxies may send the header (repeatable), e.g.
    /// 127.0.0.1 or 10.0.0.0/8.
    #[arg(long, value_name = "CIDR")]
    pub trusted_proxy: Vec<TrustedNet>,
}

impl EdgeArgs {
    /// Applies TLS and the PROXY policy to `builder`.
    pub fn apply<S: Strategy>(&self, builder: ServerBuilder<S>) -> io::Result<ServerBuilder<S>> {
        // Behind a balancer, SIGTERM must not reset connections already
        // queued for this process: serve them before closing the listener.
        let mut builder = builder.serve_backlog_on_close(true);
        if self.proxy_protocol {
            builder = builder.proxy_protocol(ProxyProtocol::required_from(
                self.trusted_proxy.iter().copied(),
            ));
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            #[cfg(feature = "tls")]
            {
                builder = builder.tls(socketserver::TlsConfig::from_pem_files(cert, key)?);
            }
            #[cfg(not(feature = "tls"))]
            {
                let _ = (cert, key);
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "--tls-cert needs the `tls` feature: cargo run --features tls --example ...",
                ));
            }
        }
        Ok(builder)
    }
}

/// The sockets systemd (or a SIGHUP predecessor) passed, taken from the
/// environment once, on first use: before any thread starts.
static PASSED: Mutex<Option<Vec<systemd::ListenFd>>> = Mutex::new(None);

/// The first passed socket `pick` accepts; an error if sockets were passed
/// but none of the kind this server needs.
fn take_passed(wanted: &str, pick: impl Fn(&Socket) -> bool) -> io::Result<Option<Socket>> {
    let mut passed = PASSED.lock().unwrap_or_else(|e| e.into_inner());
    if passed.is_none() {
        *passed = Some(systemd::listen_fds()?);
    }
    let passed = passed.as_mut().expect("filled above");
    match passed.iter().position(|fd| pick(&fd.socket)) {
        Some(i) => Ok(Some(passed.remove(i).socket)),
        None if passed.is_empty() => Ok(None),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "LISTEN_FDS passed {:?}; this server needs {wanted}",
                passed[0].socket
            ),
        )),
    }
}

/// The TCP listener passed by systemd or a predecessor, if any.
pub fn inherited_tcp() -> io::Result<Option<TcpListener>> {
    match take_passed("a TCP listener", |s| matches!(s, Socket::Tcp(_)))? {
        Some(Socket::Tcp(l)) => Ok(Some(l)),
        _ => Ok(None),
    }
}

/// The UDP socket passed by systemd, if any.
pub fn inherited_udp() -> io::Result<Option<UdpSocket>> {
    match take_passed("a UDP socket", |s| matches!(s, Socket::Udp(_)))? {
        Some(Socket::Udp(s)) => Ok(Some(s)),
        _ => Ok(None),
    }
}

/// Binds `addr`, or adopts the TCP listener systemd (or a SIGHUP
/// predecessor) passed: call it before any thread starts.
pub fn bind_tcp<A, H>(
    builder: ServerBuilder<AnyStrategy>,
    addr: A,
    handler: H,
) -> io::Result<Server<TcpTransport, H, AnyStrategy>>
where
    A: ToSocketAddrs,
    H: StreamHandler + Send + Sync + 'static,
{
    match inherited_tcp()? {
        Some(listener) => builder.from_tcp_listener(listener, handler),
        None => builder.bind_tcp(addr, handler),
    }
}

/// Binds `addr`, or adopts the UDP socket systemd passed.
pub fn bind_udp<A, H>(
    builder: ServerBuilder<AnyStrategy>,
    addr: A,
    handler: H,
) -> io::Result<Server<UdpTransport, H, AnyStrategy>>
where
    A: ToSocketAddrs,
    H: DatagramHandler + Send + Sync + 'static,
{
    match inherited_udp()? {
        Some(socket) => builder.from_udp_socket(socket, handler),
        None => builder.bind_udp(addr, handler),
    }
}

/// The CGI variables a command run for `peer` gets (`REMOTE_ADDR`,
/// `REMOTE_PORT`), empty for a peer without an IP address.
pub fn cgi_env(peer: &Addr) -> Vec<(&'static str, String)> {
    match peer.as_inet() {
        Some(a) => vec![
            ("REMOTE_ADDR", a.ip().to_canonical().to_string()),
            ("REMOTE_PORT", a.port().to_string()),
        ],
        None => Vec::new(),
    }
}

/// `READY=1` (with `MAINPID`) when `NOTIFY_SOCKET` is set.
pub fn notify_ready() {
    #[cfg(feature = "systemd")]
    if let Err(e) = systemd::notify_ready() {
        eprintln!("cannot notify systemd: {e}");
    }
}

/// `STOPPING=1` when `NOTIFY_SOCKET` is set.
pub fn notify_stopping() {
    #[cfg(feature = "systemd")]
    if let Err(e) = systemd::notify_stopping() {
        eprintln!("cannot notify systemd: {e}");
    }
}

/// On SIGHUP starts a replacement on the same listening socket, then stops
/// the server (SIGINT/SIGTERM are `shutdown_on_signals`' business). Tells systemd (when `NOTIFY_SOCKET` is
/// set) it is ready now, and [`Supervisor::stopping`] that it stops.
#[derive(Debug)]
pub struct Supervisor {
    handed_over: Arc<AtomicBool>,
}

impl Supervisor {
    /// Starts the signal thread; `listener` is the stream server's
    /// listening descriptor (`None` for datagram servers: no SIGHUP
    /// restart).
    pub fn start(handle: ServerHandle, listener: Option<i32>) -> io::Result<Supervisor> {
        let handed_over = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&handed_over);
        #[cfg(feature = "systemd")]
        if let Some(every) = systemd::watchdog_interval() {
            // WatchdogSec=: pet at half the timeout until the drain starts.
            // This proves the process runs, not that its loop turns; a
            // handler can do better from `service_actions`.
            let handle = handle.clone();
            std::thread::Builder::new()
                .name("watchdog".into())
                .spawn(move || {
                    while !handle.is_shutting_down() {
                        let _ = systemd::notify_watchdog();
                        std::thread::sleep(every);
                    }
                })?;
        }
        let mut signals = Signals::new([SIGHUP])?;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for _ in signals.forever() {
                    let Some(fd) = listener else {
                        eprintln!("SIGHUP: a datagram server does not restart; ignored");
                        continue;
                    };
                    match socketserver::restart::spawn_replacement(fd, "restart") {
                        Ok(pid) => {
                            eprintln!("SIGHUP: replaced by pid {pid}; draining");
                            println!("replaced by pid {pid}");
                            flag.store(true, Ordering::SeqCst);
                            handle.shutdown();
                            break;
                        }
                        Err(e) => eprintln!("SIGHUP: cannot start a replacement ({e}); serving on"),
                    }
                }
            })?;
        Ok(Supervisor { handed_over })
    }

    /// `READY=1` (with `MAINPID`), once the server is bound.
    pub fn ready(&self) {
        notify_ready();
    }

    /// `STOPPING=1` when the drain starts, unless a replacement took over
    /// (it has sent its own `MAINPID`/`READY=1`).
    pub fn stopping(&self) {
        if !self.handed_over.load(Ordering::SeqCst) {
            notify_stopping();
        }
    }
}
