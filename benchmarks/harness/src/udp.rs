//! The UDP load: `conns` connected sockets, each with `inflight`
//! datagrams outstanding. With one in flight each reply is read with
//! `recv` and answered with `send`; with more, the generator batches like
//! a server would (`recvmmsg` of every reply waiting on a socket, one
//! `sendmmsg` of the next requests), so its cost per datagram stays below
//! the server's and the server is what is measured.
//!
//! Each datagram carries its slot number (0..inflight) in its first 4
//! bytes, so a reply completes the request it answers; the rest is a fixed
//! pattern, checked on every reply.

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use serde_json::Value;

use crate::load::{LoadOpts, Outcome, Stats, Window, finish};
use crate::mmsg::{self, Slots};

/// A reply not back after this counts as lost; the request is resent.
const LOST_AFTER: Duration = Duration::from_millis(200);

struct Client {
    sock: UdpSocket,
    /// When each slot's request was sent.
    sent_at: Vec<Instant>,
    done: u64,
}

/// The UDP load's state.
struct UdpLoad {
    poll: Poll,
    clients: Vec<Client>,
    /// The request of each slot.
    payloads: Vec<Vec<u8>>,
    st: Stats,
    t0: Instant,
    slots: Slots,
    /// Batched mode: replies per `recvmmsg` that returned any.
    recv_calls: u64,
    recv_datagrams: u64,
}

impl UdpLoad {
    fn new(o: &LoadOpts) -> io::Result<UdpLoad> {
        let size = o.size.max(4);
        let inflight = o.inflight.max(1);
        let payloads = (0..inflight)
            .map(|slot| {
                let mut p: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
                p[..4].copy_from_slice(&(slot as u32).to_le_bytes());
                p
            })
            .collect();
        let mut load = UdpLoad {
            poll: Poll::new()?,
            clients: Vec::with_capacity(o.conns),
            payloads,
            st: Stats::new(),
            t0: Instant::now() + o.warmup,
            slots: Slots::new(size.max(2048)),
            recv_calls: 0,
            recv_datagrams: 0,
        };
        for k in 0..o.conns {
            let mut sock = UdpSocket::bind("127.0.0.1:0".parse().expect("address"))?;
            sock.connect(o.addr)?;
            load.poll
                .registry()
                .register(&mut sock, Token(k), Interest::READABLE)?;
            load.clients.push(Client {
                sock,
                sent_at: vec![Instant::now(); inflight],
                done: 0,
            });
            for slot in 0..inflight {
                load.send(k, slot);
            }
        }
        load.t0 = Instant::now() + o.warmup;
        Ok(load)
    }

    fn send(&mut self, k: usize, slot: usize) {
        let c = &mut self.clients[k];
        c.sent_at[slot] = Instant::now();
        if c.sock.send(&self.payloads[slot]).is_err() {
            self.st.errors += 1;
        }
    }

    /// A reply on client `k`: checks it and completes its slot; the slot
    /// to send again, if the reply is good.
    fn reply(&mut self, k: usize, slot: Option<usize>) -> Option<usize> {
        let Some(slot) = slot else {
            self.st.mismatches += 1;
            return None;
        };
        let now = Instant::now();
        if now >= self.t0 {
            self.st.requests += 1;
            self.clients[k].done += 1;
            let ns = (now - self.clients[k].sent_at[slot]).as_nanos() as u64;
            let _ = self.st.hist.record(ns.max(100));
        }
        Some(slot)
    }

    /// One request outstanding: `recv` and `send` until `WouldBlock`.
    fn ready_plain(&mut self, k: usize) {
        let mut buf = [0u8; 2048];
        loop {
            match self.clients[k].sock.recv(&mut buf) {
                Ok(n) => {
                    let slot = check(&self.payloads, &buf[..n]);
                    if let Some(slot) = self.reply(k, slot) {
                        self.send(k, slot);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.st.errors += 1;
                    return;
                }
            }
        }
    }

    /// Several outstanding: `recvmmsg` every waiting reply, then one
    /// `sendmmsg` of the requests they free, until `WouldBlock`.
    fn ready_batched(&mut self, k: usize) {
        let fd = self.clients[k].sock.as_raw_fd();
        loop {
            let n = match self.slots.recv(fd, false) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.st.errors += 1;
                    return;
                }
            };
            self.recv_calls += 1;
            self.recv_datagrams += n as u64;
            let mut again = Vec::with_capacity(n);
            for i in 0..n {
                let slot = check(&self.payloads, self.slots.data(i));
                again.extend(self.reply(k, slot));
            }
            let now = Instant::now();
            let batch: Vec<(&[u8], mmsg::Name)> = again
                .iter()
                .map(|&slot| (&self.payloads[slot][..], None))
                .collect();
            for &slot in &again {
                self.clients[k].sent_at[slot] = now;
            }
            if mmsg::send(fd, &batch).is_err() {
                self.st.errors += 1;
            }
        }
    }

    /// Resends requests whose reply is overdue, counting them lost.
    fn sweep(&mut self, now: Instant) {
        for k in 0..self.clients.len() {
            for slot in 0..self.payloads.len() {
                if now - self.clients[k].sent_at[slot] > LOST_AFTER {
                    if now >= self.t0 {
                        self.st.lost += 1;
                    }
                    self.send(k, slot);
                }
            }
        }
    }
}

/// The slot a reply answers, if it is an intact copy of that slot's request.
fn check(payloads: &[Vec<u8>], data: &[u8]) -> Option<usize> {
    let slot = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    (payloads.get(slot)? == data).then_some(slot)
}

/// Runs the UDP load; one JSON object of results.
pub fn run(o: &LoadOpts) -> io::Result<Value> {
    let mut load = UdpLoad::new(o)?;
    let batched = o.inflight > 1;
    let mut events = Events::with_capacity(1024);
    let start = Instant::now();
    let end = load.t0 + o.duration;
    let mut window = Window::new(Some(load.t0), o.server_pid);
    let mut last_sweep = start;
    loop {
        let now = Instant::now();
        window.sample(now);
        if now >= end {
            break;
        }
        let timeout = end
            .saturating_duration_since(now)
            .min(Duration::from_millis(20));
        match load.poll.poll(&mut events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        for ev in events.iter() {
            match batched {
                true => load.ready_batched(ev.token().0),
                false => load.ready_plain(ev.token().0),
            }
        }
        let now = Instant::now();
        if now - last_sweep >= Duration::from_millis(20) {
            last_sweep = now;
            load.sweep(now);
        }
    }
    let server_cpu = window.server_cpu();
    let (window, cpu, busy) = window.close(start);
    let served = load.clients.iter().filter(|c| c.done > 0).count();
    let out = Outcome {
        served,
        connected: o.conns,
        window,
        cpu,
        busy,
        server_cpu,
    };
    let mut v = finish(o, &load.st, out);
    if load.recv_calls > 0 {
        v["client_batch_mean"] = (load.recv_datagrams as f64 / load.recv_calls as f64).into();
    }
    Ok(v)
}
