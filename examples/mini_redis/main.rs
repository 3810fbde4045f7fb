//! A small Redis: RESP2 with PING, ECHO, GET, SET (EX/PX/NX/XX), DEL,
//! EXISTS, INCR/DECR, EXPIRE/TTL and PUBLISH/SUBSCRIBE/UNSUBSCRIBE, the
//! same command code served three ways:
//!
//! ```text
//! cargo run --release --example mini_redis -- --addr 127.0.0.1:6379 --strategy reactor
//! redis-cli -p 6379 set greeting hello      # OK
//! redis-benchmark -p 6379 -t set,get -q
//! ```
//!
//! `--strategy reactor` runs event loops (a `Protocol` per connection);
//! `threading` a thread per connection; `pool` a fixed set of workers
//! (a worker per connection while it lasts). SIGINT/SIGTERM drain and exit 0.

#[path = "../common/mod.rs"]
mod common;

mod blocking;
mod commands;
mod pubsub;
mod reactor;
mod resp;
mod store;

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use socketserver::reactor::ReactorBuilder;
use socketserver::{Addr, ServerBuilder, StreamRequest, ThreadPool, Threading};

use commands::Shared;

/// How connections are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Strategy {
    /// Event loops: many connections per thread.
    Reactor,
    /// A thread per connection.
    Threading,
    /// A fixed pool of worker threads.
    Pool,
}

/// mini_redis options.
#[derive(Debug, Parser)]
#[command(about = "A small Redis (RESP2) server")]
struct Cli {
    /// Address to listen on; port 0 lets the OS pick.
    #[arg(long, default_value = "127.0.0.1:6379")]
    addr: String,
    /// How connections are served.
    #[arg(long, value_enum, default_value = "reactor")]
    strategy: Strategy,
    /// Event loops for `--strategy reactor` (default: one per core).
    #[arg(long)]
    loops: Option<usize>,
    /// Worker threads for `--strategy pool`.
    #[arg(long, default_value_t = 64)]
    workers: usize,
    /// Most connections open at once.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Seconds to wait for busy connections at shutdown before cutting them.
    #[arg(long, default_value_t = 5.0)]
    drain_timeout: f64,
}

fn main() -> std::io::Result<()> {
    common::init_logging();
    let cli = Cli::parse();
    let shared = Arc::new(Shared::default());
    let drain = Duration::from_secs_f64(cli.drain_timeout);
    match cli.strategy {
        Strategy::Reactor => {
            let mut b = ReactorBuilder::new()
                .drain_timeout(drain)
                .max_input(resp::MAX_BULK + resp::MAX_LINE);
            if let Some(n) = cli.loops {
                b = b.loops(n);
            }
            if let Some(n) = cli.max_connections {
                b = b.max_connections(n);
            }
            let server = b.bind_tcp(cli.addr.as_str(), move |_: &Addr| {
                reactor::Redis::new(Arc::clone(&shared))
            })?;
            common::serve_reactor(server)
        }
        Strategy::Threading | Strategy::Pool => {
            let mut b = ServerBuilder::new().nodelay(true).drain_timeout(drain);
            if let Some(n) = cli.max_connections {
                b = b.max_connections(n);
            }
            let handler = move |req: &mut StreamRequest| blocking::serve(&shared, req);
            if cli.strategy == Strategy::Threading {
                common::serve(
                    b.strategy(Threading::new())
                        .bind_tcp(cli.addr.as_str(), handler)?,
                )
            } else {
                let pool = ThreadPool::new(cli.workers);
                common::serve(b.strategy(pool).bind_tcp(cli.addr.as_str(), handler)?)
            }
        }
    }
}
