//! The servers under test, each run as its own process: the crate with every
//! strategy, the hand-written std floor, tokio, and a byte sink for the raw
//! loopback throughput figure. Each prints `listening on <addr>` once bound
//! and serves until it is killed.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::Duration;

use socketserver::{
    DatagramRequest, Forking, HandlerResult, ServerBuilder, StreamRequest, ThreadPool, Threading,
};

/// Size of every echo buffer (std floor, crate `loop` handler, tokio).
pub const BUF: usize = 16 * 1024;

/// Prints the line the suite waits for.
pub fn announce(addr: impl std::fmt::Display) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}

/// Options of `serve-crate`.
#[derive(Debug, Clone)]
pub struct CrateOpts {
    /// sequential, threading, pool, forking.
    pub strategy: String,
    /// Pool workers / forking max_children.
    pub workers: usize,
    /// Thread stack size in bytes (threading and pool), if set.
    pub stack: Option<usize>,
    /// `copy` (std::io::copy rfile -> wfile) or `loop` (16 KiB read/write).
    pub handler: String,
    /// Serve UDP instead of TCP.
    pub udp: bool,
    /// Set TCP_NODELAY on accepted connections.
    pub nodelay: bool,
}

/// The echo handler through `std::io::copy` (the BufReader's 8 KiB buffer).
pub fn echo_copy(req: &mut StreamRequest) -> HandlerResult {
    io::copy(&mut req.rfile, &mut req.wfile)?;
    Ok(())
}

/// The echo handler as a read/write loop with a 16 KiB stack buffer. Reads
/// of at least the BufReader's capacity bypass its buffer, so each message
/// costs one `read` and one `write`.
pub fn echo_loop(req: &mut StreamRequest) -> HandlerResult {
    let mut buf = [0u8; BUF];
    loop {
        let n = req.rfile.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        req.wfile.write_all(&buf[..n])?;
    }
}

/// The datagram echo handler.
pub fn echo_datagram(req: &mut DatagramRequest) -> HandlerResult {
    req.reply(req.data())?;
    Ok(())
}

/// The builder every `serve-crate` server starts from: a short drain, so
/// SIGTERM ends it well inside the suite's 3 s.
fn base(o: &CrateOpts) -> ServerBuilder {
    ServerBuilder::new()
        .nodelay(o.nodelay)
        .drain_timeout(Duration::from_millis(500))
}

macro_rules! serve_strategy {
    ($opts:expr, $bind:expr) => {{
        let o: &CrateOpts = $opts;
        match o.strategy.as_str() {
            "sequential" => run($bind(base(o))?),
            "threading" => {
                let mut t = Threading::new();
                if let Some(s) = o.stack {
                    t = t.stack_size(s);
                }
                run($bind(base(o).strategy(t))?)
            }
            "pool" => {
                let mut p = ThreadPool::new(o.workers);
                if let Some(s) = o.stack {
                    p = p.stack_size(s);
                }
                run($bind(base(o).strategy(p))?)
            }
            "forking" => run($bind(
                base(o).strategy(Forking::new().max_children(o.workers)),
            )?),
            other => Err(io::Error::other(format!("unknown strategy {other}"))),
        }
    }};
}

/// Serves until SIGTERM/SIGINT, then closes: the close logs (at debug
/// level, printed by [`StatsLogger`]) the datagram batch sizes seen.
fn run<T: socketserver::Transport, H, S: socketserver::Strategy>(
    server: socketserver::Server<T, H, S>,
) -> io::Result<()> {
    socketserver::shutdown_on_signals(&server.handle())?;
    announce(server.server_address());
    server.serve_forever()?;
    server.server_close()?;
    Ok(())
}

/// Prints the crate's batch-size summary to stdout as a `stats ` line,
/// which the suite collects when it stops the server; drops every other
/// record.
pub struct StatsLogger;

impl log::Log for StatsLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.target().starts_with("socketserver")
    }
    fn log(&self, r: &log::Record) {
        let text = r.args().to_string();
        if text.contains(" batches (mean ") {
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "stats {text}");
            let _ = out.flush();
        }
    }
    fn flush(&self) {}
}

/// The echo protocol for the reactor strategy.
pub struct EchoProtocol;

impl socketserver::reactor::Protocol for EchoProtocol {
    fn data_received(
        &mut self,
        data: &[u8],
        conn: &mut socketserver::reactor::Conn<'_>,
    ) -> io::Result<usize> {
        conn.write(data);
        Ok(data.len())
    }
}

