//! Servers and clients shared by the library tests (`shutdown.rs`,
//! `drain.rs`, `backpressure.rs`, `faults.rs`, `sockets.rs`).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use socketserver::{Addr, HandlerError, HandlerResult, StreamHandler, StreamRequest, TcpServer};

use super::LIMIT;

pub fn connect(server_addr: &Addr) -> TcpStream {
    let s = TcpStream::connect(server_addr.as_inet().unwrap()).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s
}

pub fn echo(req: &mut StreamRequest) -> HandlerResult {
    std::io::copy(&mut req.rfile, &mut req.wfile)?;
    Ok(())
}

/// Sends a line and reads the echo back.
pub fn roundtrip(s: &mut TcpStream, msg: &str) -> String {
    s.write_all(msg.as_bytes()).unwrap();
    let mut buf = vec![0; msg.len()];
    s.read_exact(&mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

/// `echo` as a plain function pointer, so servers built on it share a type.
pub type EchoFn = fn(&mut StreamRequest) -> HandlerResult;

/// Sends `msg`, half-closes, lets the server handle exactly one request
/// with `handle_request`, and returns everything the server sent back.
pub fn echo_once(server: &TcpServer<EchoFn>, msg: &str) -> String {
    let mut c = connect(server.server_address());
    c.write_all(msg.as_bytes()).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    server.handle_request().unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    got
}

/// A handler that signals when it starts and then waits for a release.
#[derive(Clone)]
pub struct Gate {
    pub started: mpsc::Sender<()>,
    pub release: Arc<Mutex<mpsc::Receiver<()>>>,
    /// The most requests in flight any handler saw when it started.
    pub peak: Arc<AtomicUsize>,
}

impl StreamHandler for Gate {
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        self.peak
            .fetch_max(req.server.active_connections(), Ordering::SeqCst);
        self.started.send(())?;
        self.release.lock().unwrap().recv_timeout(LIMIT)?;
        req.wfile.write_all(b"done")?;
        Ok(())
    }
}

pub fn gate() -> (Gate, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    (
        Gate {
            started: started_tx,
            release: Arc::new(Mutex::new(release_rx)),
            peak: Arc::default(),
        },
        started_rx,
        release_tx,
    )
}

#[derive(Clone)]
pub struct Faulty {
    pub errors: mpsc::Sender<(Addr, String)>,
}

impl StreamHandler for Faulty {
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        let mut line = String::new();
        req.rfile.read_line(&mut line)?;
        match line.trim() {
            "panic" => panic!("asked to panic"),
            "error" => Err("asked to fail".into()),
            other => {
                req.wfile.write_all(other.as_bytes())?;
                Ok(())
            }
        }
    }
    fn handle_error(&self, peer: &Addr, error: &HandlerError) {
        let _ = self.errors.send((peer.clone(), error.to_string()));
    }
}
