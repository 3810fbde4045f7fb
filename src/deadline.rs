//! Deadlines beyond per-call timeouts: the idle time before a request's
//! first byte, a whole-request deadline, and a minimum transfer rate.
//!
//! A per-call `SO_RCVTIMEO` restarts with every byte, so a client that
//! sends one byte every few seconds ("slowloris") holds a connection
//! forever. Here each deadline is an instant, and before every read the
//! socket's receive timeout is set to the time left until the nearest one.
//! Time left only shrinks, so trickling cannot extend it; no thread per
//! connection is needed, and when a deadline passes the read fails with
//! `TimedOut`, the handler returns, and the connection closes. The drain's
//! cut (`shutdown(SHUT_RDWR)`) stays the backstop for a handler stuck
//! somewhere other than a read.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::net::Stream;
use crate::stats::{Stats, TimeoutKind};

/// Per-connection deadlines for reads, set with
/// [`ServerBuilder::deadlines`](crate::ServerBuilder::deadlines).
///
/// Each is measured from the request's start: when the connection is handed
/// to its handler (after any PROXY header and TLS handshake, which have
/// their own limits), and again each time
/// [`StreamRequest::restart_deadlines`](crate::StreamRequest::restart_deadlines)
/// is called for a keep-alive connection's next request. They bound reads
/// only; bound writes with
/// [`write_timeout`](crate::ServerBuilder::write_timeout).
///
/// ```
/// use std::time::Duration;
/// use socketserver::Deadlines;
/// let d = Deadlines::new()
///     .idle(Duration::from_secs(10))         // first byte within 10 s
///     .request(Duration::from_secs(60))      // all reads done within 60 s
///     .min_rate(512, Duration::from_secs(5)); // then at least 512 B/s
/// assert_eq!(d, d.clone());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deadlines {
    idle: Option<Duration>,
    request: Option<Duration>,
    min_rate: Option<(u64, Duration)>,
}

impl Deadlines {
    /// No deadlines (the default): reads wait as long as the
    /// [`read_timeout`](crate::ServerBuilder::read_timeout) allows.
    pub fn new() -> Deadlines {
        Deadlines::default()
    }

    /// The most time a request may take to send its first byte. Default:
    /// none.
    pub fn idle(mut self, limit: Duration) -> Deadlines {
        self.idle = Some(limit);
        self
    }

    /// The most time a request may spend in reads altogether: a read after
    /// it fails, however steadily the client trickles. Default: none.
    pub fn request(mut self, limit: Duration) -> Deadlines {
        self.request = Some(limit);
        self
    }

    /// The least average rate, in bytes per second, a request must keep up
    /// after a `grace` period: by time `t` it must have sent at least
    /// `bytes_per_sec × (t − grace)` bytes (Apache's `MinRate`, Kestrel's
    /// `MinRequestBodyDataRate`). Default: none.
    pub fn min_rate(mut self, bytes_per_sec: u64, grace: Duration) -> Deadlines {
        self.min_rate = Some((bytes_per_sec.max(1), grace));
        self
    }

    /// True if no deadline is set.
    pub fn is_empty(&self) -> bool {
        self.idle.is_none() && self.request.is_none() && self.min_rate.is_none()
    }
}

/// What the connection is doing, for the deadline in force.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Before the handler: reading a PROXY header or shaking hands, with one
    /// fixed deadline.
    Preamble(Instant, TimeoutKind),
    /// The handler's request.
    Serving,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    start: Instant,
    received: u64,
    /// The timeouts the handler asked for, which deadlines only shorten.
    user_read: Option<Duration>,
    user_write: Option<Duration>,
    /// What `SO_RCVTIMEO`/`SO_SNDTIMEO` are set to now.
    set_read: Option<Duration>,
    set_write: Option<Duration>,
}

/// One connection's clock: the deadlines, the bytes counted against them,
/// and the socket timeouts derived from them.
#[derive(Debug)]
pub(crate) struct Clock {
    deadlines: Deadlines,
    /// A deadline is in force (a preamble, or `deadlines` set): only then
    /// do reads and writes take the lock; a plain server pays one load.
    armed: AtomicBool,
    state: Mutex<State>,
}

/// The smallest socket timeout ever set: `SO_RCVTIMEO` of zero means
/// "forever", and std refuses `Duration::ZERO`.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

