//! What every example server shares: the `--strategy`/`--workers`/
//! `--max-connections` options, the `listening on <addr>` line, and a
//! graceful drain on SIGINT/SIGTERM.
//!
//! Included by each example with `mod common;` (a folder with `mod.rs` is
//! not an example of its own).
#![allow(dead_code)]

pub mod edge;
pub mod relay;

use std::io::{self, Write};
use std::time::Duration;

use clap::{Args, ValueEnum};
use socketserver::{
    AnyStrategy, Forking, Server, ServerBuilder, Strategy, ThreadPool, Threading, Transport,
};

/// How requests run, as chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// One request at a time.
    Sequential,
    /// A thread per request.
    Threading,
    /// A fixed pool of worker threads.
    Pool,
    /// A forked process per request.
    Forking,
    /// Event loops, many connections per thread (only the examples with an
    /// event-loop protocol: echo, mini_redis).
    Reactor,
}

/// The server options every example takes.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// How requests run.
    #[arg(long, value_enum, default_value = "threading")]
    pub strategy: StrategyArg,
    /// Worker threads for `--strategy pool` (children cap for forking).
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Most requests in flight at once; beyond it clients wait in the backlog.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Seconds to wait for requests in flight at shutdown before cutting them.
    #[arg(long, default_value_t = 5.0)]
    pub drain_timeout: f64,
}

impl ServeArgs {
    /// The strategy these options name.
    pub fn strategy(&self) -> AnyStrategy {
        match self.strategy {
            StrategyArg::Sequential => AnyStrategy::Sequential,
            StrategyArg::Threading => AnyStrategy::Threading(Threading::new()),
            StrategyArg::Pool => AnyStrategy::ThreadPool(ThreadPool::new(self.workers)),
            StrategyArg::Forking => {
                AnyStrategy::Forking(Forking::new().max_children(self.workers.max(1)))
            }
            StrategyArg::Reactor => {
                eprintln!(
                    "error: this example has no event-loop protocol; --strategy reactor works with echo and mini_redis"
                );
                std::process::exit(2);
            }
        }
    }

    /// A builder with these options and strategy.
    pub fn builder(&self) -> ServerBuilder<AnyStrategy> {
        let mut b = ServerBuilder::new()
            .strategy(self.strategy())
            .drain_timeout(Duration::from_secs_f64(self.drain_timeout));
        if let Some(max) = self.max_connections {
            b = b.max_connections(max);
        }
        b
    }
}

/// Prints `listening on <addr>`, serves until SIGINT or SIGTERM (a second
/// one cuts the drain short), drains, and reports the drain on stderr.
pub fn serve<T: Transport, H, S: Strategy>(server: Server<T, H, S>) -> io::Result<()> {
    serve_with(server, |_| {})
}

/// [`serve`], running `on_stop` after the loop has stopped accepting and
/// before the drain (the chat room tells its members it is closing there).
pub fn serve_with<T: Transport, H, S: Strategy>(
    server: Server<T, H, S>,
    on_stop: impl FnOnce(&Server<T, H, S>),
) -> io::Result<()> {
    socketserver::shutdown_on_signals(&server.handle())?;
    let supervisor = edge::Supervisor::start(server.handle(), server.listener_fd())?;
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {}", server.server_address())?;
    out.flush()?;
    drop(out);
    supervisor.ready();
    server.serve_forever()?;
    supervisor.stopping();
    on_stop(&server);
    let report = server.server_close()?;
    eprintln!(
        "closed: {} completed, {} cut at the drain deadline, {} abandoned, in {:?}",
        report.completed, report.forced, report.abandoned, report.elapsed
    );
    Ok(())
}

/// Starts env_logger at `info` unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .try_init();
}

/// `N` random bytes from the kernel (`/dev/urandom`): tokens, secrets,
/// cookie keys.
pub fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    use std::io::Read as _;
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// `n` random bytes from the kernel, in lowercase hex.
pub fn random_hex(n: usize) -> io::Result<String> {
    use std::io::Read as _;
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex(&bytes))
}

/// Lowercase hex of `bytes` (digests, tokens, file keys).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// [`serve`] for an event-loop server: prints `listening on <addr>`,
/// serves until SIGINT or SIGTERM, drains, and reports the drain.
pub fn serve_reactor<F: socketserver::reactor::Factory>(
    server: socketserver::reactor::ReactorServer<F>,
) -> io::Result<()> {
    socketserver::shutdown_on_signals(&server.handle())?;
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {}", server.server_address())?;
    out.flush()?;
    drop(out);
    server.serve_forever()?;
    let report = server.server_close()?;
    eprintln!(
        "closed: {} completed, {} cut at the drain deadline, {} abandoned, in {:?}",
        report.completed, report.forced, report.abandoned, report.elapsed
    );
    Ok(())
}
