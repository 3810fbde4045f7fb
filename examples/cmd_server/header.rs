//! What travels in the lesson's JSON headers: the request a client sends
//! (framed form) and the header of every answer.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::common::hex;

/// The `filename` of every answer (the lesson put a placeholder there).
pub const FILENAME: &str = "stdout+stderr";

/// A framed request: `{"cmd": "ls -l", "token": "..."}`.
#[derive(Debug, Deserialize)]
pub struct Request {
    /// The shell command line.
    pub cmd: String,
    /// The server's token (optional only on the Unix socket).
    #[serde(default)]
    pub token: Option<String>,
}

/// The JSON header of every answer. `filename`, `total_size` and `hash` are
/// the lesson's fields, so the lesson's client reads it unchanged.
#[derive(Debug, Default, Serialize)]
pub struct Header {
    /// What the body is: [`FILENAME`].
    pub filename: String,
    /// Body length: stdout then stderr (0 for an error).
    pub total_size: usize,
    /// SHA-256 of the body, in hex (the lesson's was a placeholder).
    pub hash: String,
    /// Exit code, or 128 + the signal that ended the command (137 after the
    /// timeout's `SIGKILL`).
    pub exit_code: Option<i32>,
    /// Bytes of stdout at the start of the body.
    pub stdout_size: usize,
    /// Bytes of stderr after them.
    pub stderr_size: usize,
    /// Killed at the timeout.
    pub timed_out: bool,
    /// Output past a cap was discarded.
    pub truncated: bool,
    /// Why the request was refused (the connection closes after it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Header {
    /// The header of a command's answer.
    pub fn new(stdout: &[u8], stderr: &[u8], exit_code: i32) -> Header {
        let mut hash = Sha256::new();
        hash.update(stdout);
        hash.update(stderr);
        Header {
            filename: FILENAME.into(),
            total_size: stdout.len() + stderr.len(),
            hash: hex(&hash.finalize()),
            exit_code: Some(exit_code),
            stdout_size: stdout.len(),
            stderr_size: stderr.len(),
            ..Default::default()
        }
    }

    /// The header of a refusal (no body).
    pub fn refusal(msg: &str) -> Header {
        Header {
            error: Some(msg.into()),
            exit_code: None,
            ..Header::new(b"", b"", 0)
        }
    }
}
