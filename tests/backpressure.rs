//! Backpressure: `max_connections` holds the rest in the kernel backlog; the pool's bounded queue.
//! Every wait is on an event (a channel, a reply, EOF) with an upper
//! bound; nothing sleeps to synchronise.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use socketserver::{ServerBuilder, ThreadPool, Threading};

mod support;

use support::LIMIT;
use support::servers::*;

#[test]
fn max_connections_holds_the_rest_in_the_backlog() {
    let (handler, started, release) = gate();
    let peak = Arc::clone(&handler.peak);
    let server = ServerBuilder::new()
        .strategy(Threading::new())
        .max_connections(2)
        .bind_tcp("127.0.0.1:0", handler)
        .unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| server.serve_forever());
        let mut clients: Vec<_> = (0..3).map(|_| connect(server.server_address())).collect();
        started.recv_timeout(LIMIT).unwrap();
        started.recv_timeout(LIMIT).unwrap();
        // The third connected (the kernel queued it) but is not handled
        // while two are live.
        assert_eq!(server.active_connections(), 2);
        assert!(started.try_recv().is_err());
        release.send(()).unwrap();
        // One ends, so the loop resumes and the third starts.
        started.recv_timeout(LIMIT).unwrap();
        release.send(()).unwrap();
        release.send(()).unwrap();
        for c in &mut clients {
            let mut got = String::new();
            c.read_to_string(&mut got).unwrap();
            assert_eq!(got, "done");
        }
        server.shutdown();
        t.join().unwrap().unwrap();
    });
    assert_eq!(server.server_close().unwrap().forced, 0);
    assert_eq!(server.active_connections(), 0);
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "more than 2 requests ran at once"
    );
}

#[test]
fn pool_serves_more_clients_than_workers_through_its_bounded_queue() {
    let server = ServerBuilder::new()
        .strategy(ThreadPool::new(2).queue(1))
        .bind_tcp("127.0.0.1:0", echo)
        .unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| server.serve_forever());
        let addr = server.server_address().clone();
        let clients: Vec<_> = (0..8)
            .map(|i| {
                let addr = addr.clone();
                s.spawn(move || {
                    let mut c = connect(&addr);
                    let msg = format!("client {i}");
                    let got = roundtrip(&mut c, &msg);
                    assert_eq!(got, msg);
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        server.shutdown();
        t.join().unwrap().unwrap();
    });
    // Nothing is kept per finished request.
    assert_eq!(server.server_close().unwrap().forced, 0);
    assert_eq!(server.active_connections(), 0);
}

/// `max_connections_per_ip`: one address cannot hold every slot; its extra
/// connection is closed at once while another address is still served.
#[test]
fn max_connections_per_ip_closes_the_extra_connection_of_one_address() {
    let (gate, started, release) = gate();
    let server = ServerBuilder::new()
        .strategy(Threading::new())
        .max_connections_per_ip(2)
        .bind_tcp("127.0.0.1:0", gate)
        .unwrap();
    let addr = server.server_address().as_inet().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| server.serve_forever().unwrap());
        let held: Vec<_> = (0..2)
            .map(|_| {
                let c = connect(server.server_address());
                started.recv_timeout(LIMIT).unwrap();
                c
            })
            .collect();
        let mut third = connect(server.server_address());
        assert_eq!(third.read(&mut [0u8; 1]).unwrap(), 0, "closed at once");
        // Another loopback address has its own allowance.
        let other =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        other
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 2], 0)).into())
            .unwrap();
        other.connect(&addr.into()).unwrap();
        started.recv_timeout(LIMIT).unwrap();
        for _ in 0..3 {
            release.send(()).unwrap();
        }
        drop(held);
        support::eventually(LIMIT, "the released handlers end", || {
            server.active_connections() == 0
        });
        // A freed slot is usable again by the first address.
        let _again = connect(server.server_address());
        started.recv_timeout(LIMIT).unwrap();
        release.send(()).unwrap();
        server.shutdown();
    });
    assert_eq!(server.server_close().unwrap().forced, 0);
}
