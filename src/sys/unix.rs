//! Unix system calls that std and socket2 do not offer: `fork`, `_exit`,
//! `waitpid`, `kill`, `pidfd_open`, `recvmsg` with `MSG_TRUNC`, and the
//! batched `recvmmsg`/`sendmmsg` of Linux.
//!
//! All of the crate's `unsafe` code is in this file; every block says why it
//! is sound.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use socket2::SockAddr;

/// The `listen(2)` backlog meaning "as many as the system allows".
pub(crate) const SOMAXCONN: i32 = libc::SOMAXCONN;

/// Which side of a `fork` we are on.
pub(crate) enum Forked {
    /// The new process.
    Child,
    /// The parent; the child's pid.
    Parent(libc::pid_t),
}

/// `fork(2)`.
///
/// Only the calling thread exists in the child. The child must not take any
/// lock another thread might have held at the fork (the allocator is safe on
/// glibc; a logger's lock may not be), and must leave with [`exit_now`].
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: fork has no memory-safety preconditions of its own; the
    // documented restriction (async-signal-safety in a multi-threaded child)
    // is the caller's contract, stated on `Forking`.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// `_exit(2)`: leaves the process at once, without running destructors,
/// `atexit` handlers or flushing stdio that belongs to the parent.
pub(crate) fn exit_now(status: i32) -> ! {
    // SAFETY: _exit is always safe to call; it never returns.
    unsafe { libc::_exit(status) }
}

/// `waitpid(pid, WNOHANG)`: `Ok(Some(status))` once `pid` has exited (and is
/// reaped), `Ok(None)` while it runs. Only ever called with our own
/// children's pids, never -1, so a foreign child's status stays collectable.
pub(crate) fn try_reap(pid: libc::pid_t) -> io::Result<Option<i32>> {
    let mut status = 0;
    // SAFETY: `status` is a valid, writable c_int for the call's duration.
    match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        _ => Ok(Some(status)),
    }
}

/// The signal that killed a child, from its `waitpid` status
/// (`WIFSIGNALED`/`WTERMSIG`); `None` if it exited normally.
pub(crate) fn killed_by(status: i32) -> Option<i32> {
    libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status))
}

/// In a forked child: restores the default action for `SIGTERM` and
/// ignores `SIGINT` (`signal(2)`), so the drain's `SIGTERM` ends the child
/// and a terminal's Ctrl-C reaches only the parent, even when the parent
/// installed handlers (a signal-hook self-pipe would otherwise turn the
/// child's signal into a second signal for the parent).
pub(crate) fn child_signals() {
    // SAFETY: SIG_DFL and SIG_IGN install no Rust code as a handler; both
    // calls are async-signal-safe and valid after fork.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
}

/// Sends `SIGTERM` to `pid` (`kill(2)`).
pub(crate) fn terminate(pid: libc::pid_t) {
    // SAFETY: kill takes plain integers; a stale pid at worst returns ESRCH.
    unsafe { libc::kill(pid, libc::SIGTERM) };
}

/// Closes a descriptor number this process holds a copy of (`close(2)`):
/// the forked child closes its copy of the listener.
pub(crate) fn close_fd(fd: RawFd) {
    // SAFETY: called in a freshly forked child on the listener's descriptor,
    // which nothing in the child uses afterwards.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
}

/// `pidfd_open(2)` (Linux 5.3+): a descriptor that becomes readable when
/// `pid` exits, so the loop wakes to reap it at once. `None` where the
/// kernel lacks it; the loop then sweeps on a short timer.
pub(crate) fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: pidfd_open takes a pid and flags and returns a new
        // descriptor or -1; no pointers are involved.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd >= 0 {
            // SAFETY: the kernel just returned this descriptor, owned by no one else.
            return Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
    }
    let _ = pid;
    None
}

/// One `recvmsg(2)` with `MSG_DONTWAIT` into `buf`: the length, whether the
/// datagram was longer than `buf` (`MSG_TRUNC` in `msg_flags`), and the
/// sender. (Linux receives with [`recv_batch`]'s `recvmmsg` instead.)
#[cfg(not(target_os = "linux"))]
pub(crate) fn recv_datagram(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, bool, SockAddr)> {
    // SAFETY: `try_init` hands us zeroed storage of `*len` bytes for the
    // address; the iovec points at `buf`, valid and writable for its
    // length; `msg` lives across the call; on success `msg_namelen` is
    // what the kernel wrote, which is what `try_init` expects back.
    let ((n, truncated), addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_name = storage.cast();
            msg.msg_namelen = *len;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            let n = libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT);
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            *len = msg.msg_namelen;
            Ok((n as usize, msg.msg_flags & libc::MSG_TRUNC != 0))
        })?
    };
    Ok((n, truncated, addr))
}

/// Takes ownership of a descriptor this process inherited (socket
/// activation), after checking it is open, and marks it close-on-exec so
/// commands the server spawns do not inherit the listener.
pub(crate) fn adopt_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD takes no pointer; it fails with EBADF on a closed fd.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open, and the caller passes only numbers the
    // service manager (LISTEN_FDS, checked against LISTEN_PID) handed to this
    // process, which nothing else in it owns; the variables are removed
    // afterwards so no one adopts them twice.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: F_SETFD with an integer flag; no pointers.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(owned)
}

