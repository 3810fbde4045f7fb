//! Faults: failing and panicking handlers and hooks never stop the server; Python's setup/handle/finish order.
//! Every wait is on an event (a channel, a reply, EOF) with an upper
//! bound; nothing sleeps to synchronise.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use socketserver::{
    Addr, HandlerError, HandlerResult, ServerBuilder, StreamHandler, StreamRequest, TcpServer,
    ThreadPool,
};

mod support;

use support::LIMIT;
use support::servers::*;

#[test]
fn failing_and_panicking_handlers_never_stop_the_server() {
    let (tx, errors) = mpsc::channel();
    let server = ServerBuilder::new()
        .strategy(ThreadPool::new(1)) // one worker: it must survive the panic
        .bind_tcp("127.0.0.1:0", Faulty { errors: tx })
        .unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| server.serve_forever());
        for (input, expected) in [
            ("panic", "handler panicked: asked to panic"),
            ("error", "asked to fail"),
        ] {
            let mut c = connect(server.server_address());
            let local = c.local_addr().unwrap();
            c.write_all(format!("{input}\n").as_bytes()).unwrap();
            let (peer, message) = errors.recv_timeout(LIMIT).unwrap();
            assert_eq!(peer.as_inet(), Some(local), "handle_error gets the peer");
            assert_eq!(message, expected);
            // The connection is closed.
            assert_eq!(c.read(&mut [0; 1]).unwrap_or(0), 0);
        }
        let mut c = connect(server.server_address());
        c.write_all(b"still here\n").unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "still here");
        server.shutdown();
        t.join().unwrap().unwrap();
    });
}

#[derive(Clone)]
struct Lifecycle {
    log: Arc<Mutex<Vec<&'static str>>>,
    fail_setup: bool,
}

impl StreamHandler for Lifecycle {
    fn setup(&mut self, _req: &mut StreamRequest) -> HandlerResult {
        self.log.lock().unwrap().push("setup");
        if self.fail_setup {
            return Err("setup failed".into());
        }
        Ok(())
    }
    fn handle(&mut self, _req: &mut StreamRequest) -> HandlerResult {
        self.log.lock().unwrap().push("handle");
        Err("handle failed".into())
    }
    fn finish(&mut self, _req: &mut StreamRequest) -> HandlerResult {
        self.log.lock().unwrap().push("finish");
        Ok(())
    }
    fn handle_error(&self, _peer: &Addr, _error: &HandlerError) {
        self.log.lock().unwrap().push("handle_error");
    }
}

#[test]
fn setup_handle_finish_in_pythons_order() {
    for (fail_setup, expected) in [
        (false, vec!["setup", "handle", "finish", "handle_error"]),
        (true, vec!["setup", "handle_error"]),
    ] {
        let handler = Lifecycle {
            log: Arc::default(),
            fail_setup,
        };
        let server = TcpServer::bind("127.0.0.1:0", handler.clone()).unwrap();
        let _c = connect(server.server_address());
        server.handle_request().unwrap();
        assert_eq!(*handler.log.lock().unwrap(), expected);
    }
}

/// Panics in `verify_request` for every other connection.
#[derive(Clone)]
struct PanickyVerify {
    errors: mpsc::Sender<String>,
    calls: Arc<AtomicUsize>,
}

impl StreamHandler for PanickyVerify {
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        req.wfile.write_all(b"served")?;
        Ok(())
    }
    fn verify_request(&self, _peer: &Addr) -> bool {
        if self.calls.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
            panic!("verify_request blew up");
        }
        true
    }
    fn handle_error(&self, _peer: &Addr, error: &HandlerError) {
        let _ = self.errors.send(error.to_string());
    }
}

// Python lets an exception in verify_request escape the loop and leak the
// socket; here it is reported, the connection is closed, and the loop goes on.
#[test]
fn a_panicking_verify_request_closes_that_connection_only() {
    let (tx, errors) = mpsc::channel();
    let handler = PanickyVerify {
        errors: tx,
        calls: Arc::default(),
    };
    let server = TcpServer::bind("127.0.0.1:0", handler).unwrap();
    let (mut refused, mut served) = (0, 0);
    for i in 0..6 {
        let mut c = connect(server.server_address());
        let even = i % 2 == 0;
        server.handle_request().unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        if even {
            assert_eq!(got, "", "a refused connection is closed unserved");
            let e = errors.recv_timeout(LIMIT).unwrap();
            assert_eq!(e, "handler panicked: verify_request blew up");
            refused += 1;
        } else {
            assert_eq!(got, "served");
            served += 1;
        }
    }
    assert_eq!((refused, served), (3, 3));
}
