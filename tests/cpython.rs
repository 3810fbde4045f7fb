//! CPython's `Lib/test/test_socketserver.py`, ported (the tests that do not
//! fork; the forking ones live in `tests/forking.rs`, a single-threaded
//! binary). Each test keeps the name of the CPython test it ports.

use std::io::{BufRead, Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use socketserver::{
    Addr, AnyStrategy, DatagramHandler, DatagramRequest, HandlerError, HandlerResult, PanicError,
    Server, ServerBuilder, Strategy, StreamHandler, StreamRequest, TcpServer, ThreadPool,
    Threading, ThreadingTcpServer, Transport,
};

mod support;

use support::{LIMIT, within};

const TEST_STR: &[u8] = b"hello world\n";

/// CPython's echo-one-line handler, with `handle_error` failing the test
/// (CPython's `MyServer.handle_error` re-raises).
#[derive(Clone)]
struct EchoLine;

impl StreamHandler for EchoLine {
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        let mut line = Vec::new();
        req.rfile.read_until(b'\n', &mut line)?;
        req.wfile.write_all(&line)?;
        Ok(())
    }
    fn handle_error(&self, peer: &Addr, error: &HandlerError) {
        panic!("handler failed for {peer}: {error}");
    }
}

impl DatagramHandler for EchoLine {
    fn handle(&mut self, req: &mut DatagramRequest) -> HandlerResult {
        let line = req
            .data()
            .split_inclusive(|b| *b == b'\n')
            .next()
            .unwrap_or(b"");
        req.reply(line)?;
        Ok(())
    }
    fn handle_error(&self, peer: &Addr, error: &HandlerError) {
        panic!("handler failed for {peer}: {error}");
    }
}

fn stream_examine(addr: &Addr) {
    let mut buf = Vec::new();
    match addr {
        Addr::Inet(a) => {
            let mut s = TcpStream::connect(a).unwrap();
            s.set_read_timeout(Some(LIMIT)).unwrap();
            s.write_all(TEST_STR).unwrap();
            s.read_to_end(&mut buf).unwrap();
        }
        Addr::Unix(Some(p)) => {
            let mut s = UnixStream::connect(p).unwrap();
            s.set_read_timeout(Some(LIMIT)).unwrap();
            s.write_all(TEST_STR).unwrap();
            s.read_to_end(&mut buf).unwrap();
        }
        Addr::Unix(None) => unreachable!(),
    }
    assert_eq!(buf, TEST_STR);
}

fn dgram_examine(addr: &Addr) {
    let mut buf = [0u8; 1024];
    let n = match addr {
        Addr::Inet(a) => {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(LIMIT)).unwrap();
            s.send_to(TEST_STR, a).unwrap();
            s.recv(&mut buf).unwrap()
        }
        Addr::Unix(Some(p)) => {
            // A Unix datagram client must bind its own path to get a reply.
            let dir = tempfile::tempdir().unwrap();
            let s = UnixDatagram::bind(dir.path().join("client.sock")).unwrap();
            s.set_read_timeout(Some(LIMIT)).unwrap();
            s.send_to(TEST_STR, p).unwrap();
            s.recv(&mut buf).unwrap()
        }
        Addr::Unix(None) => unreachable!(),
    };
    assert_eq!(&buf[..n], TEST_STR);
}

/// CPython's `run_server`: serve in a thread, examine 3 times, shutdown,
/// join, close; then check the listener is closed (the port or path is
/// free) and nothing is left in flight.
fn run_server<T: Transport, S: Strategy>(server: Server<T, EchoLine, S>, examine: fn(&Addr)) {
    let addr = server.server_address().clone();
    std::thread::scope(|s| {
        let serving = s.spawn(|| server.serve_forever());
        for _ in 0..3 {
            examine(&addr);
        }
        server.shutdown();
        serving.join().unwrap().unwrap();
    });
    let report = server.server_close().unwrap();
    assert_eq!(report.forced + report.abandoned, 0);
    assert_eq!(server.active_connections(), 0);
    match &addr {
        Addr::Inet(a) => {
            // The listener is closed: nothing accepts on that port now.
            if TcpStream::connect(a).is_ok() {
                // A UDP port: bind it again to prove it is free.
                UdpSocket::bind(a).expect("UDP port still bound after server_close");
            }
        }
        Addr::Unix(Some(p)) => assert!(!p.exists(), "socket path not removed on close"),
        Addr::Unix(None) => unreachable!(),
    }
}

fn unix_path() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.sock");
    (dir, path)
}

// 1, 2 and the pool (which Python lacks).
#[test]
fn test_tcp_server() {
    run_server(
        ServerBuilder::new()
            .bind_tcp("127.0.0.1:0", EchoLine)
            .unwrap(),
        stream_examine,
    );
}

