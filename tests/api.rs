//! The public API as a downstream crate meets it: no turbofish, no hidden
//! traits in bounds, fields instead of borrowing getters, and the usability
//! fixes a Python user relies on.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use socketserver::{
    AnyStrategy, HandlerResult, ServerBuilder, StreamHandler, StreamRequest, TcpServer,
    ThreadingTcpServer, UnixStreamServer,
};
use support::{LIMIT, within};

/// Binds, serves, shuts down and closes a threading server with nothing
/// but public, documented bounds on the handler.
fn serve<H: StreamHandler + Send + Sync + 'static>(handler: H) -> std::io::Result<String> {
    let server = ThreadingTcpServer::bind("127.0.0.1:0", handler)?;
    let addr = server.server_address().as_inet().unwrap();
    let reply = std::thread::scope(|s| {
        s.spawn(|| server.serve_forever());
        let mut client = BufReader::new(TcpStream::connect(addr)?);
        let mut line = String::new();
        client.read_line(&mut line)?;
        server.shutdown();
        Ok::<_, std::io::Error>(line)
    })?;
    let report = server.server_close()?;
    assert_eq!(report.forced + report.abandoned, 0);
    Ok(reply)
}

#[test]
fn a_function_generic_over_the_handler_needs_no_hidden_bound() {
    let line = within(LIMIT, "serve", || {
        serve(|req: &mut StreamRequest| {
            writeln!(req.wfile, "you are {}", req.peer)?; // a field: no borrow of `req`
            Ok(())
        })
    })
    .unwrap();
    assert!(line.starts_with("you are 127.0.0.1:"), "{line:?}");
}

/// A key-value store answering each `GET`/`SET` line with `writeln!`.
#[derive(Clone, Default)]
struct KeyValue;

impl StreamHandler for KeyValue {
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        for line in req.rfile.lines() {
            let line = line?;
            writeln!(req.wfile, "OK {}", line.len())?;
        }
        Ok(())
    }
}

/// 100 sequential round trips; returns how long they took.
fn round_trips(addr: std::net::SocketAddr) -> Duration {
    let stream = TcpStream::connect(addr).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let start = Instant::now();
    let mut line = String::new();
    for i in 0..100 {
        writer
            .write_all(format!("SET k{i} v\n").as_bytes())
            .unwrap(); // one send
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, format!("OK {}\n", format!("SET k{i} v").len()));
    }
    start.elapsed()
}

/// One `writeln!` to `wfile` is one `send(2)`: with Nagle on, a reply in two
/// pieces waits 40 ms for the client's delayed ACK, so 100 round trips took
/// 4.4 s before `Writer::write_fmt` formatted first.
#[test]
fn writeln_replies_do_not_wait_for_delayed_acks_with_any_constructor() {
    type Run = Box<dyn FnOnce() -> Duration + Send>;
    let servers: Vec<(&str, Run)> = vec![
        (
            "TcpServer::bind",
            Box::new(|| run_kv(TcpServer::bind("127.0.0.1:0", KeyValue).unwrap())),
        ),
        (
            "ThreadingTcpServer::bind",
            Box::new(|| run_kv(ThreadingTcpServer::bind("127.0.0.1:0", KeyValue).unwrap())),
        ),
        (
            "ServerBuilder pool",
            Box::new(|| {
                let b = ServerBuilder::new().strategy(AnyStrategy::ThreadPool(Default::default()));
                run_kv(b.bind_tcp("127.0.0.1:0", KeyValue).unwrap())
            }),
        ),
    ];
    for (name, run) in servers {
        let took = within(LIMIT, name, run);
        assert!(
            took < Duration::from_millis(900),
            "{name}: 100 round trips took {took:?}"
        );
    }
}

fn run_kv<T: socketserver::Transport, S: socketserver::Strategy>(
    server: socketserver::Server<T, KeyValue, S>,
) -> Duration {
    let addr = server.server_address().as_inet().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| server.serve_forever().unwrap());
        let took = round_trips(addr);
        server.shutdown();
        took
    })
}

#[test]
fn a_second_unix_server_on_a_live_path_fails_and_the_first_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let echo = |req: &mut StreamRequest| {
        std::io::copy(&mut req.rfile, &mut req.wfile)?;
        Ok(())
    };
    let first = UnixStreamServer::bind(&path, echo).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| first.serve_forever().unwrap());
        let second = UnixStreamServer::bind(&path, echo);
        let err = second.expect_err("the second bind must fail");
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
        let mut client = UnixStream::connect(&path).unwrap();
        client.write_all(b"still here\n").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = String::new();
        BufReader::new(client).read_line(&mut back).unwrap();
        assert_eq!(back, "still here\n");
        first.shutdown();
    });
    drop(first);
    // A stale socket file (its server gone) is replaced without complaint.
    let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(stale);
    UnixStreamServer::bind(&path, echo).expect("a stale socket file is replaced");
}

