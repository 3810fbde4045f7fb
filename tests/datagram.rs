//! Datagrams in batches: datagrams queued before the loop starts arrive in
//! one `recvmmsg`, and each is still handled (or reported truncated) on its
//! own, exactly once (in order under Sequential); replies queued by the handlers of a batch
//! reach each peer exactly once and in order, also past the outbox's size;
//! a reply the kernel refuses goes to `handle_error`. Under Sequential,
//! ThreadPool and Threading.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::thread;

use socketserver::{
    Addr, AnyStrategy, DatagramHandler, DatagramRequest, HandlerError, HandlerResult, Server,
    ServerBuilder, ThreadPool, Threading, TruncatedDatagram, UdpTransport,
};
use support::LIMIT;

/// What the handlers saw, in order.
#[derive(Debug, Default)]
struct Seen {
    handled: Vec<Vec<u8>>,
    truncated: Vec<Addr>,
    other_errors: Vec<String>,
}

/// Replies to each datagram with `copies` replies: the datagram, then the
/// datagram followed by `b"+"`, `b"++"`, ...; a datagram starting with
/// `b"big"` also gets a 70,000-byte reply (over UDP's limit) first.
#[derive(Clone)]
struct Recorder {
    seen: Arc<Mutex<Seen>>,
    copies: usize,
}

impl DatagramHandler for Recorder {
    fn handle(&mut self, req: &mut DatagramRequest) -> HandlerResult {
        let data = req.data().to_vec();
        self.seen.lock().unwrap().handled.push(data.clone());
        if data.starts_with(b"big") {
            req.reply(&vec![0u8; 70_000])?;
        }
        for k in 0..self.copies {
            let mut reply = data.clone();
            reply.extend(std::iter::repeat_n(b'+', k));
            req.reply(&reply)?;
        }
        Ok(())
    }

    fn handle_error(&self, peer: &Addr, error: &HandlerError) {
        let mut seen = self.seen.lock().unwrap();
        if error.downcast_ref::<TruncatedDatagram>().is_some() {
            seen.truncated.push(peer.clone());
        } else {
            seen.other_errors.push(error.to_string());
        }
    }
}

fn client() -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(LIMIT)).unwrap();
    c
}

/// Binds a server, lets `before` send to it while nothing reads (so the
/// datagrams wait together in the socket), then serves on a thread until
/// `check` returns, and closes.
fn with_server(
    strategy: AnyStrategy,
    copies: usize,
    before: impl FnOnce(SocketAddr),
    check: impl FnOnce(SocketAddr, &Arc<Mutex<Seen>>) + Send + 'static,
) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let handler = Recorder {
        seen: Arc::clone(&seen),
        copies,
    };
    let server: Server<UdpTransport, Recorder, AnyStrategy> = ServerBuilder::new()
        .strategy(strategy)
        .max_packet_size(64)
        .bind_udp("127.0.0.1:0", handler)
        .unwrap();
    let addr = server.server_address().as_inet().unwrap();
    before(addr);
    let handle = server.handle();
    let server = Arc::new(server);
    let serving = {
        let server = Arc::clone(&server);
        thread::spawn(move || server.serve_forever())
    };
    support::within(LIMIT, "the checks", move || check(addr, &seen));
    handle.shutdown();
    support::within(LIMIT, "serve_forever returns", move || serving.join())
        .unwrap()
        .unwrap();
    server.server_close().unwrap();
}

/// Runs `case` once under each strategy that shares the handler's state.
fn each_strategy(case: fn(&str, AnyStrategy)) {
    case("sequential", AnyStrategy::Sequential);
    case("pool", AnyStrategy::ThreadPool(ThreadPool::new(2)));
    case("threading", AnyStrategy::Threading(Threading::new()));
}

/// Under the thread strategies a later batch may run beside an earlier one
/// (after the 2 ms takeover, or when the in-flight limit split the queue),
/// so only Sequential promises the arrival order across batches.
fn in_order(name: &str, mut got: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    if name != "sequential" {
        got.sort();
    }
    got
}

