//! The load generator: one thread, one mio (epoll) loop driving every
//! connection. Closed loop: each connection has one request outstanding.
//!
//! - `echo`: persistent TCP connections, `size`-byte messages ping-ponged.
//! - `connect`: `conns` concurrent clients, each request a new connection:
//!   bind to 127.0.0.{2..9}:0 with `IP_BIND_ADDRESS_NO_PORT` (the port is
//!   picked at connect time against the full 4-tuple), connect, send 64 B
//!   and `shutdown(SHUT_WR)`, read the echo to EOF, close. The client sends
//!   the first FIN, so TIME_WAIT stays on the client side (spread over 8
//!   source addresses); no RST, so no error path on the server.
//! - `udp`: `conns` connected UDP sockets, one datagram outstanding each; a
//!   reply not back in 200 ms counts as lost and the datagram is resent.
//!
//! Latency is recorded in nanoseconds in an HDR histogram for requests that
//! complete inside the measuring window (after the warm-up).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::{TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use serde_json::{Value, json};

/// What to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Persistent connections, ping-pong.
    Echo,
    /// A new connection per request.
    Connect,
    /// UDP datagrams.
    Udp,
}

/// Load options.
#[derive(Debug, Clone)]
pub struct LoadOpts {
    /// Server address.
    pub addr: SocketAddr,
    /// Mode.
    pub mode: Mode,
    /// Concurrent connections / clients.
    pub conns: usize,
    /// Message size.
    pub size: usize,
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// Measuring window.
    pub duration: Duration,
    /// Echo mode: requests in flight per connection (written together, the
    /// replies read together): 1 is ping-pong, more is pipelining.
    pub depth: usize,
    /// The server's PID, to record its CPU time over the window.
    pub server_pid: Option<i32>,
}

/// CPU time (user + system, all threads) of process `pid` so far, from
/// /proc/PID/stat (clock ticks).
pub fn pid_cpu(pid: i32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// CPU time (user + system) of this process so far.
pub fn self_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Busy and total jiffies of each CPU (from /proc/stat).
pub fn cpu_jiffies() -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect()
}

/// Busy fraction per CPU between two `cpu_jiffies` samples.
pub fn cpu_busy(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let t = y.1.saturating_sub(x.1).max(1) as f64;
            y.0.saturating_sub(x.0) as f64 / t
        })
        .collect()
}

enum State {
    Connecting,
    /// Writing the request from this offset.
    Writing(usize),
    /// Read this many bytes of the reply.
    Reading(usize),
    /// Echo mode, set-up: had its first echo, waits for the others.
    Parked,
    Idle,
}

struct Conn {
    sock: Option<TcpStream>,
    state: State,
    sent_at: Instant,
    /// Requests completed inside the window.
    done: u64,
    /// Echo mode: completed its first round trip (the server serves it).
    primed: bool,
    src: usize,
}

struct Stats {
    hist: Histogram<u64>,
    requests: u64,
    errors: u64,
    mismatches: u64,
    lost: u64,
    /// Requests one completed exchange counts for (the pipelining depth).
    per_exchange: u64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            hist: Histogram::new_with_bounds(100, 120_000_000_000, 3).expect("histogram"),
            requests: 0,
            errors: 0,
            mismatches: 0,
            lost: 0,
            per_exchange: 1,
        }
    }
}

/// Opens a non-blocking connection from source address 127.0.0.{2+k%8}.
fn connect_from(addr: SocketAddr, k: usize) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let s = Socket::new(
        Domain::IPV4,
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    let one: libc::c_int = 1;
    // SAFETY: a valid fd and a c_int option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let src = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (k % 8) as u8)), 0);
    s.bind(&SockAddr::from(src))?;
    // No TCP_NODELAY: one write then FIN, so Nagle never holds anything,
    // and the setsockopt would be one more syscall per request.
    match s.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(s.into()))
}

/// Runs the load and returns one JSON object of results.
pub fn run(o: &LoadOpts) -> io::Result<Value> {
    match o.mode {
        Mode::Udp => run_udp(o),
        _ => run_tcp(o),
    }
}

