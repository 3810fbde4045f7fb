//! What one client can cost: time to send a request (the slowloris guard),
//! time a command may run, output kept per command and by all commands
//! together. The write timeout is the server's (`--write-timeout`), so a
//! client that never reads is cut and its command's output freed.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use clap::Args;
use socketserver::{Rfile, Stream, StreamRequest};

/// Default time a command may run before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default output kept per command (stdout and stderr together): 16 MiB.
pub const DEFAULT_MAX_OUTPUT: usize = 16 << 20;
/// Default output kept by all commands in flight together: 64 MiB.
pub const DEFAULT_OUTPUT_BUDGET: usize = 64 << 20;
/// Default time from connecting (or from a request's first byte) to the
/// whole request having arrived.
pub const DEFAULT_REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Default time a connection may wait idle between two requests.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default time a reply may wait for a client that does not read.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// After the kill at the timeout, how long to wait for the pipes to close
/// (a process that escaped the kill may hold them; its output is given up).
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// The limits' command-line options.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Seconds a command may run before it is killed.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT.as_secs_f64())]
    timeout: f64,
    /// Most output bytes (stdout and stderr) kept per command.
    #[arg(long, default_value_t = DEFAULT_MAX_OUTPUT)]
    max_output: usize,
    /// Most output bytes kept by all commands in flight together.
    #[arg(long, default_value_t = DEFAULT_OUTPUT_BUDGET)]
    output_budget: usize,
    /// Seconds a client has to send a whole request (the first: from connecting).
    #[arg(long, default_value_t = DEFAULT_REQUEST_DEADLINE.as_secs_f64())]
    request_deadline: f64,
    /// Seconds a connection may wait idle between requests.
    #[arg(long, default_value_t = DEFAULT_IDLE_TIMEOUT.as_secs_f64())]
    idle_timeout: f64,
    /// Seconds an answer may wait for a client that does not read.
    #[arg(long, default_value_t = DEFAULT_WRITE_TIMEOUT.as_secs_f64())]
    write_timeout: f64,
}

fn secs(s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|e| format!("{s} seconds: {e}"))
}

impl LimitArgs {
    /// The limits these options set.
    pub fn limits(&self) -> Result<Limits, String> {
        Ok(Limits {
            timeout: secs(self.timeout)?,
            max_output: self.max_output,
            budget: Arc::new(AtomicUsize::new(self.output_budget)),
            request_deadline: secs(self.request_deadline)?,
            idle_timeout: secs(self.idle_timeout)?,
        })
    }

    /// The server's write timeout.
    pub fn write_timeout(&self) -> Result<Duration, String> {
        secs(self.write_timeout)
    }
}

/// The limits every connection and command runs under.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time a command may run; its process group is killed after it.
    pub timeout: Duration,
    /// Output bytes kept per command; past it they are read and discarded.
    pub max_output: usize,
    /// Output bytes kept by all commands in flight together.
    pub budget: Arc<AtomicUsize>,
    /// Time to send a whole request, from connecting (the first one) or
    /// from its first byte (later ones).
    pub request_deadline: Duration,
    /// Time a connection may wait idle for its next request.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: DEFAULT_TIMEOUT,
            max_output: DEFAULT_MAX_OUTPUT,
            budget: Arc::new(AtomicUsize::new(DEFAULT_OUTPUT_BUDGET)),
            request_deadline: DEFAULT_REQUEST_DEADLINE,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// A read that timed out (`SO_RCVTIMEO` reports `WouldBlock` or `TimedOut`).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A write that timed out, said plainly: the client did not read its answer.
pub fn explain_write(e: io::Error) -> io::Error {
    if !is_timeout(&e) {
        return e;
    }
    let msg = "the client read nothing within the write timeout: cut";
    io::Error::new(io::ErrorKind::TimedOut, msg)
}

