//! Guards who may upload: a shared secret token in the header.
//!
//! - The token comes from `--token-file` (created with 128 random bits,
//!   mode 0600, if the file does not exist) and is never on the command
//!   line, where `/proc/PID/cmdline` shows it to every local user. Without
//!   `--token-file` a fresh token is printed on stderr at start.
//! - A token shorter than 32 characters (16 random bytes in hex) is refused;
//!   a token file readable by group or others is refused.
//! - The comparison is of SHA-256 digests, so its time does not depend on
//!   how much of the token was right, nor on its length; each failure is
//!   answered after a one-second pause (a guesser gets one try per second
//!   per connection, and connections are capped).
//! - `--lesson` also accepts headers without a token (the lesson's Python
//!   client cannot send one), only when the server listens on loopback.
//!   Such guest uploads may create new files only: never overwrite, never
//!   resume.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Shortest token accepted, in characters.
pub const MIN_TOKEN_LEN: usize = 32;
/// Pause before refusing a wrong token.
const FAILURE_PAUSE: Duration = Duration::from_secs(1);

/// Who sent an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Presented the token.
    Owner,
    /// No token, accepted because of `--lesson`.
    Guest,
}

/// The server's token, kept as its digest.
#[derive(Debug, Clone)]
pub struct Auth {
    digest: [u8; 32],
    lesson: bool,
}

/// 16 random bytes from the kernel, in hex: a token, an upload id.
pub fn random_hex() -> io::Result<String> {
    super::common::random_hex(16)
}

impl Auth {
    /// Checks `token` is long enough and keeps its digest.
    pub fn new(token: &str, lesson: bool) -> io::Result<Auth> {
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err(io::Error::other(format!(
                "the token must be at least {MIN_TOKEN_LEN} characters (16 random bytes in hex)"
            )));
        }
        let digest = Sha256::digest(token.as_bytes()).into();
        Ok(Auth { digest, lesson })
    }

    /// Reads the token from `path`, or creates the file with a new token;
    /// without a path, makes a new token and prints it on stderr.
    pub fn load(path: Option<&Path>, lesson: bool) -> io::Result<Auth> {
        let Some(path) = path else {
            let token = random_hex()?;
            eprintln!("upload token: {token} (give it to upload_client with --token-file)");
            return Auth::new(&token, lesson);
        };
        match fs::metadata(path) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => Err(io::Error::other(format!(
                "{} is readable by others: chmod 600 it",
                path.display()
            ))),
            Ok(_) => Auth::new(fs::read_to_string(path)?.trim(), lesson),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let token = random_hex()?;
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                writeln!(f, "{token}")?;
                eprintln!("upload token written to {}", path.display());
                Auth::new(&token, lesson)
            }
            Err(e) => Err(e),
        }
    }

    /// True if uploads without a token are accepted (`--lesson`).
    pub fn lesson(&self) -> bool {
        self.lesson
    }

    /// Who the header's `token` makes its sender, or why it is refused.
    pub fn check(&self, token: Option<&str>) -> Result<Who, &'static str> {
        match token {
            None if self.lesson => Ok(Who::Guest),
            None => Err("a token is required (upload_client --token-file)"),
            Some(t) => {
                let given: [u8; 32] = Sha256::digest(t.as_bytes()).into();
                if given == self.digest {
                    Ok(Who::Owner)
                } else {
                    std::thread::sleep(FAILURE_PAUSE);
                    Err("wrong token")
                }
            }
        }
    }
}
