//! Lifecycle, drain, backpressure, faults and defaults: the behaviour this
//! crate promises beyond Python's. Every wait is on an event (a channel, a
//! reply, EOF) with a generous upper bound; nothing sleeps to synchronise.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak, mpsc};
use std::time::{Duration, Instant};

use socketserver::{
    Addr, DatagramHandler, DatagramRequest, HandlerError, HandlerResult, ServerBuilder,
    StreamHandler, StreamRequest, TcpServer, ThreadPool, Threading, ThreadingTcpServer,
    TruncatedDatagram,
};

mod support;

use support::{LIMIT, within};

fn connect(server_addr: &Addr) -> TcpStream {
    let s = TcpStream::connect(server_addr.as_inet().unwrap()).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s
}

fn echo(req: &mut StreamRequest) -> HandlerResult {
    std::io::copy(&mut req.rfile, &mut req.wfile)?;
    Ok(())
}

/// Sends a line and reads the echo back.
fn roundtrip(s: &mut TcpStream, msg: &str) -> String {
    s.write_all(msg.as_bytes()).unwrap();
    let mut buf = vec![0; msg.len()];
    s.read_exact(&mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

/// `echo` as a plain function pointer, so servers built on it share a type.
type EchoFn = fn(&mut StreamRequest) -> HandlerResult;

/// Sends `msg`, half-closes, lets the server handle exactly one request
/// with `handle_request`, and returns everything the server sent back.
fn echo_once(server: &TcpServer<EchoFn>, msg: &str) -> String {
    let mut c = connect(server.server_address());
    c.write_all(msg.as_bytes()).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    server.handle_request().unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    got
}

#[test]
fn shutdown_wakes_an_idle_loop() {
    let server = TcpServer::bind("127.0.0.1:0", echo).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            server.serve_forever().unwrap();
            tx.send(()).unwrap();
        });
        // Prove the loop is running (it served a request), then stop it.
        let mut c = connect(server.server_address());
        assert_eq!(roundtrip(&mut c, "ping"), "ping");
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(c.read(&mut [0; 1]).unwrap(), 0);
        server.shutdown();
        // No poll interval: the loop returns on the waker. The bound is
        // generous; the latency is measured in the benchmarks.
        rx.recv_timeout(LIMIT)
            .expect("serve_forever did not return");
    });
}

#[test]
fn shutdown_from_inside_a_handler_does_not_deadlock() {
    // A deadlock would hang a join: `within` turns it into a failure.
    within(LIMIT, "shutdown from a handler", || {
        for strategy in ["sequential", "threading"] {
            let handler = |req: &mut StreamRequest| {
                req.server.shutdown();
                req.wfile.write_all(b"bye")?;
                Ok(())
            };
            let b = ServerBuilder::new();
            let check = |addr: &Addr, serve: &(dyn Fn() -> std::io::Result<()> + Sync)| {
                std::thread::scope(|s| {
                    let t = s.spawn(serve);
                    let mut c = connect(addr);
                    let mut got = String::new();
                    c.read_to_string(&mut got).unwrap();
                    assert_eq!(got, "bye");
                    t.join().unwrap().unwrap();
                });
            };
            if strategy == "sequential" {
                let server = b.bind_tcp("127.0.0.1:0", handler).unwrap();
                check(server.server_address(), &|| server.serve_forever());
                assert!(server.is_shutting_down());
            } else {
                let server = b
                    .strategy(Threading::new())
                    .bind_tcp("127.0.0.1:0", handler)
                    .unwrap();
                check(server.server_address(), &|| server.serve_forever());
            }
        }
    });
}

#[test]
fn shutdown_is_not_sticky() {
    let server = TcpServer::bind("127.0.0.1:0", echo).unwrap();
    server.shutdown(); // before the first serve: that serve returns at once
    server.serve_forever().unwrap();
    server.shutdown(); // after it returned: nothing to stop, no flag left
    std::thread::scope(|s| {
        let t = s.spawn(|| server.serve_forever());
        // The second serve_forever really serves.
        let mut c = connect(server.server_address());
        assert_eq!(roundtrip(&mut c, "again"), "again");
        drop(c);
        server.shutdown();
        t.join().unwrap().unwrap();
    });
}