/// Removes a variable from the environment.
///
/// Callers document that they must run before the program starts threads
/// (std's own lock orders this against other Rust readers; C code reading
/// the environment on another thread at the same moment is the hazard).
pub(crate) fn remove_env(name: &str) {
    // SAFETY: see above: called from `systemd::listen_fds`, whose contract
    // is "at the start of main, before spawning threads".
    unsafe { std::env::remove_var(name) };
}

/// `getpid(2)`.
pub(crate) fn getpid() -> u32 {
    std::process::id()
}

/// Forks and executes `path` with `argv` and `envp`, the descriptor
/// `listener` becoming fd 3 (without close-on-exec) in the new program, and
/// the environment entry at `envp[pid_slot]` (`LISTEN_PID=` followed by
/// room for digits) completed with the new process's pid, as systemd does.
/// Returns the pid once `execve` has succeeded; an `execve` failure is
/// reported as its error.
pub(crate) fn spawn_inheriting(
    path: &std::ffi::CStr,
    argv: &[std::ffi::CString],
    envp: &mut [Vec<u8>],
    pid_slot: usize,
    listener: RawFd,
) -> io::Result<libc::pid_t> {
    use std::os::raw::c_char;
    const FIRST: RawFd = 3;
    let prefix = b"LISTEN_PID=".len();
    assert!(envp[pid_slot].len() >= prefix + 21 && envp.iter().all(|e| e.ends_with(&[0])));
    // Everything the child touches is allocated before the fork.
    let argv_ptrs: Vec<*const c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp_ptrs: Vec<*const c_char> = envp
        .iter_mut()
        .map(|e| e.as_mut_ptr().cast_const().cast())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let pid_ptr: *mut u8 = envp_ptrs[pid_slot].cast_mut().cast();
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two c_ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned these two descriptors; we own them.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    match fork()? {
        Forked::Child => {
            // SAFETY: only async-signal-safe calls (getpid, fcntl, dup2,
            // execve, write, _exit) on memory allocated before the fork:
            // this process may have had other threads.
            unsafe {
                let mut err_fd = write_end.as_raw_fd();
                if err_fd == FIRST {
                    err_fd = libc::fcntl(err_fd, libc::F_DUPFD_CLOEXEC, FIRST + 1);
                }
                // LISTEN_PID's digits, written in place (no allocation).
                let mut pid = libc::getpid() as u32;
                let mut digits = [0u8; 10];
                let mut n = 0;
                loop {
                    digits[n] = b'0' + (pid % 10) as u8;
                    n += 1;
                    pid /= 10;
                    if pid == 0 {
                        break;
                    }
                }
                for i in 0..n {
                    *pid_ptr.add(prefix + i) = digits[n - 1 - i];
                }
                *pid_ptr.add(prefix + n) = 0;
                let ok = if listener == FIRST {
                    libc::fcntl(FIRST, libc::F_SETFD, 0) != -1
                } else {
                    libc::dup2(listener, FIRST) != -1
                };
                if ok {
                    libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr());
                }
                let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
                let bytes = errno.to_ne_bytes();
                libc::write(err_fd, bytes.as_ptr().cast(), bytes.len());
                libc::_exit(127);
            }
        }
        Forked::Parent(pid) => {
            drop(write_end);
            let mut buf = [0u8; 4];
            let mut got = 0;
            while got < buf.len() {
                // SAFETY: reads into the unfilled tail of `buf`.
                let n = unsafe {
                    libc::read(
                        read_end.as_raw_fd(),
                        buf[got..].as_mut_ptr().cast(),
                        buf.len() - got,
                    )
                };
                match n {
                    0 => break,
                    n if n > 0 => got += n as usize,
                    _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
                    _ => return Err(io::Error::last_os_error()),
                }
            }
            if got == 0 {
                return Ok(pid); // the pipe closed on exec: the program runs
            }
            let _ = wait_blocking(pid);
            Err(io::Error::from_raw_os_error(i32::from_ne_bytes(buf)))
        }
    }
}

/// `waitpid(pid, 0)`: reaps a child that failed to exec.
fn wait_blocking(pid: libc::pid_t) -> io::Result<i32> {
    let mut status = 0;
    // SAFETY: `status` is a valid, writable c_int for the call's duration.
    match unsafe { libc::waitpid(pid, &mut status, 0) } {
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(status),
    }
}

/// The most datagrams one [`recv_batch`] or [`send_batch`] system call
/// moves: the length of the `mmsghdr` arrays built on the stack.
pub(crate) const MAX_BATCH: usize = 32;

/// One datagram of a [`recv_batch`]: where it starts in the buffer (slot
/// `index`), its length, `MSG_TRUNC`, and the sender.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) len: usize,
    pub(crate) truncated: bool,
    pub(crate) from: SockAddr,
}

