//! Restarting without dropping a connection: the listening socket is handed
//! to a fresh copy of the program, and the old process drains and exits.
//!
//! ```text
//! old process                              new process (same binary, args, env)
//! SIGHUP
//! spawn_replacement(listener fd) ──exec──► fd 3 = the same listening socket,
//!                                          LISTEN_FDS=1, LISTEN_PID=<its pid>
//! shutdown(); server_close()               systemd::listen_fds() → the listener
//!   (in-flight requests finish)            serve_forever()
//! exit 0
//! ```
//!
//! Both processes hold the *same* socket, with one accept queue, so a
//! connection that arrives during the switch waits in the queue for
//! whichever process accepts next: none is refused or reset. The old
//! process stops accepting as soon as it starts draining. This is the
//! inherited-descriptor method of tableflip and Cloudflare's ecdysis, with
//! the systemd variables as the hand-over format, so the new process needs
//! no code beyond socket activation.
//!
//! `SO_REUSEPORT` (two processes each binding their own socket to the
//! port) is **not** a safe alternative: each socket has its own accept
//! queue, and closing one resets the connections still queued in it.
//!
//! Under systemd, give the unit `NotifyAccess=all` (the new process reports
//! `MAINPID=` and `READY=1` itself through
//! [`systemd::notify_ready`](crate::systemd::notify_ready)) and
//! `ExecReload=kill -HUP $MAINPID`; the old process must not send
//! `STOPPING=1` when it exits after a hand-over.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStringExt;

/// Starts a new copy of this program (the path `std::env::current_exe`
/// gives, so a binary upgraded in place is the one that starts) with the
/// same arguments and environment,
/// handing it `listener` as fd 3 with `LISTEN_FDS=1`, `LISTEN_FDNAMES=`
/// `name`, and `LISTEN_PID` set to its pid, as systemd would. Returns the
/// new process's pid once `execve` has succeeded.
///
/// `listener` stays open here: stop accepting ([`shutdown`](crate::Server::shutdown)),
/// then [`server_close`](crate::Server::server_close) to drain and close it.
/// The new process is not this one's child in any sense that matters: it is
/// never waited for, and outlives it.
pub fn spawn_replacement(listener: RawFd, name: &str) -> io::Result<u32> {
    let mut exe = std::env::current_exe()?.into_os_string().into_vec();
    // Linux names a replaced binary "path (deleted)": start the new one.
    if let Some(stripped) = exe.strip_suffix(b" (deleted)") {
        exe = stripped.to_vec();
    }
    let path = cstring(OsString::from_vec(exe))?;
    let argv = std::env::args_os()
        .map(cstring)
        .collect::<io::Result<Vec<_>>>()?;
    let mut envp = Vec::new();
    for (key, value) in std::env::vars_os() {
        if matches!(
            key.to_str(),
            Some("LISTEN_PID" | "LISTEN_FDS" | "LISTEN_FDNAMES")
        ) {
            continue;
        }
        let mut entry = key.into_vec();
        entry.push(b'=');
        entry.extend(value.into_vec());
        envp.push(cstring(OsString::from_vec(entry))?.into_bytes_with_nul());
    }
    envp.push(b"LISTEN_FDS=1\0".to_vec());
    if !name.is_empty() && !name.contains([':', '\0']) {
        envp.push(format!("LISTEN_FDNAMES={name}\0").into_bytes());
    }
    // Room for the pid, filled in by the child before exec.
    let mut pid_entry = b"LISTEN_PID=".to_vec();
    pid_entry.resize(pid_entry.len() + 21, 0);
    envp.push(pid_entry);
    let slot = envp.len() - 1;
    let pid = crate::sys::spawn_inheriting(&path, &argv, &mut envp, slot, listener)?;
    Ok(pid as u32)
}

fn cstring(s: OsString) -> io::Result<CString> {
    CString::new(s.into_vec()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "an argument or variable contains a NUL byte",
        )
    })
}
