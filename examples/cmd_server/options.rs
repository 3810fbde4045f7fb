//! The command line: where to listen, where the token comes from, the
//! lesson's raw form, the limits and the strategy.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::{Config, auth, common, limits};

/// Remote command server options.
#[derive(Debug, Parser)]
#[command(about = "Run shell commands for clients that know the token (the lesson's server)")]
pub struct Cli {
    /// Address to listen on; port 0 lets the OS pick.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub addr: String,
    /// Listen on this Unix socket instead (mode 0600; peers must be this user).
    #[arg(long, conflicts_with = "addr")]
    pub unix: Option<PathBuf>,
    /// Read the token from this file (mode 0600), or write a new one there.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Also accept the lesson's unframed requests, from local peers only.
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub limits: limits::LimitArgs,
    #[command(flatten)]
    pub serve: common::ServeArgs,
    #[command(flatten)]
    pub edge: common::edge::EdgeArgs,
}

/// Exits with status 2 and `msg`: the server cannot start.
fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("cmd_server: {msg}");
    std::process::exit(2)
}

impl Cli {
    /// The server's configuration from these options and the token from
    /// the environment; exits with status 2 if they are not usable.
    pub fn config(&self, env_token: Option<String>) -> Config {
        let (token, generated) =
            auth::load(env_token, self.token_file.as_deref()).unwrap_or_else(|e| fail(e));
        if let Some(secret) = generated {
            eprintln!("cmd_server: token {secret} (give it to cmd_client as CMD_TOKEN)");
        }
        let mut config = Config::new(token);
        config.raw = self.raw;
        config.limits = self.limits.limits().unwrap_or_else(|e| fail(e));
        config
    }

    /// The server's write timeout.
    pub fn write_timeout(&self) -> Duration {
        self.limits.write_timeout().unwrap_or_else(|e| fail(e))
    }
}
