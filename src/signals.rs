//! Ctrl-C for servers (feature `signals`, on by default): Python's
//! `KeyboardInterrupt` stops `serve_forever`; here [`shutdown_on_signals`]
//! does, through [`signal_hook`]'s self-pipe.

use std::io;
use std::thread;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::shutdown::ServerHandle;

/// Makes `SIGINT` (Ctrl-C) and `SIGTERM` stop the server: the first one
/// calls [`shutdown`](ServerHandle::shutdown), so `serve_forever` returns and
/// the caller's [`server_close`](crate::Server::server_close) drains; a
/// second one calls [`abort`](ServerHandle::abort), cutting that drain at
/// once.
///
/// It replaces the signals' default action (ending the process) for the
/// whole process, and starts one thread that waits for them. Forked
/// children ([`Forking`](crate::Forking)) ignore `SIGINT` and take `SIGTERM`'s
/// default action, so a terminal's Ctrl-C reaches only the parent, which
/// drains them.
///
/// ```
/// use socketserver::{StreamRequest, ThreadingTcpServer};
///
/// fn main() -> std::io::Result<()> {
///     let server = ThreadingTcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
///         std::io::copy(&mut req.rfile, &mut req.wfile)?;
///         Ok(())
///     })?;
///     socketserver::shutdown_on_signals(&server.handle())?;
///     println!("listening on {}", server.server_address());
///     # server.shutdown(); // the doctest stops at once instead of waiting for Ctrl-C
///     server.serve_forever()?; // returns on Ctrl-C
///     let report = server.server_close()?; // a second Ctrl-C cuts this drain short
///     eprintln!("closed: {report:?}");
///     Ok(())
/// }
/// ```
pub fn shutdown_on_signals(handle: &ServerHandle) -> io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let handle = handle.clone();
    thread::Builder::new()
        .name("socketserver-signals".into())
        .spawn(move || {
            for (n, signal) in signals.forever().enumerate() {
                let name = if signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                if n == 0 {
                    say(&format!(
                        "{name}: shutting down and draining (again to cut connections now)"
                    ));
                    handle.shutdown();
                } else {
                    say(&format!("{name} again: cutting every connection now"));
                    handle.abort();
                    return;
                }
            }
        })?;
    Ok(())
}

fn say(message: &str) {
    if log::log_enabled!(log::Level::Warn) {
        log::warn!("socketserver: {message}");
    } else {
        eprintln!("socketserver: {message}");
    }
}
