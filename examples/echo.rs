//! An echo server: every byte goes back as it arrives.
//!
//! ```text
//! cargo run --example echo -- --addr 127.0.0.1:9999 --strategy threading
//! # then, in another terminal:
//! nc 127.0.0.1 9999        # or: python3 -c "..."; type, and see it echoed
//! ```
//! Ctrl-C (SIGINT) or SIGTERM drains the connections in flight and exits 0;
//! SIGHUP hands the listening socket to a fresh copy, drains and exits 0.
//! `--tls-cert/--tls-key` (feature `tls`), `--proxy-protocol
//! --trusted-proxy CIDR`, and a systemd socket (`LISTEN_FDS`) are taken as
//! docs/guide/08-production.md describes.

mod common;

use clap::Parser;
use socketserver::reactor::{Conn, Protocol, ReactorBuilder};
use socketserver::{Addr, HandlerResult, StreamRequest};

/// The whole handler: copy what arrives back to the sender, as it arrives.
pub fn echo(req: &mut StreamRequest) -> HandlerResult {
    std::io::copy(&mut req.rfile, &mut req.wfile)?;
    Ok(())
}

/// The same handler for `--strategy reactor`, as an event-loop protocol.
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, data: &[u8], conn: &mut Conn<'_>) -> std::io::Result<usize> {
        conn.write(data);
        Ok(data.len())
    }
}

/// Echo server options.
#[derive(Debug, Parser)]
#[command(about = "Echo every byte back as it arrives")]
struct Cli {
    /// Address to listen on; port 0 lets the OS pick.
    #[arg(long, default_value = "127.0.0.1:9999")]
    addr: String,
    #[command(flatten)]
    serve: common::ServeArgs,
    #[command(flatten)]
    edge: common::edge::EdgeArgs,
}

fn main() -> std::io::Result<()> {
    common::init_logging();
    let cli = Cli::parse();
    if cli.serve.strategy == common::StrategyArg::Reactor {
        let drain = std::time::Duration::from_secs_f64(cli.serve.drain_timeout);
        let mut b = ReactorBuilder::new().drain_timeout(drain);
        if let Some(max) = cli.serve.max_connections {
            b = b.max_connections(max);
        }
        return common::serve_reactor(b.bind_tcp(cli.addr.as_str(), |_: &Addr| Echo)?);
    }
    // TCP_NODELAY: an echo answers in pieces as they arrive; with Nagle's
    // algorithm a reply's second piece would wait for the client's delayed
    // ACK of the first (up to 40 ms).
    let builder = cli.edge.apply(cli.serve.builder().nodelay(true))?;
    common::serve(common::edge::bind_tcp(builder, cli.addr.as_str(), echo)?)
}
