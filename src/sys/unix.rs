//! Unix system calls that std and socket2 do not offer: `fork`, `_exit`,
//! `waitpid`, `kill`, `pidfd_open` and `recvmsg` with `MSG_TRUNC`.
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
/// sender.
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
