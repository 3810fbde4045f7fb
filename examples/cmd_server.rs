//! The lesson's remote command server, without its bugs.
//!
//! ```text
//! cargo run --example cmd_server                          # 127.0.0.1:8000, threading
//! cargo run --example cmd_server -- --addr 0.0.0.0:8000 --token s3cret   # reachable from others
//! cargo run --example cmd_client -- --addr 127.0.0.1:8000 'ls -l' 'uname -a'
//! cargo run --example cmd_client -- --addr 127.0.0.1:8000           # interactive prompt
//! ```
//!
//! # Protocol
//!
//! A request is either
//! - a **framed JSON header** (the lesson's framing, [`FrameFormat::LESSON`]: a
//!   4-byte little-endian signed length, then that many bytes of JSON)
//!   `{"cmd": "ls -l", "token": "..."}` (`token` only when the server has one), or
//! - the lesson's **raw form**: the command's bytes with no frame at all, read
//!   with one receive of at most 1024 bytes, exactly as the lesson's server
//!   does `conn.recv(1024)`. Because there is no frame, two raw commands sent
//!   back to back without waiting for the answer may stick together (that is
//!   the lesson's sticky-packet problem; the framed form does not have it).
//!
//! They are told apart by the first bytes: a frame header for a JSON header
//! shorter than 16 MiB has a zero in its last byte (and one below 64 KiB in
//! its last two), a shell command's bytes are printable text. If only one or
//! two bytes have arrived and they are printable, the server waits up to
//! [`SNIFF_WAIT`] for more before deciding it is a (short, raw) command.
//!
//! The answer to each request is a framed JSON header followed by a body of
//! `total_size` bytes, stdout then stderr:
//! ```json
//! {"filename": "stdout+stderr", "total_size": 12, "hash": "<sha256 hex of the body>",
//!  "exit_code": 0, "stdout_size": 12, "stderr_size": 0, "timed_out": false, "truncated": false}
//! ```
//! `filename`, `total_size` and `hash` are the lesson's fields, so the lesson's
//! Python client works unchanged (its `filename` and `hash` were placeholders;
//! here `hash` is the real SHA-256 of the body). `exit_code` is the command's
//! exit code, or 128 + the signal number if a signal ended it (137 after the
//! timeout's `SIGKILL`).
//!
//! A bad request (malformed frame, invalid JSON, wrong or missing token, raw
//! form where it is not allowed) gets a header with an `"error"` field and
//! `total_size` 0, then the connection is closed; nothing runs. A client may
//! send any number of requests on one connection; the handler returns when
//! the client closes its side.
//!
//! # Safety of the defaults
//!
//! - Binds `127.0.0.1:8000`. Binding any address that is not loopback needs
//!   `--token T` (or the `CMD_TOKEN` environment variable, which keeps it out
//!   of `ps`) or an explicit `--insecure`; otherwise the server refuses to start.
//! - With a token, every request must be framed and carry it (compared in
//!   constant time). The raw form cannot carry a token, so it is refused when a
//!   token is set, and without a token it is accepted only from loopback peers
//!   (and Unix-socket peers, which are local by definition).
//! - Each command runs as `sh -c CMD` with stdin from `/dev/null`, in its own
//!   process group. stdout and stderr are read concurrently by one thread each,
//!   so a command that fills its stderr pipe while we read stdout cannot
//!   deadlock (the lesson's server does exactly that). After `--timeout`
//!   seconds (default 10) the whole process group gets `SIGKILL` and the
//!   header says `timed_out: true`.
//! - Output is kept up to `--max-output` bytes in total (default 16 MiB,
//!   stdout first come first served with stderr); past the cap the server keeps
//!   **reading and discarding** so the command is never blocked on a full pipe
//!   and finishes (or hits the timeout) normally, and the header says
//!   `truncated: true`. Memory per request is bounded by the cap.
//! - No read timeout on connections by default: interactive clients may sit at
//!   their prompt for a long time. `--idle-timeout SECS` closes connections that
//!   send nothing for that long. On SIGINT/SIGTERM the server stops accepting,
//!   lets commands in flight finish and send their answer (up to
//!   `--drain-timeout`), closes connections that wait idle for their next
//!   request (they notice within [`SHUTDOWN_POLL`]), and exits 0.

