//! `recvmmsg(2)`/`sendmmsg(2)` for the batching load generator and the
//! hand-written batched echo: many datagrams per system call, with or
//! without peer addresses (connected sockets need none).

use std::io;
use std::os::fd::RawFd;

/// The most datagrams per call.
pub const MAX: usize = 32;

/// Where a datagram goes: an address and its length, or `None` on a
/// connected socket.
pub type Name = Option<(*const libc::sockaddr_storage, libc::socklen_t)>;

/// Fixed receive slots and the headers pointing into them.
pub struct Slots {
    buf: Vec<u8>,
    slot: usize,
    names: Vec<libc::sockaddr_storage>,
    /// Length of each datagram of the last `recv`.
    pub lens: Vec<usize>,
    /// Address length of each datagram of the last `recv` (with names).
    namelens: Vec<libc::socklen_t>,
}

impl Slots {
    /// `MAX` slots of `slot` bytes.
    pub fn new(slot: usize) -> Slots {
        Slots {
            buf: vec![0; slot * MAX],
            slot,
            // SAFETY: all-zero is a valid sockaddr_storage.
            names: vec![unsafe { std::mem::zeroed() }; MAX],
            lens: Vec::with_capacity(MAX),
            namelens: Vec::with_capacity(MAX),
        }
    }

    /// The bytes of datagram `i` of the last `recv`.
    pub fn data(&self, i: usize) -> &[u8] {
        &self.buf[i * self.slot..i * self.slot + self.lens[i]]
    }

    /// One non-blocking `recvmmsg` of up to `MAX` datagrams, keeping the
    /// senders' addresses if `with_names`. Returns how many arrived.
    pub fn recv(&mut self, fd: RawFd, with_names: bool) -> io::Result<usize> {
        // SAFETY: zeroed iovec/mmsghdr arrays are valid (null pointers).
        let mut iov: [libc::iovec; MAX] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; MAX] = unsafe { std::mem::zeroed() };
        for i in 0..MAX {
            iov[i].iov_base = self.buf[i * self.slot..].as_mut_ptr().cast();
            iov[i].iov_len = self.slot;
            msgs[i].msg_hdr.msg_iov = &raw mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            if with_names {
                msgs[i].msg_hdr.msg_name = (&raw mut self.names[i]).cast();
                msgs[i].msg_hdr.msg_namelen =
                    std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            }
        }
        // SAFETY: every header points at a live slot of `slot` bytes and
        // (with names) a live sockaddr_storage; MSG_DONTWAIT, no timeout.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                MAX as libc::c_uint,
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.lens.clear();
        self.namelens.clear();
        for m in &msgs[..n as usize] {
            self.lens.push(m.msg_len as usize);
            self.namelens.push(m.msg_hdr.msg_namelen);
        }
        Ok(n as usize)
    }

    /// Sends datagram `i` of the last `recv` back to its sender, for each
    /// `i` in `0..count`, in as few `sendmmsg` calls as it takes (the echo).
    pub fn echo_back(&mut self, fd: RawFd, count: usize) -> io::Result<()> {
        let datagrams: Vec<(&[u8], Name)> = (0..count)
            .map(|i| {
                (
                    self.data(i),
                    Some((&raw const self.names[i], self.namelens[i])),
                )
            })
            .collect();
        send(fd, &datagrams)
    }
}

/// Sends each datagram (to its address, or on a connected socket with
/// `None`) with `sendmmsg`, until all are sent or one fails.
pub fn send(fd: RawFd, datagrams: &[(&[u8], Name)]) -> io::Result<()> {
    for chunk in datagrams.chunks(MAX) {
        // SAFETY: zeroed iovec/mmsghdr arrays are valid (null pointers).
        let mut iov: [libc::iovec; MAX] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; MAX] = unsafe { std::mem::zeroed() };
        for (i, (bytes, name)) in chunk.iter().enumerate() {
            iov[i].iov_base = bytes.as_ptr().cast_mut().cast();
            iov[i].iov_len = bytes.len();
            msgs[i].msg_hdr.msg_iov = &raw mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            if let Some((ptr, len)) = name {
                msgs[i].msg_hdr.msg_name = ptr.cast_mut().cast();
                msgs[i].msg_hdr.msg_namelen = *len;
            }
        }
        let mut off = 0;
        while off < chunk.len() {
            // SAFETY: the headers point at byte slices and addresses
            // borrowed for the call; sendmmsg only reads them.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    msgs.as_mut_ptr().add(off),
                    (chunk.len() - off) as libc::c_uint,
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            off += n as usize;
        }
    }
    Ok(())
}