#[test]
fn a_closed_server_refuses_to_serve() {
    let server = TcpServer::bind("127.0.0.1:0", echo).unwrap();
    server.server_close().unwrap();
    // It says so instead of waiting forever on a listener that is gone.
    assert_eq!(
        server.serve_forever().unwrap_err().kind(),
        ErrorKind::NotConnected
    );
    assert_eq!(
        server.handle_request().unwrap_err().kind(),
        ErrorKind::NotConnected
    );
}

#[test]
fn no_accept_after_shutdown_even_if_pending() {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    let server = TcpServer::bind("127.0.0.1:0", move |_req: &mut StreamRequest| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(())
    })
    .unwrap();
    // A connection waits in the backlog when shutdown is requested: the
    // loop must return without handling it (bpo-35017).
    let _pending = connect(server.server_address());
    server.shutdown();
    server.serve_forever().unwrap();
    assert_eq!(served.load(Ordering::SeqCst), 0);
}

#[derive(Clone)]
struct Timeouts {
    timeouts: Arc<AtomicUsize>,
}

impl StreamHandler for Timeouts {
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        req.wfile.write_all(b"served")?;
        Ok(())
    }
    fn handle_timeout(&self) {
        self.timeouts.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn handle_request_serves_one_or_times_out_once() {
    let handler = Timeouts {
        timeouts: Arc::default(),
    };
    let server = ServerBuilder::new()
        .handle_request_timeout(Duration::from_millis(50))
        .bind_tcp("127.0.0.1:0", handler.clone())
        .unwrap();
    server.handle_request().unwrap(); // nobody connects
    assert_eq!(handler.timeouts.load(Ordering::SeqCst), 1);
    let mut c = connect(server.server_address());
    server.handle_request().unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert_eq!(got, "served");
    assert_eq!(handler.timeouts.load(Ordering::SeqCst), 1);
}

/// A handler that signals when it starts and then waits for a release.
#[derive(Clone)]
struct Gate {
    started: mpsc::Sender<()>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
    /// The most requests in flight any handler saw when it started.
    peak: Arc<AtomicUsize>,
}

impl StreamHandler for Gate {
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        self.peak
            .fetch_max(req.server.active_connections(), Ordering::SeqCst);
        self.started.send(())?;
        self.release.lock().unwrap().recv_timeout(LIMIT)?;
        req.wfile.write_all(b"done")?;
        Ok(())
    }
}

fn gate() -> (Gate, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    (
        Gate {
            started: started_tx,
            release: Arc::new(Mutex::new(release_rx)),
            peak: Arc::default(),
        },
        started_rx,
        release_tx,
    )
}

#[test]
fn drain_waits_for_in_flight_handlers_after_freeing_the_port() {
    let (handler, started, release) = gate();
    let server = ThreadingTcpServer::bind("127.0.0.1:0", handler).unwrap();
    let addr = server.server_address().as_inet().unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| server.serve_forever());
        let mut c = connect(server.server_address());
        started.recv_timeout(LIMIT).unwrap();
        server.shutdown();
        t.join().unwrap().unwrap();
        let closing = s.spawn(|| server.server_close().unwrap());
        // The listener closes first: soon the port refuses connections and
        // can be bound again, while the handler is still running.
        let start = Instant::now();
        let rebound = loop {
            match TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(_) if start.elapsed() < LIMIT => std::thread::yield_now(),
                Err(e) => panic!("port not freed: {e}"),
            }
        };
        drop(rebound);
        assert!(
            !closing.is_finished(),
            "close returned before the handler ended"
        );
        release.send(()).unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "done");
        let report = closing.join().unwrap();
        assert_eq!(
            (report.completed, report.forced, report.abandoned),
            (1, 0, 0)
        );
    });
}