#[test]
fn threading_threads_are_numbered_like_pythons() {
    let (tx, rx) = mpsc::channel();
    let server = ThreadingTcpServer::bind("127.0.0.1:0", move |_req: &mut StreamRequest| {
        let name = std::thread::current().name().unwrap_or("").to_string();
        tx.send(name).unwrap();
        Ok(())
    })
    .unwrap();
    let addr = server.server_address().as_inet().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| server.serve_forever().unwrap());
        let mut names = Vec::new();
        for _ in 0..2 {
            let c = TcpStream::connect(addr).unwrap();
            names.push(rx.recv_timeout(LIMIT).unwrap());
            drop(c);
        }
        server.shutdown();
        assert_eq!(names, ["socketserver-1", "socketserver-2"]);
    });
}

/// `next_request` waits for the next request without polling, and a drain
/// closes a connection waiting there at once while a busy one finishes.
#[test]
fn a_drain_closes_idle_connections_at_once_and_lets_busy_ones_finish() {
    let (busy_tx, busy_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Arc::new(std::sync::Mutex::new(release_rx));
    let server = ServerBuilder::new()
        .strategy(socketserver::Threading::new())
        .drain_timeout(LIMIT)
        .bind_tcp("127.0.0.1:0", move |req: &mut StreamRequest| {
            while req.next_request()? {
                let mut line = String::new();
                req.rfile.read_line(&mut line)?;
                if line.trim() == "slow" {
                    busy_tx.send(()).unwrap();
                    release_rx.lock().unwrap().recv().unwrap();
                }
                writeln!(req.wfile, "done {}", line.trim())?;
            }
            Ok(())
        })
        .unwrap();
    let addr = server.server_address().as_inet().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| server.serve_forever().unwrap());
        let idle = TcpStream::connect(addr).unwrap();
        let mut idle_r = BufReader::new(idle.try_clone().unwrap());
        let mut idle_w = idle;
        writeln!(idle_w, "fast").unwrap();
        let mut line = String::new();
        idle_r.read_line(&mut line).unwrap();
        assert_eq!(line, "done fast\n"); // now it waits in next_request
        let mut busy = TcpStream::connect(addr).unwrap();
        writeln!(busy, "slow").unwrap();
        busy_rx.recv_timeout(LIMIT).unwrap();
        server.shutdown();
        let closing = s.spawn(|| server.server_close().unwrap());
        // The idle connection ends at once: EOF while the busy one still runs.
        line.clear();
        idle_r.get_ref().set_read_timeout(Some(LIMIT)).unwrap();
        assert_eq!(idle_r.read_line(&mut line).unwrap(), 0, "{line:?}");
        assert!(!closing.is_finished());
        release_tx.send(()).unwrap();
        let mut busy_r = BufReader::new(busy);
        line.clear();
        busy_r.read_line(&mut line).unwrap();
        assert_eq!(line, "done slow\n");
        let report = closing.join().unwrap();
        assert_eq!(
            (report.completed, report.forced, report.abandoned),
            (2, 0, 0)
        );
    });
}

/// With no logger installed, a handler's error is printed on stderr (as
/// Python prints a traceback), not lost. Runs this test binary again as a
/// child process, whose stderr is captured.
#[test]
fn a_handler_error_with_no_logger_is_printed_on_stderr() {
    const NAME: &str = "a_handler_error_with_no_logger_is_printed_on_stderr";
    if std::env::var_os("SOCKETSERVER_TEST_CHILD").is_some() {
        let server = TcpServer::bind("127.0.0.1:0", |_req: &mut StreamRequest| {
            Err("the handler failed".into())
        })
        .unwrap();
        let _c = TcpStream::connect(server.server_address().as_inet().unwrap()).unwrap();
        server.handle_request().unwrap();
        return;
    }
    let (status, _, stderr) = support::run_with_timeout(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env("SOCKETSERVER_TEST_CHILD", "1"),
        LIMIT,
    );
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("socketserver: error while handling a request from 127.0.0.1:")
            && stderr.contains(": the handler failed"),
        "{stderr}"
    );
}

/// `quiet_panics(true)` routes a caught panic to `handle_error` only: std's
/// panic message is not printed first (it is without the option).
#[test]
fn quiet_panics_reports_a_panic_once() {
    const NAME: &str = "quiet_panics_reports_a_panic_once";
    if let Some(quiet) = std::env::var_os("SOCKETSERVER_TEST_CHILD") {
        let server = ServerBuilder::new()
            .quiet_panics(quiet == "quiet")
            .bind_tcp("127.0.0.1:0", |_req: &mut StreamRequest| {
                panic!("the handler panicked")
            })
            .unwrap();
        let _c = TcpStream::connect(server.server_address().as_inet().unwrap()).unwrap();
        server.handle_request().unwrap();
        return;
    }
    for (mode, hook_output) in [("quiet", false), ("loud", true)] {
        let (status, _, stderr) = support::run_with_timeout(
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
                .env("SOCKETSERVER_TEST_CHILD", mode)
                .env("RUST_BACKTRACE", "0"),
            LIMIT,
        );
        let stderr = String::from_utf8_lossy(&stderr);
        assert!(status.success(), "{stderr}");
        assert_eq!(
            stderr.contains("panicked at"),
            hook_output,
            "{mode}: {stderr}"
        );
        assert!(
            stderr.contains("error while handling a request from")
                && stderr.contains("the handler panicked"),
            "{mode}: {stderr}"
        );
    }
}
