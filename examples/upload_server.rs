//! A large-file upload server: the lesson's "上传大文件" server made safe to use.
//!
//! ```text
//! cargo run --example upload_server -- --addr 127.0.0.1:9527 --dir ./uploads
//! # then, in another terminal:
//! cargo run --example upload_client -- --addr 127.0.0.1:9527 big.iso
//! ```
//!
//! # Protocol (the lesson's, extended compatibly)
//!
//! Client → server: a framed JSON header (`struct.pack('i', len)` + JSON,
//! [`FrameFormat::LESSON`]) `{"file_name": str, "file_size": int}` plus the
//! optional `"sha256": hex` and `"resume": true`, then the body.
//!
//! - With `"resume": true` the server first answers `{"offset": N}` (or an
//!   error reply) and the client sends the bytes from `N` on.
//! - After the body the server answers `{"ok": true, "file_name", "size",
//!   "sha256"}` or `{"ok": false, "error": "..."}`. A client that closes
//!   without reading it (the lesson's client) is not an error.
//!
//! # What the server guarantees
//!
//! - Files land only in `--dir`: `file_name` must be a plain name (no `/`,
//!   `\`, NUL, not `.`/`..`, not empty, at most 255 bytes), and uploads over
//!   `--max-size` are refused, both before any body byte is read or any
//!   file created.
//! - The body streams through a fixed 64 KiB buffer into a temporary file in
//!   the same directory while being hashed (SHA-256); the size and the
//!   client's hash (if given) are checked, the file is fsynced, renamed into
//!   place atomically, and the directory fsynced. Nothing ever appears
//!   half-written under the final name; concurrent uploads of one name each
//!   have their own temporary file and the last completed rename wins.
//! - An upload cut short (client gone, a stall past `--timeout`, or cut by
//!   the drain deadline at shutdown) leaves its data in
//!   `.upload-<sha256 of name>-<size>.partial`, which a later upload of the
//!   same name and size with `"resume": true` continues. Partials older than
//!   `--partial-ttl` are removed at startup and periodically. A wrong hash,
//!   a full disk (a clear `disk full` error reply) or any other failure
//!   removes the temporary file.
//! - Successful uploads are announced on stdout as `stored <size> <sha256>
//!   <name>`.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use socketserver::framing::FrameFormat;
use socketserver::{HandlerResult, StreamHandler, StreamRequest};

/// Size of the buffer every body byte goes through.
const CHUNK: usize = 64 * 1024;
/// Prefix of every temporary file the server creates in its directory.
const TMP_PREFIX: &str = ".upload-";
/// Suffix of a resumable partial upload (keyed by name and size).
const PARTIAL_SUFFIX: &str = ".partial";
/// Suffix of a one-off temporary file (a concurrent upload of a name whose
/// partial is busy); never resumed.
const TEMP_SUFFIX: &str = ".part";
/// How long a resuming upload waits for the interrupted upload it continues
/// to let go of the partial file.
const RESUME_LOCK_WAIT: Duration = Duration::from_secs(5);

/// What the upload server needs to know.
#[derive(Debug, Clone)]
pub struct UploadConfig {
    /// Directory the files are stored in (created if missing).
    pub dir: PathBuf,
    /// Largest upload accepted, in bytes.
    pub max_size: u64,
    /// Read timeout per connection: a client silent this long is cut off
    /// (its partial kept for resume).
    pub timeout: Option<Duration>,
    /// Partial uploads untouched this long are deleted.
    pub partial_ttl: Duration,
    /// Print `stored <size> <sha256> <name>` on stdout after each upload.
    pub announce: bool,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            dir: PathBuf::from("uploads"),
            max_size: 64 << 30,
            timeout: Some(Duration::from_secs(30)),
            partial_ttl: Duration::from_secs(24 * 3600),
            announce: false,
        }
    }
}

/// The upload header, as the client sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct UploadHeader {
    /// Name to store the file under (a plain name, no directories).
    pub file_name: String,
    /// Exact body size in bytes.
    pub file_size: u64,
    /// Optional SHA-256 of the whole file (hex); a mismatch is refused.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Continue an interrupted upload of the same name and size.
    #[serde(default)]
    pub resume: bool,
}

/// The upload handler: clone it per connection (state is shared).
#[derive(Debug, Clone)]
pub struct UploadHandler {
    cfg: Arc<UploadConfig>,
    last_sweep: Arc<Mutex<Instant>>,
}