#[test]
fn drain_deadline_cuts_stuck_connections() {
    // A handler blocked reading from a silent client.
    let (tx, started) = mpsc::channel();
    let server = ServerBuilder::new()
        .strategy(Threading::new())
        .drain_timeout(Duration::from_millis(100))
        .bind_tcp("127.0.0.1:0", move |req: &mut StreamRequest| {
            tx.send(())?;
            let mut line = String::new();
            req.rfile.read_line(&mut line)?; // returns when the socket is cut
            Ok(())
        })
        .unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| server.serve_forever());
        let mut c = connect(server.server_address());
        started.recv_timeout(LIMIT).unwrap();
        server.shutdown();
        t.join().unwrap().unwrap();
        let report = server.server_close().unwrap();
        assert_eq!(
            (report.completed, report.forced, report.abandoned),
            (0, 1, 0)
        );
        assert!(report.elapsed >= Duration::from_millis(100));
        // The client sees its connection end.
        assert_eq!(c.read(&mut [0; 1]).unwrap_or(0), 0);
    });
}

#[test]
fn is_shutting_down_lets_long_handlers_end_politely() {
    let (tx, started) = mpsc::channel();
    let server = ThreadingTcpServer::bind("127.0.0.1:0", move |req: &mut StreamRequest| {
        tx.send(req.server.clone())?;
        // A long-lived handler polls the flag between units of work.
        req.set_read_timeout(Some(Duration::from_millis(10)))?;
        let mut buf = [0u8; 64];
        while !req.is_shutting_down() {
            match req.rfile.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => req.wfile.write_all(&buf[..n])?,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e.into()),
            }
        }
        req.wfile.write_all(b"goodbye")?;
        Ok(())
    })
    .unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| server.serve_forever());
        let mut c = connect(server.server_address());
        let handle = started.recv_timeout(LIMIT).unwrap();
        assert!(!handle.is_shutting_down());
        server.shutdown();
        t.join().unwrap().unwrap();
        // The handler may end before or during the drain; either way it
        // ended by itself, nothing was cut.
        let report = server.server_close().unwrap();
        assert_eq!((report.forced, report.abandoned), (0, 0));
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "goodbye");
    });
}

#[test]
fn max_connections_holds_the_rest_in_the_backlog() {
    let (handler, started, release) = gate();
    let peak = Arc::clone(&handler.peak);
    let server = ServerBuilder::new()
        .strategy(Threading::new())
        .max_connections(2)
        .bind_tcp("127.0.0.1:0", handler)
        .unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| server.serve_forever());
        let mut clients: Vec<_> = (0..3).map(|_| connect(server.server_address())).collect();
        started.recv_timeout(LIMIT).unwrap();
        started.recv_timeout(LIMIT).unwrap();
        // The third connected (the kernel queued it) but is not handled
        // while two are live.
        assert_eq!(server.active_connections(), 2);
        assert!(started.try_recv().is_err());
        release.send(()).unwrap();
        // One ends, so the loop resumes and the third starts.
        started.recv_timeout(LIMIT).unwrap();
        release.send(()).unwrap();
        release.send(()).unwrap();
        for c in &mut clients {
            let mut got = String::new();
            c.read_to_string(&mut got).unwrap();
            assert_eq!(got, "done");
        }
        server.shutdown();
        t.join().unwrap().unwrap();
    });
    assert_eq!(server.server_close().unwrap().forced, 0);
    assert_eq!(server.active_connections(), 0);
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "more than 2 requests ran at once"
    );
}

