//! A real HAProxy (the Debian package; `.ci/run` installs it, and a missing
//! haproxy fails this test) in TCP mode in front of two echo example
//! backends, one sent PROXY v2 and one PROXY v1, health checks on: the
//! backends see the clients' addresses; untrusted, malformed and slow
//! headers are refused; and under continuous load one backend gets SIGTERM
//! and the other SIGHUP with zero failed client requests.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use support::{LIMIT, eventually, example_bin};

/// An echo backend whose stderr (the library's debug log) is collected.
struct Backend {
    child: Child,
    addr: String,
    stdout: mpsc::Receiver<String>,
    log: Arc<Mutex<String>>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn backend(trusted: &str) -> Backend {
    let mut child = Command::new(example_bin("echo"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--proxy-protocol",
            "--trusted-proxy",
            trusted,
        ])
        .env("RUST_LOG", "socketserver=debug,info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn echo");
    let (tx, stdout) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let log = Arc::new(Mutex::new(String::new()));
    let (err, sink) = (child.stderr.take().unwrap(), Arc::clone(&log));
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let first = stdout.recv_timeout(LIMIT).expect("no `listening on` line");
    let addr = first.strip_prefix("listening on ").unwrap().to_string();
    Backend {
        child,
        addr,
        stdout,
        log,
    }
}

impl Backend {
    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

struct HaProxy(Child);

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn haproxy(dir: &std::path::Path, front: &str, v2: &str, v1: &str) -> HaProxy {
    let cfg = format!(
        "global\n    maxconn 256\n\
         defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n    \
         retries 3\n    option redispatch 1\n\
         frontend fe\n    bind {front}\n    default_backend be\n\
         backend be\n    balance roundrobin\n    \
         server s1 {v2} send-proxy-v2 check inter 100ms fall 2 rise 1\n    \
         server s2 {v1} send-proxy check inter 100ms fall 2 rise 1\n"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy is required for this test (apt-get install haproxy)");
    HaProxy(child)
}

/// An OS-picked free port on 127.0.0.1 for HAProxy's frontend.
fn free_addr() -> String {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

/// One request: connect, send a line, read its echo; the client's own
/// address too.
fn echo_line(addr: &str, line: &str) -> std::io::Result<(String, String)> {
    let c = TcpStream::connect(addr)?;
    let me = c.local_addr()?.to_string();
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    (&c).write_all(line.as_bytes())?;
    let mut got = String::new();
    BufReader::new(&c).read_line(&mut got)?;
    c.shutdown(Shutdown::Both)?;
    Ok((got, me))
}

fn refused(addr: &str, first: &[u8]) -> (bool, Duration) {
    let start = Instant::now();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(LIMIT)).unwrap();
    let _ = c.write_all(first);
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    (got.is_empty(), start.elapsed())
}

#[test]
fn haproxy_in_front_of_two_backends() {
    let dir = tempfile::tempdir().unwrap();
    let b1 = backend("127.0.0.1");
    let mut b2 = backend("127.0.0.0/8");
    let front = free_addr();
    let _haproxy = haproxy(dir.path(), &front, &b1.addr, &b2.addr);
    eventually(LIMIT, "HAProxy serves", || {
        echo_line(&front, "up?\n").is_ok_and(|(got, _)| got == "up?\n")
    });

    // The backends see the clients' own addresses (v2 to b1, v1 to b2).
    let mut clients = Vec::new();
    for i in 0..6 {
        let line = format!("hello {i}\n");
        let (got, me) = echo_line(&front, &line).unwrap();
        assert_eq!(got, line);
        clients.push(me);
    }
    eventually(
        LIMIT,
        "every client's address is logged by a backend",
        || {
            let (l1, l2) = (b1.log(), b2.log());
            clients
                .iter()
                .all(|c| l1.contains(&format!("client {c}")) || l2.contains(&format!("client {c}")))
        },
    );
    assert!(
        b1.log().contains("PROXY v2 PROXY: client 127.0.0.1:"),
        "{}",
        b1.log()
    );
    assert!(
        b2.log().contains("PROXY v1 PROXY: client 127.0.0.1:"),
        "{}",
        b2.log()
    );
    // Health checks: HAProxy's v2 checks send LOCAL, which keeps the socket address.
    eventually(LIMIT, "a v2 health check (LOCAL) reached b1", || {
        b1.log().contains("PROXY v2 LOCAL")
    });

    // Straight to a backend: no header, half a header, an untrusted proxy.
    let (closed, _) = refused(&b1.addr, b"hello without a header\n");
    assert!(closed, "a header-less client was served");
    let (closed, took) = refused(&b1.addr, b"PROXY TCP4 192.0.2.1 ");
    assert!(
        closed && took >= Duration::from_secs(1),
        "slow header: {took:?}"
    );
    let b3 = backend("10.0.0.0/8");
    let (closed, _) = refused(&b3.addr, b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nhi\n");
    assert!(closed, "an untrusted proxy was served");
    // The refusal is logged before the close; the log reaches us through a pipe.
    eventually(LIMIT, "b3 logs the untrusted proxy", || {
        b3.log().contains("not a trusted proxy")
    });

    // Continuous load through HAProxy; SIGTERM b1, then SIGHUP b2.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for t in 0..4 {
        let (front, stop, ok, failed) = (front.clone(), stop.clone(), ok.clone(), failed.clone());
        load.push(std::thread::spawn(move || {
            let start = Instant::now();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) && start.elapsed() < LIMIT * 3 {
                let line = format!("load {t} {i}\n");
                match echo_line(&front, &line) {
                    Ok((got, _)) if got == line => ok.fetch_add(1, Ordering::SeqCst),
                    other => {
                        eprintln!("failed request {line:?}: {other:?}");
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
                i += 1;
            }
        }));
    }
    let progress = |n: usize| ok.load(Ordering::SeqCst) >= n;
    eventually(LIMIT, "load before the SIGTERM", || progress(200));
    let mut b1 = b1;
    support::signal(&b1.child, 15);
    let status = support::wait_timeout(&mut b1.child, LIMIT).expect("b1 did not exit");
    assert!(status.success(), "b1: {status:?}");
    let n = ok.load(Ordering::SeqCst);
    eventually(LIMIT, "load after the SIGTERM", || progress(n + 200));

    let old = b2.child.id();
    support::signal(&b2.child, 1);
    let mut new_pid = None;
    while new_pid.is_none() {
        let line = b2
            .stdout
            .recv_timeout(LIMIT)
            .expect("b2 did not report its replacement");
        new_pid = line
            .strip_prefix("replaced by pid ")
            .map(|p| p.parse::<u32>().unwrap());
    }
    let status = support::wait_timeout(&mut b2.child, LIMIT).expect("old b2 did not exit");
    assert!(status.success(), "old b2 ({old}): {status:?}");
    let n = ok.load(Ordering::SeqCst);
    eventually(LIMIT, "load after the SIGHUP", || progress(n + 200));
    stop.store(true, Ordering::SeqCst);
    for j in load {
        j.join().unwrap();
    }
    let new_pid = new_pid.unwrap();
    let _ = Command::new("kill").arg(new_pid.to_string()).status();
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!("{ok} requests through HAProxy, {failed} failed");
    assert_eq!(
        failed,
        0,
        "{failed} of {} client requests failed",
        ok + failed
    );
}