/// Builds the handler for `cfg`: creates the directory and removes stale
/// partial uploads.
pub fn handler(cfg: UploadConfig) -> io::Result<UploadHandler> {
    fs::create_dir_all(&cfg.dir)?;
    let removed = sweep_stale(&cfg.dir, cfg.partial_ttl)?;
    if removed > 0 {
        log::info!("removed {removed} stale partial upload(s)");
    }
    Ok(UploadHandler {
        cfg: Arc::new(cfg),
        last_sweep: Arc::new(Mutex::new(Instant::now())),
    })
}

/// Why a plain name is refused, or `None` if it is acceptable.
pub fn check_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("file name is empty")
    } else if name.len() > 255 {
        Some("file name is longer than 255 bytes")
    } else if name == "." || name == ".." {
        Some("file name may not be . or ..")
    } else if name.contains(['/', '\\']) {
        Some("file name may not contain a path separator")
    } else if name.contains('\0') {
        Some("file name may not contain NUL")
    } else if name.starts_with(TMP_PREFIX) {
        Some("file names starting with .upload- are reserved")
    } else {
        None
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Path of the resumable partial file of an upload of `name` with `size` bytes.
pub fn partial_path(dir: &Path, name: &str, size: u64) -> PathBuf {
    let key = hex(&Sha256::digest(name.as_bytes()));
    dir.join(format!("{TMP_PREFIX}{key}-{size}{PARTIAL_SUFFIX}"))
}

fn temp_path(dir: &Path, name: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let key = hex(&Sha256::digest(name.as_bytes())[..8]);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dir.join(format!(
        "{TMP_PREFIX}{key}-{}-{n}-{nanos}{TEMP_SUFFIX}",
        std::process::id()
    ))
}

/// An exclusive lock without waiting (`flock(LOCK_EX | LOCK_NB)` on Linux):
/// true if this open file now holds the lock.
fn try_lock(f: &File) -> io::Result<bool> {
    match f.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Opens (creating if needed) and locks `path`; `None` if another upload
/// holds it. The lock is held until the file is closed. Works across threads
/// and forked processes alike.
fn open_locked(path: &Path) -> io::Result<Option<File>> {
    for _ in 0..5 {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if !try_lock(&f)? {
            return Ok(None);
        }
        // The file may have been renamed into place (or swept) between our
        // open and our lock: only keep it if the path still names it.
        let mine = f.metadata()?;
        match fs::metadata(path) {
            Ok(m) if m.ino() == mine.ino() && m.dev() == mine.dev() => return Ok(Some(f)),
            _ => continue,
        }
    }
    Ok(None)
}

/// Removes temporary files in `dir` not modified for `ttl` and not in use.
/// Returns how many were removed.
pub fn sweep_stale(dir: &Path, ttl: Duration) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(TMP_PREFIX)
            || !(name.ends_with(PARTIAL_SUFFIX) || name.ends_with(TEMP_SUFFIX))
        {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .unwrap_or_default();
        if age < ttl {
            continue;
        }
        let Ok(f) = File::open(entry.path()) else {
            continue;
        };
        if try_lock(&f).unwrap_or(false) && fs::remove_file(entry.path()).is_ok() {
            log::info!("removed stale partial upload {name}");
            removed += 1;
        }
    }
    Ok(removed)
}

/// Writes a framed JSON reply; a client that has already gone (the
/// lesson's client never reads) is not an error.
fn reply(w: &mut impl Write, value: &serde_json::Value) -> io::Result<()> {
    match FrameFormat::LESSON.write_json(w, value) {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) =>
        {
            log::debug!("client left before reading the reply: {e}");
            Ok(())
        }
        other => other,
    }
}

fn refuse(req: &mut StreamRequest, error: &str) -> HandlerResult {
    log::warn!("{}: refused: {error}", req.peer);
    reply(&mut req.wfile, &json!({"ok": false, "error": error}))?;
    Ok(())
}

fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// The temporary file an upload writes into.
struct Temp {
    file: File,
    path: PathBuf,
    /// Keyed by name and size: kept for a resume when the upload is cut.
    resumable: bool,
}

/// How the body transfer ended, when it did not complete.
enum BodyError {
    /// The connection failed (gone, timed out, cut): keep data for resume.
    Connection(io::Error),
    /// Writing the file failed.
    Disk(io::Error),
}

impl UploadHandler {
    /// The configuration in use.
    pub fn config(&self) -> &UploadConfig {
        &self.cfg
    }

