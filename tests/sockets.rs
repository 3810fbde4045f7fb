//! Socket options and transports: timeouts, UDP truncation, IPv6, adopted listeners, Unix socket paths, thread names and stacks.
//! Every wait is on an event (a channel, a reply, EOF) with an upper
//! bound; nothing sleeps to synchronise.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

use socketserver::{
    Addr, DatagramHandler, DatagramRequest, HandlerError, HandlerResult, ServerBuilder,
    StreamRequest, TcpServer, Threading, TruncatedDatagram,
};

mod support;

use support::LIMIT;
use support::servers::*;

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
