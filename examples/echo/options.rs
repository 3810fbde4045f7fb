//! The echo example's command line, and the same echo as an event-loop
//! protocol for `--strategy reactor` (a `Protocol` instead of a handler).

use std::time::Duration;

use clap::Parser;
use socketserver::Addr;
use socketserver::reactor::{Conn, Protocol, ReactorBuilder};

use super::common;

/// Echo every byte back as it arrives.
#[derive(Debug, Parser)]
pub struct Cli {
    /// Address to listen on; port 0 lets the OS pick.
    #[arg(long, default_value = "127.0.0.1:9999")]
    pub addr: String,
    /// Serve UDP: echo each datagram to its sender.
    #[arg(long)]
    pub udp: bool,
    #[command(flatten)]
    pub serve: common::ServeArgs,
    #[command(flatten)]
    pub edge: common::edge::EdgeArgs,
}

/// The echo handler as an event-loop protocol.
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, data: &[u8], conn: &mut Conn<'_>) -> std::io::Result<usize> {
        conn.write(data);
        Ok(data.len())
    }
}

/// `--strategy reactor`: one event loop serves every connection.
pub fn serve_reactor(cli: &Cli) -> std::io::Result<()> {
    let drain = Duration::from_secs_f64(cli.serve.drain_timeout);
    let mut b = ReactorBuilder::new().drain_timeout(drain);
    if let Some(max) = cli.serve.max_connections {
        b = b.max_connections(max);
    }
    common::serve_reactor(b.bind_tcp(cli.addr.as_str(), |_: &Addr| Echo)?)
}