fn mixed_batch(name: &str, strategy: AnyStrategy) {
    let c = client();
    let oversized = [b'x'; 100];
    // good, empty, oversized, good, oversized, empty, good
    let sent: Vec<&[u8]> = vec![b"one", b"", &oversized, b"two", &oversized, b"", b"three"];
    let expected: Vec<Vec<u8>> = sent
        .iter()
        .filter(|d| d.len() <= 64)
        .map(|d| d.to_vec())
        .collect();
    let c2 = c.try_clone().unwrap();
    let me = c.local_addr().unwrap();
    let name = name.to_string();
    with_server(
        strategy,
        1,
        |addr| {
            for d in &sent {
                c.send_to(d, addr).unwrap();
            }
        },
        move |addr, seen| {
            // One reply per good or empty datagram (in the order sent,
            // under Sequential).
            let mut replies = Vec::new();
            for _ in &expected {
                let mut buf = [0u8; 128];
                let n = c2.recv(&mut buf).unwrap();
                replies.push(buf[..n].to_vec());
            }
            assert_eq!(
                in_order(&name, replies),
                in_order(&name, expected.clone()),
                "{name}"
            );
            support::eventually(LIMIT, "both truncations are reported", || {
                seen.lock().unwrap().truncated.len() == 2
            });
            // A datagram after them: had a reply been duplicated, the
            // duplicate would arrive before this one's.
            c2.send_to(b"last", addr).unwrap();
            let mut buf = [0u8; 128];
            let n = c2.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"last", "{name}: no duplicate reply");
            let mut want = expected.clone();
            want.push(b"last".to_vec());
            let seen = seen.lock().unwrap();
            assert_eq!(
                in_order(&name, seen.handled.clone()),
                in_order(&name, want),
                "{name}: each handled once"
            );
            assert!(
                seen.truncated.iter().all(|p| *p == Addr::Inet(me)),
                "{name}: {:?}",
                seen.truncated
            );
            assert!(
                seen.other_errors.is_empty(),
                "{name}: {:?}",
                seen.other_errors
            );
        },
    );
}

#[test]
fn a_mixed_batch_is_handled_datagram_by_datagram() {
    each_strategy(mixed_batch);
}

fn many_peers(name: &str, strategy: AnyStrategy) {
    // 20 peers, 3 replies each: 60 replies from one batch of 20, more than
    // one sendmmsg's worth, so the outbox also flushes early.
    let clients: Vec<UdpSocket> = (0..20).map(|_| client()).collect();
    let senders: Vec<UdpSocket> = clients.iter().map(|c| c.try_clone().unwrap()).collect();
    let name = name.to_string();
    with_server(
        strategy,
        3,
        move |addr| {
            for (k, c) in senders.iter().enumerate() {
                c.send_to(format!("peer{k}").as_bytes(), addr).unwrap();
            }
        },
        move |addr, seen| {
            for (k, c) in clients.iter().enumerate() {
                for plus in ["", "+", "++"] {
                    let mut buf = [0u8; 64];
                    let (n, from) = c.recv_from(&mut buf).unwrap();
                    assert_eq!(from, addr);
                    assert_eq!(
                        String::from_utf8_lossy(&buf[..n]),
                        format!("peer{k}{plus}"),
                        "{name}: peer {k} gets its own replies, in order"
                    );
                }
            }
            // Exactly once: a second round's reply is the next thing each
            // peer receives.
            for (k, c) in clients.iter().enumerate() {
                c.send_to(format!("again{k}").as_bytes(), addr).unwrap();
            }
            for (k, c) in clients.iter().enumerate() {
                let mut buf = [0u8; 64];
                let n = c.recv(&mut buf).unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&buf[..n]),
                    format!("again{k}"),
                    "{name}: no duplicate before the second round"
                );
            }
            assert_eq!(seen.lock().unwrap().handled.len(), 40, "{name}");
        },
    );
}

#[test]
fn replies_to_many_peers_in_one_batch_reach_each_exactly_once() {
    each_strategy(many_peers);
}

fn refused_reply(name: &str, strategy: AnyStrategy) {
    let c = client();
    let c2 = c.try_clone().unwrap();
    let name = name.to_string();
    with_server(
        strategy,
        1,
        |addr| {
            c.send_to(b"big", addr).unwrap();
            c.send_to(b"after", addr).unwrap();
        },
        move |_, seen| {
            // The 70,000-byte reply is refused (EMSGSIZE); the replies
            // queued with it still leave.
            for want in [&b"big"[..], b"after"] {
                let mut buf = [0u8; 64];
                let n = c2.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], want, "{name}");
            }
            support::eventually(LIMIT, "the refused reply is reported", || {
                !seen.lock().unwrap().other_errors.is_empty()
            });
            let seen = seen.lock().unwrap();
            assert_eq!(
                seen.other_errors.len(),
                1,
                "{name}: {:?}",
                seen.other_errors
            );
        },
    );
}