#[test]
fn test_threading_tcp_server() {
    run_server(
        ThreadingTcpServer::bind("127.0.0.1:0", EchoLine).unwrap(),
        stream_examine,
    );
}

#[test]
fn test_pool_tcp_server() {
    run_server(
        ServerBuilder::new()
            .strategy(ThreadPool::new(2))
            .bind_tcp("127.0.0.1:0", EchoLine)
            .unwrap(),
        stream_examine,
    );
}

// 4, 5
#[test]
fn test_unix_stream_server() {
    let (_dir, path) = unix_path();
    run_server(
        ServerBuilder::new()
            .bind_unix_stream(&path, EchoLine)
            .unwrap(),
        stream_examine,
    );
}

#[test]
fn test_threading_unix_stream_server() {
    let (_dir, path) = unix_path();
    run_server(
        socketserver::ThreadingUnixStreamServer::bind(&path, EchoLine).unwrap(),
        stream_examine,
    );
}

// 7, 8
#[test]
fn test_udp_server() {
    run_server(
        ServerBuilder::new()
            .bind_udp("127.0.0.1:0", EchoLine)
            .unwrap(),
        dgram_examine,
    );
}

#[test]
fn test_threading_udp_server() {
    run_server(
        socketserver::ThreadingUdpServer::bind("127.0.0.1:0", EchoLine).unwrap(),
        dgram_examine,
    );
}

#[test]
fn test_pool_udp_server() {
    run_server(
        ServerBuilder::new()
            .strategy(ThreadPool::new(2))
            .bind_udp("127.0.0.1:0", EchoLine)
            .unwrap(),
        dgram_examine,
    );
}

// 10, 11
#[test]
fn test_unix_datagram_server() {
    let (_dir, path) = unix_path();
    run_server(
        ServerBuilder::new()
            .bind_unix_datagram(&path, EchoLine)
            .unwrap(),
        dgram_examine,
    );
}

#[test]
fn test_threading_unix_datagram_server() {
    let (_dir, path) = unix_path();
    run_server(
        socketserver::ThreadingUnixDatagramServer::bind(&path, EchoLine).unwrap(),
        dgram_examine,
    );
}

// 13: shutdown racing the loop's start-up, 20 servers in a row.
#[test]
fn test_shutdown_race() {
    let servers: Vec<_> = (0..20)
        .map(|_| TcpServer::bind("127.0.0.1:0", EchoLine).unwrap())
        .collect();
    // A lost shutdown would hang a join: `within` turns that into a failure.
    within(
        LIMIT,
        "20 loops stopping after a racing shutdown",
        move || {
            std::thread::scope(|s| {
                let threads: Vec<_> = servers
                    .iter()
                    .map(|server| {
                        let t = s.spawn(|| server.serve_forever());
                        server.shutdown(); // may run before the loop has started
                        t
                    })
                    .collect();
                for t in threads {
                    t.join().unwrap().unwrap();
                }
            });
            for server in &servers {
                server.server_close().unwrap();
            }
        },
    );
}

// 14
#[test]
fn test_close_immediately() {
    let server = ThreadingTcpServer::bind("127.0.0.1:0", EchoLine).unwrap();
    let report = server.server_close().unwrap();
    assert_eq!(report.completed + report.forced + report.abandoned, 0);
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

// 15: 1024 failed binds leak no descriptor. (Port -1 cannot be written in
// Rust; an address already in use fails at bind, after the socket exists.)
#[test]
fn test_tcpserver_bind_leak() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let before = open_fds();
    for _ in 0..1024 {
        let err = ServerBuilder::new()
            .reuse_address(false)
            .bind_tcp(addr, EchoLine)
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        assert!(TcpServer::bind("127.0.0.1:99999", EchoLine).is_err()); // port out of range
    }
    // Other tests run in parallel and open descriptors too; a leak would be
    // at least 1024.
    assert!(
        open_fds() < before + 512,
        "descriptors leaked by failed binds"
    );
}

// 16: Python's context manager is Rust's Drop.
#[test]
fn test_drop_closes() {
    let server = TcpServer::bind("127.0.0.1:0", EchoLine).unwrap();
    let addr = server.server_address().as_inet().unwrap();
    drop(server);
    assert!(
        TcpStream::connect(addr).is_err(),
        "listener open after drop"
    );
}

/// CPython's `BaseErrorTestServer`: one connection, `handle_request`, a log
/// of what ran.
#[derive(Clone)]
struct BadHandler {
    log: Arc<Mutex<Vec<String>>>,
    panic: bool,
}

