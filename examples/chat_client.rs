//! A client for the UDP chat room (`chat_server`) that reads and writes at
//! the same time.
//!
//! The lesson's client alternated `input()` and `recv(1024)`, so it saw
//! nothing while its user was typing, and printed only one datagram per
//! line typed. Here one thread reads stdin and sends each line, another
//! prints every datagram as it arrives.
//!
//! ```text
//! cargo run --example chat_client -- --addr 127.0.0.1:9527 --name alice
//! ```
//!
//! - `--name NAME` sends `/nick NAME` at start;
//! - `/ping` goes out every `--keepalive` seconds so the server does not drop
//!   a quiet member; UDP loses datagrams, so when no answer comes within
//!   `--answer-timeout` seconds the client says so on stderr (`no answer
//!   from server, retrying`) and pings again, without ever blocking input;
//! - end of input (Ctrl-D) or Ctrl-C sends `/quit` and exits 0; the server's
//!   `* room is closing` ends the client too.

use std::io::{self, BufRead, Write};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The server's notice when it shuts down.
pub const CLOSING: &str = "* room is closing";

/// The lesson's receive buffer, which the server never exceeds.
pub const BUFFER: usize = 1024;

/// A UDP socket talking to one chat server.
#[derive(Debug)]
pub struct ChatClient {
    socket: UdpSocket,
    server: SocketAddr,
}

impl ChatClient {
    /// Binds an ephemeral port, connects it to the server at `addr` (so only
    /// the server's datagrams are received), and sends `/nick NAME` when a
    /// name is given. UDP: nothing is known about the server yet.
    pub fn connect(addr: &str, name: Option<&str>) -> io::Result<ChatClient> {
        let server = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no address for {addr}"),
            )
        })?;
        let local: SocketAddr = if server.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(server)?;
        let client = ChatClient { socket, server };
        if let Some(name) = name {
            client.send(&format!("/nick {name}"))?;
        }
        Ok(client)
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// This client's own address (the server names it by it until `/nick`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// A second handle on the same socket, for a second thread.
    pub fn try_clone(&self) -> io::Result<ChatClient> {
        Ok(ChatClient {
            socket: self.socket.try_clone()?,
            server: self.server,
        })
    }

    /// Sends one line (one datagram; a trailing newline is not needed).
    pub fn send(&self, line: &str) -> io::Result<()> {
        self.socket.send(line.as_bytes()).map(|_| ())
    }

    /// Waits up to `timeout` for one datagram: `Ok(None)` on timeout.
    /// `ConnectionRefused` means an earlier datagram found no server there.
    /// Not for two threads at once (it sets the socket's read timeout).
    pub fn recv(&self, timeout: Duration) -> io::Result<Option<String>> {
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut buf = [0u8; BUFFER];
        match self.socket.recv(&mut buf) {
            Ok(n) => Ok(Some(String::from_utf8_lossy(&buf[..n]).into_owned())),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// [`recv`](Self::recv) with errors folded into `None`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<String> {
        self.recv(timeout).ok().flatten()
    }
}

/// What the keepalive asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepaliveAction {
    /// Nothing to do now.
    Wait,
    /// Time for a `/ping`.
    Ping,
    /// The last `/ping` had no answer in time: report it, ping again. The
    /// number counts unanswered pings in a row.
    Retry(u32),
}

/// The keepalive's clock: a `/ping` every `every`; any datagram from the
/// server counts as an answer; none within `answer_timeout` is a miss.
#[derive(Debug, Clone)]
pub struct Keepalive {
    every: Duration,
    answer_timeout: Duration,
    next_ping: Instant,
    awaiting: Option<Instant>,
    misses: u32,
}

impl Keepalive {
    /// A keepalive whose first ping is due at once.
    pub fn new(every: Duration, answer_timeout: Duration, now: Instant) -> Keepalive {
        Keepalive {
            every,
            answer_timeout,
            next_ping: now,
            awaiting: None,
            misses: 0,
        }
    }

    /// Something arrived from the server: it is alive. Returns how many
    /// pings had gone unanswered before (0 if none).
    pub fn answered(&mut self) -> u32 {
        self.awaiting = None;
        std::mem::take(&mut self.misses)
    }

