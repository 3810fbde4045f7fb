//! Who may run commands: a shared token (never a short one, compared as
//! digests), a per-IP back-off after failures, and `SO_PEERCRED` on the Unix
//! socket.
//!
//! The token comes from `CMD_TOKEN` (removed from the environment at start,
//! so no command inherits it), from `--token-file PATH` (read if it exists,
//! otherwise generated and written there with mode 0600), or is generated
//! (128 random bits) and printed on stderr. There is no `--token` option: a
//! command line is world-readable in `/proc/PID/cmdline`.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use socketserver::StreamRequest;

use super::sys;

/// The environment variable a token may come from.
pub const TOKEN_VAR: &str = "CMD_TOKEN";
/// Shortest token accepted: 16 random bytes written in hex.
pub const MIN_TOKEN_LEN: usize = 32;
/// Failed attempts an IP may make before it has to wait.
pub const FREE_FAILURES: u32 = 3;
/// Longest wait imposed after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// IPs remembered at most (the oldest unblocked ones are forgotten first).
const MAX_TRACKED: usize = 4096;

pub use super::common::random_hex;

/// The shared secret, kept only as its SHA-256.
#[derive(Clone)]
pub struct Token([u8; 32]);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A token from a secret someone chose; refused if it is too short or too
    /// uniform to be 16 random bytes.
    pub fn new(secret: &str) -> Result<Token, String> {
        let distinct = secret
            .bytes()
            .collect::<std::collections::HashSet<_>>()
            .len();
        if secret.len() < MIN_TOKEN_LEN || distinct < 8 {
            return Err(format!(
                "a token must be at least {MIN_TOKEN_LEN} characters of random data, e.g. \
                 `head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'`"
            ));
        }
        Ok(Token(Sha256::digest(secret.as_bytes()).into()))
    }

    /// A fresh token of 128 random bits, and its secret (32 hex digits).
    pub fn generate() -> io::Result<(Token, String)> {
        let secret = random_hex(16)?;
        let token = Token::new(&secret).map_err(io::Error::other)?;
        Ok((token, secret))
    }

    /// Whether `given` is the secret. Comparing digests takes the same time
    /// whatever `given`'s length, and the XOR fold does not stop early.
    pub fn matches(&self, given: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        digest
            .iter()
            .zip(&self.0)
            .fold(0, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Takes the token out of `CMD_TOKEN`, removing the variable. Call it first
/// in `main`, before any thread starts.
pub fn take_env_token() -> Option<String> {
    let value = std::env::var(TOKEN_VAR).ok();
    sys::remove_env(TOKEN_VAR);
    value.filter(|t| !t.is_empty())
}

/// The server's token, and the secret to print when it was generated here
/// without a file to write it to.
pub fn load(env: Option<String>, file: Option<&Path>) -> Result<(Token, Option<String>), String> {
    if let Some(secret) = env {
        return Ok((Token::new(&secret)?, None));
    }
    let Some(path) = file else {
        let (token, secret) = Token::generate().map_err(|e| e.to_string())?;
        return Ok((token, Some(secret)));
    };
    match read_private(path) {
        Ok(secret) => Ok((Token::new(&secret)?, None)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let (token, secret) = Token::generate().map_err(|e| e.to_string())?;
            write_private(path, &secret)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("cmd_server: wrote a new token to {}", path.display());
            Ok((token, None))
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes a new token file only its owner can read.
fn write_private(path: &Path, secret: &str) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{secret}")
}

/// Reads a token file, refusing one that others can read (as ssh does).
pub fn read_private(path: &Path) -> io::Result<String> {
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(io::Error::other(format!(
            "mode {:o} lets others read it: chmod 600",
            mode & 0o777
        )));
    }
    Ok(fs::read_to_string(path)?.trim().to_string())
}

/// Who is at the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A Unix-socket peer running as our own user (checked by `SO_PEERCRED`).
    SameUser,
    /// A TCP peer, by its canonical IP (`::ffff:127.0.0.1` is `127.0.0.1`).
    Ip(IpAddr),
}

impl Peer {
    /// Identifies the peer of `req`; a Unix-socket peer of another user is
    /// refused with a message.
    pub fn of(req: &StreamRequest) -> Result<Peer, String> {
        if let Some(unix) = req.stream().as_unix() {
            let uid = sys::peer_uid(unix).map_err(|e| format!("SO_PEERCRED: {e}"))?;
            if uid != sys::euid() {
                return Err(format!("uid {uid} may not use this server's socket"));
            }
            return Ok(Peer::SameUser);
        }
        req.peer
            .ip()
            .map(Peer::Ip)
            .ok_or_else(|| "unknown peer".into())
    }

    /// On this machine: the same user on the Unix socket, or a loopback IP.
    pub fn is_local(self) -> bool {
        match self {
            Peer::SameUser => true,
            Peer::Ip(ip) => ip.is_loopback(),
        }
    }
}

/// Failed attempts per IP, and how long each must wait before the next.
#[derive(Debug, Default)]
pub struct Backoff(Mutex<HashMap<IpAddr, (u32, Instant)>>);

impl Backoff {
    /// `Err(wait)` while `ip` must still wait after its failures.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        match self.0.lock().unwrap().get(&ip) {
            Some(&(_, until)) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failure: past [`FREE_FAILURES`], each one doubles the wait
    /// (1 s, 2 s, 4 s, ... up to [`MAX_BACKOFF`]).
    pub fn failed(&self, ip: IpAddr) {
        let mut map = self.0.lock().unwrap();
        let now = Instant::now();
        if map.len() >= MAX_TRACKED {
            map.retain(|_, &mut (_, until)| until > now);
        }
        let entry = map.entry(ip).or_insert((0, now));
        entry.0 += 1;
        if let Some(over) = entry.0.checked_sub(FREE_FAILURES) {
            entry.1 = now + MAX_BACKOFF.min(Duration::from_secs(1) * 2u32.pow(over.min(6)));
        }
    }

    /// Forgets `ip`'s failures after it got in.
    pub fn succeeded(&self, ip: IpAddr) {
        self.0.lock().unwrap().remove(&ip);
    }
}

/// What the server checks a request against.
#[derive(Debug)]
pub struct Auth {
    /// The shared secret.
    pub token: Token,
    /// Per-IP back-off after failed attempts.
    pub backoff: Backoff,
}

impl Auth {
    /// Requires `token`, with a fresh back-off.
    pub fn new(token: Token) -> Auth {
        Auth {
            token,
            backoff: Backoff::default(),
        }
    }

    /// Checks `ip` may try at all (the back-off).
    pub fn may_try(&self, peer: Peer) -> Result<(), String> {
        match peer {
            Peer::Ip(ip) => self.backoff.check(ip).map_err(|wait| {
                format!(
                    "too many failed attempts: retry in {} s",
                    wait.as_secs() + 1
                )
            }),
            Peer::SameUser => Ok(()),
        }
    }

    /// Checks a request's token: required from TCP peers, optional from our
    /// own user on the Unix socket.
    pub fn check(&self, peer: Peer, given: Option<&str>) -> Result<(), String> {
        let ok = match (peer, given) {
            (Peer::SameUser, None) => true,
            (_, Some(given)) => self.token.matches(given),
            (Peer::Ip(_), None) => false,
        };
        if let Peer::Ip(ip) = peer {
            if ok {
                self.backoff.succeeded(ip);
            } else {
                self.backoff.failed(ip);
            }
        }
        match (ok, given) {
            (true, _) => Ok(()),
            (false, Some(_)) => Err("wrong token".into()),
            (false, None) => Err("this server requires a token".into()),
        }
    }
}