#[allow(clippy::too_many_arguments)]
fn finish(
    o: &LoadOpts,
    st: &Stats,
    served: usize,
    window: Duration,
    cpu: Duration,
    busy: Vec<f64>,
    connected: usize,
    server_cpu: Option<Duration>,
) -> Value {
    let h = &st.hist;
    let secs = window.as_secs_f64();
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let server_s = server_cpu.map(|d| d.as_secs_f64());
    json!({
        "depth": o.depth.max(1),
        "server_cpu_s": server_s,
        "server_cpu_us_per_req": server_s.map(|c| c * 1e6 / st.requests.max(1) as f64),
        "req_per_server_cpu_s": server_s.map(|c| st.requests as f64 / c.max(1e-9)),
        "mode": format!("{:?}", o.mode).to_lowercase(),
        "conns": o.conns,
        "size": o.size,
        "requests": st.requests,
        "rps": st.requests as f64 / secs,
        "mbps": st.requests as f64 * o.size as f64 / secs / 1e6,
        "p50_us": if st.requests > 0 { us(0.5) } else { f64::NAN },
        "p99_us": if st.requests > 0 { us(0.99) } else { f64::NAN },
        "max_us": h.max() as f64 / 1000.0,
        "errors": st.errors,
        "mismatches": st.mismatches,
        "lost": st.lost,
        "connected": connected,
        "served": served,
        "window_s": secs,
        "load_cpu_s": cpu.as_secs_f64(),
        "load_cpu_frac": cpu.as_secs_f64() / secs,
        "cpu_busy": busy,
    })
}

fn run_tcp(o: &LoadOpts) -> io::Result<Value> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let size = o.size.max(1);
    // Pipelining: `depth` messages written at once, their echoes read back.
    let depth = if o.mode == Mode::Echo {
        o.depth.max(1)
    } else {
        1
    };
    let one: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let req: Vec<u8> = one.repeat(depth);
    let size = req.len();
    let mut rbuf = vec![0u8; size.max(BUF_MIN)];
    let mut conns: Vec<Conn> = Vec::with_capacity(o.conns);
    let open = |k: usize, poll: &Poll| -> io::Result<Conn> {
        let mut sock = if o.mode == Mode::Connect {
            connect_from(o.addr, k)?
        } else {
            let s = TcpStream::connect(o.addr)?;
            s.set_nodelay(true)?;
            s
        };
        poll.registry()
            .register(&mut sock, Token(k), Interest::READABLE | Interest::WRITABLE)?;
        Ok(Conn {
            sock: Some(sock),
            state: State::Connecting,
            sent_at: Instant::now(),
            done: 0,
            primed: false,
            src: k,
        })
    };
    // Connect mode: all clients start at once. Echo mode ramps up: at most
    // RAMP connections wait for their first echo at a time (one more every
    // 5 ms if they stall), so a burst of SYNs never overflows a small listen
    // backlog (std's 128, Python's 5), whose dropped handshakes would stall
    // clients for a 1 s retransmission.
    const RAMP: usize = 4;
    let mut last_open = Instant::now();
    if o.mode == Mode::Connect {
        for k in 0..o.conns {
            conns.push(open(k, &poll)?);
        }
    }
    let mut st = Stats::new();
    st.per_exchange = depth as u64;
    let mut server_cpu0 = None;
    let start = Instant::now();
    // Echo mode: each connection has one echo and waits (parked); the
    // ping-pong on all of them starts, followed by the warm-up and the
    // clock, once every connection is served, or when the server has left
    // some unserved for 0.5 s after the last connect (Python's
    // ForkingTCPServer caps children at 40), or after 3 s.
    let setup_deadline = start + Duration::from_secs(3);
    let mut t0 = if o.mode == Mode::Echo {
        None
    } else {
        Some(start + o.warmup)
    };
    let mut end = t0.map(|t| t + o.duration);
    let mut connected = 0usize;
    let mut cpu0 = None;
    let mut busy0 = None;
    let mut src_next = o.conns;
    loop {
        let now = Instant::now();
        if o.mode == Mode::Echo && conns.len() < o.conns {
            let mut stalled = now.duration_since(last_open) >= Duration::from_millis(5);
            while conns.len() < o.conns && (conns.len() < connected + RAMP || stalled) {
                if conns.len() >= connected + RAMP {
                    stalled = false;
                }
                let k = conns.len();
                conns.push(open(k, &poll)?);
                last_open = Instant::now();
            }
        }
        let stuck = conns.len() == o.conns && now - last_open >= Duration::from_millis(500);
        if t0.is_none() && (connected == o.conns || now >= setup_deadline || stuck) {
            t0 = Some(now + o.warmup);
            end = Some(now + o.warmup + o.duration);
            // Every primed connection starts its ping-pong now.
            for c in conns.iter_mut() {
                if matches!(c.state, State::Parked) {
                    c.state = State::Writing(0);
                    drive(c, &req, &mut rbuf, &mut st, t0, o.mode, &mut connected);
                }
            }
        }
        if cpu0.is_none() && t0.is_some_and(|t| now >= t) {
            server_cpu0 = o.server_pid.and_then(pid_cpu);
            cpu0 = Some(self_cpu());
            busy0 = Some(cpu_jiffies());
        }
        if end.is_some_and(|e| now >= e) {
            break;
        }
        let timeout = end.map_or(Duration::from_millis(5), |e| {
            e.saturating_duration_since(now)
                .min(Duration::from_millis(50))
        });
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            let k = ev.token().0;
            let c = &mut conns[k];
            drive(c, &req, &mut rbuf, &mut st, t0, o.mode, &mut connected);
            if o.mode == Mode::Connect && matches!(c.state, State::Idle) {
                // Next request from this client slot: a new connection.
                // Closing the socket removes it from the epoll set: no
                // EPOLL_CTL_DEL needed (one syscall less per request).
                drop(c.sock.take());
                src_next += 1;
                c.src = src_next;
                match connect_from(o.addr, c.src) {
                    Ok(mut s) => {
                        poll.registry().register(
                            &mut s,
                            Token(k),
                            Interest::READABLE | Interest::WRITABLE,
                        )?;
                        c.sock = Some(s);
                        c.state = State::Connecting;
                        c.sent_at = Instant::now();
                    }
                    Err(_) => {
                        st.errors += 1;
                        // Retry on the next poll timeout sweep.
                        c.state = State::Idle;
                    }
                }
            }
        }
        if o.mode == Mode::Connect {
            // Slots whose reconnect failed (no event will come): retry.
            for (k, c) in conns.iter_mut().enumerate() {
                if c.sock.is_none() {
                    src_next += 1;
                    if let Ok(mut s) = connect_from(o.addr, src_next) {
                        poll.registry().register(
                            &mut s,
                            Token(k),
                            Interest::READABLE | Interest::WRITABLE,
                        )?;
                        c.sock = Some(s);
                        c.state = State::Connecting;
                        c.sent_at = Instant::now();
                    }
                }
            }
        }
    }
    let t0 = t0.unwrap_or(start);
    let window = Instant::now() - t0.min(Instant::now());
    let server_cpu = match (server_cpu0, o.server_pid.and_then(pid_cpu)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let cpu = self_cpu() - cpu0.unwrap_or_else(self_cpu);
    let busy = busy0.map_or(vec![], |b| cpu_busy(&b, &cpu_jiffies()));
    let served = conns.iter().filter(|c| c.done > 0).count();
    let connected = if o.mode == Mode::Echo {
        connected
    } else {
        o.conns
    };
    Ok(finish(
        o, &st, served, window, cpu, busy, connected, server_cpu,
    ))
}