mod common;

use std::io::{self, Read, Write};
use std::net::{IpAddr, ToSocketAddrs};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use clap::Parser;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use socketserver::framing::FrameFormat;
use socketserver::{Addr, HandlerResult, StreamHandler, StreamRequest};

/// Default time a command may run before its process group is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on the output kept per command (stdout + stderr): 16 MiB.
pub const DEFAULT_MAX_OUTPUT: usize = 16 << 20;
/// The lesson's server reads a raw command with `recv(1024)`: at most this many bytes.
pub const RAW_MAX: usize = 1024;
/// How long to wait for a third byte when the first one or two are printable
/// (a short raw command like `ls`, or a frame header split by the network).
pub const SNIFF_WAIT: Duration = Duration::from_millis(200);
/// How often a connection waiting for its next request checks whether the
/// server is shutting down.
pub const SHUTDOWN_POLL: Duration = Duration::from_millis(250);
/// After the timeout's `SIGKILL`, how long to wait for the pipes to close
/// (a process that left the process group may still hold them).
const KILL_GRACE: Duration = Duration::from_secs(2);
/// The `filename` field of every response (the lesson put a placeholder there).
pub const FILENAME: &str = "stdout+stderr";

/// What the server is allowed to do.
#[derive(Debug, Clone)]
pub struct CmdConfig {
    /// Shared secret every framed request must carry; `None` = no token
    /// (then only the raw form from loopback, or any framed request, runs).
    pub token: Option<String>,
    /// Time limit per command; the process group is killed after it.
    pub timeout: Duration,
    /// Most output bytes (stdout + stderr) kept per command.
    pub max_output: usize,
    /// Close a connection that sends nothing for this long; `None` = never.
    pub idle_timeout: Option<Duration>,
}

impl Default for CmdConfig {
    fn default() -> Self {
        CmdConfig {
            token: None,
            timeout: DEFAULT_TIMEOUT,
            max_output: DEFAULT_MAX_OUTPUT,
            idle_timeout: None,
        }
    }
}

