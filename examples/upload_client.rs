//! The upload client: streams a file to `upload_server` (or to the lesson's
//! Python server) without ever holding it in memory.
//!
//! ```text
//! cargo run --example upload_client -- --addr 127.0.0.1:9527 big.iso [--name NAME] [--resume]
//! ```
//!
//! It sends the lesson's framed JSON header `{"file_name", "file_size"}`
//! (plus `"resume": true` with `--resume`, and `"sha256"` when the hash is
//! known up front: `--sha256 HEX`, `--hash-first`, or `--resume`, which
//! hashes the whole file first), then the bytes,
//! hashing them (SHA-256) as they go. With `--resume` the server first
//! answers `{"offset": N}`: the client hashes the first `N` bytes locally and
//! sends the rest. After the body it shuts its sending side down and waits
//! for the server's acknowledgement, whose hash must match its own.
//!
//! A progress bar with rate and ETA is drawn on a terminal; otherwise a
//! plain `progress ...` line goes to stderr every second. The last stdout
//! line is machine-readable:
//!
//! ```text
//! sent 1048576 bytes (from offset 0), sha256 <hex>, confirmed
//! sent 1048576 bytes (from offset 0), sha256 <hex>, sent but not confirmed
//! ```
//!
//! Exit status: 0 confirmed by the server with a matching hash; 1 error
//! (refused, hash mismatch, connection or file error); 3 sent completely but
//! not confirmed (the server closed without an acknowledgement, as the
//! lesson's server does, or sent none within `--ack-timeout`).

use std::fs::File;
use std::io::{self, ErrorKind, IsTerminal, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use socketserver::framing::FrameFormat;

/// Size of the buffer every byte goes through.
const CHUNK: usize = 64 * 1024;

/// How to upload.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Name to store the file under (default: the file's own name).
    pub name: Option<String>,
    /// Ask the server to continue an interrupted upload. Implies
    /// `hash_first`: the file is read once to hash it before sending.
    pub resume: bool,
    /// SHA-256 (hex) to declare in the header; the server refuses data that
    /// does not match it.
    pub sha256: Option<String>,
    /// Hash the whole file before sending and declare it in the header (so
    /// the server refuses corrupted data before storing it).
    pub hash_first: bool,
    /// Send at most this many bytes per second (testing, or sharing a link).
    pub rate_limit: Option<u64>,
    /// Stop (drop the connection) once this many body bytes are sent:
    /// simulates a crash at a known point.
    pub stop_after: Option<u64>,
    /// How long to wait for the server's answers (offset, acknowledgement),
    /// and for a stalled send to make progress.
    pub ack_timeout: Duration,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            name: None,
            resume: false,
            sha256: None,
            hash_first: false,
            rate_limit: None,
            stop_after: None,
            ack_timeout: Duration::from_secs(300),
        }
    }
}

/// Where an upload stands, for progress reports.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Offset the body started from (non-zero when resuming).
    pub offset: u64,
    /// Bytes sent on this connection so far.
    pub sent: u64,
    /// The file's size.
    pub total: u64,
    /// Time since the body started.
    pub elapsed: Duration,
}

/// The server's acknowledgement of a stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Name the server stored the file under.
    pub file_name: String,
    /// Size it stored.
    pub size: u64,
    /// SHA-256 of what it stored.
    pub sha256: String,
}

/// What an upload achieved.
#[derive(Debug, Clone)]
pub struct UploadOutcome {
    /// Name sent in the header.
    pub file_name: String,
    /// The file's size.
    pub size: u64,
    /// Offset the body started from.
    pub offset: u64,
    /// Body bytes sent on this connection.
    pub sent: u64,
    /// SHA-256 of the whole file as read locally.
    pub sha256: String,
    /// The server's acknowledgement (hash already checked to match), or
    /// `None` if the server closed or went silent without one.
    pub ack: Option<Ack>,
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of the file at `path`, streamed.
pub fn hash_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    hash_n(&mut f, u64::MAX, &mut h)?;
    Ok(hex(&h.finalize()))
}

/// Feeds up to `len` bytes of `r` to `h`; returns how many there were.
fn hash_n(r: &mut impl Read, len: u64, h: &mut Sha256) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0;
    while done < len {
        let want = CHUNK.min(usize::try_from(len - done).unwrap_or(CHUNK));
        let n = match r.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        done += n as u64;
    }
    Ok(done)
}

fn other(msg: String) -> io::Error {
    io::Error::other(msg)
}

