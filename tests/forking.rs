//! The forking strategy, in its own test binary with its own `main`
//! (`harness = false`): tests run one after another on the main thread, so
//! no test thread can hold a lock while the server forks. Where a test needs
//! `serve_forever`, the serving thread is the only other thread and the main
//! thread does nothing but socket calls meanwhile.
//!
//! Includes CPython's forking tests (3, 6, 9, 12, 21, 22) with the
//! `simple_subprocess` check: a child we did not spawn keeps its exit status.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use socketserver::{
    Addr, DatagramHandler, DatagramRequest, Forking, HandlerError, HandlerResult, ServerBuilder,
    StreamHandler, StreamRequest,
};

mod support;

use support::LIMIT;
const TEST_STR: &[u8] = b"hello world\n";

#[derive(Clone)]
struct Echo;

impl StreamHandler for Echo {
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        std::io::copy(&mut req.rfile, &mut req.wfile)?;
        Ok(())
    }
}

impl DatagramHandler for Echo {
    fn handle(&mut self, req: &mut DatagramRequest) -> HandlerResult {
        req.reply(req.data())?;
        Ok(())
    }
}

/// CPython's `simple_subprocess`: a child the application spawned itself,
/// whose exit status the server must never collect.
fn foreign_child() -> std::process::Child {
    Command::new("sh").args(["-c", "exit 72"]).spawn().unwrap()
}

fn assert_foreign_child_untouched(mut child: std::process::Child) {
    let status = child
        .wait()
        .expect("the foreign child was reaped by the server");
    assert_eq!(status.code(), Some(72));
}

fn stream_echo(addr: &Addr, serve_one: &dyn Fn()) {
    let mut buf = Vec::new();
    match addr {
        Addr::Inet(a) => {
            let mut c = TcpStream::connect(a).unwrap();
            c.set_read_timeout(Some(LIMIT)).unwrap();
            c.write_all(TEST_STR).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            serve_one();
            c.read_to_end(&mut buf).unwrap();
        }
        Addr::Unix(Some(p)) => {
            let mut c = UnixStream::connect(p).unwrap();
            c.set_read_timeout(Some(LIMIT)).unwrap();
            c.write_all(TEST_STR).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            serve_one();
            c.read_to_end(&mut buf).unwrap();
        }
        Addr::Unix(None) => unreachable!(),
    }
    assert_eq!(buf, TEST_STR);
}

fn dgram_echo(addr: &Addr, serve_one: &dyn Fn()) {
    let mut buf = [0u8; 64];
    let n = match addr {
        Addr::Inet(a) => {
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(LIMIT)).unwrap();
            c.send_to(TEST_STR, a).unwrap();
            serve_one();
            c.recv(&mut buf).unwrap()
        }
        Addr::Unix(Some(p)) => {
            let dir = tempfile::tempdir().unwrap();
            let c = UnixDatagram::bind(dir.path().join("c.sock")).unwrap();
            c.set_read_timeout(Some(LIMIT)).unwrap();
            c.send_to(TEST_STR, p).unwrap();
            serve_one();
            c.recv(&mut buf).unwrap()
        }
        Addr::Unix(None) => unreachable!(),
    };
    assert_eq!(&buf[..n], TEST_STR);
}

fn temp_sock() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.sock");
    (dir, p)
}

// CPython 3: ForkingTCPServer, three clients, children reaped, foreign child kept.
fn forking_tcp_server() {
    let foreign = foreign_child();
    let server = ServerBuilder::new()
        .strategy(Forking::new())
        .bind_tcp("127.0.0.1:0", Echo)
        .unwrap();
    let addr = server.server_address().clone();
    for _ in 0..3 {
        stream_echo(&addr, &|| server.handle_request().unwrap());
    }
    server.server_close().unwrap();
    assert!(server.strategy().active_children().is_empty());
    assert_foreign_child_untouched(foreign);
}

// CPython 6: ForkingUnixStreamServer.
fn forking_unix_stream_server() {
    let foreign = foreign_child();
    let (_d, path) = temp_sock();
    let server = socketserver::ForkingUnixStreamServer::bind(&path, Echo).unwrap();
    let addr = server.server_address().clone();
    for _ in 0..3 {
        stream_echo(&addr, &|| server.handle_request().unwrap());
    }
    server.server_close().unwrap();
    assert!(server.strategy().active_children().is_empty());
    assert!(!path.exists());
    assert_foreign_child_untouched(foreign);
}

