//! The command line: the room's rules, and which of them refuse to start.

use std::io;
use std::time::Duration;

use clap::Parser;
use socketserver::Addr;

use super::common;
use super::room::ChatConfig;
use super::web::WebConfig;

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
    /// Also serve the room over HTTP on this address (B/S: a browser joins).
    #[arg(long, value_name = "HOST:PORT")]
    pub web: Option<String>,
    /// Most browser members at once.
    #[arg(long, default_value_t = 20)]
    max_web_members: usize,
    /// Seconds to read one HTTP request, and to keep an idle connection.
    #[arg(long, default_value_t = 10.0)]
    web_timeout: f64,
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

    /// The web side's rules from these options.
    pub fn web_config(&self) -> WebConfig {
        WebConfig {
            max_members: self.max_web_members,
            timeout: Duration::from_secs_f64(self.web_timeout.max(0.05)),
        }
    }

    /// Refuses `--lesson` (members without a cookie) unless the server is
    /// bound to a loopback address.
    pub fn check_bound(&self, bound: &Addr) -> io::Result<()> {
        if self.lesson && !bound.is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--lesson admits members without a cookie: only on a loopback address",
            ));
        }
        Ok(())
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
