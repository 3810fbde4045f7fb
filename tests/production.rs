//! The echo example as a service: socket activation (a listener passed as
//! fd 3 with `LISTEN_PID`, as systemd does), `READY=1`/`STOPPING=1` on a
//! test `NOTIFY_SOCKET`, and SIGHUP replacing the process on the same
//! listening socket under continuous load without a failed request.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use support::{LIMIT, eventually, example_bin, start_with};

/// Binds a socket of `kind` ("tcp" or "udp") in Python, puts it on fd 3,
/// sets `LISTEN_FDS=1` and `LISTEN_PID` to its own pid, and execs the
/// example (same pid), as systemd does.
const ACTIVATE: &str = r#"
import os, socket, sys
kind, binary = sys.argv[1], sys.argv[2]
if kind == "tcp":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
elif kind == "unlistened":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
elif kind == "file":
    s = open("/dev/null")
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="echo.socket")
os.execve(binary, [binary] + sys.argv[3:], env)
"#;

fn activated(kind: &str, notify: &std::path::Path) -> Command {
    activated_example("echo", kind, notify)
}

fn activated_example(example: &str, kind: &str, notify: &std::path::Path) -> Command {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", ACTIVATE, kind])
        .arg(example_bin(example))
        .args(["--addr", "127.0.0.1:1"]) // never bound: fd 3 is used
        .env("NOTIFY_SOCKET", notify);
    cmd
}

fn recv_notify(sock: &UnixDatagram) -> String {
    sock.set_read_timeout(Some(LIMIT)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("no sd_notify message in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn echo_line(addr: &str, line: &str) -> std::io::Result<String> {
    let mut c = TcpStream::connect(addr)?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    c.write_all(line.as_bytes())?;
    let mut got = String::new();
    BufReader::new(&c).read_line(&mut got)?;
    c.shutdown(Shutdown::Both)?;
    Ok(got)
}

#[test]
fn socket_activation_on_fd_3_and_ready_stopping_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let server = start_with(&mut activated("tcp", &notify_path));
    assert_ne!(
        server.addr, "127.0.0.1:1",
        "the example bound --addr instead of fd 3"
    );
    let pid = server.child.id();
    let ready = recv_notify(&notify);
    assert!(ready.contains("READY=1"), "{ready:?}");
    assert!(ready.contains(&format!("MAINPID={pid}")), "{ready:?}");
    assert_eq!(
        echo_line(&server.addr, "activated\n").unwrap(),
        "activated\n"
    );
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    let stopping = recv_notify(&notify);
    assert!(stopping.contains("STOPPING=1"), "{stopping:?}");
}

#[test]
fn a_socket_of_the_wrong_type_on_fd_3_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let _notify = UnixDatagram::bind(&notify_path).unwrap();
    let (status, out, err) = support::run_with_timeout(&mut activated("udp", &notify_path), LIMIT);
    assert!(!status.success());
    assert!(
        out.is_empty(),
        "it listened: {}",
        String::from_utf8_lossy(&out)
    );
    let err = String::from_utf8_lossy(&err);
    assert!(err.contains("needs a TCP listener"), "{err}");
    // listen_fds itself refuses what is not a listening socket.
    for (kind, why) in [
        ("unlistened", "a stream socket that is not listening"),
        ("file", "not a socket"),
    ] {
        let (status, out, err) =
            support::run_with_timeout(&mut activated(kind, &notify_path), LIMIT);
        assert!(!status.success() && out.is_empty(), "{kind}");
        let err = String::from_utf8_lossy(&err);
        assert!(err.contains(why), "{kind}: {err}");
    }
}

fn kill(sig: &str, pid: u32) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// True while `pid` runs (a zombie, which an orphan's reaper may leave
/// around, counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

/// Clients that connect, send a numbered line and check its echo, one
/// after another on `threads` threads until `stop`; (ok, failed).
fn load(
    addr: String,
    threads: usize,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
) -> mpsc::Receiver<(usize, usize)> {
    let (tx, rx) = mpsc::channel();
    let failed = Arc::new(AtomicUsize::new(0));
    let mut joins = Vec::new();
    for t in 0..threads {
        let (addr, stop, ok, failed) = (addr.clone(), stop.clone(), ok.clone(), failed.clone());
        joins.push(std::thread::spawn(move || {
            let start = Instant::now();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) && start.elapsed() < LIMIT * 2 {
                let line = format!("client {t} request {i}\n");
                match echo_line(&addr, &line) {
                    Ok(got) if got == line => ok.fetch_add(1, Ordering::SeqCst),
                    other => {
                        eprintln!("failed request: {other:?}");
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
                i += 1;
            }
        }));
    }
    std::thread::spawn(move || {
        for j in joins {
            let _ = j.join();
        }
        let _ = tx.send((ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst)));
    });
    rx
}