#[test]
fn a_refused_queued_reply_goes_to_handle_error_and_the_rest_leave() {
    each_strategy(refused_reply);
}

/// A reply made inside a handler leaves after the handler returns (queued
/// for the batch's `sendmmsg`); one sent from another thread leaves at once.
#[cfg(target_os = "linux")]
#[test]
fn replies_inside_a_batch_are_queued_and_sent_after_it() {
    let c = client();
    let probe = Arc::new(c.try_clone().unwrap());
    probe.set_nonblocking(true).unwrap();
    let observed = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&observed);
    let server = ServerBuilder::new()
        .bind_udp("127.0.0.1:0", move |req: &mut DatagramRequest| {
            req.reply(b"queued")?;
            let queued_yet = probe.recv(&mut [0u8; 16]).is_ok();
            // From another thread: no batch there, so sendto at once.
            let direct = thread::scope(|s| s.spawn(|| req.reply(b"direct")).join().unwrap());
            log.lock().unwrap().push((queued_yet, direct.is_ok()));
            Ok(())
        })
        .unwrap();
    let addr = server.server_address().as_inet().unwrap();
    c.send_to(b"x", addr).unwrap();
    server.handle_request().unwrap();
    assert_eq!(*observed.lock().unwrap(), vec![(false, true)]);
    let mut got = Vec::new();
    for _ in 0..2 {
        let mut buf = [0u8; 16];
        let n = support::within(LIMIT, "a reply", {
            let c = c.try_clone().unwrap();
            move || {
                c.set_nonblocking(false).unwrap();
                c.recv(&mut buf).map(|n| buf[..n].to_vec())
            }
        })
        .unwrap();
        got.push(String::from_utf8(n).unwrap());
    }
    assert_eq!(got, ["direct", "queued"]);
}

/// A handler that blocks does not hold the datagrams behind it under the
/// thread strategies: the thread running it had been left to take the next
/// batches itself, and the loop takes them back and hands them to another
/// thread.
#[test]
fn a_blocked_handler_does_not_hold_later_datagrams_under_thread_strategies() {
    use std::sync::Condvar;
    for (name, strategy) in [
        // Room for the blocked batch of four and the datagram after it.
        ("pool", AnyStrategy::ThreadPool(ThreadPool::new(2).queue(8))),
        ("threading", AnyStrategy::Threading(Threading::new())),
    ] {
        let freed = Arc::new((Mutex::new(false), Condvar::new()));
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let started_tx = Arc::new(Mutex::new(started_tx));
        let handler = {
            let freed = Arc::clone(&freed);
            move |req: &mut DatagramRequest| -> HandlerResult {
                let (lock, cv) = &*freed;
                if req.data() == b"block" {
                    started_tx.lock().unwrap().send(()).unwrap();
                    let guard = lock.lock().unwrap();
                    let (guard, _) = cv.wait_timeout_while(guard, LIMIT, |f| !*f).unwrap();
                    assert!(*guard, "released by the later datagram's handler");
                } else {
                    *lock.lock().unwrap() = true;
                    cv.notify_all();
                }
                req.reply(req.data())?;
                Ok(())
            }
        };
        let server = Arc::new(
            ServerBuilder::new()
                .strategy(strategy)
                .bind_udp("127.0.0.1:0", handler)
                .unwrap(),
        );
        let addr = server.server_address().as_inet().unwrap();
        let c = client();
        // One batch of four, so the thread running it goes on to take the
        // next batches itself.
        for d in ["block", "a", "b", "c"] {
            c.send_to(d.as_bytes(), addr).unwrap();
        }
        let serving = {
            let server = Arc::clone(&server);
            thread::spawn(move || server.serve_forever())
        };
        started
            .recv_timeout(LIMIT)
            .expect("the blocking handler started");
        c.send_to(b"free", addr).unwrap();
        let mut got = Vec::new();
        for _ in 0..5 {
            let mut buf = [0u8; 16];
            let n = c.recv(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        // Each batch's replies leave in its order when it ends; the two
        // batches end at about the same moment, and one sendmmsg may
        // interleave with another thread's.
        assert_eq!(
            got.iter().filter(|r| *r == "free").count(),
            1,
            "{name}: {got:?}"
        );
        got.retain(|r| r != "free");
        assert_eq!(got, ["block", "a", "b", "c"], "{name}");
        server.shutdown();
        support::within(LIMIT, "serve_forever returns", move || serving.join())
            .unwrap()
            .unwrap();
        server.server_close().unwrap();
    }
}