/// Receives up to `max` datagrams without blocking into consecutive
/// `slot`-byte slots of `buf`, appending one [`Received`] per datagram to
/// `out` (slot `i` of `buf` holds `out[i]`'s bytes).
///
/// Linux: one `recvmmsg(2)` with `MSG_DONTWAIT`. Elsewhere: `recvmsg(2)`
/// until `WouldBlock` or `max`. An error is returned only when nothing was
/// received (`WouldBlock` when nothing is waiting); an error after the
/// first datagram comes back from the next call.
pub(crate) fn recv_batch(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    slot: usize,
    max: usize,
    out: &mut Vec<Received>,
) -> io::Result<()> {
    let max = max.min(MAX_BATCH).min(buf.len() / slot.max(1));
    #[cfg(target_os = "linux")]
    {
        recvmmsg(fd, buf, slot, max, out)
    }
    #[cfg(not(target_os = "linux"))]
    {
        for chunk in buf.chunks_exact_mut(slot).take(max) {
            match recv_datagram(fd, chunk) {
                Ok((len, truncated, from)) => out.push(Received {
                    len,
                    truncated,
                    from,
                }),
                Err(e) if out.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn recvmmsg(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    slot: usize,
    max: usize,
    out: &mut Vec<Received>,
) -> io::Result<()> {
    use std::mem::size_of;
    // SAFETY: all-zero bytes are valid values of these plain C structs
    // (null pointers, zero lengths).
    let mut names: [libc::sockaddr_storage; MAX_BATCH] = unsafe { std::mem::zeroed() };
    let mut iov: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
    let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
    for (i, chunk) in buf.chunks_exact_mut(slot).take(max).enumerate() {
        iov[i].iov_base = chunk.as_mut_ptr().cast();
        iov[i].iov_len = slot;
    }
    for i in 0..max {
        let hdr = &mut msgs[i].msg_hdr;
        hdr.msg_name = (&raw mut names[i]).cast();
        hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        hdr.msg_iov = &raw mut iov[i];
        hdr.msg_iovlen = 1;
    }
    // SAFETY: `msgs[..max]` are initialised headers whose `msg_name`
    // points at a `sockaddr_storage` of the stated length and whose one
    // iovec points at a distinct `slot`-byte chunk of `buf`, all of which
    // live (and are not otherwise borrowed) across the call; the kernel
    // writes at most `max` headers, their names and their chunks. A null
    // timeout: `MSG_DONTWAIT` makes the call non-blocking (recvmmsg's own
    // timeout is documented as broken).
    let n = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            max as libc::c_uint,
            libc::MSG_DONTWAIT as _,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    for i in 0..n as usize {
        let hdr = &msgs[i].msg_hdr;
        // SAFETY: the kernel wrote a valid address of `msg_namelen` bytes
        // into `names[i]` for each of the `n` datagrams it returned.
        let from = unsafe { SockAddr::new(names[i], hdr.msg_namelen) };
        out.push(Received {
            len: msgs[i].msg_len as usize,
            truncated: hdr.msg_flags & libc::MSG_TRUNC != 0,
            from,
        });
    }
    Ok(())
}

/// Sends each `(bytes, to)` as one datagram, in order, on a blocking
/// socket with `sendmmsg(2)`, up to [`MAX_BATCH`] per call; a datagram
/// the kernel refuses is passed to `failed` with its index and error, and
/// the rest are still sent. Linux only (elsewhere the caller loops over
/// `sendto(2)`).
#[cfg(target_os = "linux")]
pub(crate) fn send_batch(
    fd: BorrowedFd<'_>,
    datagrams: &[(&[u8], &SockAddr)],
    failed: &mut dyn FnMut(usize, io::Error),
) {
    for (base, chunk) in datagrams
        .chunks(MAX_BATCH)
        .enumerate()
        .map(|(k, c)| (k * MAX_BATCH, c))
    {
        // SAFETY: all-zero bytes are valid values of these plain C structs.
        let mut iov: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        for (i, (bytes, _)) in chunk.iter().enumerate() {
            iov[i].iov_base = bytes.as_ptr().cast_mut().cast();
            iov[i].iov_len = bytes.len();
        }
        for (i, (_, to)) in chunk.iter().enumerate() {
            let hdr = &mut msgs[i].msg_hdr;
            hdr.msg_name = to.as_ptr().cast_mut().cast();
            hdr.msg_namelen = to.len();
            hdr.msg_iov = &raw mut iov[i];
            hdr.msg_iovlen = 1;
        }
        let mut off = 0;
        while off < chunk.len() {
            // SAFETY: `msgs[off..chunk.len()]` are initialised headers whose
            // name and iovec point at addresses and byte slices borrowed
            // from `datagrams` for the whole call; sendmmsg only reads them
            // (the `*mut` casts are the C signature's, nothing is written
            // there) and writes only each header's `msg_len`.
            let n = unsafe {
                libc::sendmmsg(
                    fd.as_raw_fd(),
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
                failed(base + off, e);
                off += 1;
            } else {
                off += n as usize;
            }
        }
    }
}
