//! Datagrams in batches: the receive side ([`Receiver`], one `recvmmsg(2)`
//! per batch into fixed slots) and the send side ([`Outbox`], replies queued
//! by the handlers of a batch and sent with one `sendmmsg(2)` after it).
//!
//! Both are fixed in size, so a flood cannot grow them: the receiver holds
//! [`Receiver::SLOTS`] slots of `max_packet_size` bytes (at most
//! [`RECV_BYTES`] in all, untouched pages staying unmapped; the thread
//! strategies hold a second receiver for the thread that takes batches
//! itself, [`SharedRecv`]), and an outbox holds at most
//! [`OUTBOX_DATAGRAMS`] replies and [`OUTBOX_BYTES`] bytes, flushing early
//! when either is reached.

use std::cell::RefCell;
use std::io;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, PoisonError};

use socket2::SockAddr;

use super::{Datagram, Incoming};
use crate::net::{Addr, DatagramSocket};
use crate::sys::{self, MAX_BATCH, Received};

/// The most bytes of receive slots a datagram transport holds.
pub(crate) const RECV_BYTES: usize = 2 << 20;
/// Replies an outbox holds before it flushes early.
pub(crate) const OUTBOX_DATAGRAMS: usize = MAX_BATCH;
/// Bytes of replies an outbox holds before it flushes early; a longer
/// reply is sent at once.
pub(crate) const OUTBOX_BYTES: usize = 256 << 10;

/// A datagram transport's receive side: fixed slots filled by one
/// `recvmmsg(2)` per batch.
#[derive(Debug)]
pub(crate) struct Receiver {
    buf: Vec<u8>,
    slot: usize,
    slots: usize,
    got: Vec<Received>,
}

impl Receiver {
    /// At most this many datagrams per batch.
    pub(crate) const SLOTS: usize = MAX_BATCH;

    /// Slots of `max_packet_size` bytes: [`Self::SLOTS`] of them, fewer
    /// when that would exceed [`RECV_BYTES`] (at least one).
    pub(crate) fn new(max_packet_size: usize) -> Receiver {
        let slot = max_packet_size.max(1);
        let slots = (RECV_BYTES / slot).clamp(1, Self::SLOTS);
        Receiver {
            // Zeroed by calloc: pages no datagram reaches stay unmapped.
            buf: vec![0; slot * slots],
            slot,
            slots,
            got: Vec::with_capacity(slots),
        }
    }

    /// Receives up to `max` datagrams without blocking and passes each to
    /// `each` in arrival order: a request, or `Truncated` for one longer
    /// than a slot (dropped, never handled cut short). Nothing waiting is
    /// one `WouldBlock`; an error before the first datagram, one `Error`.
    ///
    /// Fewer datagrams than asked for means the socket's queue was empty
    /// when the call returned: a `WouldBlock` follows them, so the loop
    /// waits for readiness instead of paying one more `recvmmsg` to hear
    /// `EAGAIN` (the poller reports any datagram queued after this call).
    pub(crate) fn recv(
        &mut self,
        socket: &Arc<DatagramSocket>,
        max: usize,
        to_addr: fn(&SockAddr) -> Addr,
        each: &mut dyn FnMut(Incoming<Datagram>),
    ) {
        self.got.clear();
        let max = max.clamp(1, self.slots);
        if let Err(e) =
            sys::recv_batch(socket.as_fd(), &mut self.buf, self.slot, max, &mut self.got)
        {
            each(Incoming::from_error(e));
            return;
        }
        for (r, chunk) in self.got.iter().zip(self.buf.chunks_exact(self.slot)) {
            let peer = to_addr(&r.from);
            each(if r.truncated {
                Incoming::Truncated(peer)
            } else {
                Incoming::Request(
                    Datagram {
                        data: chunk[..r.len].to_vec(),
                        socket: Arc::clone(socket),
                    },
                    peer,
                )
            });
        }
        if self.got.len() < max {
            each(Incoming::WouldBlock);
        }
    }
}

/// A receive function any thread may call: up to `max` datagrams, each
/// passed to the callback, as [`Receiver::recv`] does.
pub(crate) type SharedRecv<R> = Arc<dyn Fn(usize, &mut dyn FnMut(Incoming<R>)) + Send + Sync>;

impl Receiver {
    /// A [`SharedRecv`] on `socket` with slots of its own, the size of
    /// these.
    pub(crate) fn shared(
        &self,
        socket: &Arc<DatagramSocket>,
        to_addr: fn(&SockAddr) -> Addr,
    ) -> SharedRecv<Datagram> {
        let receiver = Mutex::new(Receiver::new(self.slot));
        let socket = Arc::clone(socket);
        Arc::new(move |max, each| {
            let mut r = receiver.lock().unwrap_or_else(PoisonError::into_inner);
            r.recv(&socket, max, to_addr, each);
        })
    }
}

/// One queued reply.
#[derive(Debug)]
struct Queued {
    start: usize,
    len: usize,
    to: SockAddr,
    peer: Addr,
}

/// The replies of the batch running on this thread, for one socket.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    socket: Option<Arc<DatagramSocket>>,
    bytes: Vec<u8>,
    queued: Vec<Queued>,
    failed: Vec<(Addr, io::Error)>,
}

