//! The tour: every example server in one process, on ports the OS picks,
//! each driven by its example client's own code, with a short transcript.
//!
//! ```text
//! cargo run --example tour
//! ```
//!
//! It includes the example files themselves as modules (their handlers and
//! client functions are `pub`), so it cannot drift from them. Each step
//! checks its result and the tour exits non-zero if one fails; after the
//! last step every server is shut down and drained.

// Each included example declares `mod common;`, so the shared module is
// compiled once per example here; that duplication is the price of running
// the examples' own files rather than copies.
#![allow(clippy::duplicate_mod)]

#[allow(dead_code, unused_imports, unused_macros)]
#[path = "../chat_client/main.rs"]
mod chat_client;
#[allow(dead_code, unused_imports, unused_macros)]
#[path = "../chat_server/main.rs"]
mod chat_server;
#[allow(dead_code, unused_imports, unused_macros)]
#[path = "../cmd_client/main.rs"]
mod cmd_client;
#[allow(dead_code, unused_imports, unused_macros)]
#[path = "../cmd_server/main.rs"]
mod cmd_server;
#[allow(dead_code, unused_imports, unused_macros)]
#[path = "../echo.rs"]
mod echo;
#[allow(dead_code, unused_imports, unused_macros)]
#[path = "../upload_client/main.rs"]
mod upload_client;
#[allow(dead_code, unused_imports, unused_macros)]
#[path = "../upload_server/main.rs"]
mod upload_server;

mod steps;

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use socketserver::{
    DrainReport, Server, ServerBuilder, TcpTransport, ThreadPool, Threading, UdpTransport,
};
use steps::Step;

type UploadServer = Server<TcpTransport, upload_server::UploadHandler, ThreadPool>;
type CmdServer = Server<TcpTransport, cmd_server::CmdHandler, Threading>;
type EchoServer = Server<
    TcpTransport,
    fn(&mut socketserver::StreamRequest) -> socketserver::HandlerResult,
    Threading,
>;
type ChatServer = Server<UdpTransport, chat_server::ChatHandler, Threading>;

/// The four servers, bound on ports the OS picks, and the secrets their
/// clients present.
struct Servers {
    echo: EchoServer,
    cmd: CmdServer,
    cmd_token: String,
    upload: UploadServer,
    upload_token: String,
    chat: ChatServer,
}

/// The command server requires a token; the tour generates one, as the
/// server does when it is given none.
fn cmd_server() -> io::Result<(CmdServer, String)> {
    let (token, secret) = cmd_server::auth::Token::generate()?;
    let server = ServerBuilder::new()
        .strategy(Threading::new())
        .drain_timeout(Duration::from_secs(5))
        .bind_tcp(
            "127.0.0.1:0",
            cmd_server::handler(cmd_server::Config::new(token)),
        )?;
    Ok((server, secret))
}

/// The upload server with a fresh token, which the upload step presents.
fn upload_server(store: &Path) -> io::Result<(UploadServer, String)> {
    let token = upload_server::random_hex()?;
    let auth = upload_server::Auth::new(&token, false)?;
    let cfg = upload_server::UploadConfig::new(store.to_path_buf(), auth);
    let server = ServerBuilder::new()
        .strategy(ThreadPool::new(4))
        .bind_tcp("127.0.0.1:0", upload_server::handler(cfg)?)?;
    Ok((server, token))
}

fn chat_server() -> io::Result<ChatServer> {
    let chat_cfg = chat_server::ChatConfig::default();
    let interval = chat_cfg.service_interval();
    let room = chat_server::handler(chat_cfg)?;
    ServerBuilder::new()
        .strategy(Threading::new())
        .max_packet_size(chat_server::RECV_BUFFER)
        .service_interval(interval)
        .bind_udp("127.0.0.1:0", room)
}

impl Servers {
    fn start(store: &Path) -> io::Result<Servers> {
        let echo = ServerBuilder::new()
            .strategy(Threading::new())
            .bind_tcp("127.0.0.1:0", echo::echo as _)?;
        let (cmd, cmd_token) = cmd_server()?;
        let (upload, upload_token) = upload_server(store)?;
        let chat = chat_server()?;
        println!("socketserver tour: four servers in one process, ports picked by the OS");
        for (name, addr) in [
            ("echo", echo.server_address()),
            ("command", cmd.server_address()),
            ("upload", upload.server_address()),
            ("chat", chat.server_address()),
        ] {
            println!("   {name:<8} listening on {addr}");
        }
        Ok(Servers {
            echo,
            cmd,
            cmd_token,
            upload,
            upload_token,
            chat,
        })
    }

    /// Every step in order, the first failure ending the tour.
    fn steps(&self, scratch: &Path, store: &Path) -> Step {
        let inet = |a: &socketserver::Addr| a.as_inet().expect("an IP address");
        let cmd = inet(self.cmd.server_address());
        steps::echo_step(inet(self.echo.server_address()))?;
        steps::sticky_step(cmd, &self.cmd_token)?;
        steps::cmd_step(cmd, &self.cmd_token)?;
        let upload = inet(self.upload.server_address());
        steps::upload_step(upload, scratch, store, &self.upload_token)?;
        steps::chat_step(inet(self.chat.server_address()))
    }

    /// Serves all four while the steps run, then stops every loop at once.
    fn serve_and_run(&self, scratch: &Path, store: &Path) -> Step {
        std::thread::scope(|s| {
            let loops = [
                s.spawn(|| self.echo.serve_forever()),
                s.spawn(|| self.cmd.serve_forever()),
                s.spawn(|| self.upload.serve_forever()),
                s.spawn(|| self.chat.serve_forever()),
            ];
            let result = self.steps(scratch, store);
            println!("\n== 6. shutdown: every loop wakes at once; then each server drains");
            let start = Instant::now();
            self.echo.shutdown();
            self.cmd.shutdown();
            self.upload.shutdown();
            self.chat.shutdown();
            for l in loops {
                l.join().expect("a server loop panicked")?;
            }
            let took = start.elapsed();
            println!("   all four serve_forever loops returned in {took:?}");
            result
        })
    }

    fn close(self) -> io::Result<()> {
        report("echo", self.echo.server_close()?);
        report("command", self.cmd.server_close()?);
        report("upload", self.upload.server_close()?);
        report("chat", self.chat.server_close()?);
        Ok(())
    }
}

fn report(name: &str, r: DrainReport) {
    println!(
        "   {name:<7} drained: {} completed, {} cut, in {:?}",
        r.completed, r.forced, r.elapsed
    );
}

fn main() -> Step {
    let scratch = tempfile::tempdir()?;
    let store = scratch.path().join("uploads");
    let servers = Servers::start(&store)?;
    let result = servers.serve_and_run(scratch.path(), &store);
    servers.close()?;
    result?;
    println!("\ntour complete");
    Ok(())
}