/// Reads one framed JSON reply; `None` on EOF or timeout (no reply).
fn read_reply(stream: &mut impl Read) -> io::Result<Option<Value>> {
    match FrameFormat::LESSON.read_json::<_, Value>(stream) {
        Ok(v) => Ok(v),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The server's error message if `v` is a refusal.
fn refusal(v: &Value) -> Option<String> {
    (v.get("ok") == Some(&Value::Bool(false))).then(|| {
        v.get("error")
            .and_then(Value::as_str)
            .unwrap_or("no reason given")
            .to_string()
    })
}

/// Uploads `path` to the server at `addr`, calling `progress` as the body
/// goes out (at most every 64 KiB). Errors: connection and file errors, a
/// refusal (`refused by server: ...`), a hash mismatch with the server's
/// acknowledgement, or `stop_after` reached (`ErrorKind::Interrupted`).
pub fn upload(
    addr: &str,
    path: &Path,
    opts: &UploadOptions,
    progress: &mut dyn FnMut(&Progress),
) -> io::Result<UploadOutcome> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    let file_name = match &opts.name {
        Some(n) => n.clone(),
        None => path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| other(format!("{} has no usable file name", path.display())))?
            .to_string(),
    };
    // A resumed upload declares the whole file's hash, so the server refuses
    // (and discards) a partial that came from a different version of it.
    let declared = match (&opts.sha256, opts.hash_first || opts.resume) {
        (Some(s), _) => Some(s.to_ascii_lowercase()),
        (None, true) => Some(hash_file(path)?),
        (None, false) => None,
    };

    let sock = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| other(format!("{addr}: no address")))?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(opts.ack_timeout))?;
    // A server that stops reading (stalled, or gone without a reset) fails
    // the upload instead of hanging it.
    stream.set_write_timeout(Some(opts.ack_timeout))?;
    let mut header = json!({"file_name": file_name, "file_size": size});
    if let Some(s) = &declared {
        header["sha256"] = json!(s);
    }
    if opts.resume {
        header["resume"] = json!(true);
    }
    FrameFormat::LESSON.write_json(&mut stream, &header)?;

    let mut hasher = Sha256::new();
    let mut offset = 0;
    if opts.resume {
        let answer = read_reply(&mut stream)?.ok_or_else(|| {
            other("the server did not answer the resume request (does it support resume?)".into())
        })?;
        if let Some(why) = refusal(&answer) {
            return Err(other(format!("refused by server: {why}")));
        }
        offset = answer
            .get("offset")
            .and_then(Value::as_u64)
            .filter(|&o| o <= size)
            .ok_or_else(|| other(format!("bad resume answer from server: {answer}")))?;
        if hash_n(&mut file, offset, &mut hasher)? != offset {
            return Err(other(format!("{} shrank while reading", path.display())));
        }
    }
    file.seek(SeekFrom::Start(offset))?;

    let sent = match send_body(
        &mut stream,
        &mut file,
        &mut hasher,
        offset,
        size,
        opts,
        progress,
    ) {
        Ok(sent) => sent,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) =>
        {
            // The server stopped reading: it may have said why.
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            if let Ok(Some(v)) = read_reply(&mut stream)
                && let Some(why) = refusal(&v)
            {
                return Err(other(format!("refused by server: {why}")));
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let sha256 = hex(&hasher.finalize());
    if let Some(d) = &declared
        && *d != sha256
    {
        log::warn!("declared sha256 {d} differs from the file's {sha256}");
    }
    // Tell the server (and the lesson's server) that we are done, then wait
    // for the acknowledgement.
    let _ = stream.shutdown(Shutdown::Write);
    let ack = match read_reply(&mut stream) {
        Ok(Some(v)) => {
            if let Some(why) = refusal(&v) {
                return Err(other(format!("refused by server: {why}")));
            }
            let ack = Ack {
                file_name: v["file_name"].as_str().unwrap_or_default().to_string(),
                size: v["size"].as_u64().unwrap_or(u64::MAX),
                sha256: v["sha256"].as_str().unwrap_or_default().to_string(),
            };
            if ack.sha256 != sha256 || ack.size != size {
                return Err(other(format!(
                    "MISMATCH: server stored {} bytes with sha256 {}, the file has {size} bytes with sha256 {sha256}",
                    ack.size, ack.sha256
                )));
            }
            Some(ack)
        }
        Ok(None) => None,
        // The lesson's server closes without reading our FIN: a reset after
        // the whole body went out is "no acknowledgement", not a failure.
        Err(e) if e.kind() == ErrorKind::ConnectionReset => None,
        Err(e) => return Err(e),
    };
    Ok(UploadOutcome {
        file_name,
        size,
        offset,
        sent,
        sha256,
        ack,
    })
}

fn send_body(
    stream: &mut TcpStream,
    file: &mut File,
    hasher: &mut Sha256,
    offset: u64,
    size: u64,
    opts: &UploadOptions,
    progress: &mut dyn FnMut(&Progress),
) -> io::Result<u64> {
    let chunk = match opts.rate_limit {
        Some(r) => CHUNK.min((r / 20).max(1) as usize),
        None => CHUNK,
    };
    let mut buf = vec![0u8; chunk];
    let started = Instant::now();
    let mut sent = 0u64;
    let left = size - offset;
    while sent < left {
        let mut want = chunk.min(usize::try_from(left - sent).unwrap_or(chunk));
        if let Some(stop) = opts.stop_after {
            if sent >= stop {
                return Err(io::Error::new(
                    ErrorKind::Interrupted,
                    format!("stopped after {sent} bytes as asked (--stop-after)"),
                ));
            }
            want = want.min(usize::try_from(stop - sent).unwrap_or(want));
        }
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(other(format!(
                    "the file shrank while sending: ended after {} of {size} bytes",
                    offset + sent
                )));
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(&buf[..n])?;
        hasher.update(&buf[..n]);
        sent += n as u64;
        let elapsed = started.elapsed();
        progress(&Progress {
            offset,
            sent,
            total: size,
            elapsed,
        });
        if let Some(rate) = opts.rate_limit {
            let due = Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
    }
    Ok(sent)
}

/// Peak resident set size of this process (`VmHWM`), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Upload client options.
#[derive(Debug, Parser)]
#[command(
    about = "Upload a file to upload_server (streamed, SHA-256 verified, resumable)",
    after_help = "Exit status: 0 stored and confirmed with a matching SHA-256; 1 error \
                  (refused, mismatch, connection or file error); 3 sent but not confirmed \
                  (the server closed without an acknowledgement)."
)]
struct Cli {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:9527")]
    addr: String,
    /// The file to upload.
    file: PathBuf,
    /// Name to store it under (default: the file's name).
    #[arg(long)]
    name: Option<String>,
    /// Continue an interrupted upload of the same name and size (reads the
    /// file once first to declare its hash).
    #[arg(long)]
    resume: bool,
    /// Declare this SHA-256 (hex); the server refuses data that differs.
    #[arg(long)]
    sha256: Option<String>,
    /// Hash the file before sending and declare the hash (two reads).
    #[arg(long)]
    hash_first: bool,
    /// Seconds to wait for the server's answers.
    #[arg(long, default_value_t = 300.0)]
    ack_timeout: f64,
    /// Send at most this many bytes per second.
    #[arg(long)]
    rate_limit: Option<u64>,
    /// Testing: drop the connection after sending this many body bytes.
    #[arg(long, hide = true)]
    stop_after: Option<u64>,
    /// Testing: print `peak_rss_kib N` (VmHWM) on stdout at exit.
    #[arg(long, hide = true)]
    report_rss: bool,
}

