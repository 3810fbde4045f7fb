//! The command line: where the server is, where the token comes from, and
//! the lesson's raw form.

use std::io;
use std::path::PathBuf;

use clap::Parser;

/// Client options.
#[derive(Debug, Parser)]
#[command(about = "Run commands on a cmd_server (or the lesson's Python server)")]
pub struct Cli {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub addr: String,
    /// Connect to this Unix socket instead.
    #[arg(long, conflicts_with = "addr")]
    pub unix: Option<PathBuf>,
    /// Read the server's token from this file (default: $CMD_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Send the lesson's unframed request (for the lesson's own server).
    #[arg(long)]
    pub raw: bool,
    /// Commands to run, one per argument; none = interactive prompt.
    pub commands: Vec<String>,
}

impl Cli {
    /// The token: from `--token-file`, else `CMD_TOKEN`.
    pub fn token(&self) -> io::Result<Option<String>> {
        match &self.token_file {
            Some(path) => Ok(Some(std::fs::read_to_string(path)?.trim().to_string())),
            None => Ok(std::env::var("CMD_TOKEN").ok().filter(|t| !t.is_empty())),
        }
    }
}