impl StreamHandler for BadHandler {
    fn handle(&mut self, _req: &mut StreamRequest) -> HandlerResult {
        self.log.lock().unwrap().push("Handler called".into());
        if self.panic {
            panic!("Test error");
        }
        Err("Test error".into())
    }
    fn handle_error(&self, peer: &Addr, error: &HandlerError) {
        assert!(peer.as_inet().is_some());
        let kind = if error.downcast_ref::<PanicError>().is_some() {
            "Panic handled"
        } else {
            "Error handled"
        };
        self.log.lock().unwrap().push(kind.into());
    }
}

fn error_test(strategy: AnyStrategy, panic: bool) -> Vec<String> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = ServerBuilder::new()
        .strategy(strategy)
        .bind_tcp(
            "127.0.0.1:0",
            BadHandler {
                log: Arc::clone(&log),
                panic,
            },
        )
        .unwrap();
    let addr = server.server_address().as_inet().unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    server.handle_request().unwrap();
    server.server_close().unwrap(); // waits for the thread (block_on_close)
    // The connection was closed by the server: the client reads EOF.
    client.set_read_timeout(Some(LIMIT)).unwrap();
    assert_eq!(client.read(&mut [0; 16]).unwrap(), 0);
    log.lock().unwrap().clone()
}

// 17, 18: Rust's split is Err (handled) versus panic (caught, reported as
// PanicError); neither ends the server.
#[test]
fn test_sync_handled() {
    assert_eq!(
        error_test(AnyStrategy::Sequential, false),
        ["Handler called", "Error handled"]
    );
}

#[test]
fn test_sync_panic_handled() {
    assert_eq!(
        error_test(AnyStrategy::Sequential, true),
        ["Handler called", "Panic handled"]
    );
}

// 19, 20
#[test]
fn test_threading_handled() {
    assert_eq!(
        error_test(AnyStrategy::Threading(Threading::new()), false),
        ["Handler called", "Error handled"]
    );
}

#[test]
fn test_threading_panic_handled() {
    assert_eq!(
        error_test(AnyStrategy::Threading(Threading::new()), true),
        ["Handler called", "Panic handled"]
    );
}

#[test]
fn test_pool_panic_handled() {
    assert_eq!(
        error_test(AnyStrategy::ThreadPool(ThreadPool::new(1)), true),
        ["Handler called", "Panic handled"]
    );
}

// 23: wfile writes to the same socket as the request, unbuffered.
#[test]
fn test_socket_writer_basics() {
    let (tx, rx) = mpsc::channel();
    let server = TcpServer::bind("127.0.0.1:0", move |req: &mut StreamRequest| {
        use std::os::fd::AsRawFd;
        tx.send((req.wfile.as_raw_fd(), req.stream().as_raw_fd()))?;
        Ok(())
    })
    .unwrap();
    let _client = TcpStream::connect(server.server_address().as_inet().unwrap()).unwrap();
    server.handle_request().unwrap();
    let (wfile_fd, request_fd) = rx.recv_timeout(LIMIT).unwrap();
    assert_eq!(wfile_fd, request_fd);
}

// 24: a write goes out at once without flush, and a 16 MiB + 1 write is
// never partial.
#[test]
fn test_socket_writer_write() {
    const SOCK_MAX_SIZE: usize = 16 * 1024 * 1024 + 1;
    let (tx, rx) = mpsc::channel();
    let server = TcpServer::bind("127.0.0.1:0", move |req: &mut StreamRequest| {
        let sent1 = req.wfile.write(b"write data\n")?;
        let mut received = String::new();
        req.rfile.read_line(&mut received)?;
        let sent2 = req.wfile.write(&vec![0u8; SOCK_MAX_SIZE])?;
        tx.send((sent1, received, sent2))?;
        Ok(())
    })
    .unwrap();
    let addr = server.server_address().as_inet().unwrap();
    std::thread::scope(|s| {
        let client = s.spawn(move || {
            let mut c = std::io::BufReader::new(TcpStream::connect(addr).unwrap());
            c.get_ref().set_read_timeout(Some(LIMIT)).unwrap();
            let mut line = String::new();
            c.read_line(&mut line).unwrap();
            assert_eq!(line, "write data\n");
            c.get_mut().write_all(b"client response\n").unwrap();
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).unwrap();
            rest.len()
        });
        server.handle_request().unwrap();
        assert_eq!(client.join().unwrap(), SOCK_MAX_SIZE);
    });
    let (sent1, received, sent2) = rx.recv_timeout(LIMIT).unwrap();
    assert_eq!(sent1, b"write data\n".len());
    assert_eq!(received, "client response\n");
    assert_eq!(sent2, SOCK_MAX_SIZE);
}

