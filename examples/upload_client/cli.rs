//! The client's options; the token is read from a file or the
//! environment, never from the command line (where every local user sees it).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// How to upload.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Name to store the file under (default: the file's own name).
    pub name: Option<String>,
    /// The server's token (`--token-file`, or `UPLOAD_TOKEN`).
    pub token: Option<String>,
    /// Continue an interrupted upload; hashes the whole file first.
    pub resume: bool,
    /// SHA-256 (hex) to declare; the server refuses data that differs.
    pub sha256: Option<String>,
    /// Hash the whole file first and declare it (also makes a cut upload
    /// resumable: the server keys partials by name, size and hash).
    pub hash_first: bool,
    /// Send at most this many bytes per second.
    pub rate_limit: Option<u64>,
    /// How long to wait for the server's answers and a stalled send.
    pub ack_timeout: Duration,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            name: None,
            token: None,
            resume: false,
            sha256: None,
            hash_first: false,
            rate_limit: None,
            ack_timeout: Duration::from_secs(300),
        }
    }
}

/// Upload client options.
#[derive(Debug, Parser)]
#[command(
    about = "Upload a file to upload_server (streamed, SHA-256 verified, resumable)",
    after_help = "Exit status: 0 stored and confirmed with a matching SHA-256; 1 error; \
                  3 sent but not confirmed (the server closed without an acknowledgement)."
)]
pub struct Cli {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:9527")]
    pub addr: String,
    /// The file to upload.
    pub file: PathBuf,
    /// Name to store it under (default: the file's name).
    #[arg(long)]
    name: Option<String>,
    /// File holding the server's token (else the UPLOAD_TOKEN variable).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Continue an interrupted upload (hashes the file first).
    #[arg(long)]
    resume: bool,
    /// Declare this SHA-256 (hex); the server refuses data that differs.
    #[arg(long)]
    sha256: Option<String>,
    /// Hash the file before sending and declare it (makes a cut upload resumable).
    #[arg(long)]
    hash_first: bool,
    /// Seconds to wait for the server's answers.
    #[arg(long, default_value_t = 300.0)]
    ack_timeout: f64,
    /// Send at most this many bytes per second.
    #[arg(long)]
    rate_limit: Option<u64>,
}

/// The options, and the upload they ask for.
pub fn parse() -> io::Result<(Cli, UploadOptions)> {
    let cli = Cli::parse();
    let token = match &cli.token_file {
        Some(p) => Some(std::fs::read_to_string(p)?.trim().to_string()),
        None => std::env::var("UPLOAD_TOKEN").ok(),
    };
    let opts = UploadOptions {
        name: cli.name.clone(),
        token,
        resume: cli.resume,
        sha256: cli.sha256.clone(),
        hash_first: cli.hash_first,
        rate_limit: cli.rate_limit,
        ack_timeout: Duration::from_secs_f64(cli.ack_timeout),
    };
    Ok((cli, opts))
}