/// A framed request: the JSON header our client sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CmdRequest {
    /// The shell command line.
    pub cmd: String,
    /// The shared token, when the server requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The JSON header of every response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmdResponseHeader {
    /// The lesson's field; always [`FILENAME`].
    pub filename: String,
    /// Body length: `stdout_size + stderr_size` (0 for an error).
    pub total_size: u64,
    /// SHA-256 of the body, lowercase hex (the lesson's field).
    pub hash: String,
    /// Exit code, or 128 + signal; `None` in an error response.
    pub exit_code: Option<i32>,
    /// Bytes of stdout at the start of the body.
    pub stdout_size: u64,
    /// Bytes of stderr after them.
    pub stderr_size: u64,
    /// The command ran past the timeout and was killed.
    pub timed_out: bool,
    /// Output beyond the cap was discarded.
    pub truncated: bool,
    /// Why the request was refused; the connection closes after this header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CmdResponseHeader {
    /// The header for a finished command.
    pub fn for_output(out: &CmdOutput) -> Self {
        let mut h = Sha256::new();
        h.update(&out.stdout);
        h.update(&out.stderr);
        CmdResponseHeader {
            filename: FILENAME.into(),
            total_size: (out.stdout.len() + out.stderr.len()) as u64,
            hash: hex(&h.finalize()),
            exit_code: Some(out.exit_code),
            stdout_size: out.stdout.len() as u64,
            stderr_size: out.stderr.len() as u64,
            timed_out: out.timed_out,
            truncated: out.truncated,
            error: None,
        }
    }

    /// The header of an error response (empty body).
    pub fn error(msg: impl Into<String>) -> Self {
        CmdResponseHeader {
            filename: FILENAME.into(),
            total_size: 0,
            hash: hex(&Sha256::digest(b"")),
            exit_code: None,
            stdout_size: 0,
            stderr_size: 0,
            timed_out: false,
            truncated: false,
            error: Some(msg.into()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdOutput {
    /// Captured stdout (up to the cap).
    pub stdout: Vec<u8>,
    /// Captured stderr (up to what the cap left).
    pub stderr: Vec<u8>,
    /// Exit code, or 128 + signal number.
    pub exit_code: i32,
    /// Killed at the timeout.
    pub timed_out: bool,
    /// Some output was discarded at the cap.
    pub truncated: bool,
}

/// Exit code as a shell reports it: the code, or 128 + the signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

/// Kills process group `pgid` with `SIGKILL`.
fn kill_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
    // -pgid addresses exactly the group we created with process_group(0).
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Reads `pipe` to its end, keeping what the shared `budget` allows in `into`
/// and discarding (but still reading) the rest.
fn drain_pipe(
    mut pipe: impl Read,
    into: &Mutex<Vec<u8>>,
    budget: &AtomicUsize,
    truncated: &AtomicBool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let mut granted = 0;
        let _ = budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            granted = left.min(n);
            Some(left - granted)
        });
        if granted > 0 {
            into.lock().unwrap().extend_from_slice(&buf[..granted]);
        }
        if granted < n {
            truncated.store(true, Ordering::SeqCst);
        }
    }
}

/// Runs `cmd` through `sh -c` in its own process group, reading stdout and
/// stderr concurrently, keeping at most `max_output` bytes of them, and
/// killing the whole group after `timeout`.
pub fn run_shell(cmd: &str, timeout: Duration, max_output: usize) -> io::Result<CmdOutput> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let pgid = child.id();
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let budget = Arc::new(AtomicUsize::new(max_output));
    let truncated = Arc::new(AtomicBool::new(false));
    let out_buf = Arc::new(Mutex::new(Vec::new()));
    let err_buf = Arc::new(Mutex::new(Vec::new()));

    enum Event {
        PipeClosed,
        Exited(io::Result<ExitStatus>),
    }
    let (tx, rx) = mpsc::channel();
    for (pipe, buf) in [
        (Box::new(stdout) as Box<dyn Read + Send>, &out_buf),
        (Box::new(stderr), &err_buf),
    ] {
        let (tx, buf, budget, truncated) = (
            tx.clone(),
            Arc::clone(buf),
            Arc::clone(&budget),
            Arc::clone(&truncated),
        );
        let spawned = std::thread::Builder::new()
            .name("cmd-pipe".into())
            .spawn(move || {
                drain_pipe(pipe, &buf, &budget, &truncated);
                let _ = tx.send(Event::PipeClosed);
            });
        if let Err(e) = spawned {
            kill_group(pgid);
            let _ = child.wait();
            return Err(e);
        }
    }
    let waiter = std::thread::Builder::new()
        .name("cmd-wait".into())
        .spawn(move || {
            let _ = tx.send(Event::Exited(child.wait()));
        });
    if let Err(e) = waiter {
        kill_group(pgid);
        return Err(e);
    }

    let mut deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let mut pipes_open = 2;
    let mut status = None;
    while pipes_open > 0 || status.is_none() {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Event::PipeClosed) => pipes_open -= 1,
            Ok(Event::Exited(s)) => status = Some(s?),
            Err(mpsc::RecvTimeoutError::Timeout) if !timed_out => {
                // The shell, or something it left behind holding our pipes,
                // is still running: kill the whole group.
                kill_group(pgid);
                timed_out = true;
                deadline = Instant::now() + KILL_GRACE;
            }
            // A process that escaped the group still holds a pipe: give up
            // on it (its reader thread ends when it does).
            Err(_) => break,
        }
    }
    let stdout = std::mem::take(&mut *out_buf.lock().unwrap());
    let stderr = std::mem::take(&mut *err_buf.lock().unwrap());
    Ok(CmdOutput {
        stdout,
        stderr,
        exit_code: status.map(exit_code).unwrap_or(128 + libc::SIGKILL),
        timed_out,
        truncated: truncated.load(Ordering::SeqCst),
    })
}