#[test]
fn pool_serves_more_clients_than_workers_through_its_bounded_queue() {
    let server = ServerBuilder::new()
        .strategy(ThreadPool::new(2).queue(1))
        .bind_tcp("127.0.0.1:0", echo)
        .unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| server.serve_forever());
        let addr = server.server_address().clone();
        let clients: Vec<_> = (0..8)
            .map(|i| {
                let addr = addr.clone();
                s.spawn(move || {
                    let mut c = connect(&addr);
                    let msg = format!("client {i}");
                    let got = roundtrip(&mut c, &msg);
                    assert_eq!(got, msg);
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        server.shutdown();
        t.join().unwrap().unwrap();
    });
    // Nothing is kept per finished request.
    assert_eq!(server.server_close().unwrap().forced, 0);
    assert_eq!(server.active_connections(), 0);
}

#[derive(Clone)]
struct Faulty {
    errors: mpsc::Sender<(Addr, String)>,
}

impl StreamHandler for Faulty {
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        let mut line = String::new();
        req.rfile.read_line(&mut line)?;
        match line.trim() {
            "panic" => panic!("asked to panic"),
            "error" => Err("asked to fail".into()),
            other => {
                req.wfile.write_all(other.as_bytes())?;
                Ok(())
            }
        }
    }
    fn handle_error(&self, peer: &Addr, error: &HandlerError) {
        let _ = self.errors.send((peer.clone(), error.to_string()));
    }
}

#[test]
fn failing_and_panicking_handlers_never_stop_the_server() {
    let (tx, errors) = mpsc::channel();
    let server = ServerBuilder::new()
        .strategy(ThreadPool::new(1)) // one worker: it must survive the panic
        .bind_tcp("127.0.0.1:0", Faulty { errors: tx })
        .unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| server.serve_forever());
        for (input, expected) in [
            ("panic", "handler panicked: asked to panic"),
            ("error", "asked to fail"),
        ] {
            let mut c = connect(server.server_address());
            let local = c.local_addr().unwrap();
            c.write_all(format!("{input}\n").as_bytes()).unwrap();
            let (peer, message) = errors.recv_timeout(LIMIT).unwrap();
            assert_eq!(peer.as_inet(), Some(local), "handle_error gets the peer");
            assert_eq!(message, expected);
            // The connection is closed.
            assert_eq!(c.read(&mut [0; 1]).unwrap_or(0), 0);
        }
        let mut c = connect(server.server_address());
        c.write_all(b"still here\n").unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "still here");
        server.shutdown();
        t.join().unwrap().unwrap();
    });
}

#[derive(Clone)]
struct Lifecycle {
    log: Arc<Mutex<Vec<&'static str>>>,
    fail_setup: bool,
}

impl StreamHandler for Lifecycle {
    fn setup(&mut self, _req: &mut StreamRequest) -> HandlerResult {
        self.log.lock().unwrap().push("setup");
        if self.fail_setup {
            return Err("setup failed".into());
        }
        Ok(())
    }
    fn handle(&mut self, _req: &mut StreamRequest) -> HandlerResult {
        self.log.lock().unwrap().push("handle");
        Err("handle failed".into())
    }
    fn finish(&mut self, _req: &mut StreamRequest) -> HandlerResult {
        self.log.lock().unwrap().push("finish");
        Ok(())
    }
    fn handle_error(&self, _peer: &Addr, _error: &HandlerError) {
        self.log.lock().unwrap().push("handle_error");
    }
}

#[test]
fn setup_handle_finish_in_pythons_order() {
    for (fail_setup, expected) in [
        (false, vec!["setup", "handle", "finish", "handle_error"]),
        (true, vec!["setup", "handle_error"]),
    ] {
        let handler = Lifecycle {
            log: Arc::default(),
            fail_setup,
        };
        let server = TcpServer::bind("127.0.0.1:0", handler.clone()).unwrap();
        let _c = connect(server.server_address());
        server.handle_request().unwrap();
        assert_eq!(*handler.log.lock().unwrap(), expected);
    }
}

