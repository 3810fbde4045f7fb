//! The server's options; the defaults are the safe ones.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use super::{Auth, UploadHeader, Who, common, names, quota};

/// What the server allows; [`UploadConfig::new`] gives the defaults.
#[derive(Debug)]
pub struct UploadConfig {
    pub dir: PathBuf,
    pub auth: Auth,
    pub max_size: u64,
    pub overwrite: bool,
    pub strict_names: bool,
    pub file_mode: u32,
    pub header_timeout: Duration,
    pub timeout: Duration,
    pub min_rate: u64,
    pub partial_ttl: Duration,
    pub quota: Arc<quota::Quota>,
    pub announce: bool,
}

impl UploadConfig {
    pub fn new(dir: PathBuf, auth: Auth) -> UploadConfig {
        UploadConfig {
            dir,
            auth,
            max_size: 64 << 30,
            overwrite: false,
            strict_names: true,
            file_mode: 0o600,
            header_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            min_rate: 16 * 1024,
            partial_ttl: Duration::from_secs(24 * 3600),
            quota: Arc::new(quota::Quota::new(128 << 30, 0, 8)),
            announce: false,
        }
    }
}

impl UploadConfig {
    /// Why the header is refused, or the declared SHA-256 (lowercase).
    pub fn check(&self, h: &UploadHeader, who: Who) -> Result<Option<String>, String> {
        if let Some(why) = names::check(&h.file_name, self.strict_names) {
            return Err(why);
        }
        if h.file_size > self.max_size {
            let (size, max) = (h.file_size, self.max_size);
            return Err(format!(
                "file is too large: {size} bytes, the limit is {max}"
            ));
        }
        let sha256 = h.sha256.as_deref().map(str::to_ascii_lowercase);
        let is_hex = |s: &String| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if sha256.as_ref().is_some_and(|s| !is_hex(s)) {
            return Err("sha256 must be 64 hex digits".into());
        }
        if h.resume && (sha256.is_none() || who == Who::Guest) {
            return Err("a resume needs a token and the whole file's sha256".into());
        }
        Ok(sha256)
    }
}

/// Upload server options.
#[derive(Debug, Parser)]
#[command(about = "Receive files: streamed, verified (SHA-256), atomic, resumable")]
pub struct Cli {
    /// Address to listen on; port 0 lets the OS pick.
    #[arg(long, default_value = "127.0.0.1:9527")]
    pub addr: String,
    /// Directory to store uploads in (created 0700 if missing; refused if
    /// others can write into it).
    #[arg(long, default_value = "./uploads")]
    dir: PathBuf,
    /// File holding the upload token; created with a random one (mode 0600)
    /// if missing. Without it a new token is printed on stderr.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Also accept uploads without a token, as the lesson's client sends
    /// them: new files only (no overwrite, no resume), loopback only.
    #[arg(long, alias = "insecure")]
    lesson: bool,
    /// Let a token holder replace an existing file.
    #[arg(long)]
    overwrite: bool,
    /// Accept any name that is a plain file name (not only NFC names
    /// without a leading `-`/`.`, look-alike slashes or device names).
    #[arg(long)]
    lax_names: bool,
    /// Mode of stored files (octal).
    #[arg(long, default_value = "600", value_parser = |s: &str| u32::from_str_radix(s, 8))]
    file_mode: u32,
    /// Largest upload accepted, in bytes.
    #[arg(long, default_value_t = 64 << 30)]
    max_size: u64,
    /// Space for uploads in progress and kept partials, in declared bytes.
    #[arg(long, default_value_t = 128 << 30)]
    max_partial_bytes: u64,
    /// Bytes of free disk space every upload must leave.
    #[arg(long, default_value_t = 0)]
    min_free: u64,
    /// Uploads at once from one client address.
    #[arg(long, default_value_t = 8)]
    max_uploads_per_ip: usize,
    /// Connections at once from one client address (the rest are closed
    /// before they are read).
    #[arg(long, default_value_t = 16)]
    pub max_connections_per_ip: usize,
    /// Seconds a client has to send its header after connecting.
    #[arg(long, default_value_t = 10.0)]
    header_timeout: f64,
    /// Seconds a client may stay silent (and fall behind --min-rate).
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Slowest average body rate accepted, in bytes per second (0: any).
    #[arg(long, default_value_t = 16 * 1024)]
    min_rate: u64,
    /// Hours after which an untouched partial upload is deleted.
    #[arg(long, default_value_t = 24.0)]
    partial_ttl: f64,
    #[command(flatten)]
    pub serve: common::ServeArgs,
    #[command(flatten)]
    pub edge: common::edge::EdgeArgs,
}

/// Most connections at once unless `--max-connections` says otherwise.
const MAX_CONNECTIONS: usize = 64;

/// The options and the configuration they give.
pub fn parse() -> io::Result<(Cli, Vec<SocketAddr>, UploadConfig)> {
    let mut cli = Cli::parse();
    if !(cli.timeout > 0.0 && cli.header_timeout > 0.0) {
        return Err(io::Error::other(
            "--timeout and --header-timeout must be positive",
        ));
    }
    let addrs: Vec<SocketAddr> = cli.addr.to_socket_addrs()?.collect();
    if cli.lesson && !addrs.iter().all(|a| a.ip().is_loopback()) {
        let why = "--lesson (uploads without a token) is allowed on loopback only";
        return Err(io::Error::other(why));
    }
    cli.serve.max_connections.get_or_insert(MAX_CONNECTIONS);
    let auth = Auth::load(cli.token_file.as_deref(), cli.lesson)?;
    let quota = quota::Quota::new(cli.max_partial_bytes, cli.min_free, cli.max_uploads_per_ip);
    let cfg = UploadConfig {
        max_size: cli.max_size,
        overwrite: cli.overwrite,
        strict_names: !cli.lax_names,
        file_mode: cli.file_mode,
        header_timeout: Duration::from_secs_f64(cli.header_timeout),
        timeout: Duration::from_secs_f64(cli.timeout),
        min_rate: cli.min_rate,
        partial_ttl: Duration::from_secs_f64(cli.partial_ttl * 3600.0),
        quota: Arc::new(quota),
        announce: true,
        ..UploadConfig::new(cli.dir.clone(), auth)
    };
    Ok((cli, addrs, cfg))
}
