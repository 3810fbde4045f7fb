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
//! - `udp`: `conns` connected UDP sockets, `inflight` datagrams outstanding
//!   each; a reply not back in 200 ms counts as lost and the datagram is
//!   resent. With more than one in flight the generator itself batches
//!   (`recvmmsg`/`sendmmsg`), so it stays cheaper per datagram than the
//!   server it measures (`udp.rs`).
//!
//! Latency is recorded in nanoseconds in an HDR histogram for requests that
//! complete inside the measuring window (after the warm-up).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
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
    /// UDP: datagrams outstanding per client.
    pub inflight: usize,
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

pub(crate) struct Stats {
    pub(crate) hist: Histogram<u64>,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) mismatches: u64,
    pub(crate) lost: u64,
    /// Requests one completed exchange counts for (the pipelining depth).
    pub(crate) per_exchange: u64,
}

impl Stats {
    pub(crate) fn new() -> Stats {
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
        Mode::Udp => crate::udp::run(o),
        _ => run_tcp(o),
    }
}

/// The measuring window: when it starts, and the CPU counters then.
pub(crate) struct Window {
    pub(crate) t0: Option<Instant>,
    cpu0: Option<Duration>,
    busy0: Option<Vec<(u64, u64)>>,
    server_pid: Option<i32>,
    server_cpu0: Option<Duration>,
}

impl Window {
    pub(crate) fn new(t0: Option<Instant>, server_pid: Option<i32>) -> Window {
        Window {
            t0,
            cpu0: None,
            busy0: None,
            server_pid,
            server_cpu0: None,
        }
    }

    /// Takes the CPU counters once the window has begun.
    pub(crate) fn sample(&mut self, now: Instant) {
        if self.cpu0.is_none() && self.t0.is_some_and(|t| now >= t) {
            self.server_cpu0 = self.server_pid.and_then(pid_cpu);
            self.cpu0 = Some(self_cpu());
            self.busy0 = Some(cpu_jiffies());
        }
    }

    /// The server's CPU time over the window, if its PID is known.
    pub(crate) fn server_cpu(&self) -> Option<Duration> {
        match (self.server_cpu0, self.server_pid.and_then(pid_cpu)) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        }
    }

    /// (window length, load-generator CPU, per-CPU busy) until now.
    pub(crate) fn close(&self, start: Instant) -> (Duration, Duration, Vec<f64>) {
        let t0 = self.t0.unwrap_or(start);
        let window = Instant::now() - t0.min(Instant::now());
        let cpu = self_cpu() - self.cpu0.unwrap_or_else(self_cpu);
        let busy = self
            .busy0
            .as_ref()
            .map_or(vec![], |b| cpu_busy(b, &cpu_jiffies()));
        (window, cpu, busy)
    }
}

/// What a run measured, for [`finish`].
pub(crate) struct Outcome {
    pub(crate) served: usize,
    pub(crate) connected: usize,
    pub(crate) window: Duration,
    pub(crate) cpu: Duration,
    pub(crate) busy: Vec<f64>,
    pub(crate) server_cpu: Option<Duration>,
}

/// One JSON object of results.
pub(crate) fn finish(o: &LoadOpts, st: &Stats, out: Outcome) -> Value {
    let Outcome {
        served,
        connected,
        window,
        cpu,
        busy,
        server_cpu,
    } = out;
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
        "inflight": o.inflight,
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

/// What every connection's state machine shares.
struct Shared {
    req: Vec<u8>,
    rbuf: Vec<u8>,
    st: Stats,
    t0: Option<Instant>,
    mode: Mode,
    /// Echo mode: connections that completed a first round trip.
    connected: usize,
}

const BUF_MIN: usize = 64 * 1024;

/// Echo mode ramps up: at most RAMP connections wait for their first echo
/// at a time (one more every 5 ms if they stall), so a burst of SYNs never
/// overflows a small listen backlog (std's 128, Python's 5), whose dropped
/// handshakes would stall clients for a 1 s retransmission.
const RAMP: usize = 4;

/// The TCP load: every connection, the poller, and the clock.
struct TcpLoad<'a> {
    o: &'a LoadOpts,
    poll: Poll,
    conns: Vec<Conn>,
    sh: Shared,
    end: Option<Instant>,
    last_open: Instant,
    src_next: usize,
}

