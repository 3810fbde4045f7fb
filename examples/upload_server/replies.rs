//! Guards what the client is told: a refusal says why, a connection that
//! is gone or too slow is only logged, and a client that left before the
//! reply (the lesson's client never reads one) is not an error.

use std::io::{self, ErrorKind, Write};
use std::sync::Mutex;

use super::files::Temp;
use super::{HEADER, names};

/// Why an upload ended early: refused (the client is told why), or cut
/// (the connection is gone or too slow; only logged).
pub enum Stop {
    Refused(String),
    Cut(String),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        Stop::Cut(e.to_string())
    }
}

/// A refusal for a failed file operation.
pub fn disk(e: io::Error) -> Stop {
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => Stop::Refused(format!("disk full on the server: {e}")),
        _ => Stop::Refused(format!("cannot write the file on the server: {e}")),
    }
}

/// Writes a framed JSON reply; a client that has gone (the lesson's client
/// never reads) is not an error.
pub fn reply(w: &mut impl Write, value: &serde_json::Value) -> io::Result<()> {
    match HEADER.write_json(w, value) {
        Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => Ok(()),
        other => other,
    }
}

/// Renames `tmp` to `name` and announces `stored <size> <sha256> <name>`
/// on stdout, under one lock: the lines come in the order of the renames.
pub fn store(
    tmp: Temp,
    name: &str,
    replace: bool,
    announce: Option<(u64, &str)>,
) -> Result<(), Stop> {
    static ORDER: Mutex<()> = Mutex::new(());
    let _order = ORDER.lock().unwrap_or_else(|e| e.into_inner());
    tmp.commit(name, replace).map_err(|e| match e.kind() {
        ErrorKind::AlreadyExists => {
            Stop::Refused("a file of that name was stored meanwhile".into())
        }
        _ => disk(e),
    })?;
    if let Some((size, digest)) = announce {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "stored {size} {digest} {}", names::escape(name));
        let _ = out.flush();
    }
    Ok(())
}
