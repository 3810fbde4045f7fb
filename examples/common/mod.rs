//! What every example server shares: the `--strategy`/`--workers`/
//! `--max-connections` options, the `listening on <addr>` line, and a
//! graceful drain on SIGINT/SIGTERM.
//!
//! Included by each example with `mod common;` (a folder with `mod.rs` is
//! not an example of its own).
#![allow(dead_code)]

use std::io::{self, Write};
use std::time::Duration;

use clap::{Args, ValueEnum};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use socketserver::transport::Transport;
use socketserver::{Execute, Handles, Server, Strategy};

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
    /// A builder with these options (strategy not yet applied).
    pub fn builder(&self) -> socketserver::ServerBuilder {
        let mut b = socketserver::ServerBuilder::new()
            .drain_timeout(Some(Duration::from_secs_f64(self.drain_timeout)));
        if let Some(max) = self.max_connections {
            b = b.max_connections(max);
        }
        b
    }
}

/// Builds a server with the strategy `$args.strategy` names and serves it
/// until SIGINT/SIGTERM: `$bind` is a closure-like `|builder| builder.tcp(..)`.
/// The caller must have `mod common;` (paths resolve at the call site).
macro_rules! serve_with_strategy {
    ($args:expr, $builder:expr, |$b:ident| $bind:expr) => {{
        use socketserver::{Forking, ThreadPool, Threading};
        let args: &common::ServeArgs = &$args;
        let base = $builder;
        match args.strategy {
            common::StrategyArg::Sequential => {
                let $b = base;
                common::serve($bind?)
            }
            common::StrategyArg::Threading => {
                let $b = base.strategy(Threading::new());
                common::serve($bind?)
            }
            common::StrategyArg::Pool => {
                let $b = base.strategy(ThreadPool::new(args.workers));
                common::serve($bind?)
            }
            common::StrategyArg::Forking => {
                let $b = base.strategy(Forking::new().max_children(args.workers.max(1)));
                common::serve($bind?)
            }
        }
    }};
}
pub(crate) use serve_with_strategy;

/// Prints `listening on <addr>`, serves until SIGINT or SIGTERM, drains,
/// and reports the drain on stderr.
pub fn serve<T, H, S>(server: Server<T, H, S>) -> io::Result<()>
where
    T: Transport,
    H: Handles<T::Request>,
    S: Execute<T::Request, H> + Strategy,
{
    serve_with(server, |_| {})
}

/// [`serve`], running `on_stop` after the loop has stopped accepting and
/// before the drain (the chat room tells its members it is closing there).
pub fn serve_with<T, H, S>(
    server: Server<T, H, S>,
    on_stop: impl FnOnce(&Server<T, H, S>),
) -> io::Result<()>
where
    T: Transport,
    H: Handles<T::Request>,
    S: Execute<T::Request, H> + Strategy,
{
    let handle = server.handle();
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                eprintln!("signal {sig}: shutting down");
                handle.shutdown();
            }
        })?;
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {}", server.server_address())?;
    out.flush()?;
    drop(out);
    server.serve_forever()?;
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