// CPython 9: ForkingUDPServer.
fn forking_udp_server() {
    let foreign = foreign_child();
    let server = socketserver::ForkingUdpServer::bind("127.0.0.1:0", Echo).unwrap();
    let addr = server.server_address().clone();
    for _ in 0..3 {
        dgram_echo(&addr, &|| server.handle_request().unwrap());
    }
    server.server_close().unwrap();
    assert!(server.strategy().active_children().is_empty());
    assert_foreign_child_untouched(foreign);
}

// CPython 12: ForkingUnixDatagramServer.
fn forking_unix_datagram_server() {
    let (_d, path) = temp_sock();
    let server = socketserver::ForkingUnixDatagramServer::bind(&path, Echo).unwrap();
    let addr = server.server_address().clone();
    for _ in 0..3 {
        dgram_echo(&addr, &|| server.handle_request().unwrap());
    }
    server.server_close().unwrap();
    assert!(server.strategy().active_children().is_empty());
}

// serve_forever + shutdown, and children reaped between requests without
// any further request arriving (pidfd wake-up).
fn serve_forever_reaps_promptly_and_shuts_down() {
    let server = socketserver::ForkingTcpServer::bind("127.0.0.1:0", Echo).unwrap();
    let addr = server.server_address().clone();
    std::thread::scope(|s| {
        let t = s.spawn(|| server.serve_forever());
        stream_echo(&addr, &|| {});
        support::eventually(LIMIT, "every child reaped (no zombie)", || {
            server.strategy().active_children().is_empty()
        });
        server.shutdown();
        t.join().unwrap().unwrap();
    });
    server.server_close().unwrap();
}

/// Logs what ran to a file (the child's memory is its own).
#[derive(Clone)]
struct BadHandler {
    log: PathBuf,
    panic: bool,
}

impl BadHandler {
    fn append(&self, line: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        f.write_all(line.as_bytes()).unwrap();
    }
}

impl StreamHandler for BadHandler {
    fn handle(&mut self, _req: &mut StreamRequest) -> HandlerResult {
        self.append("Handler called\n");
        if self.panic {
            panic!("Test error");
        }
        Err("Test error".into())
    }
    fn handle_error(&self, _peer: &Addr, _error: &HandlerError) {
        self.append("Error handled\n");
    }
}

// CPython 21, 22: the child reports the error; close waits for the child so
// the log is complete; the parent carries on.
fn forking_error_handled() {
    // The child's panic is expected: keep its message out of the test log.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = catch_unwind(forking_error_handled_steps);
    std::panic::set_hook(default_hook);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn forking_error_handled_steps() {
    for panic in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let server = socketserver::ForkingTcpServer::bind(
            "127.0.0.1:0",
            BadHandler {
                log: log.clone(),
                panic,
            },
        )
        .unwrap();
        let mut c = TcpStream::connect(server.server_address().as_inet().unwrap()).unwrap();
        server.handle_request().unwrap();
        server.server_close().unwrap();
        c.set_read_timeout(Some(LIMIT)).unwrap();
        assert_eq!(c.read(&mut [0; 4]).unwrap(), 0);
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "Handler called\nError handled\n"
        );
    }
}

/// Aborts the child; the parent's `handle_error` records what reached it.
#[derive(Clone)]
struct Aborts {
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl StreamHandler for Aborts {
    fn handle(&mut self, _req: &mut StreamRequest) -> HandlerResult {
        std::process::abort()
    }
    fn handle_error(&self, peer: &Addr, error: &HandlerError) {
        let killed = error.downcast_ref::<socketserver::ChildKilled>();
        let line = match killed {
            Some(k) => format!("{peer}: killed by signal {}", k.signal),
            None => format!("{peer}: {error}"),
        };
        self.seen.lock().unwrap().push(line);
    }
}

/// A child killed by a signal (here `abort()`, SIGABRT) is not forgotten:
/// the parent's `handle_error` gets a `ChildKilled` naming the signal.
fn child_killed_by_a_signal_reaches_the_parents_handle_error() {
    let seen = std::sync::Arc::default();
    let server = socketserver::ForkingTcpServer::bind(
        "127.0.0.1:0",
        Aborts {
            seen: std::sync::Arc::clone(&seen),
        },
    )
    .unwrap();
    let c = TcpStream::connect(server.server_address().as_inet().unwrap()).unwrap();
    let client = c.local_addr().unwrap();
    server.handle_request().unwrap();
    // The drain reaps the child (it waits up to its deadline for it).
    let report = server.server_close().unwrap();
    assert_eq!(report.forced + report.abandoned, 0);
    assert_eq!(
        *seen.lock().unwrap(),
        [format!("{client}: killed by signal {}", libc::SIGABRT)]
    );
}

/// Tells its client how many requests were in flight when it started, then
/// waits for the client to say go.
#[derive(Clone)]
struct Report;

impl StreamHandler for Report {
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        let live = req.server.active_connections();
        req.wfile.write_all(&[live as u8])?;
        let mut go = [0u8; 1];
        req.rfile.read_exact(&mut go)?;
        Ok(())
    }
}