#[test]
fn sighup_replaces_the_process_without_failing_a_request() {
    let mut server = start_with(Command::new(example_bin("echo")).args([
        "--addr",
        "127.0.0.1:0",
        "--drain-timeout",
        "5",
    ]));
    let addr = server.addr.clone();
    let old = server.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let done = load(addr.clone(), 4, stop.clone(), served.clone());
    let progress = |n: usize| served.load(Ordering::SeqCst) >= n;
    eventually(LIMIT, "the load is served before the restart", || {
        progress(100)
    });
    kill("-HUP", old);
    let mut new_pid = None;
    let mut relistened = None;
    let start = Instant::now();
    while (new_pid.is_none() || relistened.is_none()) && start.elapsed() < LIMIT {
        let Ok(line) = server.stdout.recv_timeout(LIMIT) else {
            break;
        };
        if let Some(pid) = line.strip_prefix("replaced by pid ") {
            new_pid = Some(pid.parse::<u32>().unwrap());
        } else if let Some(a) = line.strip_prefix("listening on ") {
            relistened = Some(a.to_string());
        }
    }
    let new_pid = new_pid.expect("the old process did not report its replacement");
    assert_eq!(
        relistened.as_deref(),
        Some(addr.as_str()),
        "the replacement listens elsewhere"
    );
    let status = support::wait_timeout(&mut server.child, LIMIT).expect("old process did not exit");
    assert!(status.success(), "old process: {status:?}");
    assert!(alive(new_pid));
    // The replacement serves the same port; then stop the load and it.
    assert_eq!(echo_line(&addr, "after\n").unwrap(), "after\n");
    let before = served.load(Ordering::SeqCst);
    eventually(LIMIT, "the load is served after the restart", || {
        progress(before + 100)
    });
    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = done.recv_timeout(LIMIT * 3).expect("load did not finish");
    kill("-TERM", new_pid);
    eventually(LIMIT, "the replacement exits on SIGTERM", || {
        !alive(new_pid)
    });
    assert!(ok > 100, "only {ok} requests ran");
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed across the restart",
        ok + failed
    );
}

#[test]
fn the_chat_server_takes_a_passed_udp_socket_and_notifies() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let server = start_with(&mut activated_example("chat_server", "udp", &notify_path));
    assert_ne!(
        server.addr, "127.0.0.1:1",
        "chat_server bound --addr instead of fd 3"
    );
    let ready = recv_notify(&notify);
    assert!(ready.contains("READY=1"), "{ready:?}");
    // The room answers on the passed socket (anything gets a reply or is
    // ignored; the socket being ours is what matters): it is bound there.
    let port: u16 = server.addr.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        std::net::UdpSocket::bind(("127.0.0.1", port)).is_err(),
        "the port is not in use"
    );
    assert!(server.stop().success());
    let stopping = recv_notify(&notify);
    assert!(stopping.contains("STOPPING=1"), "{stopping:?}");
}

const TOKEN: &str = "3f5c0a9e1b7d4c2e8a6f0b1d9c7e5a3b";

/// Runs `cmd` on a cmd_server at `addr` (after `preamble`, e.g. a PROXY
/// header); returns the command's stdout and the client's own address.
fn cmd_run(addr: &str, preamble: &[u8], cmd: &str) -> (String, std::net::SocketAddr) {
    use socketserver::framing::{self, FrameFormat};
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let me = s.local_addr().unwrap();
    s.write_all(preamble).unwrap();
    framing::write_json(&mut s, &serde_json::json!({ "cmd": cmd, "token": TOKEN })).unwrap();
    let header: serde_json::Value = FrameFormat::LESSON.read_json(&mut s).unwrap().unwrap();
    let total = header["total_size"].as_u64().expect("total_size");
    let mut body = Vec::new();
    framing::copy_body(&mut s, &mut body, total).unwrap();
    let stdout_len = header["stdout_size"].as_u64().unwrap_or(total) as usize;
    (
        String::from_utf8_lossy(&body[..stdout_len]).into_owned(),
        me,
    )
}

#[test]
fn cmd_server_commands_see_remote_addr_and_port() {
    let server = start_with(
        Command::new(example_bin("cmd_server"))
            .env("CMD_TOKEN", TOKEN)
            .args(["--addr", "127.0.0.1:0"]),
    );
    let (out, me) = cmd_run(&server.addr, b"", "echo $REMOTE_ADDR $REMOTE_PORT");
    assert_eq!(out, format!("{} {}\n", me.ip(), me.port()));
    assert!(server.stop().success());

    // Behind a proxy: the client's address from the PROXY header.
    let server = start_with(
        Command::new(example_bin("cmd_server"))
            .env("CMD_TOKEN", TOKEN)
            .args([
                "--addr",
                "127.0.0.1:0",
                "--proxy-protocol",
                "--trusted-proxy",
                "127.0.0.1",
            ]),
    );
    let header = b"PROXY TCP4 192.0.2.44 192.0.2.1 40404 9000\r\n";
    let (out, _) = cmd_run(&server.addr, header, "echo $REMOTE_ADDR $REMOTE_PORT");
    assert_eq!(out, "192.0.2.44 40404\n");
    assert!(server.stop().success());
}

#[test]
fn a_command_does_not_inherit_a_passed_listener() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let mut cmd = activated_example("cmd_server", "tcp", &notify_path);
    cmd.env("CMD_TOKEN", TOKEN);
    let server = start_with(&mut cmd);
    assert!(recv_notify(&notify).contains("READY=1"));
    let (out, _) = cmd_run(
        &server.addr,
        b"",
        "if [ -e /proc/self/fd/3 ]; then echo fd3 open; else echo fd3 closed; fi; env | grep -c '^LISTEN_' || true",
    );
    assert_eq!(out, "fd3 closed\n0\n");
    assert!(server.stop().success());
}

#[test]
fn the_watchdog_is_petted_when_systemd_asks() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let mut cmd = activated("tcp", &notify_path);
    cmd.env("WATCHDOG_USEC", "200000"); // 0.2 s: a pet every 0.1 s
    let server = start_with(&mut cmd);
    let mut pets = 0;
    let start = Instant::now();
    while pets < 3 {
        assert!(
            start.elapsed() < LIMIT,
            "only {pets} WATCHDOG=1 in {LIMIT:?}"
        );
        if recv_notify(&notify).contains("WATCHDOG=1") {
            pets += 1;
        }
    }
    assert!(server.stop().success());
}