const BUF_MIN: usize = 64 * 1024;

/// Advances one connection as far as it goes without blocking.
fn drive(
    c: &mut Conn,
    req: &[u8],
    rbuf: &mut [u8],
    st: &mut Stats,
    t0: Option<Instant>,
    mode: Mode,
    connected: &mut usize,
) {
    let size = req.len();
    loop {
        let Some(sock) = c.sock.as_mut() else { return };
        match c.state {
            State::Idle | State::Parked => return,
            State::Connecting => {
                match sock.take_error() {
                    Ok(Some(_)) | Err(_) => {
                        fail(c, st);
                        return;
                    }
                    Ok(None) => {}
                }
                match sock.peer_addr() {
                    Ok(_) => {
                        c.state = State::Writing(0);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                    Err(_) => {
                        fail(c, st);
                        return;
                    }
                }
            }
            State::Writing(off) => {
                if off == 0 && mode == Mode::Echo {
                    c.sent_at = Instant::now();
                }
                match sock.write(&req[off..]) {
                    Ok(n) if off + n == size => {
                        if mode == Mode::Connect {
                            let _ = sock.shutdown(Shutdown::Write);
                        }
                        c.state = State::Reading(0);
                        // The reply cannot be there yet: wait for its
                        // readiness event instead of a read that fails
                        // with EAGAIN (one syscall less per request).
                        return;
                    }
                    Ok(n) => c.state = State::Writing(off + n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        fail(c, st);
                        return;
                    }
                }
            }
            State::Reading(got) => {
                let want = if mode == Mode::Connect {
                    rbuf.len()
                } else {
                    size - got
                };
                match sock.read(&mut rbuf[..want]) {
                    Ok(0) => {
                        if mode == Mode::Connect && got == size {
                            complete(c, st, t0);
                            c.state = State::Idle;
                        } else {
                            fail(c, st);
                        }
                        return;
                    }
                    Ok(n) => {
                        let lo = got.min(size);
                        let hi = (got + n).min(size);
                        if rbuf[..hi - lo] != req[lo..hi] {
                            st.mismatches += 1;
                        }
                        let got = got + n;
                        if mode == Mode::Echo && got == size {
                            if !c.primed {
                                c.primed = true;
                                *connected += 1;
                            }
                            if t0.is_none() {
                                c.state = State::Parked;
                                return;
                            }
                            complete(c, st, t0);
                            c.state = State::Writing(0);
                        } else {
                            c.state = State::Reading(got);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        fail(c, st);
                        return;
                    }
                }
            }
        }
    }
}

fn complete(c: &mut Conn, st: &mut Stats, t0: Option<Instant>) {
    let now = Instant::now();
    if t0.is_some_and(|t| now >= t) {
        st.requests += st.per_exchange;
        c.done += 1;
        let ns = (now - c.sent_at).as_nanos() as u64;
        let _ = st.hist.record(ns.max(100));
    }
}

fn fail(c: &mut Conn, st: &mut Stats) {
    st.errors += 1;
    c.state = State::Idle;
}

fn run_udp(o: &LoadOpts) -> io::Result<Value> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let size = o.size.max(1);
    // Pipelining: `depth` messages written at once, their echoes read back.
    let depth = if o.mode == Mode::Echo {
        o.depth.max(1)
    } else {
        1
    };
    let one: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let req: Vec<u8> = one.repeat(depth);
    let size = req.len();
    let mut rbuf = vec![0u8; 65536];
    let mut socks = Vec::with_capacity(o.conns);
    let mut sent_at = Vec::with_capacity(o.conns);
    let mut done = vec![0u64; o.conns];
    for k in 0..o.conns {
        let mut s = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
        s.connect(o.addr)?;
        poll.registry()
            .register(&mut s, Token(k), Interest::READABLE)?;
        s.send(&req)?;
        socks.push(s);
        sent_at.push(Instant::now());
    }
    let mut st = Stats::new();
    st.per_exchange = depth as u64;
    let mut server_cpu0 = None;
    let start = Instant::now();
    let t0 = start + o.warmup;
    let end = t0 + o.duration;
    let lost_after = Duration::from_millis(200);
    let mut cpu0 = None;
    let mut busy0 = None;
    let mut last_sweep = start;
    loop {
        let now = Instant::now();
        if cpu0.is_none() && now >= t0 {
            server_cpu0 = o.server_pid.and_then(pid_cpu);
            cpu0 = Some(self_cpu());
            busy0 = Some(cpu_jiffies());
        }
        if now >= end {
            break;
        }
        let timeout = end
            .saturating_duration_since(now)
            .min(Duration::from_millis(20));
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            let k = ev.token().0;
            loop {
                match socks[k].recv(&mut rbuf) {
                    Ok(n) => {
                        if n != size || rbuf[..n] != req[..] {
                            st.mismatches += 1;
                            continue;
                        }
                        let now = Instant::now();
                        if now >= t0 {
                            st.requests += 1;
                            done[k] += 1;
                            let ns = (now - sent_at[k]).as_nanos() as u64;
                            let _ = st.hist.record(ns.max(100));
                        }
                        sent_at[k] = Instant::now();
                        if socks[k].send(&req).is_err() {
                            st.errors += 1;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        st.errors += 1;
                        break;
                    }
                }
            }
        }
        let now = Instant::now();
        if now - last_sweep >= Duration::from_millis(20) {
            last_sweep = now;
            for k in 0..o.conns {
                if now - sent_at[k] > lost_after {
                    if now >= t0 {
                        st.lost += 1;
                    }
                    sent_at[k] = now;
                    let _ = socks[k].send(&req);
                }
            }
        }
    }
    let window = Instant::now() - t0;
    let server_cpu = match (server_cpu0, o.server_pid.and_then(pid_cpu)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let cpu = self_cpu() - cpu0.unwrap_or_else(self_cpu);
    let busy = busy0.map_or(vec![], |b| cpu_busy(&b, &cpu_jiffies()));
    let served = done.iter().filter(|d| **d > 0).count();
    Ok(finish(
        o, &st, served, window, cpu, busy, o.conns, server_cpu,
    ))
}