impl Limits {
    /// Waits for the next request: the first one must start by `first`
    /// (the connection's deadline), later ones within the idle timeout.
    /// Returns the time by which the whole request must have arrived, or
    /// `None` if the client left, stayed silent, or the server is draining.
    pub fn next_request(
        &self,
        req: &mut StreamRequest,
        first: Option<Instant>,
    ) -> io::Result<Option<Instant>> {
        let wait = match first {
            Some(until) => until.saturating_duration_since(Instant::now()),
            None => self.idle_timeout,
        };
        req.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        match req.next_request() {
            Ok(true) => Ok(Some(
                first.unwrap_or(Instant::now() + self.request_deadline),
            )),
            Ok(false) => Ok(None),
            Err(e) if is_timeout(&e) => {
                log::info!("{}: no request within {wait:.1?}, closing", req.peer);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// A fresh output cap for one command, drawing on the shared budget.
    pub fn cap(&self) -> Arc<Cap> {
        Arc::new(Cap {
            left: AtomicUsize::new(self.max_output),
            budget: Arc::clone(&self.budget),
            reserved: AtomicUsize::new(0),
            truncated: AtomicBool::new(false),
        })
    }
}

/// Reads from `rfile` until a deadline: each read may only wait for what
/// is left of it, so a request trickled a byte at a time still ends on time.
pub struct Deadline<'a> {
    rfile: &'a mut Rfile,
    sock: &'a Stream,
    until: Instant,
}

impl<'a> Deadline<'a> {
    /// Reads `rfile` (whose socket is `sock`) until `until`.
    pub fn new(rfile: &'a mut Rfile, sock: &'a Stream, until: Instant) -> Self {
        Deadline { rfile, sock, until }
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rfile.buffer().is_empty() {
            let left = self.until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.sock.set_read_timeout(Some(left))?;
        }
        self.rfile.read(buf)
    }
}

/// One command's share of output: its own cap, taken from the global
/// budget as it is used and given back when the last holder drops it.
#[derive(Debug)]
pub struct Cap {
    left: AtomicUsize,
    budget: Arc<AtomicUsize>,
    reserved: AtomicUsize,
    truncated: AtomicBool,
}

fn take_up_to(counter: &AtomicUsize, want: usize) -> usize {
    let mut got = 0;
    let _ = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
        got = left.min(want);
        Some(left - got)
    });
    got
}

impl Cap {
    /// Grants up to `want` bytes; flags the output truncated if not all.
    fn grant(&self, want: usize) -> usize {
        let mine = take_up_to(&self.left, want);
        let got = take_up_to(&self.budget, mine);
        self.left.fetch_add(mine - got, Ordering::SeqCst);
        self.reserved.fetch_add(got, Ordering::SeqCst);
        if got < want {
            self.truncated.store(true, Ordering::SeqCst);
        }
        got
    }

    /// Some output was discarded at a cap.
    pub fn truncated(&self) -> bool {
        self.truncated.load(Ordering::SeqCst)
    }
}

impl Drop for Cap {
    fn drop(&mut self) {
        self.budget
            .fetch_add(*self.reserved.get_mut(), Ordering::SeqCst);
    }
}

/// Keeps what the cap grants of what is written to it, discards the rest.
struct Keep {
    buf: Arc<Mutex<Vec<u8>>>,
    cap: Arc<Cap>,
}

impl Write for Keep {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.cap.grant(data.len());
        self.buf.lock().unwrap().extend_from_slice(&data[..n]);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A pipe read to its end on a thread of its own, keeping what its cap
/// allows: never blocked by a full pipe, so the command never is either.
pub struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Capture {
    /// Starts reading `pipe`.
    pub fn start(mut pipe: impl Read + Send + 'static, cap: &Arc<Cap>) -> io::Result<Capture> {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let mut keep = Keep {
            buf: Arc::clone(&buf),
            cap: Arc::clone(cap),
        };
        let (tx, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("cmd-pipe".into())
            .spawn(move || {
                let _ = io::copy(&mut pipe, &mut keep);
                let _ = tx.send(());
            })?;
        Ok(Capture { buf, done })
    }

    /// Whether the pipe reached its end by `until`.
    pub fn wait_until(&self, until: Instant) -> bool {
        let left = until.saturating_duration_since(Instant::now());
        !matches!(
            self.done.recv_timeout(left),
            Err(mpsc::RecvTimeoutError::Timeout)
        )
    }

    /// What was kept (so far, if a process that escaped still holds the pipe).
    pub fn take(self) -> Vec<u8> {
        std::mem::take(&mut *self.buf.lock().unwrap())
    }
}
