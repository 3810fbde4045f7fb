//! Closing: `server_close` frees the port first, drains in-flight handlers up to the deadline, then cuts; long handlers can end politely.
//! Every wait is on an event (a channel, a reply, EOF) with an upper
//! bound; nothing sleeps to synchronise.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use socketserver::{ServerBuilder, StreamRequest, Threading, ThreadingTcpServer};

mod support;

use support::LIMIT;
use support::servers::*;

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