impl<'a> TcpLoad<'a> {
    fn new(o: &'a LoadOpts) -> io::Result<TcpLoad<'a>> {
        // Pipelining: `depth` messages written at once, their echoes read back.
        let depth = if o.mode == Mode::Echo {
            o.depth.max(1)
        } else {
            1
        };
        let one: Vec<u8> = (0..o.size.max(1)).map(|i| (i % 251) as u8).collect();
        let req = one.repeat(depth);
        let size = req.len();
        let mut st = Stats::new();
        st.per_exchange = depth as u64;
        let mut load = TcpLoad {
            o,
            poll: Poll::new()?,
            conns: Vec::with_capacity(o.conns),
            sh: Shared {
                req,
                rbuf: vec![0u8; size.max(BUF_MIN)],
                st,
                t0: None,
                mode: o.mode,
                connected: 0,
            },
            end: None,
            last_open: Instant::now(),
            src_next: o.conns,
        };
        // Connect mode: all clients start at once, and the clock with them.
        if o.mode == Mode::Connect {
            for k in 0..o.conns {
                let c = load.open(k)?;
                load.conns.push(c);
            }
            let t0 = Instant::now() + o.warmup;
            load.sh.t0 = Some(t0);
            load.end = Some(t0 + o.duration);
        }
        Ok(load)
    }

    /// Opens connection `k` and registers it.
    fn open(&self, k: usize) -> io::Result<Conn> {
        let mut sock = if self.o.mode == Mode::Connect {
            connect_from(self.o.addr, k)?
        } else {
            let s = TcpStream::connect(self.o.addr)?;
            s.set_nodelay(true)?;
            s
        };
        self.poll.registry().register(
            &mut sock,
            Token(k),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(Conn {
            sock: Some(sock),
            state: State::Connecting,
            sent_at: Instant::now(),
            done: 0,
            primed: false,
            src: k,
        })
    }

    /// Echo mode: opens more connections as the earlier ones are served.
    fn ramp(&mut self, now: Instant) -> io::Result<()> {
        if self.o.mode != Mode::Echo {
            return Ok(());
        }
        let mut stalled = now.duration_since(self.last_open) >= Duration::from_millis(5);
        while self.conns.len() < self.o.conns
            && (self.conns.len() < self.sh.connected + RAMP || stalled)
        {
            if self.conns.len() >= self.sh.connected + RAMP {
                stalled = false;
            }
            let c = self.open(self.conns.len())?;
            self.conns.push(c);
            self.last_open = Instant::now();
        }
        Ok(())
    }

    /// Echo mode: each connection has had one echo and waits (parked);
    /// the ping-pong on all of them starts, followed by the warm-up and
    /// the clock, once every connection is served, or when the server has
    /// left some unserved for 0.5 s after the last connect (Python's
    /// ForkingTCPServer caps children at 40), or at `setup_deadline`.
    fn start_clock(&mut self, now: Instant, setup_deadline: Instant) {
        let o = self.o;
        let all_open = self.conns.len() == o.conns;
        let stuck = all_open && now - self.last_open >= Duration::from_millis(500);
        let served = self.sh.connected == o.conns;
        if self.sh.t0.is_some() || !(served || now >= setup_deadline || stuck) {
            return;
        }
        self.sh.t0 = Some(now + o.warmup);
        self.end = Some(now + o.warmup + o.duration);
        for c in self.conns.iter_mut() {
            if matches!(c.state, State::Parked) {
                c.state = State::Writing(0);
                drive(c, &mut self.sh);
            }
        }
    }

    /// Connection `k` is ready: drive it; in connect mode a finished
    /// request is followed by a new connection in the same slot.
    fn ready(&mut self, k: usize) -> io::Result<()> {
        drive(&mut self.conns[k], &mut self.sh);
        if self.o.mode == Mode::Connect && matches!(self.conns[k].state, State::Idle) {
            // Closing the socket removes it from the epoll set: no
            // EPOLL_CTL_DEL needed (one syscall less per request).
            drop(self.conns[k].sock.take());
            if !self.reconnect(k)? {
                self.sh.st.errors += 1;
            }
        }
        Ok(())
    }

    /// A new connection in slot `k` from the next source address; false
    /// if the connect failed (the slot is retried by `retry_failed`).
    fn reconnect(&mut self, k: usize) -> io::Result<bool> {
        self.src_next += 1;
        let c = &mut self.conns[k];
        c.src = self.src_next;
        let Ok(mut s) = connect_from(self.o.addr, c.src) else {
            c.state = State::Idle;
            return Ok(false);
        };
        self.poll
            .registry()
            .register(&mut s, Token(k), Interest::READABLE | Interest::WRITABLE)?;
        c.sock = Some(s);
        c.state = State::Connecting;
        c.sent_at = Instant::now();
        Ok(true)
    }

    /// Connect mode: slots whose reconnect failed (no event will come).
    fn retry_failed(&mut self) -> io::Result<()> {
        if self.o.mode == Mode::Connect {
            for k in 0..self.conns.len() {
                if self.conns[k].sock.is_none() {
                    self.reconnect(k)?;
                }
            }
        }
        Ok(())
    }

    fn poll_timeout(&self, now: Instant) -> Duration {
        self.end.map_or(Duration::from_millis(5), |e| {
            e.saturating_duration_since(now)
                .min(Duration::from_millis(50))
        })
    }
}

fn run_tcp(o: &LoadOpts) -> io::Result<Value> {
    let mut load = TcpLoad::new(o)?;
    let mut events = Events::with_capacity(1024);
    let start = Instant::now();
    let setup_deadline = start + Duration::from_secs(3);
    let mut window = Window::new(load.sh.t0, o.server_pid);
    loop {
        let now = Instant::now();
        load.ramp(now)?;
        load.start_clock(now, setup_deadline);
        window.t0 = load.sh.t0;
        window.sample(now);
        if load.end.is_some_and(|e| now >= e) {
            break;
        }
        match load.poll.poll(&mut events, Some(load.poll_timeout(now))) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        for ev in events.iter() {
            load.ready(ev.token().0)?;
        }
        load.retry_failed()?;
    }
    let window_server_cpu = window.server_cpu();
    let (window, cpu, busy) = window.close(start);
    let served = load.conns.iter().filter(|c| c.done > 0).count();
    let connected = if o.mode == Mode::Echo {
        load.sh.connected
    } else {
        o.conns
    };
    let out = Outcome {
        served,
        connected,
        window,
        cpu,
        busy,
        server_cpu: window_server_cpu,
    };
    Ok(finish(o, &load.sh.st, out))
}

/// Advances one connection as far as it goes without blocking.
fn drive(c: &mut Conn, sh: &mut Shared) {
    while c.sock.is_some() {
        let again = match c.state {
            State::Idle | State::Parked => false,
            State::Connecting => connecting(c, sh),
            State::Writing(off) => writing(c, sh, off),
            State::Reading(got) => reading(c, sh, got),
        };
        if !again {
            return;
        }
    }
}

/// A connect in progress: done, failed, or not yet. True to go on.
fn connecting(c: &mut Conn, sh: &mut Shared) -> bool {
    let Some(sock) = c.sock.as_mut() else {
        return false;
    };
    match sock.take_error() {
        Ok(Some(_)) | Err(_) => {
            fail(c, &mut sh.st);
            return false;
        }
        Ok(None) => {}
    }
    match sock.peer_addr() {
        Ok(_) => {
            c.state = State::Writing(0);
            true
        }
        Err(e) if e.kind() == io::ErrorKind::NotConnected => false,
        Err(_) => {
            fail(c, &mut sh.st);
            false
        }
    }
}

/// Writes the request from `off`. True to go on.
fn writing(c: &mut Conn, sh: &mut Shared, off: usize) -> bool {
    if off == 0 && sh.mode == Mode::Echo {
        c.sent_at = Instant::now();
    }
    let Some(sock) = c.sock.as_mut() else {
        return false;
    };
    match sock.write(&sh.req[off..]) {
        Ok(n) if off + n == sh.req.len() => {
            if sh.mode == Mode::Connect {
                let _ = sock.shutdown(Shutdown::Write);
            }
            c.state = State::Reading(0);
            // The reply cannot be there yet: wait for its readiness event
            // instead of a read that fails with EAGAIN (one syscall less
            // per request).
            false
        }
        Ok(n) => {
            c.state = State::Writing(off + n);
            true
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
        Err(_) => {
            fail(c, &mut sh.st);
            false
        }
    }
}

/// Reads the reply, `got` bytes of which have come. True to go on.
fn reading(c: &mut Conn, sh: &mut Shared, got: usize) -> bool {
    let size = sh.req.len();
    let want = if sh.mode == Mode::Connect {
        sh.rbuf.len()
    } else {
        size - got
    };
    let Some(sock) = c.sock.as_mut() else {
        return false;
    };
    match sock.read(&mut sh.rbuf[..want]) {
        Ok(0) => {
            if sh.mode == Mode::Connect && got == size {
                complete(c, &mut sh.st, sh.t0);
                c.state = State::Idle;
            } else {
                fail(c, &mut sh.st);
            }
            false
        }
        Ok(n) => received(c, sh, got, n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
        Err(_) => {
            fail(c, &mut sh.st);
            false
        }
    }
}

/// `n` more bytes of the reply are in `rbuf`: check them; a whole echo
/// completes the request (or parks the connection before the clock).
fn received(c: &mut Conn, sh: &mut Shared, got: usize, n: usize) -> bool {
    let size = sh.req.len();
    let lo = got.min(size);
    let hi = (got + n).min(size);
    if sh.rbuf[..hi - lo] != sh.req[lo..hi] {
        sh.st.mismatches += 1;
    }
    let got = got + n;
    if sh.mode != Mode::Echo || got != size {
        c.state = State::Reading(got);
        return true;
    }
    if !c.primed {
        c.primed = true;
        sh.connected += 1;
    }
    if sh.t0.is_none() {
        c.state = State::Parked;
        return false;
    }
    complete(c, &mut sh.st, sh.t0);
    c.state = State::Writing(0);
    true
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
