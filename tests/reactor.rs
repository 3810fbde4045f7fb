//! The reactor strategy: framing, backpressure, limits, timeouts, panics,
//! drain, shutdown from a protocol, offload. Every wait is bounded; the
//! only fixed windows are negative checks ("nothing arrives"), stated as
//! such.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use socketserver::reactor::{
    Conn, Factory, Message, Protocol, ReactorBuilder, ReactorServer, Timeout, framing,
};
use socketserver::{Addr, HandlerError, PanicError};

const LIMIT: Duration = Duration::from_secs(10);

/// What the protocols report to the test.
#[derive(Default)]
struct Probe {
    errors: AtomicUsize,
    panics: AtomicUsize,
    max_pending: AtomicUsize,
    lost: AtomicUsize,
}

/// A line protocol with test commands; other lines are echoed.
struct Lines {
    probe: Arc<Probe>,
    max_line: usize,
}

impl Protocol for Lines {
    fn data_received(&mut self, data: &[u8], conn: &mut Conn<'_>) -> io::Result<usize> {
        let probe = Arc::clone(&self.probe);
        let r = framing::lines(data, self.max_line, |line| {
            match line {
                b"panic" => panic!("asked to panic"),
                b"shutdown" => conn.server().shutdown(),
                b"slow" => conn.offload(|| "slow done".to_string()),
                b"mail" => {
                    let mailbox = conn.mailbox();
                    thread::spawn(move || mailbox.send(7u32));
                }
                _ => {
                    conn.write(line);
                    conn.write(b"\n");
                }
            }
            probe
                .max_pending
                .fetch_max(conn.pending_output(), Ordering::SeqCst);
            Ok(())
        });
        if r.is_err() {
            conn.write(b"-ERR line too long\n");
        }
        r
    }

    fn timed_out(&mut self, kind: Timeout, conn: &mut Conn<'_>) -> bool {
        writeln!(conn, "timeout {kind:?}").unwrap();
        false
    }

    fn message_received(&mut self, message: Message, conn: &mut Conn<'_>) {
        if let Some(s) = message.downcast_ref::<String>() {
            writeln!(conn, "{s}").unwrap();
        } else if let Some(n) = message.downcast_ref::<u32>() {
            writeln!(conn, "mail {n}").unwrap();
        }
    }

    fn connection_lost(&mut self, _error: Option<&io::Error>) {
        self.probe.lost.fetch_add(1, Ordering::SeqCst);
    }
}

struct LinesFactory {
    probe: Arc<Probe>,
    max_line: usize,
    refuse_all: bool,
}