thread_local! {
    /// Kept per thread (the loop's, a pool worker's) so the buffers are
    /// reused from batch to batch.
    static OUTBOX: RefCell<Outbox> = RefCell::default();
}

/// While alive, replies on `socket` from this thread are queued; dropping
/// it sends what is queued. See [`Outbox::enter`].
#[derive(Debug)]
pub(crate) struct Scope(());

impl Outbox {
    /// Starts queueing replies sent on `socket` from this thread. `None`
    /// when a batch is already running on this thread (a handler serving
    /// another server inline): the inner batch then sends directly.
    pub(crate) fn enter(socket: &Arc<DatagramSocket>) -> Option<Scope> {
        OUTBOX.with(|o| {
            let mut o = o.try_borrow_mut().ok()?;
            if o.socket.is_some() {
                return None;
            }
            o.socket = Some(Arc::clone(socket));
            Some(Scope(()))
        })
    }

    /// Queues one reply if a batch for `socket` is running on this thread;
    /// `None` if not (the caller sends it itself with `sendto(2)`). Replies
    /// already queued are sent first when this one does not fit, and a
    /// reply longer than [`OUTBOX_BYTES`] is left to the caller after them,
    /// so replies leave in the order they were made.
    pub(crate) fn queue(socket: &Arc<DatagramSocket>, buf: &[u8], peer: &Addr) -> Option<()> {
        OUTBOX.with(|o| {
            let mut o = o.try_borrow_mut().ok()?;
            if !o.socket.as_ref().is_some_and(|s| Arc::ptr_eq(s, socket)) {
                return None;
            }
            if o.queued.len() >= OUTBOX_DATAGRAMS || o.bytes.len() + buf.len() > OUTBOX_BYTES {
                o.flush();
            }
            if buf.len() > OUTBOX_BYTES {
                return None;
            }
            let to = sockaddr(peer)?;
            let start = o.bytes.len();
            o.bytes.extend_from_slice(buf);
            o.queued.push(Queued {
                start,
                len: buf.len(),
                to,
                peer: peer.clone(),
            });
            Some(())
        })
    }

    /// Sends everything queued, recording the replies the kernel refused.
    fn flush(&mut self) {
        let Some(socket) = self.socket.clone() else {
            return;
        };
        if self.queued.is_empty() {
            return;
        }
        let Outbox {
            bytes,
            queued,
            failed,
            ..
        } = self;
        send_all(&socket, bytes, queued, failed);
        queued.clear();
        bytes.clear();
        if bytes.capacity() > OUTBOX_BYTES {
            bytes.shrink_to(OUTBOX_BYTES);
        }
    }
}

impl Scope {
    /// Sends what is queued and ends the batch; returns the replies that
    /// failed, with their peers, for `handle_error`.
    pub(crate) fn finish(self) -> Vec<(Addr, io::Error)> {
        std::mem::forget(self);
        end_batch()
    }
}

impl Drop for Scope {
    /// A batch cut short (a panic outside any handler) still sends its
    /// replies; failures are only logged.
    fn drop(&mut self) {
        for (peer, e) in end_batch() {
            log::error!("socketserver: reply to {peer} failed: {e}");
        }
    }
}

fn end_batch() -> Vec<(Addr, io::Error)> {
    OUTBOX.with(|o| {
        let mut o = o.borrow_mut();
        o.flush();
        o.socket = None;
        std::mem::take(&mut o.failed)
    })
}

/// The socket address of `peer` for `sendmmsg`; `None` for an unnamed Unix
/// peer (the direct send reports it).
fn sockaddr(peer: &Addr) -> Option<SockAddr> {
    match peer {
        Addr::Inet(a) => Some(SockAddr::from(*a)),
        #[cfg(unix)]
        Addr::Unix(Some(path)) => SockAddr::unix(path).ok(),
        #[cfg(unix)]
        Addr::Unix(None) => None,
    }
}

/// `sendmmsg(2)` on Linux, `sendto(2)` per reply elsewhere.
fn send_all(
    socket: &DatagramSocket,
    bytes: &[u8],
    queued: &[Queued],
    failed: &mut Vec<(Addr, io::Error)>,
) {
    let mut record = |i: usize, e: io::Error| {
        // Bounded: at most one entry per queued reply of one batch's flushes.
        if failed.len() < OUTBOX_DATAGRAMS * 4 {
            failed.push((queued[i].peer.clone(), e));
        } else {
            log::error!("socketserver: reply to {} failed: {e}", queued[i].peer);
        }
    };
    #[cfg(target_os = "linux")]
    {
        let list: Vec<(&[u8], &SockAddr)> = queued
            .iter()
            .map(|q| (&bytes[q.start..q.start + q.len], &q.to))
            .collect();
        sys::send_batch(socket.as_fd(), &list, &mut record);
    }
    #[cfg(not(target_os = "linux"))]
    for (i, q) in queued.iter().enumerate() {
        if let Err(e) = socket.send_to(&bytes[q.start..q.start + q.len], &q.peer) {
            record(i, e);
        }
    }
}
