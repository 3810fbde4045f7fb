//! A client for the UDP chat room (`chat_server`) that reads and writes at
//! the same time.
//!
//! The lesson's client alternated `input()` and `recv(1024)`, so it saw
//! nothing while its user was typing, and printed only one datagram per
//! line typed. Here one thread reads stdin and sends each line
//! ([`main`]), another prints every datagram as it arrives ([`receive`]).
//!
//! ```text
//! cargo run --example chat_client -- --addr 127.0.0.1:9527 --name alice
//! ```
//!
//! - joining takes a handshake the server requires against forged source
//!   addresses (`handshake.rs`): done here, never shown;
//! - `--name NAME` sends `/nick NAME` once in the room;
//! - `/ping` goes out every `--keepalive` seconds so the server does not drop
//!   a quiet member (`keepalive.rs`); when no answer comes within
//!   `--answer-timeout` seconds the client says so on stderr (`no answer
//!   from server, retrying`) and tries again, without ever blocking input;
//! - end of input (Ctrl-D) or Ctrl-C sends `/quit` and exits 0; the server's
//!   `* room is closing` ends the client too.

mod handshake;
mod keepalive;

use std::io::{self, BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

pub use handshake::{BUFFER, ChatClient};
pub use keepalive::{Keepalive, KeepaliveAction};

/// The server's notice when it shuts down.
pub const CLOSING: &str = "* room is closing";

/// Chat client options.
#[derive(Debug, Parser)]
#[command(about = "Talk in the UDP chat room: type lines; Ctrl-D or Ctrl-C leaves")]
struct Cli {
    /// The chat server's address.
    #[arg(long, default_value = "127.0.0.1:9527")]
    addr: String,
    /// Pick a name once in the room (`/nick NAME`).
    #[arg(long)]
    name: Option<String>,
    /// Seconds between keepalive `/ping`s.
    #[arg(long, default_value_t = 30.0)]
    keepalive: f64,
    /// Seconds to wait for the server's answer before retrying.
    #[arg(long, default_value_t = 3.0)]
    answer_timeout: f64,
}

/// Prints what arrives and keeps the membership alive, until the room
/// closes. `goodbye` hears the server's answer to `/quit`.
fn receive(client: ChatClient, mut keepalive: Keepalive, goodbye: mpsc::Sender<()>) {
    loop {
        match client.recv(Duration::from_millis(200)) {
            Ok(Some(msg)) => {
                if keepalive.answered() > 0 {
                    eprintln!("server answered again");
                }
                show(&client, &msg, &goodbye);
            }
            Ok(None) => {}
            // An ICMP "port unreachable" for an earlier datagram: the
            // keepalive reports the silence; do not spin on it.
            Err(e) => {
                if e.kind() != io::ErrorKind::ConnectionRefused {
                    eprintln!("receive failed: {e}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let ping = match keepalive.tick(Instant::now()) {
            KeepaliveAction::Wait => false,
            KeepaliveAction::Ping => true,
            KeepaliveAction::Retry(n) => {
                let s = if n == 1 { "" } else { "s" };
                eprintln!("no answer from server, retrying ({n} unanswered ping{s})");
                true
            }
        };
        if ping {
            // Not in the room (yet, or any more): knock again.
            let _ = if client.is_member() {
                client.send("/ping")
            } else {
                client.rejoin()
            };
        }
    }
}

/// One datagram from the server: the handshake's are handled, `/pong` is
/// not shown, the rest is printed. A drop (the machine slept past the idle
/// timeout) rejoins; the closing notice exits.
fn show(client: &ChatClient, msg: &str, goodbye: &mpsc::Sender<()>) {
    if client.control(msg).unwrap_or(false) || msg == "/pong" {
        return;
    }
    if msg.starts_with("* goodbye") {
        let _ = goodbye.send(());
    }
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{msg}");
    let _ = out.flush();
    if msg.starts_with("* you were dropped") || msg == "* you are not in the room" {
        let _ = client.rejoin();
    }
    if msg == CLOSING {
        eprintln!("the server closed the room");
        std::process::exit(0);
    }
}

/// Sends `/quit` and waits briefly (bounded) for the server's goodbye,
/// sending it once more if the first one seems lost.
fn quit(client: &ChatClient, goodbye: &Mutex<mpsc::Receiver<()>>) {
    let goodbye = goodbye.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..2 {
        if client.send("/quit").is_err() {
            return;
        }
        if goodbye.recv_timeout(Duration::from_millis(700)).is_ok() {
            return;
        }
    }
    eprintln!("no answer to /quit from server; leaving anyway");
}

/// Ctrl-C and SIGTERM leave the room like end of input does.
fn on_signals(
    client: ChatClient,
    goodbye: Arc<Mutex<mpsc::Receiver<()>>>,
    quitting: Arc<AtomicBool>,
) -> io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() && !quitting.swap(true, Ordering::SeqCst) {
                quit(&client, &goodbye);
                std::process::exit(0);
            }
        })?;
    Ok(())
}

fn main() -> io::Result<()> {
    let cli = Cli::parse();
    let client = ChatClient::open(&cli.addr, cli.name.as_deref())?;
    let keepalive = Keepalive::new(
        Duration::from_secs_f64(cli.keepalive.max(0.05)),
        Duration::from_secs_f64(cli.answer_timeout.max(0.05)),
        Instant::now(),
    );
    let (tx, rx) = mpsc::channel();
    let goodbye = Arc::new(Mutex::new(rx));
    let quitting = Arc::new(AtomicBool::new(false));
    let receiver = client.try_clone()?;
    std::thread::Builder::new()
        .name("receive".into())
        .spawn(move || receive(receiver, keepalive, tx))?;
    on_signals(
        client.try_clone()?,
        Arc::clone(&goodbye),
        Arc::clone(&quitting),
    )?;

    // The lesson's loop: a line typed is a datagram sent.
    for line in io::stdin().lock().lines() {
        let line = line?;
        let line = line.trim_end_matches('\r');
        if line == "/quit" {
            break;
        }
        if !line.is_empty()
            && let Err(e) = client.send(line)
        {
            eprintln!("not sent: {e}");
        }
    }
    if !quitting.swap(true, Ordering::SeqCst) {
        quit(&client, &goodbye);
    }
    Ok(())
}
