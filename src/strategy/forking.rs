//! A process per request: `ForkingMixIn` (unix).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use mio::unix::SourceFd;

use super::{Execute, Strategy, StrategyImpl};
use crate::dispatch::{Handles, Job};
use crate::error::{ChildKilled, HandlerError};
use crate::inflight::{Cut, Guard};
use crate::net::Addr;
use crate::sys::{self, Forked};

/// A forked child process for every request (Python's `ForkingMixIn`).
///
/// - At most [`max_children`](Self::max_children) children run at once
///   (default 40, as in Python); at the cap the loop stops accepting but
///   stays responsive to shutdown (Python blocks in `waitpid`). Facing
///   untrusted clients, 40 silent connections hold every child: set a
///   [`read_timeout`](crate::ServerBuilder::read_timeout) and
///   [`max_connections_per_ip`](crate::ServerBuilder::max_connections_per_ip).
/// - Children are reaped as soon as they exit (on Linux the loop waits on a
///   `pidfd` per child; elsewhere it sweeps every 50 ms while children
///   live), and only our own children, by pid: never `waitpid(-1)`, so a
///   child the application forked itself keeps its exit status.
/// - The child closes the listening socket, runs the handler and leaves with
///   `_exit`: status 0 if the request succeeded, 1 if it failed or panicked
///   (no destructors, no `atexit` handlers).
/// - Where each hook runs: `verify_request`, `service_actions` and
///   `handle_timeout` in the parent; `setup`, `handle`, `finish` and
///   `handle_error` for their own errors in the child (so what
///   `handle_error` records there stays in the child). A child killed by a
///   signal (`abort()`, a segfault, `SIGKILL`) is reported to the *parent's*
///   `handle_error` as [`ChildKilled`], and logged; `SIGTERM`, which the
///   drain sends, is not reported.
/// - Closing the server waits for the children, then sends `SIGTERM` to
///   those still running at the [`drain_timeout`](crate::ServerBuilder::drain_timeout).
///   The child resets `SIGTERM` to its default action and ignores `SIGINT`
///   (it would otherwise inherit, say, a signal-hook handler that forwards
///   the signal to the parent), so a terminal's Ctrl-C reaches only the
///   parent, which drains the children; other dispositions are inherited.
///
/// `fork` copies only the calling thread. Use this strategy in a process
/// that has no other threads holding locks when the loop forks (a logger
/// writing from another thread could leave its lock held forever in the
/// child). A shutdown asked for inside a forked handler only reaches the
/// child's copy of the server.
#[derive(Debug)]
pub struct Forking {
    max_children: usize,
    children: Mutex<Vec<Child>>,
    registry: OnceLock<(mio::Registry, mio::Token)>,
}

#[derive(Debug)]
struct Child {
    pid: libc::pid_t,
    peer: Addr,
    _pidfd: Option<OwnedFd>,
    _guard: Guard,
}

impl Default for Forking {
    fn default() -> Self {
        Forking::new()
    }
}

impl Forking {
    /// At most 40 children at once, as in Python.
    pub fn new() -> Forking {
        Forking {
            max_children: 40,
            children: Mutex::new(Vec::new()),
            registry: OnceLock::new(),
        }
    }

    /// The most children alive at once (Python's `max_children`, default
    /// 40). At the cap new clients wait in the listen backlog.
    pub fn max_children(mut self, max: usize) -> Forking {
        self.max_children = max.max(1);
        self
    }

    /// The pids of the children alive now (Python's `active_children`).
    pub fn active_children(&self) -> Vec<i32> {
        self.lock().iter().map(|c| c.pid).collect()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Child>> {
        self.children.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Strategy for Forking {}

impl StrategyImpl for Forking {
    fn limit(&self) -> Option<usize> {
        Some(self.max_children)
    }

    fn attach(&self, registry: &mio::Registry, token: mio::Token) -> io::Result<()> {
        // A strategy is moved into exactly one server, which attaches once.
        let _ = self.registry.set((registry.try_clone()?, token));
        Ok(())
    }

    fn reap(&self, report: &dyn Fn(&Addr, HandlerError)) {
        let mut killed = Vec::new();
        // Dropping a reaped child's guard ends its accounting (and wakes the
        // loop if it was at the cap).
        self.lock().retain(|child| match sys::try_reap(child.pid) {
            Ok(None) => true,
            Ok(Some(status)) => {
                // SIGTERM is how a drain ends a child: not a failure.
                if let Some(signal) = sys::killed_by(status).filter(|&s| s != libc::SIGTERM) {
                    killed.push((child.peer.clone(), child.pid, signal));
                }
                false
            }
            Err(e) => {
                log::error!("socketserver: waitpid({}) failed: {e}", child.pid);
                false
            }
        });
        // Reported outside the lock: handle_error may ask for the children.
        for (peer, pid, signal) in killed {
            let e = ChildKilled { pid, signal };
            log::error!("socketserver: the child serving {peer} {e}");
            report(&peer, Box::new(e));
        }
    }

    fn drain_sweep_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(5))
    }

    fn sweep_interval(&self) -> Option<Duration> {
        let children = self.lock();
        if children.iter().any(|c| c._pidfd.is_none()) {
            Some(Duration::from_millis(50))
        } else {
            None
        }
    }
}

impl<R, H: Handles<R>> Execute<R, H> for Forking {
    fn execute(&self, job: Job<R, H>) -> io::Result<()> {
        match sys::fork()? {
            Forked::Child => {
                let Job {
                    context,
                    request,
                    peer,
                    guard,
                } = job;
                // The parent keeps the accounting; the child must not touch it.
                std::mem::forget(guard);
                sys::child_signals();
                if let Some(fd) = context.listener_fd {
                    sys::close_fd(fd);
                }
                let ok =
                    context
                        .handler
                        .serve(request, peer, context.handle.clone(), &context.config);
                sys::exit_now(if ok { 0 } else { 1 })
            }
            Forked::Parent(pid) => {
                let Job {
                    request,
                    mut guard,
                    peer,
                    ..
                } = job;
                // Forget the connection (closing the parent's copy, without
                // shutting it down); a forced drain signals the child instead.
                guard.set(Cut::Child(pid));
                drop(request);
                let pidfd = sys::pidfd_open(pid);
                if let (Some(fd), Some((registry, token))) = (&pidfd, self.registry.get()) {
                    let raw = fd.as_raw_fd();
                    if let Err(e) =
                        registry.register(&mut SourceFd(&raw), *token, mio::Interest::READABLE)
                    {
                        log::warn!("socketserver: cannot watch child {pid}: {e}");
                    }
                }
                self.lock().push(Child {
                    pid,
                    peer,
                    _pidfd: pidfd,
                    _guard: guard,
                });
                Ok(())
            }
        }
    }
}