// max_children holds the rest in the backlog, and the loop stays responsive
// to shutdown at the cap (Python blocks in waitpid there).
fn max_children_caps_and_stays_responsive() {
    let server = ServerBuilder::new()
        .strategy(Forking::new().max_children(2))
        .bind_tcp("127.0.0.1:0", Report)
        .unwrap();
    let addr = server.server_address().as_inet().unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| server.serve_forever());
        let mut clients: Vec<TcpStream> =
            (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let mut seen = Vec::new();
        for c in &mut clients[..2] {
            c.set_read_timeout(Some(LIMIT)).unwrap();
            let mut live = [0u8; 1];
            c.read_exact(&mut live).unwrap();
            seen.push(live[0]);
        }
        // Release the first: the third is served next.
        clients[0].write_all(b"g").unwrap();
        clients[2].set_read_timeout(Some(LIMIT)).unwrap();
        let mut live = [0u8; 1];
        clients[2].read_exact(&mut live).unwrap();
        seen.push(live[0]);
        assert!(
            seen.iter().all(|&n| n <= 2),
            "more than 2 children at once: {seen:?}"
        );
        // At the cap again (clients 1 and 2 hold children): shutdown still
        // returns the loop.
        server.shutdown();
        t.join().unwrap().unwrap();
        for c in &mut clients[1..] {
            c.write_all(b"g").unwrap();
        }
    });
    let report = server.server_close().unwrap();
    assert_eq!(report.forced, 0);
    assert!(server.strategy().active_children().is_empty());
}

// At the drain deadline, stuck children get SIGTERM and are reaped.
fn drain_deadline_terminates_children() {
    let server = ServerBuilder::new()
        .strategy(Forking::new())
        .drain_timeout(Duration::from_millis(100))
        .bind_tcp("127.0.0.1:0", Report)
        .unwrap();
    let mut c = TcpStream::connect(server.server_address().as_inet().unwrap()).unwrap();
    server.handle_request().unwrap();
    c.set_read_timeout(Some(LIMIT)).unwrap();
    let mut live = [0u8; 1];
    c.read_exact(&mut live).unwrap(); // the child is running and waiting
    let report = server.server_close().unwrap();
    assert_eq!((report.forced, report.abandoned), (1, 0));
    assert!(server.strategy().active_children().is_empty());
}

// The child closes its copy of the listener: once the parent closes, the
// port is free although a child is still running.
fn child_does_not_keep_the_listener() {
    let server = ServerBuilder::new()
        .strategy(Forking::new())
        .bind_tcp("127.0.0.1:0", Report)
        .unwrap();
    let addr = server.server_address().as_inet().unwrap();
    let mut c = TcpStream::connect(addr).unwrap();
    server.handle_request().unwrap();
    c.set_read_timeout(Some(LIMIT)).unwrap();
    let mut live = [0u8; 1];
    c.read_exact(&mut live).unwrap();
    std::thread::scope(|s| {
        let closing = s.spawn(|| server.server_close().unwrap());
        // The parent's listener closes first; the running child must not
        // hold the port.
        let start = Instant::now();
        loop {
            if std::net::TcpListener::bind(addr).is_ok() {
                break;
            }
            assert!(start.elapsed() < LIMIT, "port still held (by the child?)");
            std::thread::yield_now();
        }
        c.write_all(b"g").unwrap();
        assert_eq!(closing.join().unwrap().completed, 1);
    });
}

/// Sets this process's soft limit on open descriptors (`prlimit(1)`).
fn set_nofile_soft(limit: u64) {
    let pid = std::process::id().to_string();
    let hard = std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4).map(str::to_string))
        .unwrap();
    let status = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={limit}:{hard}")])
        .status()
        .expect("prlimit (util-linux) is needed for this test");
    assert!(status.success());
}