#[test]
fn read_timeout_applies_to_every_connection() {
    let (tx, errors) = mpsc::channel();
    let server = ServerBuilder::new()
        .read_timeout(Duration::from_millis(50))
        .bind_tcp("127.0.0.1:0", Faulty { errors: tx })
        .unwrap();
    let mut silent = connect(server.server_address());
    server.handle_request().unwrap(); // returns once the read times out
    let (_, message) = errors.recv_timeout(LIMIT).unwrap();
    assert!(
        message.contains("temporarily unavailable") || message.contains("timed out"),
        "{message}"
    );
    assert_eq!(silent.read(&mut [0; 1]).unwrap_or(0), 0);
}

#[derive(Clone)]
struct UdpEcho {
    errors: mpsc::Sender<String>,
}

impl DatagramHandler for UdpEcho {
    fn handle(&mut self, req: &mut DatagramRequest) -> HandlerResult {
        if req.data() != b"silent" {
            req.reply(req.data())?;
        }
        Ok(())
    }
    fn handle_error(&self, _peer: &Addr, error: &HandlerError) {
        let truncated = error.downcast_ref::<TruncatedDatagram>().is_some();
        let _ = self.errors.send(format!("{truncated}: {error}"));
    }
}

#[test]
fn udp_truncation_is_reported_and_no_empty_reply_is_sent() {
    let (tx, errors) = mpsc::channel();
    let server = ServerBuilder::new()
        .max_packet_size(1024)
        .bind_udp("127.0.0.1:0", UdpEcho { errors: tx })
        .unwrap();
    let addr = server.server_address().as_inet().unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(LIMIT)).unwrap();
    // The server's socket can send from outside any handler.
    let socket = server.socket().expect("a UDP server has a socket");
    socket
        .send_to(
            b"hello from the server",
            &Addr::Inet(client.local_addr().unwrap()),
        )
        .unwrap();
    let mut first = [0u8; 64];
    let n = client.recv(&mut first).unwrap();
    assert_eq!(&first[..n], b"hello from the server");
    std::thread::scope(|s| {
        let t = s.spawn(|| server.serve_forever());
        client.send_to(&[b'x'; 2000], addr).unwrap();
        let e = errors.recv_timeout(LIMIT).unwrap();
        assert!(
            e.starts_with("true: datagram longer than the 1024-byte"),
            "{e}"
        );
        // A handler that replies nothing sends nothing (Python sends an
        // empty datagram): the next datagram we get is the echo of the third.
        client.send_to(b"silent", addr).unwrap();
        client.send_to(b"echo me", addr).unwrap();
        let mut buf = [0u8; 2048];
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"echo me");
        // A full 1024-byte datagram fits.
        client.send_to(&[b'y'; 1024], addr).unwrap();
        assert_eq!(client.recv(&mut buf).unwrap(), 1024);
        server.shutdown();
        t.join().unwrap().unwrap();
    });
}

#[test]
fn ipv6_works_when_available() {
    let handler: EchoFn = echo;
    let Ok(server) = TcpServer::bind("[::1]:0", handler) else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    assert!(server.server_address().as_inet().unwrap().is_ipv6());
    assert_eq!(echo_once(&server, "six"), "six");
}

#[test]
fn from_listener_adopts_a_bound_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handler: EchoFn = echo;
    let server = TcpServer::from_listener(listener, handler).unwrap();
    assert_eq!(server.server_address().as_inet(), Some(addr));
    assert_eq!(echo_once(&server, "adopted"), "adopted");
}

#[test]
fn unix_socket_paths_are_managed_safely() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    // A stale socket file from a crashed server is replaced...
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = ServerBuilder::new()
        .nodelay(true) // never applied to Unix sockets (Python: EOPNOTSUPP)
        .bind_unix_stream(&path, echo)
        .unwrap();
    let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
    c.write_all(b"unix").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    server.handle_request().unwrap();
    let mut got = String::new();
    BufReader::new(&c).read_line(&mut got).unwrap();
    assert_eq!(got, "unix");
    // ...the path the server created is removed when it closes...
    drop(server);
    assert!(!path.exists());
    // ...and a file that is not a socket is never removed.
    std::fs::write(&path, "precious").unwrap();
    let err = ServerBuilder::new()
        .bind_unix_stream(&path, echo)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