/// Equal in constant time for equal lengths (the length itself may leak).
fn token_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// True for peers on this machine: loopback IPs (also IPv4-mapped) and Unix sockets.
pub fn is_local_peer(peer: &Addr) -> bool {
    match peer.as_inet() {
        Some(sa) => match sa.ip() {
            IpAddr::V4(ip) => ip.is_loopback(),
            IpAddr::V6(ip) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        },
        None => true,
    }
}

/// How a request starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// A length-prefixed JSON header.
    Framed,
    /// The lesson's unframed command bytes.
    Raw,
}

/// A byte that can start or continue a text command (printable ASCII, tab,
/// newline, or a byte that can appear in UTF-8).
fn is_text_byte(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\r' | 0x20..=0x7e | 0x80..=0xbf | 0xc2..=0xf4)
}

/// Classifies a request by its first bytes; `None` if too few bytes have
/// arrived to tell (one or two, all printable).
///
/// ```text
/// "\x0e\0\0\0{\"cmd\":\"ls\"}"  -> Framed   (length bytes 2..4 are zero)
/// "ls -l"                       -> Raw      (printable)
/// "\xff\xff\xff\x7f"            -> Framed   (not text; read_len rejects it)
/// ```
pub fn classify(first: &[u8]) -> Option<RequestKind> {
    let head = &first[..first.len().min(4)];
    if head.iter().any(|&b| !is_text_byte(b)) {
        Some(RequestKind::Framed)
    } else if head.len() >= 3 {
        Some(RequestKind::Raw)
    } else {
        None
    }
}

