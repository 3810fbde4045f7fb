//! systemd: listening sockets passed by the service manager (socket
//! activation, `sd_listen_fds(3)`), and status messages to it
//! (`sd_notify(3)`, feature `systemd`, on by default).
//!
//! ```no_run
//! use socketserver::{systemd, ServerBuilder, StreamRequest};
//! # fn main() -> std::io::Result<()> {
//! let echo = |req: &mut StreamRequest| {
//!     std::io::copy(&mut req.rfile, &mut req.wfile)?;
//!     Ok(())
//! };
//! // First thing in main, before any thread starts.
//! let server = match systemd::listen_fds()?.pop() {
//!     Some(systemd::ListenFd { socket: systemd::Socket::Tcp(l), .. }) => {
//!         ServerBuilder::new().from_tcp_listener(l, echo)?
//!     }
//!     Some(other) => panic!("expected a TCP socket, got {other:?}"),
//!     None => ServerBuilder::new().bind_tcp("127.0.0.1:8000", echo)?,
//! };
//! systemd::notify_ready()?; // READY=1: systemd starts ordering dependents
//! # Ok(()) }
//! ```
//!
//! The descriptors the manager passes are copies: it keeps its own, so
//! closing ours (what `server_close` does) leaves the socket open for the
//! next activation, and connections that arrive meanwhile wait in its
//! backlog.

use std::io;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::RawFd;
use std::os::unix::net::{UnixDatagram, UnixListener};

use socket2::{Domain, Type};

/// The first descriptor number the manager passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// A socket passed by the service manager, by kind.
#[derive(Debug)]
#[non_exhaustive]
pub enum Socket {
    /// A listening TCP socket (`ListenStream=8000`).
    Tcp(TcpListener),
    /// A UDP socket (`ListenDatagram=8000`).
    Udp(UdpSocket),
    /// A listening Unix stream socket (`ListenStream=/run/x.sock`).
    UnixStream(UnixListener),
    /// A Unix datagram socket (`ListenDatagram=/run/x.sock`).
    UnixDatagram(UnixDatagram),
}

/// One passed socket and its name (`FileDescriptorName=`, or the socket
/// unit's name by default).
#[derive(Debug)]
pub struct ListenFd {
    /// The name from `LISTEN_FDNAMES`, if the manager sent names.
    pub name: Option<String>,
    /// The socket, ready for the matching `ServerBuilder::from_…` method.
    pub socket: Socket,
}

/// Takes the sockets the service manager passed to this process.
///
/// Honours `LISTEN_FDS` only when `LISTEN_PID` is this process's pid (the
/// variables may have been inherited by a child they were not meant for).
/// Each descriptor is checked to be a socket of a supported kind (a
/// listening stream socket, or a datagram socket, IP or Unix) and is marked
/// close-on-exec, so commands the server runs do not inherit it. The
/// variables `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` are removed
/// from the environment whatever happens. Returns an empty list when none
/// were passed.
///
/// Call it at the start of `main`, before starting any thread: it changes
/// the environment (see `std::env::remove_var`).
pub fn listen_fds() -> io::Result<Vec<ListenFd>> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        crate::sys::remove_env(name);
    }
    let (Some(pid), Some(count)) = (pid, count) else {
        return Ok(Vec::new());
    };
    if pid.trim().parse::<u32>().ok() != Some(crate::sys::getpid()) {
        return Ok(Vec::new());
    }
    let count: RawFd = count.trim().parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("LISTEN_FDS={count:?}: {e}"),
        )
    })?;
    if !(0..=4096).contains(&count) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("LISTEN_FDS={count} is out of range"),
        ));
    }
    let mut names = names
        .map(|n| n.split(':').map(str::to_owned).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter();
    let mut taken = Vec::with_capacity(count as usize);
    for fd in LISTEN_FDS_START..LISTEN_FDS_START + count {
        let socket = adopt(fd)?;
        taken.push(ListenFd {
            name: names.next().filter(|n| !n.is_empty()),
            socket,
        });
    }
    Ok(taken)
}

fn adopt(fd: RawFd) -> io::Result<Socket> {
    let owned = crate::sys::adopt_inherited_fd(fd)?;
    let socket = socket2::Socket::from(owned);
    let not = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("inherited descriptor {fd} is {what}"),
        )
    };
    let ty = socket.r#type().map_err(|_| not("not a socket"))?;
    let domain = socket.domain()?;
    let inet = domain == Domain::IPV4 || domain == Domain::IPV6;
    if ty == Type::STREAM {
        if !socket.is_listener()? {
            return Err(not("a stream socket that is not listening"));
        }
        if inet {
            Ok(Socket::Tcp(socket.into()))
        } else if domain == Domain::UNIX {
            Ok(Socket::UnixStream(socket.into()))
        } else {
            Err(not("a stream socket of an unsupported family"))
        }
    } else if ty == Type::DGRAM {
        if inet {
            Ok(Socket::Udp(socket.into()))
        } else if domain == Domain::UNIX {
            Ok(Socket::UnixDatagram(socket.into()))
        } else {
            Err(not("a datagram socket of an unsupported family"))
        }
    } else {
        Err(not("a socket of an unsupported type"))
    }
}

/// Tells the service manager the service is ready (`READY=1`, with
/// `MAINPID=` this process, so a replacement started by
/// [`restart`](crate::restart) takes over as the main process). Does
/// nothing when `NOTIFY_SOCKET` is not set. Send it once the server is
/// bound: connections that arrive before `serve_forever` runs wait in the
/// backlog.
#[cfg(feature = "systemd")]
pub fn notify_ready() -> io::Result<()> {
    sd_notify::notify(&[
        sd_notify::NotifyState::MainPid(crate::sys::getpid()),
        sd_notify::NotifyState::Ready,
    ])
}

/// Tells the service manager the service is stopping (`STOPPING=1`): send
/// it when the drain starts, after `serve_forever` returns. Does nothing
/// when `NOTIFY_SOCKET` is not set.
#[cfg(feature = "systemd")]
pub fn notify_stopping() -> io::Result<()> {
    sd_notify::notify(&[sd_notify::NotifyState::Stopping])
}

/// A one-line status for `systemctl status` (`STATUS=`).
#[cfg(feature = "systemd")]
pub fn notify_status(status: &str) -> io::Result<()> {
    sd_notify::notify(&[sd_notify::NotifyState::Status(status)])
}

/// Pets the watchdog (`WATCHDOG=1`). Call it from
/// [`service_actions`](crate::StreamHandler::service_actions) with a
/// [`service_interval`](crate::ServerBuilder::service_interval) of
/// [`watchdog_interval`], so a loop that stops turning stops petting.
#[cfg(feature = "systemd")]
pub fn notify_watchdog() -> io::Result<()> {
    sd_notify::notify(&[sd_notify::NotifyState::Watchdog])
}

/// Half the watchdog timeout the manager asked for (`WATCHDOG_USEC`, for
/// this pid), the interval at which to pet it; `None` without a watchdog.
#[cfg(feature = "systemd")]
pub fn watchdog_interval() -> Option<std::time::Duration> {
    sd_notify::watchdog_enabled().map(|t| t / 2)
}
