//! Stopping: `shutdown` wakes the loop at once, from any thread or a handler, is not sticky, and races no accept; `handle_request`'s timeout; `server_close` from the loop's own handler.
//! Every wait is on an event (a channel, a reply, EOF) with an upper
//! bound; nothing sleeps to synchronise.

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak, mpsc};
use std::time::Duration;

use socketserver::{
    Addr, HandlerResult, ServerBuilder, StreamHandler, StreamRequest, TcpServer, Threading,
};

mod support;

use support::servers::*;
use support::{LIMIT, within};

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
