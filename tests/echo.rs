//! The echo example as a user runs it: `listening on <addr>` with port 0,
//! every byte echoed as it arrives (no newline needed), under every
//! strategy, over TCP and (`--udp`) UDP, and a graceful exit 0 on SIGINT
//! and SIGTERM.

mod support;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use support::LIMIT;

fn connect(addr: &str) -> TcpStream {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(LIMIT)).unwrap();
    c
}

#[test]
fn echoes_bytes_as_they_arrive_under_every_strategy() {
    for strategy in ["sequential", "threading", "pool", "forking", "reactor"] {
        let server = support::start(
            "echo",
            &[
                "--addr",
                "127.0.0.1:0",
                "--strategy",
                strategy,
                "--workers",
                "2",
            ],
        );
        for _ in 0..3 {
            let mut c = connect(&server.addr);
            // No newline: the reply must not wait for one.
            for piece in [&b"hel"[..], b"lo", b" \xe4\xbd\xa0\xe5\xa5\xbd"] {
                c.write_all(piece).unwrap();
                let mut back = vec![0; piece.len()];
                c.read_exact(&mut back).unwrap();
                assert_eq!(back, piece, "strategy {strategy}");
            }
        }
        let status = server.stop_with(2); // SIGINT
        assert!(status.success(), "{strategy}: {status}");
    }
}

#[test]
fn echoes_datagrams_with_udp_under_every_strategy() {
    for strategy in ["sequential", "threading", "pool", "forking"] {
        let args = ["--udp", "--addr", "127.0.0.1:0", "--strategy", strategy];
        let server = support::start("echo", &args);
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(LIMIT)).unwrap();
        let big: Vec<u8> = (0..16384).map(|i| i as u8).collect();
        for msg in [&b"hello"[..], b"", &big] {
            c.send_to(msg, &server.addr).unwrap();
            let mut back = vec![0; 65536];
            let (n, from) = c.recv_from(&mut back).unwrap();
            assert_eq!(&back[..n], msg, "strategy {strategy}");
            assert_eq!(from.to_string(), server.addr, "strategy {strategy}");
        }
        let status = server.stop_with(2); // SIGINT
        assert!(status.success(), "{strategy}: {status}");
    }
}

#[test]
fn sigterm_drains_an_open_connection_and_exits_zero() {
    let server = support::start("echo", &["--addr", "127.0.0.1:0", "--drain-timeout", "0.2"]);
    let mut c = connect(&server.addr);
    c.write_all(b"still here").unwrap();
    let mut back = [0u8; 10];
    c.read_exact(&mut back).unwrap();
    // The client never leaves: the drain cuts it at the deadline.
    let status = server.stop();
    assert!(status.success(), "{status}");
    assert_eq!(
        c.read(&mut [0u8; 1]).unwrap_or(0),
        0,
        "the connection was closed"
    );
}

#[test]
fn a_taken_port_is_a_clear_error_not_a_hang() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // SO_REUSEADDR does not allow two listeners on one port.
    let (status, stdout, stderr) = support::run_with_timeout(
        std::process::Command::new(support::example_bin("echo")).args(["--addr", &addr]),
        LIMIT,
    );
    assert!(!status.success());
    assert!(
        stdout.is_empty(),
        "no `listening on` line for a failed bind"
    );
    let err = String::from_utf8_lossy(&stderr);
    assert!(err.contains("in use"), "{err}");
}

/// The first Ctrl-C drains (waiting for a busy client up to the drain
/// deadline, here a minute); the second cuts that drain at once.
#[test]
fn a_second_sigint_cuts_the_drain_at_once() {
    let mut server = support::start("echo", &["--addr", "127.0.0.1:0", "--drain-timeout", "60"]);
    let mut c = connect(&server.addr);
    c.write_all(b"busy").unwrap();
    c.read_exact(&mut [0u8; 4]).unwrap();
    support::signal(&server.child, 2);
    // The drain has begun once the listener is closed.
    support::eventually(LIMIT, "the listener closes", || {
        TcpStream::connect(&server.addr).is_err()
    });
    assert!(server.child.try_wait().unwrap().is_none(), "still draining");
    let cut_at = Instant::now();
    support::signal(&server.child, 2);
    let status = support::wait_timeout(&mut server.child, LIMIT).expect("exited");
    assert!(status.success(), "{status}");
    assert!(
        cut_at.elapsed() < Duration::from_secs(10),
        "{:?}",
        cut_at.elapsed()
    );
    assert_eq!(
        c.read(&mut [0u8; 1]).unwrap_or(0),
        0,
        "the connection was cut"
    );
}