/// `serve-crate`: the crate's echo server with the chosen strategy.
pub fn serve_crate(addr: &str, o: &CrateOpts) -> io::Result<()> {
    static LOGGER: StatsLogger = StatsLogger;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
    if o.strategy == "reactor" && !o.udp {
        let server = socketserver::reactor::ReactorBuilder::new()
            .loops(o.workers.max(1))
            .bind_tcp(addr, |_: &socketserver::Addr| EchoProtocol)?;
        announce(server.server_address());
        return server.serve_forever();
    }
    if o.udp {
        return serve_strategy!(o, |b: ServerBuilder<_>| b.bind_udp(addr, echo_datagram));
    }
    match o.handler.as_str() {
        "copy" => serve_strategy!(o, |b: ServerBuilder<_>| b.bind_tcp(addr, echo_copy)),
        "loop" => serve_strategy!(o, |b: ServerBuilder<_>| b.bind_tcp(addr, echo_loop)),
        other => Err(io::Error::other(format!("unknown handler {other}"))),
    }
}

fn std_echo(mut s: TcpStream) {
    let mut buf = [0u8; BUF];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// A TCP listener with the crate's backlog (`SOMAXCONN`, capped by
/// `net.core.somaxconn`): std's `TcpListener::bind` listens with 128, which
/// overflows in connection bursts (dropped handshakes, 1 s SYN retries) and
/// would measure the backlog instead of the server.
fn listen(addr: &str) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let a: std::net::SocketAddr = addr.parse().map_err(io::Error::other)?;
    let s = Socket::new(Domain::for_address(a), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.bind(&a.into())?;
    s.listen(libc::SOMAXCONN)?;
    Ok(s.into())
}

/// `serve-std --udp`: one thread doing `recv_from`/`send_to`.
fn serve_std_udp(addr: &str) -> io::Result<()> {
    let sock = UdpSocket::bind(addr)?;
    announce(sock.local_addr()?);
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = sock.recv_from(&mut buf)?;
        let _ = sock.send_to(&buf[..n], peer);
    }
}

/// `serve-std --udp --mmsg`: the batching ceiling, hand-written. One
/// thread: `poll` until readable, then `recvmmsg` (up to 32) and one
/// `sendmmsg` of the same datagrams back, until `EAGAIN`.
fn serve_mmsg_udp(addr: &str) -> io::Result<()> {
    let sock = UdpSocket::bind(addr)?;
    announce(sock.local_addr()?);
    let fd = sock.as_raw_fd();
    let mut slots = crate::mmsg::Slots::new(2048);
    loop {
        match slots.recv(fd, true) {
            Ok(n) => {
                let _ = slots.echo_back(fd, n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the call.
                unsafe { libc::poll(&mut p, 1, -1) };
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `serve-std`: the floor. A blocking accept loop and a thread per
/// connection running a 16 KiB read/write loop (or, for UDP, one thread
/// doing `recv_from`/`send_to`, or with `mmsg` the batched ceiling).
/// Nothing else.
pub fn serve_std(addr: &str, stack: Option<usize>, udp: bool, mmsg: bool) -> io::Result<()> {
    match (udp, mmsg) {
        (true, true) => return serve_mmsg_udp(addr),
        (true, false) => return serve_std_udp(addr),
        _ => {}
    }
    let listener = listen(addr)?;
    announce(listener.local_addr()?);
    loop {
        let (s, _) = match listener.accept() {
            Ok(c) => c,
            Err(_) => continue,
        };
        let mut b = thread::Builder::new();
        if let Some(size) = stack {
            b = b.stack_size(size);
        }
        let _ = b.spawn(move || std_echo(s));
    }
}

/// `serve-tokio`: a tokio echo server, one task per connection, 16 KiB
/// buffer, on a current-thread runtime (the server has one CPU).
pub fn serve_tokio(addr: &str, udp: bool) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if udp {
            let sock = tokio::net::UdpSocket::bind(addr).await?;
            announce(sock.local_addr()?);
            let mut buf = vec![0u8; 65535];
            loop {
                let (n, peer) = sock.recv_from(&mut buf).await?;
                let _ = sock.send_to(&buf[..n], peer).await;
            }
        }
        let listener = tokio::net::TcpListener::bind(addr).await?;
        announce(listener.local_addr()?);
        loop {
            let (mut s, _) = match listener.accept().await {
                Ok(c) => c,
                Err(_) => continue,
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; BUF];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    })
}

/// `serve-sink`: accepts connections one at a time, reads each to EOF with
/// a 256 KiB buffer, answers the byte count (8 bytes, little-endian) and
/// closes. The raw loopback single-stream throughput reference.
pub fn serve_sink(addr: &str) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    announce(listener.local_addr()?);
    let mut buf = vec![0u8; 256 * 1024];
    for s in listener.incoming() {
        let mut s = s?;
        let mut total = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = s.write_all(&total.to_le_bytes());
    }
    Ok(())
}