/// CPU time used by this process, read from an already open
/// `/proc/self/stat` (no descriptor can be opened while the limit is hit).
fn cpu_time(stat_file: &std::fs::File) -> Duration {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 4096];
    let n = stat_file.read_at(&mut buf, 0).unwrap();
    let stat = String::from_utf8_lossy(&buf[..n]).into_owned();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<u64> = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse().unwrap())
        .collect();
    Duration::from_millis((fields[0] + fields[1]) * 10) // clock ticks at 100 Hz
}

// Not forking, but process-wide: runs here because it lowers the
// descriptor limit of the whole process. Accept fails with EMFILE; the loop
// logs, backs off instead of spinning, and serves the client once
// descriptors are available again.
fn accept_emfile_backs_off_and_recovers() {
    let server = socketserver::TcpServer::bind("127.0.0.1:0", Echo).unwrap();
    let addr = server.server_address().clone();
    let original = std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| {
            l.split_whitespace()
                .nth(3)
                .map(|v| v.parse::<u64>().unwrap())
        })
        .unwrap();
    let stat_file = std::fs::File::open("/proc/self/stat").unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| server.serve_forever());
        // Whatever happens below, stop the loop so the scope can end.
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            emfile_steps(&addr, original, &stat_file)
        }));
        server.shutdown();
        t.join().unwrap().unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
}

fn emfile_steps(addr: &Addr, original: u64, stat_file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    {
        stream_echo(addr, &|| {}); // the loop is running
        let highest = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap();
        set_nofile_soft(highest + 4);
        // Fill every free descriptor below the limit.
        let mut fillers = Vec::new();
        while let Ok(f) = std::fs::File::open("/dev/null") {
            fillers.push(f);
            assert!(fillers.len() < 100_000);
        }
        // Free exactly one for the client; the server's accept then fails.
        let freed = fillers.pop().unwrap();
        assert!(freed.as_raw_fd() >= 0);
        drop(freed);
        let mut client = TcpStream::connect(addr.as_inet().unwrap()).unwrap();
        client.write_all(TEST_STR).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        // Measure (not synchronise): half a second of EMFILE must not burn a
        // core. A spinning loop would use ~500 ms of CPU here.
        let (cpu0, wall0) = (cpu_time(stat_file), Instant::now());
        std::thread::sleep(Duration::from_millis(500));
        let (cpu, wall) = (cpu_time(stat_file) - cpu0, wall0.elapsed());
        assert!(cpu < wall / 4, "accept loop spun: {cpu:?} CPU in {wall:?}");
        drop(fillers);
        set_nofile_soft(original);
        // The loop retries after its back-off and serves the client.
        client.set_read_timeout(Some(LIMIT)).unwrap();
        let mut buf = Vec::new();
        client.read_to_end(&mut buf).unwrap();
        assert_eq!(buf, TEST_STR);
    }
}

fn main() {
    let tests: &[(&str, fn())] = &[
        ("forking_tcp_server", forking_tcp_server),
        ("forking_unix_stream_server", forking_unix_stream_server),
        ("forking_udp_server", forking_udp_server),
        ("forking_unix_datagram_server", forking_unix_datagram_server),
        (
            "serve_forever_reaps_promptly_and_shuts_down",
            serve_forever_reaps_promptly_and_shuts_down,
        ),
        ("forking_error_handled", forking_error_handled),
        (
            "child_killed_by_a_signal_reaches_the_parents_handle_error",
            child_killed_by_a_signal_reaches_the_parents_handle_error,
        ),
        (
            "max_children_caps_and_stays_responsive",
            max_children_caps_and_stays_responsive,
        ),
        (
            "drain_deadline_terminates_children",
            drain_deadline_terminates_children,
        ),
        (
            "child_does_not_keep_the_listener",
            child_does_not_keep_the_listener,
        ),
        (
            "accept_emfile_backs_off_and_recovers",
            accept_emfile_backs_off_and_recovers,
        ),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<_> = tests
        .iter()
        .filter(|(name, _)| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!(
        "\nrunning {} tests (forking, one at a time)",
        selected.len()
    );
    let mut failed = Vec::new();
    for (name, test) in &selected {
        let ok = catch_unwind(AssertUnwindSafe(test)).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(*name);
        }
    }
    let passed = selected.len() - failed.len();
    if failed.is_empty() {
        println!(
            "\ntest result: ok. {passed} passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n"
        );
    } else {
        println!("\nfailures: {failed:?}");
        println!(
            "\ntest result: FAILED. {passed} passed; {} failed; 0 ignored; 0 measured; 0 filtered out\n",
            failed.len()
        );
        std::process::exit(101);
    }
}