    /// What to do at `now`; call it often (the client does every 200 ms).
    /// Assumes the caller sends the ping it is asked for.
    pub fn tick(&mut self, now: Instant) -> KeepaliveAction {
        match self.awaiting {
            Some(sent) if now.duration_since(sent) >= self.answer_timeout => {
                self.misses += 1;
                self.awaiting = Some(now);
                KeepaliveAction::Retry(self.misses)
            }
            Some(_) => KeepaliveAction::Wait,
            None if now >= self.next_ping => {
                self.awaiting = Some(now);
                self.next_ping = now + self.every;
                KeepaliveAction::Ping
            }
            None => KeepaliveAction::Wait,
        }
    }
}

/// Chat client options.
#[derive(Debug, Parser)]
#[command(about = "Talk in the UDP chat room: type lines; Ctrl-D or Ctrl-C leaves")]
struct Cli {
    /// The chat server's address.
    #[arg(long, default_value = "127.0.0.1:9527")]
    addr: String,
    /// Pick a name at start (`/nick NAME`).
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
/// closes. `goodbye` hears the server's answer to `/quit`. If the server
/// dropped us (say the machine slept past the idle timeout), `name` is
/// claimed again, which also rejoins.
fn receive(
    client: ChatClient,
    name: Option<String>,
    mut keepalive: Keepalive,
    goodbye: mpsc::Sender<()>,
) {
    let mut out = io::stdout();
    loop {
        match client.recv(Duration::from_millis(200)) {
            Ok(Some(msg)) => {
                if keepalive.answered() > 0 {
                    eprintln!("server answered again");
                }
                if msg.starts_with("* goodbye") {
                    let _ = goodbye.send(());
                }
                if msg != "/pong" {
                    let _ = writeln!(out, "{msg}");
                    let _ = out.flush();
                }
                if let (true, Some(name)) = (msg.starts_with("* you were dropped"), &name) {
                    let _ = client.send(&format!("/nick {name}"));
                }
                if msg == CLOSING {
                    eprintln!("the server closed the room");
                    std::process::exit(0);
                }
            }
            Ok(None) => {}
            // An ICMP "port unreachable" for an earlier datagram: the
            // keepalive reports the silence; do not spin on it.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                eprintln!("receive failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        match keepalive.tick(Instant::now()) {
            KeepaliveAction::Wait => {}
            KeepaliveAction::Ping => {
                let _ = client.send("/ping");
            }
            KeepaliveAction::Retry(n) => {
                eprintln!(
                    "no answer from server, retrying ({n} unanswered ping{})",
                    if n == 1 { "" } else { "s" }
                );
                let _ = client.send("/ping");
            }
        }
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

fn main() -> io::Result<()> {
    let cli = Cli::parse();
    let client = ChatClient::connect(&cli.addr, cli.name.as_deref())?;
    let keepalive = Keepalive::new(
        Duration::from_secs_f64(cli.keepalive.max(0.05)),
        Duration::from_secs_f64(cli.answer_timeout.max(0.05)),
        Instant::now(),
    );
    let (tx, rx) = mpsc::channel();
    let goodbye = Arc::new(Mutex::new(rx));
    let quitting = Arc::new(AtomicBool::new(false));

    let receiver = client.try_clone()?;
    let name = cli.name.clone();
    std::thread::Builder::new()
        .name("receive".into())
        .spawn(move || receive(receiver, name, keepalive, tx))?;

    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let (sig_client, sig_goodbye, sig_quitting) = (
        client.try_clone()?,
        Arc::clone(&goodbye),
        Arc::clone(&quitting),
    );
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() && !sig_quitting.swap(true, Ordering::SeqCst) {
                quit(&sig_client, &sig_goodbye);
                std::process::exit(0);
            }
        })?;

    for line in io::stdin().lock().lines() {
        let line = line?;
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if line == "/quit" {
            break;
        }
        if let Err(e) = client.send(line) {
            eprintln!("send failed: {e}");
        }
    }
    if !quitting.swap(true, Ordering::SeqCst) {
        quit(&client, &goodbye);
    }
    Ok(())
}
