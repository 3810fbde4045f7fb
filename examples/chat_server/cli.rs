//! The command line: the room's rules, and which of them refuse to start.

use std::io;
use std::time::Duration;

use clap::Parser;

use super::common;
use super::room::ChatConfig;

/// Chat server options.
#[derive(Debug, Parser)]
#[command(about = "A UDP chat room (the lesson's 聊天室)")]
pub struct Cli {
    /// Address to listen on (UDP); port 0 lets the OS pick.
    #[arg(long, default_value = "127.0.0.1:9527")]
    pub addr: String,
    /// Plain text (the lesson's client) makes a member; loopback only.
    #[arg(long)]
    pub lesson: bool,
    /// Seconds of silence after which a member is dropped.
    #[arg(long, default_value_t = 300.0)]
    idle_timeout: f64,
    /// Most members at once.
    #[arg(long, default_value_t = 100)]
    max_members: usize,
    /// Most members from one source IP.
    #[arg(long, default_value_t = 4)]
    max_members_per_ip: usize,
    /// Datagrams per second one source IP may send, on average.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Datagrams one source IP may send in a burst.
    #[arg(long, default_value_t = 10.0)]
    burst: f64,
    #[command(flatten)]
    pub serve: common::ServeArgs,
}

impl Cli {
    /// The room's rules from these options.
    pub fn config(&self) -> ChatConfig {
        ChatConfig {
            idle_timeout: Duration::from_secs_f64(self.idle_timeout.max(0.01)),
            max_members: self.max_members,
            max_members_per_ip: self.max_members_per_ip,
            rate: self.rate.max(0.001),
            burst: self.burst.max(1.0),
            lesson: self.lesson,
        }
    }

    /// Refuses `--strategy forking`: the room lives in this process's
    /// memory and a forked child's changes to it would be lost.
    pub fn check(&self) -> io::Result<()> {
        if self.serve.strategy == common::StrategyArg::Forking {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--strategy forking is not supported: the room lives in this process's memory",
            ));
        }
        Ok(())
    }
}
