//! The lesson's upload client (上传大文件), streaming: the file is never
//! held in memory.
//!
//! ```text
//! cargo run --example upload_client -- --addr 127.0.0.1:9527 --token-file ./token big.iso
//! ```
//!
//! One function per step of the lesson's client: open the file, send the
//! framed JSON header `{"file_name", "file_size"}` (plus `"token"`,
//! `"sha256"` when known up front, `"resume": true`), send the body while
//! hashing it (SHA-256), then wait for the server's acknowledgement, whose
//! hash must match. `resume.rs` continues an interrupted upload,
//! `send.rs` moves the bytes, `progress.rs` draws the progress.
//!
//! The last stdout line is machine-readable:
//! `sent N bytes (from offset M), sha256 H, confirmed` (or `sent but not
//! confirmed`). Exit status: 0 confirmed with a matching hash; 1 error
//! (refused, mismatch, connection or file error); 3 sent completely but not
//! confirmed (the lesson's server closes without an acknowledgement).

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod progress;
mod resume;
mod send;

use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use socketserver::framing::FrameFormat;

pub use cli::UploadOptions;
pub use common::hex;
pub use progress::Progress;

/// What an upload achieved.
#[derive(Debug, Clone)]
pub struct UploadOutcome {
    pub file_name: String,
    pub size: u64,
    /// Offset the body started from (non-zero when resuming).
    pub offset: u64,
    /// Body bytes sent on this connection.
    pub sent: u64,
    /// SHA-256 of the whole file as read here.
    pub sha256: String,
    /// The server's acknowledgement, hash already checked; `None` if the
    /// server closed or went silent without one.
    pub ack: Option<Ack>,
}

/// The server's acknowledgement of a stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub file_name: String,
    pub size: u64,
    pub sha256: String,
}

/// SHA-256 of the file at `path`, streamed.
pub fn hash_file(path: &Path) -> io::Result<String> {
    let mut h = Sha256::new();
    io::copy(&mut File::open(path)?, &mut h)?;
    Ok(hex(&h.finalize()))
}

fn other(msg: String) -> io::Error {
    io::Error::other(msg)
}

/// Reads one framed JSON reply; `None` at end of input or on a timeout.
fn read_reply(stream: &mut impl Read) -> io::Result<Option<Value>> {
    match FrameFormat::LESSON.read_json::<_, Value>(stream) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(None),
        other => other,
    }
}

/// The server's reason if `v` is a refusal.
fn refusal(v: &Value) -> Option<io::Error> {
    (v.get("ok") == Some(&Value::Bool(false))).then(|| {
        let why = v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        other(format!("refused by server: {why}"))
    })
}

/// Step 1: the file, its size, the name to send and the hash to declare.
fn open_file(path: &Path, opts: &UploadOptions) -> io::Result<(File, u64, String, Option<String>)> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| other(format!("{} has no usable file name", path.display())))?
            .to_string(),
    };
    let declared = match (&opts.sha256, opts.hash_first || opts.resume) {
        (Some(s), _) => Some(s.to_ascii_lowercase()),
        (None, true) => Some(hash_file(path)?),
        (None, false) => None,
    };
    Ok((file, size, name, declared))
}

/// Step 2: connect and send the header.
fn send_header(
    addr: &str,
    name: &str,
    size: u64,
    sha256: Option<&str>,
    opts: &UploadOptions,
) -> io::Result<TcpStream> {
    let sock = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| other(format!("{addr}: no address")))?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(opts.ack_timeout))?;
    stream.set_write_timeout(Some(opts.ack_timeout))?;
    let mut header = json!({"file_name": name, "file_size": size});
    if let Some(t) = &opts.token {
        header["token"] = json!(t);
    }
    if let Some(s) = sha256 {
        header["sha256"] = json!(s);
    }
    if opts.resume {
        header["resume"] = json!(true);
    }
    FrameFormat::LESSON.write_json(&mut stream, &header)?;
    Ok(stream)
}

/// Step 4: half-close, then the acknowledgement, checked against our hash.
fn read_ack(stream: &mut TcpStream, size: u64, sha256: &str) -> io::Result<Option<Ack>> {
    let _ = stream.shutdown(Shutdown::Write);
    let v = match read_reply(stream) {
        Ok(Some(v)) => v,
        Ok(None) => return Ok(None),
        // The lesson's server closes without reading our FIN: a reset after
        // the whole body went out is "no acknowledgement", not a failure.
        Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(None),
        Err(e) => return Err(e),
    };
    if let Some(e) = refusal(&v) {
        return Err(e);
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
    Ok(Some(ack))
}

/// Uploads `path` to the server at `addr`, calling `progress` as the body
/// goes out.
pub fn upload(
    addr: &str,
    path: &Path,
    opts: &UploadOptions,
    progress: &mut dyn FnMut(&Progress),
) -> io::Result<UploadOutcome> {
    let (mut file, size, file_name, declared) = open_file(path, opts)?;
    let mut stream = send_header(addr, &file_name, size, declared.as_deref(), opts)?;
    let mut hasher = Sha256::new();
    let offset = match opts.resume {
        true => resume::negotiate(&mut stream, &mut file, size, &mut hasher)?,
        false => 0,
    };
    // Step 3: the body, hashed as it goes.
    let sent = send::body(
        &mut stream,
        &mut file,
        &mut hasher,
        offset,
        size,
        opts,
        progress,
    )?;
    let sha256 = hex(&hasher.finalize());
    if declared.as_ref().is_some_and(|d| *d != sha256) {
        log::warn!("the declared sha256 differs from the file's {sha256}");
    }
    let ack = read_ack(&mut stream, size, &sha256)?;
    Ok(UploadOutcome {
        file_name,
        size,
        offset,
        sent,
        sha256,
        ack,
    })
}

fn main() {
    common::init_logging();
    let (cli, opts) = match cli::parse() {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("upload failed: {e}");
            std::process::exit(1);
        }
    };
    let mut printer = progress::Printer::new();
    let result = upload(&cli.addr, &cli.file, &opts, &mut |p| printer.show(p));
    printer.finish();
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
