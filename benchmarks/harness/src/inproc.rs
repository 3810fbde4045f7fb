//! In-process measurements: shutdown latency, from `shutdown()` to
//! `serve_forever` returning, idle and under load.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use socketserver::{AnyStrategy, ServerBuilder, ThreadPool, Threading};

use crate::servers::echo_loop;

/// Pins the calling thread to `cpu` (best effort).
pub fn pin_thread(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity
    // only touch it and the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// One connect/echo/close round trip; proves the loop is accepting.
fn probe(addr: SocketAddr) -> io::Result<()> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"p")?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut b = Vec::new();
    s.read_to_end(&mut b)?;
    if b != b"p" {
        return Err(io::Error::other("bad probe echo"));
    }
    Ok(())
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i]
}

type Echo = fn(&mut socketserver::StreamRequest) -> socketserver::HandlerResult;

/// Measures `runs` shutdowns of one server (`serve_forever` is restarted
/// each time, which the crate allows; a probe round trip proves the new loop
/// runs before `shutdown()` is called). Under load, `clients` threads pinned
/// to CPU 1 keep doing connect/echo/close against it. The loop thread is
/// pinned to CPU 0. Returns microsecond quantiles.
fn measure(builder: ServerBuilder<AnyStrategy>, runs: usize, clients: usize) -> io::Result<Value> {
    let server = Arc::new(builder.bind_tcp("127.0.0.1:0", echo_loop as Echo)?);
    let addr = server.server_address().as_inet().expect("inet");
    let stop = Arc::new(AtomicBool::new(false));
    let load_reqs = Arc::new(AtomicU64::new(0));
    let mut loaders = Vec::new();
    for _ in 0..clients {
        let stop = Arc::clone(&stop);
        let n = Arc::clone(&load_reqs);
        loaders.push(thread::spawn(move || {
            pin_thread(1);
            while !stop.load(Ordering::Relaxed) {
                if probe(addr).is_ok() {
                    n.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let mut lat = Vec::with_capacity(runs);
    let mut failures = 0;
    for _ in 0..runs {
        let (tx, rx) = mpsc::channel();
        let srv = Arc::clone(&server);
        let t = thread::spawn(move || {
            pin_thread(0);
            let r = srv.serve_forever();
            let _ = tx.send(Instant::now());
            r
        });
        // The loop is up once a fresh connection is served.
        let mut ok = false;
        for _ in 0..50 {
            if probe(addr).is_ok() {
                ok = true;
                break;
            }
        }
        if clients > 0 {
            // Let the loaders keep the loop busy for a moment, so the
            // shutdown lands while requests are being accepted and served.
            thread::sleep(Duration::from_millis(2));
        }
        let t0 = Instant::now();
        server.shutdown();
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(t1) if ok => lat.push((t1 - t0).as_secs_f64() * 1e6),
            _ => failures += 1,
        }
        let _ = t.join();
    }
    stop.store(true, Ordering::Relaxed);
    // Closing the listener first resets the loaders' connections still in
    // its backlog (no loop runs now), so they do not wait for a reply.
    let _ = server.server_close();
    for l in loaders {
        let _ = l.join();
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    Ok(json!({
        "runs": lat.len(),
        "failures": failures,
        "p50_us": quantile(&lat, 0.5),
        "p99_us": quantile(&lat, 0.99),
        "max_us": lat.last().copied().unwrap_or(f64::NAN),
        "load_requests": load_reqs.load(Ordering::Relaxed),
    }))
}

/// Shutdown latency for sequential, threading and pool, idle and under a
/// connect/echo/close load from `clients` threads.
pub fn shutdown_latency(runs: usize, clients: usize) -> io::Result<Vec<Value>> {
    let mut out = Vec::new();
    for (load, c) in [("idle", 0), ("load", clients)] {
        for strategy in ["sequential", "threading", "pool"] {
            let chosen = match strategy {
                "sequential" => AnyStrategy::Sequential,
                "threading" => AnyStrategy::Threading(Threading::new()),
                _ => AnyStrategy::ThreadPool(ThreadPool::new(16)),
            };
            let mut v = measure(ServerBuilder::new().strategy(chosen), runs, c)?;
            v["strategy"] = json!(strategy);
            v["load"] = json!(load);
            v["clients"] = json!(c);
            out.push(v);
        }
    }
    Ok(out)
}
