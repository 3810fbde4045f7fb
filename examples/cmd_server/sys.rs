//! The only `unsafe` in the command server: three system calls std does not
//! wrap (`kill(2)` of a process group, `geteuid(2)`, `SO_PEERCRED`) and the
//! removal of an environment variable, each behind a safe function.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

/// Sends `SIGKILL` to every process of the group `pgid`; a group that is
/// already gone is not an error.
pub fn kill_group(pgid: u32) {
    kill(-(pgid as i32));
}

/// Sends `SIGKILL` to process `pid`.
pub fn kill(pid: i32) {
    if pid == 0 || pid == -1 {
        return; // 0 and -1 would address our own group or every process
    }
    // SAFETY: kill(2) takes two integers and touches no memory of ours; pid 0
    // and -1 (our own group, every process we may signal) are excluded above.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// The user id this server runs as.
pub fn euid() -> u32 {
    // SAFETY: geteuid(2) has no arguments, cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// The user id of the process at the other end of `stream`, as the kernel
/// recorded it at `connect(2)` (`SO_PEERCRED`; std's `peer_cred` is unstable).
pub fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a live, writable `ucred` and `len` holds its exact
    // size, which is what getsockopt(SO_PEERCRED) writes; the fd is open for
    // as long as `stream` is borrowed.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// Removes `name` from this process's environment, so no command it starts
/// can inherit it.
///
/// Call it first thing in `main`, before any thread exists.
pub fn remove_env(name: &str) {
    // SAFETY: removing a variable races only with other threads reading or
    // writing the environment; the caller runs this in `main` before it
    // starts any thread (see the doc above).
    unsafe { std::env::remove_var(name) }
}