    /// Picks the temporary file: the keyed partial if free (waiting a little
    /// for it when resuming), else a fresh one-off file.
    fn temp_for(&self, h: &UploadHeader) -> io::Result<Option<Temp>> {
        let path = partial_path(&self.cfg.dir, &h.file_name, h.file_size);
        let deadline = Instant::now() + RESUME_LOCK_WAIT;
        loop {
            if let Some(file) = open_locked(&path)? {
                return Ok(Some(Temp {
                    file,
                    path,
                    resumable: true,
                }));
            }
            if !h.resume {
                break;
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let path = temp_path(&self.cfg.dir, &h.file_name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        try_lock(&file)?;
        Ok(Some(Temp {
            file,
            path,
            resumable: false,
        }))
    }

    fn upload(&self, req: &mut StreamRequest, h: UploadHeader) -> HandlerResult {
        let peer = req.peer.clone();
        if let Some(why) = check_name(&h.file_name) {
            return refuse(req, why);
        }
        if h.file_size > self.cfg.max_size {
            let msg = format!(
                "file is too large: {} bytes, the limit is {}",
                h.file_size, self.cfg.max_size
            );
            return refuse(req, &msg);
        }
        let expected = match h.sha256.as_deref().map(str::to_ascii_lowercase) {
            Some(s) if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                return refuse(req, "sha256 must be 64 hex digits");
            }
            other => other,
        };
        let mut tmp = match self.temp_for(&h) {
            Ok(Some(tmp)) => tmp,
            Ok(None) => {
                return refuse(
                    req,
                    "an upload of this name and size is in progress; try again later",
                );
            }
            Err(e) => {
                return refuse(req, &format!("cannot create a file on the server: {e}"));
            }
        };

        let mut hasher = Sha256::new();
        let prepared = (|| -> io::Result<u64> {
            let mut offset = 0;
            if h.resume && tmp.resumable {
                let have = tmp.file.metadata()?.len();
                if have <= h.file_size {
                    offset = hash_prefix(&mut tmp.file, have, &mut hasher)?;
                }
            }
            tmp.file.set_len(offset)?;
            tmp.file.seek(SeekFrom::Start(offset))?;
            Ok(offset)
        })();
        let offset = match prepared {
            Ok(offset) => offset,
            Err(e) => {
                let _ = fs::remove_file(&tmp.path);
                return refuse(req, &format!("cannot prepare the file on the server: {e}"));
            }
        };
        if h.resume {
            reply(&mut req.wfile, &json!({"offset": offset}))?;
        }
        log::info!(
            "{peer}: receiving {:?}, {} bytes from offset {offset}",
            h.file_name,
            h.file_size
        );

        let started = Instant::now();
        match receive(
            &mut req.rfile,
            &mut tmp.file,
            &mut hasher,
            h.file_size - offset,
        ) {
            Ok(()) => {}
            Err(BodyError::Connection(e)) => {
                let have = tmp.file.metadata().map(|m| m.len()).unwrap_or(0);
                if tmp.resumable && have > 0 {
                    log::info!(
                        "{peer}: upload of {:?} cut at {have} of {} bytes ({e}); kept for resume",
                        h.file_name,
                        h.file_size
                    );
                } else {
                    log::info!("{peer}: upload of {:?} cut ({e})", h.file_name);
                    let _ = fs::remove_file(&tmp.path);
                }
                return Ok(());
            }
            Err(BodyError::Disk(e)) => {
                let _ = fs::remove_file(&tmp.path);
                let msg = if is_disk_full(&e) {
                    format!("disk full on the server: {e}")
                } else {
                    format!("cannot write the file on the server: {e}")
                };
                return refuse(req, &msg);
            }
        }

        let digest = hex(&hasher.finalize());
        if let Some(expected) = expected
            && expected != digest
        {
            let _ = fs::remove_file(&tmp.path);
            let msg =
                format!("sha256 mismatch: received data hashes to {digest}, expected {expected}");
            return refuse(req, &msg);
        }
        let fin = self.cfg.dir.join(&h.file_name);
        // Rename and announce under one lock, so the order of the `stored`
        // lines is the order of the renames (the last one wins).
        static COMMIT: Mutex<()> = Mutex::new(());
        let committed = tmp.file.sync_all().and_then(|()| {
            let _order = COMMIT.lock().unwrap_or_else(|e| e.into_inner());
            fs::rename(&tmp.path, &fin)?;
            if self.cfg.announce {
                let mut out = io::stdout().lock();
                let _ = writeln!(out, "stored {} {digest} {}", h.file_size, h.file_name);
                let _ = out.flush();
            }
            Ok(())
        });
        if let Err(e) = committed {
            let _ = fs::remove_file(&tmp.path);
            let msg = if is_disk_full(&e) {
                format!("disk full on the server: {e}")
            } else {
                format!("cannot store the file on the server: {e}")
            };
            return refuse(req, &msg);
        }
        drop(tmp);
        // The rename is durable once the directory is.
        if let Err(e) = File::open(&self.cfg.dir).and_then(|d| d.sync_all()) {
            log::warn!("fsync of {}: {e}", self.cfg.dir.display());
        }
        remove_other_partials(&self.cfg.dir, &h.file_name);
        let secs = started.elapsed().as_secs_f64();
        log::info!(
            "{peer}: stored {:?}: {} bytes ({} received in {secs:.2} s, {:.1} MiB/s), sha256 {digest}",
            h.file_name,
            h.file_size,
            h.file_size - offset,
            (h.file_size - offset) as f64 / (1 << 20) as f64 / secs.max(1e-9)
        );
        reply(
            &mut req.wfile,
            &json!({"ok": true, "file_name": h.file_name, "size": h.file_size, "sha256": digest}),
        )?;
        Ok(())
    }
}

/// Size-based cleanup: once `name` is stored, partial uploads of it with
/// other sizes (an older version of the file) will never be resumed.
fn remove_other_partials(dir: &Path, name: &str) {
    let Some(prefix) = partial_path(dir, name, 0)
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| {
            n.trim_end_matches(&format!("0{PARTIAL_SUFFIX}"))
                .to_string()
        })
    else {
        return;
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        if n.starts_with(&prefix)
            && n.ends_with(PARTIAL_SUFFIX)
            && let Ok(f) = File::open(entry.path())
            && try_lock(&f).unwrap_or(false)
            && fs::remove_file(entry.path()).is_ok()
        {
            log::info!("removed outdated partial upload of {name:?} ({n})");
        }
    }
}

/// Feeds the first `len` bytes of `f` to `hasher`; returns how many it
/// could read (less than `len` only if the file shrank).
fn hash_prefix(f: &mut File, len: u64, hasher: &mut Sha256) -> io::Result<u64> {
    f.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let want = CHUNK.min((len - done) as usize);
        let n = f.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    Ok(done)
}

/// Streams exactly `len` bytes from `r` into `f` and `hasher`.
fn receive(
    r: &mut impl Read,
    f: &mut File,
    hasher: &mut Sha256,
    len: u64,
) -> Result<(), BodyError> {
    let mut buf = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        let want = CHUNK.min(usize::try_from(left).unwrap_or(CHUNK));
        let n = match r.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(BodyError::Connection(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("client closed after {} of {len} bytes", len - left),
                )));
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(BodyError::Connection(e)),
        };
        f.write_all(&buf[..n]).map_err(BodyError::Disk)?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