impl Factory for LinesFactory {
    type Protocol = Lines;
    fn build(&self, _peer: &Addr) -> Lines {
        Lines {
            probe: Arc::clone(&self.probe),
            max_line: self.max_line,
        }
    }
    fn verify_request(&self, _peer: &Addr) -> bool {
        !self.refuse_all
    }
    fn handle_error(&self, _peer: &Addr, error: &HandlerError) {
        if error.downcast_ref::<PanicError>().is_some() {
            self.probe.panics.fetch_add(1, Ordering::SeqCst);
        } else {
            self.probe.errors.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A running server: its address and a channel that reports when
/// `serve_forever` returns.
struct Running {
    server: Arc<ReactorServer<LinesFactory>>,
    addr: SocketAddr,
    probe: Arc<Probe>,
    done: mpsc::Receiver<io::Result<()>>,
}

fn start(builder: ReactorBuilder) -> Running {
    start_with(builder, 1024, false)
}

fn start_with(builder: ReactorBuilder, max_line: usize, refuse_all: bool) -> Running {
    let probe = Arc::new(Probe::default());
    let factory = LinesFactory {
        probe: Arc::clone(&probe),
        max_line,
        refuse_all,
    };
    let server = Arc::new(builder.bind_tcp("127.0.0.1:0", factory).unwrap());
    let addr = server.server_address().as_inet().unwrap();
    let (tx, done) = mpsc::channel();
    let s = Arc::clone(&server);
    thread::spawn(move || tx.send(s.serve_forever()));
    Running {
        server,
        addr,
        probe,
        done,
    }
}

impl Running {
    fn connect(&self) -> Client {
        Client::new(self.addr)
    }

    fn stop(&self) -> socketserver::DrainReport {
        self.server.shutdown();
        self.done
            .recv_timeout(LIMIT)
            .expect("serve_forever returned")
            .unwrap();
        self.server.server_close().unwrap()
    }
}

struct Client {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        stream.set_write_timeout(Some(LIMIT)).unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.reader.read_line(&mut l).unwrap();
        l
    }

    fn ask(&mut self, line: &str) -> String {
        self.send(format!("{line}\n").as_bytes());
        self.line()
    }

    /// Reads to EOF (bounded by the read timeout).
    fn rest(&mut self) -> String {
        let mut s = String::new();
        self.reader.read_to_string(&mut s).unwrap();
        s
    }
}

#[test]
fn echo_under_many_connections_on_two_loops() {
    let run = start(ReactorBuilder::new().loops(2));
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let addr = run.addr;
            thread::spawn(move || {
                let mut clients: Vec<_> = (0..25).map(|_| Client::new(addr)).collect();
                for round in 0..20 {
                    for (i, c) in clients.iter_mut().enumerate() {
                        c.send(format!("{t}-{i}-{round}\n").as_bytes());
                    }
                    for (i, c) in clients.iter_mut().enumerate() {
                        assert_eq!(c.line(), format!("{t}-{i}-{round}\n"));
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let report = run.stop();
    assert_eq!(report.forced, 0);
    assert_eq!(report.abandoned, 0);
    let stats = run.server.handle().stats();
    assert_eq!(stats.accepted, 200);
    assert!(
        stats.peak_active >= 25 && stats.peak_active <= 200,
        "{stats:?}"
    );
    assert!(
        stats.bytes_in > 0 && stats.bytes_in == stats.bytes_out,
        "{stats:?}"
    );
}

#[test]
fn a_frame_split_byte_by_byte_and_two_frames_in_one_read() {
    let run = start(ReactorBuilder::new().loops(1));
    let mut c = run.connect();
    c.stream.set_nodelay(true).unwrap();
    for b in b"split\n" {
        c.send(&[*b]);
    }
    assert_eq!(c.line(), "split\n");
    c.send(b"one\ntwo\n");
    assert_eq!(c.line(), "one\n");
    assert_eq!(c.line(), "two\n");
    run.stop();
}

#[test]
fn framing_helpers_split_and_join_frames() {
    use socketserver::framing::FrameFormat;
    let mut wire = Vec::new();
    FrameFormat::LESSON
        .write_frame(&mut wire, b"first")
        .unwrap();
    FrameFormat::LESSON
        .write_frame(&mut wire, b"second")
        .unwrap();
    // Every prefix of the wire yields exactly the frames it completes.
    for cut in 0..=wire.len() {
        let mut got = Vec::new();
        let used = framing::frames(&wire[..cut], &FrameFormat::LESSON, |p| {
            got.push(p.to_vec());
            Ok(())
        })
        .unwrap();
        let expect: &[&[u8]] = match cut {
            0..=8 => &[],
            9..=18 => &[b"first"],
            _ => &[b"first", b"second"],
        };
        assert_eq!(got, expect, "cut at {cut}");
        assert_eq!(used, [0, 9, 19][expect.len()]);
    }
    // A claimed length over the limit is refused before any payload waits.
    let huge = (1u32 << 30).to_le_bytes();
    assert!(framing::frame(&huge, &FrameFormat::LESSON).is_err());
}

#[test]
fn an_oversized_line_is_answered_and_closed() {
    let run = start_with(ReactorBuilder::new().loops(1), 16, false);
    let mut c = run.connect();
    c.send(&[b'x'; 100]);
    assert_eq!(c.rest(), "-ERR line too long\n");
    assert_eq!(run.probe.errors.load(Ordering::SeqCst), 1);
    run.stop();
}

#[test]
fn input_without_a_frame_is_capped() {
    // No line limit of its own, but the server holds at most 4 KiB.
    let run = start_with(
        ReactorBuilder::new().loops(1).max_input(4096),
        usize::MAX,
        false,
    );
    let mut c = run.connect();
    let _ = c.stream.write_all(&[b'y'; 64 * 1024]);
    let mut rest = Vec::new();
    // The server closes: EOF (or a reset for the bytes it did not read).
    let _ = c.reader.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert_eq!(run.probe.errors.load(Ordering::SeqCst), 1);
    run.stop();
}

#[test]
fn a_client_that_never_reads_is_paused_not_buffered() {
    let high = 64 * 1024;
    let run = start(
        ReactorBuilder::new()
            .loops(1)
            .high_water(high)
            .low_water(16 * 1024),
    );
    let mut c = run.connect();
    // Write line after line without reading until the write blocks: the
    // server must stop reading once its output passes the high-water mark,
    // so the kernel buffers fill and the write times out.
    c.stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let chunk = vec![b'z'; 1023]
        .into_iter()
        .chain([b'\n'])
        .collect::<Vec<_>>();
    let mut sent = 0usize;
    let cap = 512 * 1024 * 1024;
    while sent < cap {
        match c.stream.write(&chunk[sent % chunk.len()..]) {
            Ok(n) => sent += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
    assert!(sent < cap, "the server buffered {sent} bytes without bound");
    // What the server held never passed the mark by more than one read.
    let max = run.probe.max_pending.load(Ordering::SeqCst);
    assert!(
        max <= high + 64 * 1024 + 1024,
        "pending output reached {max}"
    );
    // Reading resumes the connection: everything comes back, in order.
    let sent_lines = sent / 1024;
    let mut line = Vec::new();
    for _ in 0..sent_lines {
        line.clear();
        c.reader.read_until(b'\n', &mut line).unwrap();
        assert_eq!(line.len(), 1024);
    }
    // The last line is incomplete, so the connection is busy: end it.
    drop(c);
    run.stop();
}

#[test]
fn an_idle_connection_times_out() {
    let run = start(
        ReactorBuilder::new()
            .loops(1)
            .idle_timeout(Duration::from_millis(200)),
    );
    let mut c = run.connect();
    let started = Instant::now();
    assert_eq!(c.ask("hi"), "hi\n");
    assert_eq!(c.rest(), "timeout Idle\n");
    assert!(started.elapsed() >= Duration::from_millis(200));
    run.stop();
}

#[test]
fn an_incomplete_frame_times_out() {
    let run = start(
        ReactorBuilder::new()
            .loops(1)
            .frame_timeout(Duration::from_millis(200)),
    );
    let mut c = run.connect();
    c.send(b"no newline");
    assert_eq!(c.rest(), "timeout IncompleteFrame\n");
    run.stop();
}

#[test]
fn a_panic_closes_only_its_connection() {
    let run = start(ReactorBuilder::new().loops(1));
    let mut a = run.connect();
    let mut b = run.connect();
    assert_eq!(a.ask("before"), "before\n");
    a.send(b"panic\n");
    assert_eq!(a.rest(), "");
    assert_eq!(b.ask("still here"), "still here\n");
    assert_eq!(run.probe.panics.load(Ordering::SeqCst), 1);
    assert_eq!(run.server.handle().stats().handler_panics, 1);
    let report = run.stop();
    assert_eq!(report.forced, 0);
}

#[test]
fn drain_closes_idle_connections_at_once_and_lets_busy_ones_finish() {
    let run = start(ReactorBuilder::new().loops(1));
    let mut idle = run.connect();
    let mut busy = run.connect();
    assert_eq!(idle.ask("hello"), "hello\n");
    busy.send(b"half a ");
    assert_eq!(busy.ask("line"), "half a line\n");
    busy.send(b"half a "); // a frame in progress: busy
    // Wait until the server holds the partial frame (it echoes nothing
    // yet): a complete line on a second connection is served after it.
    assert_eq!(run.connect().ask("sync"), "sync\n");
    run.server.shutdown();
    run.done.recv_timeout(LIMIT).unwrap().unwrap();
    let server = Arc::clone(&run.server);
    let closing = thread::spawn(move || server.server_close().unwrap());
    // The idle connection closes at once (not after the busy one).
    assert_eq!(idle.rest(), "");
    busy.send(b"frame\n");
    assert_eq!(busy.rest(), "half a frame\n");
    let report = closing.join().unwrap();
    assert_eq!((report.forced, report.abandoned), (0, 0));
    // The idle connections closed when the shutdown began, before the
    // drain: the busy one (and perhaps the closing sync client) was still
    // in flight then.
    assert!((1..=2).contains(&report.completed), "{report:?}");
}

#[test]
fn drain_cuts_busy_connections_at_the_deadline() {
    let run = start(
        ReactorBuilder::new()
            .loops(1)
            .drain_timeout(Duration::from_millis(200)),
    );
    let mut busy = run.connect();
    busy.send(b"never finished");
    assert_eq!(run.connect().ask("sync"), "sync\n");
    let report = run.stop();
    assert_eq!(report.forced, 1, "{report:?}");
    assert_eq!(busy.rest(), "");
}

#[test]
fn max_connections_stops_accepting_and_never_accepts_and_closes() {
    let run = start(ReactorBuilder::new().loops(1).max_connections(2));
    let mut a = run.connect();
    let mut b = run.connect();
    assert_eq!(a.ask("a"), "a\n");
    assert_eq!(b.ask("b"), "b\n");
    // The third connects (the backlog holds it) but is not served...
    let mut c = run.connect();
    c.send(b"c\n");
    c.stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 8];
    let waited = c.stream.read(&mut buf);
    // ... nor closed: a negative check over a fixed window.
    assert!(
        matches!(&waited, Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)),
        "{waited:?}"
    );
    assert_eq!(run.server.active_connections(), 2);
    // When one closes, the waiting one is accepted and served.
    drop(a);
    c.stream.set_read_timeout(Some(LIMIT)).unwrap();
    assert_eq!(c.line(), "c\n");
    run.stop();
}

#[test]
fn shutdown_from_a_protocol_stops_serve_forever() {
    let run = start(ReactorBuilder::new().loops(1));
    let mut c = run.connect();
    c.send(b"shutdown\n");
    run.done
        .recv_timeout(LIMIT)
        .expect("serve_forever returned")
        .unwrap();
    // Shutting down starts the drain: the idle connection closes at once.
    assert_eq!(c.rest(), "");
    let report = run.server.server_close().unwrap();
    assert_eq!(report.forced, 0);
}

#[test]
fn offloaded_work_and_mailboxes_come_back_through_the_loop() {
    let run = start(ReactorBuilder::new().loops(1));
    let mut c = run.connect();
    assert_eq!(c.ask("slow"), "slow done\n");
    assert_eq!(c.ask("mail"), "mail 7\n");
    run.stop();
}

#[test]
fn half_close_flushes_then_closes_and_refused_peers_get_nothing() {
    let run = start(ReactorBuilder::new().loops(1));
    let mut c = run.connect();
    c.send(b"last words\n");
    c.stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.rest(), "last words\n");
    let lost_by = Instant::now() + LIMIT;
    while run.probe.lost.load(Ordering::SeqCst) < 1 {
        assert!(Instant::now() < lost_by, "connection_lost never called");
        thread::yield_now();
    }
    run.stop();

    let refusing = start_with(ReactorBuilder::new().loops(1), 64, true);
    let mut r = refusing.connect();
    assert_eq!(r.rest(), "");
    refusing.stop();
}

#[cfg(unix)]
#[test]
fn unix_stream_echo() {
    struct Echo;
    impl Protocol for Echo {
        fn data_received(&mut self, data: &[u8], conn: &mut Conn<'_>) -> io::Result<usize> {
            conn.write(data);
            Ok(data.len())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let server = ReactorBuilder::new()
        .loops(1)
        .bind_unix_stream(&path, |_: &Addr| Echo)
        .unwrap();
    thread::scope(|s| {
        s.spawn(|| server.serve_forever().unwrap());
        let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
        c.set_read_timeout(Some(LIMIT)).unwrap();
        c.write_all(b"over unix").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "over unix");
        server.shutdown();
    });
    server.server_close().unwrap();
    assert!(!path.exists());
}

#[test]
fn data_and_fin_that_arrive_together_are_both_seen() {
    // Sent and half-closed before the server accepts: the first read gets
    // the data (a short read) and the EOF must still be noticed.
    struct Echo;
    impl Protocol for Echo {
        fn data_received(&mut self, data: &[u8], conn: &mut Conn<'_>) -> io::Result<usize> {
            conn.write(data);
            Ok(data.len())
        }
    }
    let server = ReactorBuilder::new()
        .loops(1)
        .bind_tcp("127.0.0.1:0", |_: &Addr| Echo)
        .unwrap();
    let addr = server.server_address().as_inet().unwrap();
    let mut clients: Vec<TcpStream> = (0..8)
        .map(|i| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(LIMIT)).unwrap();
            c.write_all(format!("bye {i}").as_bytes()).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            c
        })
        .collect();
    thread::scope(|s| {
        s.spawn(|| server.serve_forever().unwrap());
        for (i, c) in clients.iter_mut().enumerate() {
            let mut got = String::new();
            c.read_to_string(&mut got).unwrap();
            assert_eq!(got, format!("bye {i}"));
        }
        server.shutdown();
    });
    let report = server.server_close().unwrap();
    assert_eq!((report.forced, report.abandoned), (0, 0));
}