/// A handler that holds its own server and tries to close it.
#[derive(Clone)]
struct SelfCloser {
    me: Arc<OnceLock<Weak<TcpServer<SelfCloser>>>>,
    result: mpsc::Sender<Result<(), ErrorKind>>,
}

impl StreamHandler for SelfCloser {
    fn handle(&mut self, _req: &mut StreamRequest) -> HandlerResult {
        let server = self.me.get().and_then(Weak::upgrade).ok_or("no server")?;
        let closed = server.server_close().map(|_| ()).map_err(|e| e.kind());
        self.result.send(closed)?;
        Ok(())
    }
}

#[test]
fn server_close_from_the_loops_own_handler_is_refused_not_deadlocked() {
    let (tx, rx) = mpsc::channel();
    let handler = SelfCloser {
        me: Arc::default(),
        result: tx,
    };
    let server = Arc::new(TcpServer::bind("127.0.0.1:0", handler.clone()).unwrap());
    handler.me.set(Arc::downgrade(&server)).unwrap();
    let _c = connect(server.server_address());
    server.handle_request().unwrap();
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), Err(ErrorKind::Deadlock));
    // From outside the loop it closes normally.
    assert_eq!(server.server_close().unwrap().forced, 0);
}

/// Panics in `verify_request` for every other connection.
#[derive(Clone)]
struct PanickyVerify {
    errors: mpsc::Sender<String>,
    calls: Arc<AtomicUsize>,
}

impl StreamHandler for PanickyVerify {
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        req.wfile.write_all(b"served")?;
        Ok(())
    }
    fn verify_request(&self, _peer: &Addr) -> bool {
        if self.calls.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
            panic!("verify_request blew up");
        }
        true
    }
    fn handle_error(&self, _peer: &Addr, error: &HandlerError) {
        let _ = self.errors.send(error.to_string());
    }
}

// Python lets an exception in verify_request escape the loop and leak the
// socket; here it is reported, the connection is closed, and the loop goes on.
#[test]
fn a_panicking_verify_request_closes_that_connection_only() {
    let (tx, errors) = mpsc::channel();
    let handler = PanickyVerify {
        errors: tx,
        calls: Arc::default(),
    };
    let server = TcpServer::bind("127.0.0.1:0", handler).unwrap();
    let (mut refused, mut served) = (0, 0);
    for i in 0..6 {
        let mut c = connect(server.server_address());
        let even = i % 2 == 0;
        server.handle_request().unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        if even {
            assert_eq!(got, "", "a refused connection is closed unserved");
            let e = errors.recv_timeout(LIMIT).unwrap();
            assert_eq!(e, "handler panicked: verify_request blew up");
            refused += 1;
        } else {
            assert_eq!(got, "served");
            served += 1;
        }
    }
    assert_eq!((refused, served), (3, 3));
}

#[test]
fn threading_names_its_threads_and_sets_their_stack() {
    let (tx, names) = mpsc::channel();
    let server = ServerBuilder::new()
        .strategy(Threading::new().name("echo-worker").stack_size(128 * 1024))
        .bind_tcp("127.0.0.1:0", move |_req: &mut StreamRequest| {
            // A 64 KiB local fits the 128 KiB stack.
            let big = [1u8; 64 * 1024];
            tx.send((
                std::thread::current().name().map(str::to_string),
                big.iter().map(|&b| b as usize).sum::<usize>(),
            ))?;
            Ok(())
        })
        .unwrap();
    let _c = connect(server.server_address());
    server.handle_request().unwrap();
    let (name, sum) = names.recv_timeout(LIMIT).unwrap();
    assert_eq!(name.as_deref(), Some("echo-worker-1"));
    assert_eq!(sum, 64 * 1024);
}