// 26: verify_request false closes the connection exactly once and never
// runs the handler.
#[derive(Clone)]
struct Refuse {
    handled: Arc<AtomicUsize>,
    verified: Arc<AtomicUsize>,
}

impl StreamHandler for Refuse {
    fn handle(&mut self, _req: &mut StreamRequest) -> HandlerResult {
        self.handled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn verify_request(&self, _peer: &Addr) -> bool {
        self.verified.fetch_add(1, Ordering::SeqCst);
        false
    }
}

#[test]
fn test_verify_request_false_closes_without_handler() {
    let handler = Refuse {
        handled: Arc::default(),
        verified: Arc::default(),
    };
    let server = TcpServer::bind("127.0.0.1:0", handler.clone()).unwrap();
    let mut client = TcpStream::connect(server.server_address().as_inet().unwrap()).unwrap();
    client.set_read_timeout(Some(LIMIT)).unwrap();
    server.handle_request().unwrap();
    assert_eq!(client.read(&mut [0; 8]).unwrap(), 0, "client sees EOF");
    assert_eq!(handler.verified.load(Ordering::SeqCst), 1);
    assert_eq!(handler.handled.load(Ordering::SeqCst), 0);
    assert_eq!(server.active_connections(), 0);
}

// 27: finished worker threads are not retained.
#[test]
fn test_threads_reaped() {
    let (tx, rx) = mpsc::channel();
    let server = ThreadingTcpServer::bind("127.0.0.1:0", move |_req: &mut StreamRequest| {
        tx.send(())?;
        Ok(())
    })
    .unwrap();
    let addr = server.server_address().as_inet().unwrap();
    for _ in 0..10 {
        let mut c = TcpStream::connect(addr).unwrap();
        server.handle_request().unwrap();
        rx.recv_timeout(LIMIT).unwrap();
        c.set_read_timeout(Some(LIMIT)).unwrap();
        assert_eq!(c.read(&mut [0; 1]).unwrap(), 0); // the request has ended
        c.shutdown(Shutdown::Both).unwrap();
    }
    let report = server.server_close().unwrap();
    assert!(
        report.completed <= 1,
        "finished requests were still tracked"
    );
    assert_eq!(server.active_connections(), 0);
}

// 25: CPython checks `__all__` against the module's public names. Here the
// compiler does that; this test pins the names a learner coming from Python
// looks for, so renaming one is a deliberate, visible change.
#[test]
fn test_all() {
    use socketserver as ss;
    fn exists<T: ?Sized>() {}
    exists::<ss::TcpServer<EchoLine>>();
    exists::<ss::UdpServer<EchoLine>>();
    exists::<ss::UnixStreamServer<EchoLine>>();
    exists::<ss::UnixDatagramServer<EchoLine>>();
    exists::<ss::ThreadingTcpServer<EchoLine>>();
    exists::<ss::ThreadingUdpServer<EchoLine>>();
    exists::<ss::ThreadingUnixStreamServer<EchoLine>>();
    exists::<ss::ThreadingUnixDatagramServer<EchoLine>>();
    exists::<ss::ForkingTcpServer<EchoLine>>();
    exists::<ss::ForkingUdpServer<EchoLine>>();
    exists::<ss::ForkingUnixStreamServer<EchoLine>>();
    exists::<ss::ForkingUnixDatagramServer<EchoLine>>();
    exists::<dyn ss::Strategy>();
    exists::<(ss::Sequential, ss::Threading, ss::ThreadPool, ss::Forking)>();
    exists::<(
        ss::StreamRequest,
        ss::DatagramRequest,
        ss::ServerHandle,
        ss::DrainReport,
    )>();
    let _: fn(&TcpServer<EchoLine>) -> std::io::Result<()> = TcpServer::serve_forever;
    let _: fn(&TcpServer<EchoLine>) -> std::io::Result<()> = TcpServer::handle_request;
    let _: fn(&TcpServer<EchoLine>) = TcpServer::shutdown;
    let _: fn(&TcpServer<EchoLine>) -> std::io::Result<ss::DrainReport> = TcpServer::server_close;
    let _: fn(&TcpServer<EchoLine>) -> &Addr = TcpServer::server_address;
    let _: fn(&EchoLine, &Addr) -> bool = <EchoLine as StreamHandler>::verify_request;
    let _: fn(&EchoLine, &Addr, &HandlerError) = <EchoLine as StreamHandler>::handle_error;
    let _: fn(&EchoLine) = <EchoLine as StreamHandler>::handle_timeout;
    let _: fn(&EchoLine) = <EchoLine as StreamHandler>::service_actions;
}