impl StreamHandler for UploadHandler {
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        req.set_read_timeout(self.cfg.timeout)?;
        let header: UploadHeader = match FrameFormat::LESSON.read_json(&mut req.rfile) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(()), // connected and left
            Err(e) if e.kind() == ErrorKind::InvalidData => {
                return refuse(req, &format!("bad header: {e}"));
            }
            Err(e) => {
                log::info!("{}: no header: {e}", req.peer);
                return Ok(());
            }
        };
        self.upload(req, header)
    }

    fn service_actions(&self) {
        let mut last = self.last_sweep.lock().unwrap_or_else(|e| e.into_inner());
        let every =
            (self.cfg.partial_ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
        if last.elapsed() < every {
            return;
        }
        *last = Instant::now();
        if let Err(e) = sweep_stale(&self.cfg.dir, self.cfg.partial_ttl) {
            log::warn!("cleaning up stale partial uploads: {e}");
        }
    }
}

/// Upload server options.
#[derive(Debug, Parser)]
#[command(about = "Receive files: streamed, verified (SHA-256), atomic, resumable")]
struct Cli {
    /// Address to listen on; port 0 lets the OS pick.
    #[arg(long, default_value = "127.0.0.1:9527")]
    addr: String,
    /// Directory to store uploads in.
    #[arg(long, default_value = "./uploads")]
    dir: PathBuf,
    /// Largest upload accepted, in bytes.
    #[arg(long, default_value_t = 64 << 30)]
    max_size: u64,
    /// Seconds a client may stay silent before it is cut off (0 = never).
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Hours after which an untouched partial upload is deleted.
    #[arg(long, default_value_t = 24.0)]
    partial_ttl: f64,
    #[command(flatten)]
    serve: common::ServeArgs,
}

fn main() -> io::Result<()> {
    common::init_logging();
    let cli = Cli::parse();
    let cfg = UploadConfig {
        dir: cli.dir,
        max_size: cli.max_size,
        timeout: (cli.timeout > 0.0).then(|| Duration::from_secs_f64(cli.timeout)),
        partial_ttl: Duration::from_secs_f64(cli.partial_ttl * 3600.0),
        announce: true,
    };
    let sweep_every =
        (cfg.partial_ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let h = handler(cfg)?;
    let builder = cli.serve.builder().service_interval(sweep_every);
    common::serve(builder.bind_tcp(cli.addr.as_str(), h)?)
}
