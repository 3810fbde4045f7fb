//! Guards interrupted uploads: who may continue one, and that a partial
//! file is used by one upload at a time.
//!
//! A cut upload that declared its SHA-256 is kept as
//! `.upload-<name key>-<key>-<size>.partial`, where the key is a digest of
//! name, size and SHA-256. Only an upload that declares all three again
//! (and so knows the whole file's hash) finds it: anyone else starts from
//! zero in a file of their own, and cannot read its progress, complete it
//! or wipe it. An upload without a declared hash writes a one-off
//! `.upload-<random>-<size>.part`, removed if the upload is cut.
//!
//! A partial in use is locked (`flock`); a second upload of the same file
//! waits a few seconds for it when resuming, and otherwise writes a one-off
//! file. Locks work across threads and forked processes alike.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::common::hex;
use super::files::{Dir, Temp};
use super::names::RESERVED_PREFIX;
use super::quota::{self, Quota};
use super::replies::{Stop, disk};

/// Suffix of a resumable partial upload.
pub const PARTIAL: &str = ".partial";
/// Suffix of a one-off temporary file.
pub const ONE_OFF: &str = ".part";
/// How long a resuming upload waits for the upload it continues to let go.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// The part of every partial's name that depends on the file name only.
pub fn name_prefix(name: &str) -> String {
    let key = hex(&Sha256::digest(name.as_bytes())[..8]);
    format!("{RESERVED_PREFIX}{key}-")
}

/// Name of the resumable partial of `name` with `size` bytes and `sha256`.
pub fn partial_name(name: &str, size: u64, sha256: &str) -> String {
    let key = Sha256::digest(format!("{name}\0{size}\0{sha256}"));
    format!("{}{}-{size}{PARTIAL}", name_prefix(name), hex(&key[..16]))
}

/// The size a temporary file's name declares (what it may grow to).
pub fn declared_size(file_name: &str) -> Option<u64> {
    let stem = file_name.strip_prefix(RESERVED_PREFIX)?;
    let stem = stem
        .strip_suffix(PARTIAL)
        .or_else(|| stem.strip_suffix(ONE_OFF))?;
    stem.rsplit('-').next()?.parse().ok()
}

/// An exclusive lock without waiting: true if `f` now holds it.
pub fn try_lock(f: &std::fs::File) -> io::Result<bool> {
    match f.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Opens (creating if needed) and locks partial `name`; `None` if another
/// upload holds it.
fn open_locked(dir: &Arc<Dir>, name: &str) -> io::Result<Option<Temp>> {
    for _ in 0..5 {
        let file = match dir.open_own(name) {
            Ok(Some(f)) => f,
            Ok(None) => match dir.create_new(name) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                other => other?,
            },
            // Planted (a symlink, a hard link, someone else's file): remove
            // the name, never what it points to, and start afresh.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                log::warn!("{e}: removed");
                dir.remove(name)?;
                continue;
            }
            Err(e) => return Err(e),
        };
        if !try_lock(&file)? {
            return Ok(None);
        }
        // Renamed into place or swept between our open and our lock? Only
        // keep it if the name still refers to it.
        let st = rustix::fs::fstat(&file)?;
        if dir.identity(name) == Some((st.st_dev as u64, st.st_ino as u64)) {
            return Ok(Some(Temp::new(
                Arc::clone(dir),
                name.to_string(),
                file,
                true,
            )));
        }
    }
    Ok(None)
}

/// The temporary file for an upload, once the quota has made room for it:
/// its partial when the hash is declared (waiting for it when resuming),
/// else a one-off file.
pub fn open(
    dir: &Arc<Dir>,
    quota: &Quota,
    name: &str,
    size: u64,
    sha256: Option<&str>,
    resume: bool,
) -> Result<Temp, Stop> {
    let partial = sha256.map(|sha| partial_name(name, size, sha));
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        // Admission and creation under one lock: the next upload counts this one.
        let admit = quota::ADMIT.lock().unwrap_or_else(|e| e.into_inner());
        quota
            .admit(dir, size, partial.as_deref())
            .map_err(Stop::Refused)?;
        let Some(partial) = &partial else { break };
        if let Some(t) = open_locked(dir, partial).map_err(disk)? {
            return Ok(t);
        }
        if !resume {
            break;
        }
        drop(admit);
        if Instant::now() >= deadline {
            let why = "an upload of this file is in progress; try again later";
            return Err(Stop::Refused(why.into()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let random = super::auth::random_hex().map_err(disk)?;
    let one_off = format!("{RESERVED_PREFIX}{random}-{size}{ONE_OFF}");
    let file = dir.create_new(&one_off).map_err(disk)?;
    try_lock(&file).map_err(disk)?;
    Ok(Temp::new(Arc::clone(dir), one_off, file, false))
}

/// Positions `tmp` where the body starts: when resuming, after the part
/// already there (at most `size`), fed to `hasher`; otherwise at 0, the
/// file emptied.
pub fn start(tmp: &mut Temp, size: u64, resume: bool, hasher: &mut Sha256) -> io::Result<u64> {
    let have = tmp.file.metadata()?.len();
    let offset = if resume && have <= size { have } else { 0 };
    tmp.file.seek(SeekFrom::Start(0))?;
    if io::copy(&mut (&tmp.file).take(offset), hasher)? != offset {
        return Err(io::Error::other("the partial file shrank while reading it"));
    }
    tmp.file.set_len(offset)?;
    tmp.file.seek(SeekFrom::Start(offset))?;
    Ok(offset)
}

/// What a cut upload leaves: a resumable partial with data in it is kept,
/// anything else is removed (when `tmp` is dropped).
pub fn cut(tmp: &mut Temp, name: &str, why: &str) -> Stop {
    match tmp.keep_if_resumable() {
        Some(have) => Stop::Cut(format!(
            "upload of {name} cut at {have} bytes ({why}); kept for resume"
        )),
        None => Stop::Cut(format!("upload of {name} cut ({why})")),
    }
}