impl Clock {
    pub(crate) fn new(
        deadlines: Deadlines,
        read: Option<Duration>,
        write: Option<Duration>,
    ) -> Clock {
        Clock {
            deadlines,
            armed: AtomicBool::new(!deadlines.is_empty()),
            state: Mutex::new(State {
                phase: Phase::Serving,
                start: Instant::now(),
                received: 0,
                user_read: read,
                user_write: write,
                set_read: read,
                set_write: write,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a preamble step (PROXY header, TLS handshake) that must end
    /// within `limit`.
    pub(crate) fn preamble(&self, limit: Duration, kind: TimeoutKind) {
        self.lock().phase = Phase::Preamble(Instant::now() + limit, kind);
        self.armed.store(true, Ordering::Relaxed);
    }

    /// Starts the handler's request: the deadlines count from now;
    /// `first_byte_in` if its first byte has arrived already (buffered).
    /// The socket timeouts a preamble shortened go back to the handler's.
    pub(crate) fn restart(&self, stream: &Stream, first_byte_in: bool) -> io::Result<()> {
        let armed = !self.deadlines.is_empty();
        if !armed && !self.armed.load(Ordering::Relaxed) {
            return Ok(()); // nothing to restart, nothing to restore
        }
        let mut s = self.lock();
        s.phase = Phase::Serving;
        s.start = Instant::now();
        s.received = u64::from(first_byte_in);
        if s.set_read != s.user_read {
            stream.set_read_timeout(s.user_read)?;
            s.set_read = s.user_read;
        }
        if s.set_write != s.user_write {
            stream.set_write_timeout(s.user_write)?;
            s.set_write = s.user_write;
        }
        self.armed.store(armed, Ordering::Relaxed);
        Ok(())
    }

    /// The handler's own read timeout.
    pub(crate) fn set_user_read(&self, stream: &Stream, t: Option<Duration>) -> io::Result<()> {
        let mut s = self.lock();
        s.user_read = t;
        s.set_read = t;
        stream.set_read_timeout(t)
    }

    /// The handler's own write timeout.
    pub(crate) fn set_user_write(&self, stream: &Stream, t: Option<Duration>) -> io::Result<()> {
        let mut s = self.lock();
        s.user_write = t;
        s.set_write = t;
        stream.set_write_timeout(t)
    }

    /// The nearest deadline for a read now, and which one it is.
    fn read_deadline(&self, s: &State) -> Option<(Instant, TimeoutKind)> {
        let d = &self.deadlines;
        let candidates = match s.phase {
            Phase::Preamble(at, kind) => [Some((at, kind)), None, None],
            Phase::Serving => [
                d.idle
                    .filter(|_| s.received == 0)
                    .map(|l| (s.start + l, TimeoutKind::Idle)),
                d.request.map(|l| (s.start + l, TimeoutKind::Request)),
                d.min_rate.map(|(rate, grace)| {
                    // Each byte buys 1/rate seconds beyond the grace period.
                    let bought = Duration::from_secs_f64(s.received as f64 / rate as f64);
                    (s.start + grace + bought, TimeoutKind::MinRate)
                }),
            ],
        };
        candidates.into_iter().flatten().min_by_key(|(at, _)| *at)
    }

    /// Sets `SO_RCVTIMEO` for the next read; `Err(kind)` if a deadline has
    /// passed already, `Ok(Some(kind))` if the deadline (not the handler's
    /// own timeout) is what a timeout of this read would mean.
    fn before_read(&self, stream: &Stream) -> io::Result<Result<Option<TimeoutKind>, TimeoutKind>> {
        if !self.armed.load(Ordering::Relaxed) {
            return Ok(Ok(None));
        }
        let mut s = self.lock();
        let Some((at, kind)) = self.read_deadline(&s) else {
            if s.set_read != s.user_read {
                stream.set_read_timeout(s.user_read)?;
                s.set_read = s.user_read;
            }
            return Ok(Ok(None));
        };
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Err(kind));
        }
        let left = left.max(MIN_TIMEOUT);
        let (timeout, binding) = match s.user_read {
            Some(u) if u < left => (u, None),
            _ => (left, Some(kind)),
        };
        if s.set_read != Some(timeout) {
            stream.set_read_timeout(Some(timeout))?;
            s.set_read = Some(timeout);
        }
        Ok(Ok(binding))
    }

    /// Sets `SO_SNDTIMEO` for a write during the preamble (a handshake's
    /// reply must not outlive its deadline); the handler's writes use its
    /// own write timeout.
    fn before_write(&self, stream: &Stream) -> io::Result<Option<TimeoutKind>> {
        if !self.armed.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let mut s = self.lock();
        let (timeout, kind) = match s.phase {
            Phase::Preamble(at, kind) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(timed_out(kind));
                }
                (Some(left.max(MIN_TIMEOUT)), Some(kind))
            }
            Phase::Serving => (s.user_write, None),
        };
        if s.set_write != timeout {
            stream.set_write_timeout(timeout)?;
            s.set_write = timeout;
        }
        Ok(kind)
    }

    fn received(&self, n: usize) {
        if self.armed.load(Ordering::Relaxed) {
            self.lock().received += n as u64;
        }
    }
}

/// The error a read gets when a deadline passes.
pub(crate) fn timed_out(kind: TimeoutKind) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, DeadlinePassed(kind))
}

/// The payload of the `TimedOut` error a deadline produces; find which one
/// with `error.get_ref().and_then(|e| e.downcast_ref::<DeadlinePassed>())`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlinePassed(pub TimeoutKind);

impl std::fmt::Display for DeadlinePassed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the {} deadline passed", self.0.name())
    }
}

impl std::error::Error for DeadlinePassed {}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The socket as the layers above it (TLS, the handler) read and write it:
/// deadlines applied, bytes counted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sock<'a> {
    pub(crate) stream: &'a Stream,
    pub(crate) clock: &'a Clock,
    pub(crate) stats: &'a Stats,
}

impl Read for Sock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let binding = match self.clock.before_read(self.stream)? {
            Ok(binding) => binding,
            Err(kind) => {
                self.stats.timeout(kind);
                return Err(timed_out(kind));
            }
        };
        match { self.stream }.read(buf) {
            Ok(n) => {
                self.clock.received(n);
                Stats::add(&self.stats.bytes_in, n);
                Ok(n)
            }
            Err(e) if is_timeout(&e) => match binding {
                Some(kind) => {
                    self.stats.timeout(kind);
                    Err(timed_out(kind))
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }
}

impl Write for Sock<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let binding = self.clock.before_write(self.stream)?;
        match { self.stream }.write(buf) {
            Ok(n) => {
                Stats::add(&self.stats.bytes_out, n);
                Ok(n)
            }
            Err(e) if is_timeout(&e) => match binding {
                Some(kind) => {
                    self.stats.timeout(kind);
                    Err(timed_out(kind))
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