fn main() {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .try_init();
    let cli = Cli::parse();
    let opts = UploadOptions {
        name: cli.name,
        resume: cli.resume,
        sha256: cli.sha256,
        hash_first: cli.hash_first,
        rate_limit: cli.rate_limit,
        stop_after: cli.stop_after,
        ack_timeout: Duration::from_secs_f64(cli.ack_timeout),
    };
    let tty = io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::hidden();
    let mut last_line = Instant::now();
    let mut on_progress = |p: &Progress| {
        let done = p.offset + p.sent;
        if tty {
            if bar.is_hidden() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.set_length(p.total);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:40.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .expect("valid template"),
                );
            }
            bar.set_position(done);
        } else if last_line.elapsed() >= Duration::from_secs(1) || done == p.total {
            last_line = Instant::now();
            let secs = p.elapsed.as_secs_f64().max(1e-9);
            let rate = p.sent as f64 / secs;
            let eta = (p.total - done) as f64 / rate.max(1.0);
            eprintln!(
                "progress {done}/{} bytes ({:.1}%), {:.1} MiB/s, eta {eta:.0} s",
                p.total,
                done as f64 * 100.0 / p.total.max(1) as f64,
                rate / (1 << 20) as f64,
            );
        }
    };
    let result = upload(&cli.addr, &cli.file, &opts, &mut on_progress);
    bar.finish_and_clear();
    if cli.report_rss {
        println!("peak_rss_kib {}", peak_rss_kib().unwrap_or(0));
    }
    let code = match result {
        Ok(o) => {
            let status = if o.ack.is_some() {
                "confirmed"
            } else {
                "sent but not confirmed"
            };
            println!(
                "sent {} bytes (from offset {}), sha256 {}, {status}",
                o.sent, o.offset, o.sha256
            );
            if o.ack.is_some() { 0 } else { 3 }
        }
        Err(e) => {
            eprintln!("upload failed: {e}");
            1
        }
    };
    std::process::exit(code);
}
