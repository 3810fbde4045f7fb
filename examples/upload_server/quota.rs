//! Guards the disk and the server's time against uploads that never finish.
//!
//! - Space: every temporary file counts for the size its upload declared
//!   (the size is in its name). Before a body is read, the uploads in
//!   progress plus kept partials plus this one must fit in
//!   `--max-partial-bytes`, and this one's remaining bytes (plus
//!   `--min-free`) in the disk's free space. When they do not, idle partials
//!   (not locked by an upload in progress) are removed oldest first: cut
//!   uploads can never lock a real upload out. Only uploads in progress can
//!   refuse one ("busy").
//! - Per client address at most `--max-uploads-per-ip` uploads at once.
//! - Time: the header must arrive within `--header-timeout` of connecting
//!   (a pre-request deadline), and the body must keep an average of
//!   `--min-rate` bytes per second after a grace of `--timeout` seconds; a
//!   trickle of one byte at a time is cut as surely as silence.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use socketserver::Stream;

use super::files::Dir;
use super::resume::{declared_size, try_lock};

/// Limits on space and concurrency.
#[derive(Debug)]
pub struct Quota {
    pub max_partial_bytes: u64,
    pub min_free: u64,
    pub max_per_ip: usize,
    active: Mutex<HashMap<IpAddr, usize>>,
}

/// One upload in progress from an address; counted until dropped.
#[derive(Debug)]
pub struct Slot {
    quota: Arc<Quota>,
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        let mut active = self.quota.active.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = active.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                active.remove(&ip);
            }
        }
    }
}

/// Serialises admission with the creation of the file it admits.
pub static ADMIT: Mutex<()> = Mutex::new(());

impl Quota {
    pub fn new(max_partial_bytes: u64, min_free: u64, max_per_ip: usize) -> Quota {
        let active = Mutex::default();
        Quota {
            max_partial_bytes,
            min_free,
            max_per_ip,
            active,
        }
    }

    /// Counts one more upload from `ip`, or refuses it.
    pub fn slot(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Slot, String> {
        if let Some(ip) = ip {
            let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
            let n = active.entry(ip).or_default();
            if *n >= self.max_per_ip {
                return Err(format!(
                    "too many uploads from {ip} at once; try again later"
                ));
            }
            *n += 1;
        }
        let quota = Arc::clone(self);
        Ok(Slot { quota, ip })
    }

    /// Makes room for `size` more bytes (`have` of them already on disk in
    /// `own`, the upload's partial, if any), removing idle partials if need
    /// be. Call with [`ADMIT`] held until the upload's file exists.
    pub fn admit(&self, dir: &Dir, size: u64, own: Option<&str>) -> Result<(), String> {
        if size > self.max_partial_bytes {
            return Err(format!(
                "disk full on the server: {size} bytes is more than its space for uploads in progress ({} bytes)",
                self.max_partial_bytes
            ));
        }
        let mut temps = temporaries(dir).map_err(|e| format!("cannot list uploads: {e}"))?;
        temps.retain(|t| Some(t.name.as_str()) != own);
        let mut used: u64 = temps.iter().map(|t| t.size).sum();
        let mut free = dir.free_bytes().unwrap_or(u64::MAX);
        temps.sort_by_key(|t| t.modified);
        let mut idle = temps.into_iter();
        while used + size > self.max_partial_bytes || free < size.saturating_add(self.min_free) {
            let Some(t) = idle.next() else {
                return Err(format!(
                    "disk full on the server: no room for {size} bytes ({used} bytes in uploads in progress, {free} bytes free); try again later"
                ));
            };
            if let Some(freed) = evict(dir, &t.name) {
                log::info!("removed idle partial upload {} to make room", t.name);
                used -= t.size;
                free = dir.free_bytes().unwrap_or(free.saturating_add(freed));
            }
        }
        Ok(())
    }
}

/// A temporary file and what it counts for.
struct Temporary {
    name: String,
    size: u64,
    modified: SystemTime,
}

fn temporaries(dir: &Dir) -> io::Result<Vec<Temporary>> {
    let mut out = Vec::new();
    for name in dir.names()? {
        let Some(size) = declared_size(&name) else {
            continue;
        };
        // Only the server's own files count (not a planted symlink).
        let Ok(meta) = std::fs::symlink_metadata(dir.path().join(&name)) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        out.push(Temporary {
            name,
            size,
            modified,
        });
    }
    Ok(out)
}

/// Removes temporary file `name` if no upload holds it; the bytes it held.
pub fn evict(dir: &Dir, name: &str) -> Option<u64> {
    let f = dir.open_own(name).ok()??;
    if !try_lock(&f).unwrap_or(false) {
        return None;
    }
    let held = f.metadata().map(|m| m.len()).unwrap_or(0);
    dir.remove(name).ok()?;
    Some(held)
}

/// A reader that fails once its client is too slow: past a fixed deadline
/// (the header), or behind a minimum average rate after a grace (the body).
pub struct Paced<R> {
    inner: R,
    sock: Stream,
    started: Instant,
    got: u64,
    grace: Duration,
    /// Bytes per second (`Some(0)`: no minimum, only `grace` of silence);
    /// `None` for a fixed deadline of `grace`.
    min_rate: Option<u64>,
}

impl<R: Read> Paced<R> {
    /// All of it within `limit`.
    pub fn deadline(inner: R, sock: Stream, limit: Duration) -> Paced<R> {
        let mut p = Paced::min_rate(inner, sock, limit, 0);
        p.min_rate = None;
        p
    }

    /// At least `min_rate` bytes per second on average, after `grace`.
    pub fn min_rate(inner: R, sock: Stream, grace: Duration, min_rate: u64) -> Paced<R> {
        let started = Instant::now();
        Paced {
            inner,
            sock,
            started,
            got: 0,
            grace,
            min_rate: Some(min_rate),
        }
    }

    /// When the next byte is due at the latest.
    fn due(&self) -> Instant {
        let earned = match self.min_rate {
            None => Duration::ZERO,
            Some(0) => return Instant::now() + self.grace,
            Some(rate) => Duration::from_secs_f64(self.got as f64 / rate as f64),
        };
        self.started + self.grace + earned
    }
}

impl<R: Read> Read for Paced<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.due().saturating_duration_since(Instant::now());
        if left.is_zero() {
            let why = match self.min_rate {
                None | Some(0) => format!("not received within {:?}", self.grace),
                Some(rate) => format!("slower than {rate} bytes/s"),
            };
            return Err(io::Error::new(io::ErrorKind::TimedOut, why));
        }
        let wait = left.min(self.grace).max(Duration::from_millis(1));
        self.sock.set_read_timeout(Some(wait))?;
        let n = self.inner.read(buf).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => io::Error::new(io::ErrorKind::TimedOut, "timed out"),
            _ => e,
        })?;
        self.got += n as u64;
        Ok(n)
    }
}
