//! An echo server: every byte goes back as it arrives; with `--udp`, each
//! datagram goes back to its sender.
//!
//!     cargo run --example echo -- --addr 127.0.0.1:9999 --strategy threading [--udp]
//!     nc 127.0.0.1 9999    # in another terminal (nc -u for --udp): type, see it echoed
//!
//! Ctrl-C (SIGINT) or SIGTERM drains the requests in flight and exits 0; SIGHUP
//! hands the socket to a fresh copy. TLS, PROXY and systemd sockets: guide ch. 8.

mod common;
#[path = "echo/options.rs"]
mod options; // the command line, and the same echo for --strategy reactor
use clap::Parser;
use socketserver::{DatagramRequest, HandlerResult, StreamRequest};

/// The whole handler: copy what arrives back to the sender, as it arrives
/// (`io::copy`, with one read and one write per message).
pub fn echo(req: &mut StreamRequest) -> HandlerResult {
    common::relay::copy(&mut req.rfile, &mut req.wfile)?;
    Ok(())
}

fn main() -> std::io::Result<()> {
    common::init_logging();
    let cli = options::Cli::parse();
    if cli.serve.strategy == common::StrategyArg::Reactor {
        return options::serve_reactor(&cli);
    }
    let (addr, builder) = (cli.addr.as_str(), cli.edge.apply(cli.serve.builder())?);
    if cli.udp {
        let echo_datagram = |req: &mut DatagramRequest| Ok(req.reply(req.data())?);
        return common::serve(common::edge::bind_udp(builder, addr, echo_datagram)?);
    }
    // TCP_NODELAY: a reply's second piece must not wait for a delayed ACK.
    common::serve(common::edge::bind_tcp(builder.nodelay(true), addr, echo)?)
}