/// One request, as read from the connection.
#[derive(Debug)]
enum Incoming {
    /// The client closed the connection (or went idle past the idle timeout).
    Gone,
    /// A request that must be refused with this message.
    Refused(String),
    /// A command to run.
    Run(String),
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Waits until the next request's first bytes are in `req.rfile`'s buffer.
/// Returns false if the client left, stayed idle past `idle_timeout`, or the
/// server began shutting down meanwhile (so a drain does not have to wait
/// for idle interactive clients).
fn wait_for_request(config: &CmdConfig, req: &mut StreamRequest) -> io::Result<bool> {
    let idle_until = config.idle_timeout.map(|t| Instant::now() + t);
    let result = loop {
        if req.is_shutting_down() {
            break Ok(false);
        }
        let mut slice = SHUTDOWN_POLL;
        if let Some(until) = idle_until {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::info!("{}: idle timeout, closing", req.peer);
                break Ok(false);
            }
            slice = slice.min(left);
        }
        req.set_read_timeout(Some(slice))?;
        match req.rfile.fill_buf() {
            Ok(buf) => break Ok(!buf.is_empty()),
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    // Inside a request, only the configured idle timeout applies.
    req.set_read_timeout(config.idle_timeout)?;
    result
}

/// Reads the next request from `req`.
fn read_request(config: &CmdConfig, req: &mut StreamRequest) -> io::Result<Incoming> {
    if !wait_for_request(config, req)? {
        return Ok(Incoming::Gone);
    }
    let avail = req.rfile.buffer();
    // Bytes already taken out of rfile while sniffing.
    let mut pending = Vec::new();
    let kind = match classify(avail) {
        Some(kind) => kind,
        None => {
            pending.extend_from_slice(avail);
            let n = pending.len();
            req.rfile.consume(n);
            req.set_read_timeout(Some(SNIFF_WAIT))?;
            let give_up = Instant::now() + SNIFF_WAIT;
            let mut buf = [0u8; RAW_MAX];
            while classify(&pending).is_none() && Instant::now() < give_up {
                let room = RAW_MAX - pending.len();
                match req.rfile.read(&mut buf[..room]) {
                    Ok(0) => break,
                    Ok(k) => pending.extend_from_slice(&buf[..k]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if is_timeout(&e) => break,
                    Err(e) => return Err(e),
                }
            }
            req.set_read_timeout(config.idle_timeout)?;
            classify(&pending).unwrap_or(RequestKind::Raw)
        }
    };
    match kind {
        RequestKind::Framed => {
            let mut r = (&pending[..]).chain(&mut req.rfile);
            match FrameFormat::LESSON.read_json::<_, CmdRequest>(&mut r) {
                Ok(Some(request)) => Ok(check_token(config, request)),
                Ok(None) => Ok(Incoming::Gone),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    Ok(Incoming::Refused(format!("bad request: {e}")))
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    log::warn!("{}: {e}", req.peer);
                    Ok(Incoming::Gone)
                }
                Err(e) if is_timeout(&e) => Ok(Incoming::Gone),
                Err(e) => Err(e),
            }
        }
        RequestKind::Raw => {
            // One "recv(1024)": what has arrived, at most RAW_MAX bytes.
            let room = RAW_MAX.saturating_sub(pending.len());
            let buffered = req.rfile.buffer();
            let take = buffered.len().min(room);
            pending.extend_from_slice(&buffered[..take]);
            req.rfile.consume(take);
            if config.token.is_some() {
                return Ok(Incoming::Refused(
                    "this server requires a token: send a framed request {\"cmd\": ..., \"token\": ...}"
                        .into(),
                ));
            }
            if !is_local_peer(&req.peer) {
                return Ok(Incoming::Refused(
                    "the unframed (raw) request form is accepted from loopback only".into(),
                ));
            }
            match String::from_utf8(pending) {
                Ok(cmd) => Ok(Incoming::Run(cmd)),
                Err(e) => Ok(Incoming::Refused(format!(
                    "raw command is not valid UTF-8: {}",
                    e.utf8_error()
                ))),
            }
        }
    }
}

fn check_token(config: &CmdConfig, request: CmdRequest) -> Incoming {
    match (&config.token, &request.token) {
        (None, _) => Incoming::Run(request.cmd),
        (Some(want), Some(got)) if token_eq(want.as_bytes(), got.as_bytes()) => {
            Incoming::Run(request.cmd)
        }
        (Some(_), Some(_)) => Incoming::Refused("wrong token".into()),
        (Some(_), None) => Incoming::Refused("this server requires a token".into()),
    }
}

/// Writes a response: the header frame, then stdout, then stderr.
pub fn write_response<W: Write + ?Sized>(w: &mut W, out: &CmdOutput) -> io::Result<()> {
    FrameFormat::LESSON.write_json(w, &CmdResponseHeader::for_output(out))?;
    w.write_all(&out.stdout)?;
    w.write_all(&out.stderr)
}

/// Writes an error response (header only).
pub fn write_error<W: Write + ?Sized>(w: &mut W, msg: &str) -> io::Result<()> {
    FrameFormat::LESSON.write_json(w, &CmdResponseHeader::error(msg))
}

/// Serves one connection: requests until the client leaves, the server
/// shuts down, or a request is refused.
pub fn serve_connection(config: &CmdConfig, req: &mut StreamRequest) -> HandlerResult {
    let peer = req.peer.clone();
    loop {
        match read_request(config, req)? {
            Incoming::Gone => return Ok(()),
            Incoming::Refused(msg) => {
                log::warn!("{peer}: refused: {msg}");
                // The peer may already be gone; nothing more to do either way.
                let _ = write_error(&mut req.wfile, &msg);
                return Ok(());
            }
            Incoming::Run(cmd) => {
                let started = Instant::now();
                let out = match run_shell(&cmd, config.timeout, config.max_output) {
                    Ok(out) => out,
                    Err(e) => {
                        log::error!("{peer}: cannot run {cmd:?}: {e}");
                        let _ =
                            write_error(&mut req.wfile, &format!("cannot run the command: {e}"));
                        return Ok(());
                    }
                };
                log::info!(
                    "{peer}: {cmd:?} -> exit {} ({} + {} bytes{}{}) in {:?}",
                    out.exit_code,
                    out.stdout.len(),
                    out.stderr.len(),
                    if out.timed_out { ", timed out" } else { "" },
                    if out.truncated { ", truncated" } else { "" },
                    started.elapsed()
                );
                write_response(&mut req.wfile, &out)?;
            }
        }
        if req.is_shutting_down() {
            return Ok(());
        }
    }
}

/// The command server's handler: cheap to clone, shares its config.
#[derive(Debug, Clone)]
pub struct CmdHandler {
    config: Arc<CmdConfig>,
}

impl StreamHandler for CmdHandler {
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        serve_connection(&self.config, req)
    }
}

/// A handler running commands under `config`.
pub fn handler(config: CmdConfig) -> CmdHandler {
    CmdHandler {
        config: Arc::new(config),
    }
}

/// Refuses to expose a shell on a non-loopback address without a token or
/// an explicit `--insecure`.
pub fn check_bind(addr: &str, has_token: bool, insecure: bool) -> Result<(), String> {
    if has_token || insecure {
        return Ok(());
    }
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .collect();
    match addrs.iter().find(|a| !a.ip().is_loopback()) {
        Some(a) => Err(format!(
            "refusing to run commands for anyone who can reach {a} (not a loopback address): \
             set a shared secret with --token T (or CMD_TOKEN), or pass --insecure"
        )),
        None => Ok(()),
    }
}

/// Remote command server options.
#[derive(Debug, Parser)]
#[command(about = "Run shell commands for clients (the lesson's server, safely)")]
struct Cli {
    /// Address to listen on; port 0 lets the OS pick.
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: String,
    /// Shared secret every request must carry (default: $CMD_TOKEN if set).
    #[arg(long)]
    token: Option<String>,
    /// Allow a non-loopback address without a token.
    #[arg(long)]
    insecure: bool,
    /// Seconds a command may run before its process group is killed.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT.as_secs_f64())]
    timeout: f64,
    /// Most output bytes (stdout + stderr) kept per command.
    #[arg(long, default_value_t = DEFAULT_MAX_OUTPUT)]
    max_output: usize,
    /// Close connections idle for this many seconds (default: never).
    #[arg(long)]
    idle_timeout: Option<f64>,
    #[command(flatten)]
    serve: common::ServeArgs,
}

fn secs(s: f64, what: &str) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_else(|e| {
        eprintln!("cmd_server: bad {what} {s}: {e}");
        std::process::exit(2)
    })
}

fn main() -> io::Result<()> {
    common::init_logging();
    let cli = Cli::parse();
    let token = cli
        .token
        .clone()
        .or_else(|| std::env::var("CMD_TOKEN").ok())
        .filter(|t| !t.is_empty());
    if let Err(msg) = check_bind(&cli.addr, token.is_some(), cli.insecure) {
        eprintln!("cmd_server: {msg}");
        std::process::exit(2);
    }
    let config = CmdConfig {
        token,
        timeout: secs(cli.timeout, "--timeout"),
        max_output: cli.max_output,
        idle_timeout: cli.idle_timeout.map(|s| secs(s, "--idle-timeout")),
    };
    let h = handler(config);
    common::serve(cli.serve.builder().bind_tcp(cli.addr.as_str(), h)?)
}
