//! The connection edge without TLS: deadlines against slowloris clients,
//! the PROXY protocol, and the stats counters, each on a real server bound
//! to 127.0.0.1 on an OS-picked port.

#[macro_use]
mod edge_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use edge_support::{read_to_close, wait_until};
use socketserver::{
    Addr, Deadlines, HandlerResult, ProxyProtocol, ServerBuilder, StreamHandler, StreamRequest,
    Threading,
};

const LIMIT: Duration = Duration::from_secs(10);

fn echo(req: &mut StreamRequest) -> HandlerResult {
    std::io::copy(&mut req.rfile, &mut req.wfile)?;
    Ok(())
}

fn builder() -> ServerBuilder<Threading> {
    ServerBuilder::new()
        .strategy(Threading::new())
        .drain_timeout(Duration::from_secs(2))
}

/// A normal client: sends `data`, half-closes, reads the echo.
fn echo_once(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(data).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let (got, closed) = read_to_close(&mut c, LIMIT);
    assert!(closed, "the normal client was not answered in time");
    got
}

/// A slowloris: sends one byte every `every` (none if `None`) until the
/// server closes the connection; returns how long the server took.
fn slowloris(addr: SocketAddr, every: Option<Duration>) -> Duration {
    let start = Instant::now();
    let mut c = TcpStream::connect(addr).unwrap();
    let reader = c.try_clone().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = reader;
        let (_, closed) = read_to_close(&mut reader, LIMIT);
        let _ = tx.send((closed, start.elapsed()));
    });
    let every = every.unwrap_or(LIMIT);
    // Bounded: at most LIMIT / every bytes, and only until the close.
    loop {
        match rx.recv_timeout(every) {
            Ok((closed, took)) => {
                assert!(closed, "the server never closed the slowloris");
                return took;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                assert!(
                    start.elapsed() < LIMIT,
                    "slowloris still open after {LIMIT:?}"
                );
                let _ = c.write_all(b"x");
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Runs a slowloris and, while it is connected, a normal client.
fn slowloris_and_normal(
    addr: SocketAddr,
    every: Option<Duration>,
    normal: &[u8],
) -> (Duration, Vec<u8>) {
    let slow = std::thread::spawn(move || slowloris(addr, every));
    let got = echo_once(addr, normal);
    (slow.join().unwrap(), got)
}

#[test]
fn idle_deadline_closes_a_silent_client_while_others_are_served() {
    let idle = Duration::from_millis(300);
    let server = builder()
        .deadlines(Deadlines::new().idle(idle))
        .bind_tcp("127.0.0.1:0", echo)
        .unwrap();
    let running = run!(server);
    let (took, got) = slowloris_and_normal(running.addr, None, b"hello");
    assert_eq!(got, b"hello");
    assert!(
        took >= idle && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    let stats = running.handle.stats();
    assert_eq!(stats.idle_timeouts, 1);
    assert_eq!((stats.request_timeouts, stats.min_rate_timeouts), (0, 0));
}

#[test]
fn request_deadline_is_not_extended_by_trickling() {
    let limit = Duration::from_millis(600);
    let server = builder()
        .read_timeout(Duration::from_secs(5))
        .deadlines(Deadlines::new().request(limit))
        .bind_tcp("127.0.0.1:0", echo)
        .unwrap();
    let running = run!(server);
    // One byte every 50 ms: a per-call read timeout of 5 s never fires.
    let (took, got) = slowloris_and_normal(running.addr, Some(Duration::from_millis(50)), b"hi");
    assert_eq!(got, b"hi");
    assert!(
        took >= limit && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    assert_eq!(running.handle.stats().request_timeouts, 1);
}

#[test]
fn min_rate_closes_a_trickler_but_not_a_fast_client() {
    let server = builder()
        .deadlines(Deadlines::new().min_rate(2000, Duration::from_millis(200)))
        .bind_tcp("127.0.0.1:0", echo)
        .unwrap();
    let running = run!(server);
    let big = vec![7u8; 256 * 1024];
    let (took, got) = slowloris_and_normal(running.addr, Some(Duration::from_millis(20)), &big);
    assert_eq!(got.len(), big.len());
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    let stats = running.handle.stats();
    assert_eq!(stats.min_rate_timeouts, 1);
    assert_eq!(stats.idle_timeouts + stats.request_timeouts, 0);
}

/// Reports what the handler saw, then echoes one line.
fn who(req: &mut StreamRequest) -> HandlerResult {
    let peer = req.peer.clone();
    let (proxy, local) = match req.proxy() {
        Some(p) => (p.proxy.to_string(), p.local),
        None => ("none".into(), false),
    };
    writeln!(req.wfile, "peer={peer} proxy={proxy} local={local}")?;
    let mut line = String::new();
    req.rfile.read_line(&mut line)?;
    req.wfile.write_all(line.as_bytes())?;
    Ok(())
}

fn talk(addr: SocketAddr, first: &[u8]) -> (String, bool) {
    let mut c = TcpStream::connect(addr).unwrap();
    let _ = c.write_all(first);
    let (got, closed) = read_to_close(&mut c, LIMIT);
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

fn v2(command: u8, addrs: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x20 | command);
    h.push(if addrs.is_empty() { 0x00 } else { 0x11 });
    h.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
    h.extend_from_slice(addrs);
    h
}

#[test]
fn proxy_headers_v1_and_v2_give_the_client_address() {
    let policy = ProxyProtocol::required_from(["127.0.0.1/32".parse().unwrap()])
        .timeout(Duration::from_millis(300));
    let server = builder()
        .proxy_protocol(policy)
        .bind_tcp("127.0.0.1:0", who)
        .unwrap();
    let running = run!(server);
    let addr = running.addr;

    let (got, _) = talk(addr, b"PROXY TCP4 192.0.2.1 192.0.2.9 5555 80\r\nhello\n");
    assert!(
        got.starts_with("peer=192.0.2.1:5555 proxy=127.0.0.1:"),
        "{got}"
    );
    assert!(got.ends_with("local=false\nhello\n"), "{got}");

    // v2 PROXY for 198.51.100.7:8080, then a payload that must be untouched
    let mut h = v2(1, &[198, 51, 100, 7, 192, 0, 2, 9, 0x1f, 0x90, 0, 80]);
    h.extend_from_slice(b"\x16\x03\x01binary\n");
    let (got, _) = talk(addr, &h);
    assert!(got.starts_with("peer=198.51.100.7:8080 "), "{got}");
    assert!(got.ends_with("\x16\x03\x01binary\n"), "{got:?}");

    // Health checks: v2 LOCAL and v1 UNKNOWN keep the socket's address.
    let mut h = v2(0, &[]);
    h.extend_from_slice(b"ping\n");
    let (got, _) = talk(addr, &h);
    assert!(
        got.starts_with("peer=127.0.0.1:") && got.contains("local=true"),
        "{got}"
    );
    let (got, _) = talk(addr, b"PROXY UNKNOWN\r\nping\n");
    assert!(
        got.starts_with("peer=127.0.0.1:") && got.contains("local=true"),
        "{got}"
    );
    assert_eq!(running.handle.stats().proxy_rejects, 0);
}

#[test]
fn bad_proxy_headers_never_reach_the_handler() {
    let reached = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&reached);
    let handler = move |req: &mut StreamRequest| {
        r.store(true, Ordering::SeqCst);
        who(req)
    };
    let strict = ProxyProtocol::required_from(["127.0.0.1".parse().unwrap()])
        .timeout(Duration::from_millis(300));
    let server = builder()
        .proxy_protocol(strict)
        .bind_tcp("127.0.0.1:0", handler.clone())
        .unwrap();
    let running = run!(server);

    // Malformed: an HTTP request where the header should be.
    let (got, closed) = talk(running.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(closed && got.is_empty(), "{got:?}");
    // Slow: half a header, then nothing; closed at the 300 ms deadline.
    let start = Instant::now();
    let (got, closed) = talk(running.addr, b"PROXY TCP4 192.0.2.1 ");
    assert!(closed && got.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(300) && start.elapsed() < LIMIT);
    // Meanwhile a good header is served.
    let (got, _) = talk(running.addr, b"PROXY TCP4 192.0.2.1 192.0.2.9 1 2\r\nok\n");
    assert!(got.starts_with("peer=192.0.2.1:1"), "{got}");
    let stats = running.handle.stats();
    assert_eq!((stats.proxy_rejects, stats.proxy_header_timeouts), (2, 1));
    drop(running);

    // Untrusted: the proxy is not in the list, even with a valid header.
    reached.store(false, Ordering::SeqCst);
    let elsewhere = ProxyProtocol::required_from(["10.0.0.0/8".parse().unwrap()]);
    let server = builder()
        .proxy_protocol(elsewhere)
        .bind_tcp("127.0.0.1:0", handler)
        .unwrap();
    let running = run!(server);
    let (got, closed) = talk(running.addr, b"PROXY TCP4 192.0.2.1 192.0.2.9 1 2\r\nok\n");
    assert!(closed && got.is_empty(), "{got:?}");
    assert!(
        !reached.load(Ordering::SeqCst),
        "an untrusted connection reached the handler"
    );
    assert_eq!(running.handle.stats().proxy_rejects, 1);
}

/// Refuses 127.0.0.2, fails on "err", panics on "panic", else echoes.
#[derive(Clone)]
struct Counted;

impl StreamHandler for Counted {
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        let mut line = String::new();
        req.rfile.read_line(&mut line)?;
        match line.trim() {
            "err" => Err("asked to fail".into()),
            "panic" => panic!("asked to panic"),
            "hold" => {
                req.wfile.write_all(b"holding\n")?;
                req.rfile.read_line(&mut line)?; // until the client goes
                Ok(())
            }
            _ => Ok(req.wfile.write_all(line.as_bytes())?),
        }
    }

    fn verify_request(&self, peer: &Addr) -> bool {
        peer.as_inet().unwrap().ip() != std::net::IpAddr::from([127, 0, 0, 2])
    }

    fn handle_error(&self, _peer: &Addr, _error: &socketserver::HandlerError) {}
}

#[test]
fn stats_count_what_happened() {
    let server = builder().bind_tcp("127.0.0.1:0", Counted).unwrap();
    let running = run!(server);
    let addr = running.addr;
    let mut sent = 0;
    let mut received = 0;
    for i in 0..5 {
        let line = format!("line {i}\n");
        let got = echo_once(addr, line.as_bytes());
        assert_eq!(got, line.as_bytes());
        sent += line.len();
        received += got.len();
    }
    for word in ["err\n", "panic\n"] {
        let got = echo_once(addr, word.as_bytes());
        assert!(got.is_empty());
        sent += word.len();
    }
    // One refused by verify_request: connect from 127.0.0.2.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut refused: TcpStream = sock.into();
    let (got, closed) = read_to_close(&mut refused, LIMIT);
    assert!(closed && got.is_empty());
    // Three held open at once: the peak. (A handler's accounting ends just
    // after its client reads EOF, so wait for the earlier ones first.)
    assert!(wait_until(LIMIT, || running.handle.stats().active == 0));
    let held: Vec<_> = (0..3)
        .map(|_| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"hold\n").unwrap();
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            assert_eq!(l, "holding\n");
            sent += 5;
            received += l.len();
            c
        })
        .collect();
    let stats = running.handle.stats();
    assert_eq!((stats.active, stats.peak_active), (3, 3));
    for mut c in held {
        c.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
    }
    assert!(wait_until(LIMIT, || running.handle.stats().active == 0));
    let s = running.handle.stats();
    assert_eq!(s.accepted, 5 + 2 + 1 + 3);
    assert_eq!(s.refused, 1);
    assert_eq!((s.handler_errors, s.handler_panics), (1, 1));
    assert_eq!(s.bytes_in, sent as u64);
    assert_eq!(s.bytes_out, received as u64);
    assert_eq!(
        (s.accept_errors, s.tls_handshake_failures, s.proxy_rejects),
        (0, 0, 0)
    );
    assert_eq!(s.drain, socketserver::DrainState::Running);
    let handle = running.handle.clone();
    drop(running);
    assert_eq!(handle.stats().drain, socketserver::DrainState::Closed);
}

#[test]
fn paused_at_max_connections_is_counted() {
    let server = builder()
        .max_connections(1)
        .bind_tcp("127.0.0.1:0", Counted)
        .unwrap();
    let running = run!(server);
    let mut a = TcpStream::connect(running.addr).unwrap();
    a.write_all(b"hold\n").unwrap();
    let mut l = String::new();
    BufReader::new(a.try_clone().unwrap())
        .read_line(&mut l)
        .unwrap();
    assert!(wait_until(LIMIT, || running
        .handle
        .stats()
        .paused_at_max_connections
        >= 1));
    drop(a);
    assert_eq!(echo_once(running.addr, b"after\n"), b"after\n");
}

/// A keep-alive handler: one line per request, `next_request` between.
fn per_line(req: &mut StreamRequest) -> HandlerResult {
    while req.next_request()? {
        let mut line = String::new();
        req.rfile.read_line(&mut line)?;
        req.wfile.write_all(line.as_bytes())?;
    }
    Ok(())
}

#[test]
fn next_request_restarts_the_deadlines_for_each_request() {
    let server = builder()
        .deadlines(
            Deadlines::new()
                .idle(Duration::from_millis(400))
                .request(Duration::from_millis(600)),
        )
        .bind_tcp("127.0.0.1:0", per_line)
        .unwrap();
    let running = run!(server);
    let mut c = TcpStream::connect(running.addr).unwrap();
    c.set_read_timeout(Some(LIMIT)).unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    // Six requests 150 ms apart: 900 ms in all, past the 600 ms request
    // deadline, but each request is quick, and each restarts the clock.
    let start = Instant::now();
    let mut last_sent = start;
    for i in 0..6 {
        std::thread::sleep(Duration::from_millis(150));
        last_sent = Instant::now(); // the server's idle clock starts after this
        writeln!(c, "request {i}").unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, format!("request {i}\n"));
    }
    assert!(start.elapsed() > Duration::from_millis(600));
    // Then silence: the idle deadline closes the connection.
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty() && last_sent.elapsed() >= Duration::from_millis(400));
    let stats = running.handle.stats();
    assert_eq!((stats.idle_timeouts, stats.request_timeouts), (1, 0));
}

#[test]
fn serve_backlog_on_close_serves_queued_connections_instead_of_resetting_them() {
    for serve in [true, false] {
        let server = builder()
            .serve_backlog_on_close(serve)
            .bind_tcp("127.0.0.1:0", echo)
            .unwrap();
        let addr = server.server_address().as_inet().unwrap();
        // Three clients queue in the backlog of a server that never accepts.
        let mut queued: Vec<TcpStream> = (0..3)
            .map(|i| {
                let mut c = TcpStream::connect(addr).unwrap();
                c.write_all(format!("queued {i}").as_bytes()).unwrap();
                c.shutdown(Shutdown::Write).unwrap();
                c
            })
            .collect();
        server.server_close().unwrap();
        for (i, c) in queued.iter_mut().enumerate() {
            let (got, closed) = read_to_close(c, LIMIT);
            assert!(closed);
            let want = if serve {
                format!("queued {i}").into_bytes()
            } else {
                Vec::new()
            };
            assert_eq!(got, want, "serve_backlog_on_close({serve})");
        }
    }
}
