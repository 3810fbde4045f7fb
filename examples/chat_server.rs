//! A UDP chat room: the lesson's 聊天室, made a real room.
//!
//! The lesson's server waited for exactly three datagrams and then
//! broadcast whatever its operator typed. Here every datagram is handled as
//! it arrives by a [`DatagramHandler`] sharing one [`Room`] (behind a
//! mutex) with every request:
//!
//! - the first datagram from an address makes it a member, named `ip:port`
//!   until it sends `/nick NAME`;
//! - every text message goes to every member, the sender included (and the
//!   sender last), as `[name] text`, so the lesson's Python client (send a
//!   line, print one datagram) works unchanged;
//! - `/nick NAME`, `/who`, `/quit`, `/help` and `/ping` (answered `/pong`,
//!   a keepalive) are commands;
//! - invalid UTF-8, control characters, messages that would not fit the
//!   lesson's 1024-byte receive buffer once prefixed, and floods (a token
//!   bucket per member) get an error datagram starting with `! ` to the
//!   sender only and are never relayed;
//! - members silent for `--idle-timeout` seconds are dropped from
//!   `service_actions` (no timer thread) and the room is told;
//! - SIGINT/SIGTERM tells every member `* room is closing`, then exits 0.
//!
//! ```text
//! cargo run --example chat_server -- --addr 127.0.0.1:9527 --strategy threading
//! cargo run --example chat_client -- --addr 127.0.0.1:9527 --name alice
//! ```
//!
//! `--strategy forking` is refused: the room lives in this process's memory
//! and a forked child's changes to it would be lost.

// The shared serve macro is not used here (see `serve_room`).
#[allow(unused_macros, unused_imports)]
mod common;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use socketserver::{
    Addr, DatagramHandler, DatagramRequest, DatagramSocket, HandlerError, HandlerResult, Server,
    Strategy, Transport, TruncatedDatagram,
};

/// The lesson's client reads with `recv(1024)`: nothing the room sends may
/// be longer, or that client would print it cut.
pub const CLIENT_BUFFER: usize = 1024;

/// The server's receive buffer: larger than [`CLIENT_BUFFER`] so that a
/// too-long message is seen whole and refused with its length; anything
/// longer still is reported by the core as [`TruncatedDatagram`] and refused
/// from `handle_error`.
pub const RECV_BUFFER: usize = 4096;

/// What every member hears when the server shuts down.
pub const CLOSING: &str = "* room is closing";

/// The room's rules.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// Members silent this long are dropped.
    pub idle_timeout: Duration,
    /// Most members at once; newcomers beyond it are refused.
    pub max_members: usize,
    /// Datagrams per second a member may send, on average.
    pub rate: f64,
    /// Datagrams a member may send in a burst before the rate applies.
    pub burst: f64,
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        ChatConfig {
            idle_timeout: Duration::from_secs(300),
            max_members: 100,
            rate: 5.0,
            burst: 10.0,
        }
    }
}

impl ChatConfig {
    /// How often `service_actions` should run to drop idle members on time
    /// even when no datagram arrives: `min(1 s, idle_timeout / 4)`.
    pub fn service_interval(&self) -> Duration {
        (self.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

/// One member of the room.
#[derive(Debug, Clone)]
pub struct Member {
    /// Where the member's datagrams come from, and where the room sends.
    pub addr: Addr,
    /// `ip:port` until `/nick`.
    pub name: String,
    last_seen: Instant,
    tokens: f64,
    refilled: Instant,
    joined: u64,
}

impl Member {
    /// Takes one token from the member's bucket; false if it is empty.
    fn take_token(&mut self, cfg: &ChatConfig, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * cfg.rate).min(cfg.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The shared state of the room: who is in it.
#[derive(Debug, Default)]
pub struct Room {
    members: HashMap<Addr, Member>,
    next_join: u64,
    closed: bool,
}

impl Room {
    /// Members in the order they joined.
    pub fn members(&self) -> Vec<&Member> {
        let mut v: Vec<&Member> = self.members.values().collect();
        v.sort_by_key(|m| m.joined);
        v
    }

    fn addrs_except(&self, except: Option<&Addr>) -> Vec<Addr> {
        self.members
            .keys()
            .filter(|a| Some(*a) != except)
            .cloned()
            .collect()
    }

    fn name_taken(&self, name: &str) -> bool {
        self.members
            .values()
            .any(|m| m.name.eq_ignore_ascii_case(name))
    }
}

/// Datagrams to send once the room's lock is released: `(to, text)`.
type Outbox = Vec<(Addr, String)>;

/// The chat room's handler: cheap to clone (everything is shared), so the
/// core can clone it per datagram under any thread strategy.
#[derive(Debug, Clone)]
pub struct ChatHandler {
    cfg: Arc<ChatConfig>,
    room: Arc<Mutex<Room>>,
    socket: Arc<OnceLock<Arc<DatagramSocket>>>,
}

/// A handler for a new, empty room.
pub fn handler(cfg: ChatConfig) -> ChatHandler {
    ChatHandler {
        cfg: Arc::new(cfg),
        room: Arc::new(Mutex::new(Room::default())),
        socket: Arc::new(OnceLock::new()),
    }
}

/// Checks a name for `/nick`: 1 to 20 of `A-Z a-z 0-9 _ -`.
pub fn valid_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

const HELP: &str = "* commands: /nick NAME (1-20 of A-Z a-z 0-9 _ -), /who, /quit, /help, /ping; \
anything else is said to the room";

impl ChatHandler {
    /// The socket the room sends from when it is not answering a datagram
    /// (idle drops, the closing notice, refusing a truncated datagram).
    /// Optional: the first datagram handled attaches the server's socket
    /// anyway. Has no effect once a socket is attached.
    pub fn attach(&self, socket: Arc<DatagramSocket>) {
        let _ = self.socket.set(socket);
    }

    /// The room's rules.
    pub fn config(&self) -> &ChatConfig {
        &self.cfg
    }

    /// Locks the room (for inspection; never send while holding it).
    pub fn room(&self) -> MutexGuard<'_, Room> {
        self.room.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The members' names, in the order they joined.
    pub fn names(&self) -> Vec<String> {
        self.room()
            .members()
            .iter()
            .map(|m| m.name.clone())
            .collect()
    }

    /// Tells every member the room is closing, empties it, and refuses
    /// everyone from now on. Returns how many members were told.
    pub fn close_room(&self, socket: &DatagramSocket) -> usize {
        let addrs: Vec<Addr> = {
            let mut room = self.room();
            room.closed = true;
            room.members.drain().map(|(a, _)| a).collect()
        };
        for a in &addrs {
            send(socket, a, CLOSING);
        }
        addrs.len()
    }

    /// Drops members silent for longer than the idle timeout and tells the
    /// others (and, in case it is still listening, the dropped member).
    /// Returns the names dropped.
    pub fn drop_idle(&self, socket: &DatagramSocket, now: Instant) -> Vec<String> {
        let limit = self.cfg.idle_timeout;
        let (dropped, rest): (Vec<Member>, Vec<Addr>) = {
            let mut room = self.room();
            let idle: Vec<Addr> = room
                .members
                .values()
                .filter(|m| now.saturating_duration_since(m.last_seen) > limit)
                .map(|m| m.addr.clone())
                .collect();
            if idle.is_empty() {
                return Vec::new();
            }
            let dropped = idle.iter().filter_map(|a| room.members.remove(a)).collect();
            (dropped, room.addrs_except(None))
        };
        let secs = limit.as_secs_f64();
        for m in &dropped {
            log::info!("{} ({}) dropped: idle", m.name, m.addr);
            send(
                socket,
                &m.addr,
                &format!("* you were dropped: silent for over {secs}s"),
            );
            let note = format!("* {} was dropped (silent for over {secs}s)", m.name);
            for a in &rest {
                send(socket, a, &note);
            }
        }
        dropped.into_iter().map(|m| m.name).collect()
    }

    /// Handles one datagram `data` from `peer`: returns what to send where.
    /// All the room's rules live here; the caller sends after the lock is
    /// released.
    pub fn process(&self, peer: &Addr, data: &[u8], now: Instant) -> Outbox {
        let reply = |text: String| vec![(peer.clone(), text)];
        // Stateless checks first: what is wrong with the datagram itself.
        let text = std::str::from_utf8(data)
            .map_err(|_| "! refused: not valid UTF-8".to_string())
            .map(|t| t.strip_suffix('\n').unwrap_or(t))
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .and_then(|t| {
                if t.chars().any(|c| c.is_control() && c != '\t') {
                    Err("! refused: control characters (newlines...) are not allowed".to_string())
                } else {
                    Ok(t)
                }
            });

        let mut room = self.room();
        if room.closed {
            return reply(CLOSING.to_string());
        }
        if text.as_deref() == Ok("/quit") {
            let Some(m) = room.members.remove(peer) else {
                return reply("* goodbye (you were not in the room)".into());
            };
            log::info!("{} ({}) left", m.name, m.addr);
            let note = format!("* {} left", m.name);
            let mut out: Outbox = room
                .addrs_except(None)
                .into_iter()
                .map(|a| (a, note.clone()))
                .collect();
            out.push((peer.clone(), format!("* goodbye, {}", m.name)));
            return out;
        }

        let newcomer = !room.members.contains_key(peer);
        if newcomer {
            let text = match text {
                Ok(t) => t,
                Err(e) => return reply(e), // bad input never makes a member
            };
            if room.members.len() >= self.cfg.max_members {
                log::warn!("{peer} refused: room full");
                return reply(format!(
                    "! refused: the room is full ({} members); try again later",
                    self.cfg.max_members
                ));
            }
            let joined = room.next_join;
            room.next_join += 1;
            let name = peer.to_string();
            room.members.insert(
                peer.clone(),
                Member {
                    addr: peer.clone(),
                    name: name.clone(),
                    last_seen: now,
                    tokens: self.cfg.burst - 1.0, // this datagram
                    refilled: now,
                    joined,
                },
            );
            log::info!("{name} joined");
            let note = format!("* {name} joined");
            let mut out: Outbox = room
                .addrs_except(Some(peer))
                .into_iter()
                .map(|a| (a, note.clone()))
                .collect();
            out.extend(self.member_says(&mut room, peer, text));
            return out;
        }

        let member = room.members.get_mut(peer).expect("member");
        member.last_seen = now;
        if !member.take_token(&self.cfg, now) {
            return reply(format!(
                "! slow down: message not sent (limit {}/s, burst {})",
                self.cfg.rate, self.cfg.burst
            ));
        }
        match text {
            Ok(t) => self.member_says(&mut room, peer, t),
            Err(e) => reply(e),
        }
    }

    /// A member's valid text: a command or a message for everyone.
    fn member_says(&self, room: &mut Room, peer: &Addr, text: &str) -> Outbox {
        let reply = |text: String| vec![(peer.clone(), text)];
        let name = room.members[peer].name.clone();
        let (cmd, arg) = match text.split_once(' ') {
            Some((c, a)) => (c, a.trim()),
            None => (text, ""),
        };
        match cmd {
            "/ping" => reply("/pong".into()),
            "/help" => reply(HELP.into()),
            "/who" => {
                let names: Vec<String> = room.members().iter().map(|m| m.name.clone()).collect();
                who_lines(&names)
                    .into_iter()
                    .map(|l| (peer.clone(), l))
                    .collect()
            }
            "/nick" => {
                if !valid_name(arg) {
                    return reply(format!(
                        "! refused: {arg:?} is not a valid name (1-20 of A-Z a-z 0-9 _ -)"
                    ));
                }
                if arg == name {
                    return reply(format!("* you are already {name}"));
                }
                if room.name_taken(arg) && !name.eq_ignore_ascii_case(arg) {
                    return reply(format!("! refused: the name {arg} is taken"));
                }
                room.members.get_mut(peer).expect("member").name = arg.to_string();
                log::info!("{name} is now {arg}");
                let note = format!("* {name} is now known as {arg}");
                to_all_sender_last(room, peer, &note)
            }
            c if c.starts_with('/') && c.len() > 1 => {
                reply(format!("! unknown command {c}; try /help"))
            }
            _ if text.is_empty() => reply("! refused: empty message".into()),
            _ => {
                let line = format!("[{name}] {text}");
                if line.len() > CLIENT_BUFFER {
                    return reply(format!(
                        "! refused: too long ({} bytes as \"[{name}] ...\", limit {CLIENT_BUFFER})",
                        line.len()
                    ));
                }
                to_all_sender_last(room, peer, &line)
            }
        }
    }
}

/// `text` for every member, the sender's copy last: when the sender sees its
/// own message, everyone else has already been sent theirs.
fn to_all_sender_last(room: &Room, sender: &Addr, text: &str) -> Outbox {
    let mut out: Outbox = room
        .addrs_except(Some(sender))
        .into_iter()
        .map(|a| (a, text.to_string()))
        .collect();
    out.push((sender.clone(), text.to_string()));
    out
}

/// `/who`'s answer, split so that no datagram exceeds [`CLIENT_BUFFER`].
pub fn who_lines(names: &[String]) -> Vec<String> {
    let head = format!("* {} in the room: ", names.len());
    let mut lines = Vec::new();
    let mut cur = head.clone();
    let mut first = true;
    for n in names {
        let sep = if first { "" } else { ", " };
        if cur.len() + sep.len() + n.len() > CLIENT_BUFFER {
            lines.push(std::mem::replace(&mut cur, format!("* ...{n}")));
        } else {
            cur.push_str(sep);
            cur.push_str(n);
        }
        first = false;
    }
    lines.push(cur);
    lines
}

/// Sends one datagram, logging (not failing on) errors: one unreachable
/// member must not stop the others from hearing.
fn send(socket: &DatagramSocket, to: &Addr, text: &str) {
    if let Err(e) = socket.send_to(text.as_bytes(), to) {
        log::warn!("send to {to} failed: {e}");
    }
}

impl DatagramHandler for ChatHandler {
    fn handle(&mut self, req: &mut DatagramRequest) -> HandlerResult {
        self.attach(Arc::clone(req.socket()));
        let out = self.process(&req.peer, req.data(), Instant::now());
        // The lock is released: now send.
        for (to, text) in &out {
            send(req.socket(), to, text);
        }
        Ok(())
    }

    fn handle_error(&self, peer: &Addr, error: &HandlerError) {
        if let Some(t) = error.downcast_ref::<TruncatedDatagram>() {
            log::warn!("{peer}: {t}");
            if let Some(socket) = self.socket.get() {
                send(
                    socket,
                    peer,
                    &format!(
                        "! refused: too long (over {} bytes; limit {CLIENT_BUFFER} with your name)",
                        t.buffer_size
                    ),
                );
            }
        } else {
            log::error!("error while handling a datagram from {peer}: {error}");
        }
    }

    fn service_actions(&self) {
        if let Some(socket) = self.socket.get() {
            self.drop_idle(socket, Instant::now());
        }
    }
}

/// Chat server options.
#[derive(Debug, Parser)]
#[command(about = "A UDP chat room (the lesson's 聊天室)")]
struct Cli {
    /// Address to listen on (UDP); port 0 lets the OS pick.
    #[arg(long, default_value = "127.0.0.1:9527")]
    addr: String,
    /// Seconds of silence after which a member is dropped.
    #[arg(long, default_value_t = 300.0)]
    idle_timeout: f64,
    /// Most members at once.
    #[arg(long, default_value_t = 100)]
    max_members: usize,
    /// Datagrams per second a member may send, on average.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Datagrams a member may send in a burst.
    #[arg(long, default_value_t = 10.0)]
    burst: f64,
    #[command(flatten)]
    serve: common::ServeArgs,
}

/// Prints `listening on <addr>`, serves until SIGINT/SIGTERM, tells the room
/// it is closing, then closes the server.
pub fn serve_room<T: Transport, S: Strategy>(server: Server<T, ChatHandler, S>) -> io::Result<()> {
    let socket = Arc::clone(server.socket().expect("a datagram server has a socket"));
    // Idle drops and refusals of truncated datagrams send from the loop.
    server.handler().attach(Arc::clone(&socket));
    common::serve_with(server, |server| {
        let told = server.handler().close_room(&socket);
        eprintln!("room closing: {told} members told");
    })
}

fn run(cli: Cli) -> io::Result<()> {
    use common::StrategyArg;
    if cli.serve.strategy == StrategyArg::Forking {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--strategy forking is not supported: the room lives in this process's memory and \
             a forked child's changes to it would be lost; use sequential, threading or pool",
        ));
    }
    let cfg = ChatConfig {
        idle_timeout: Duration::from_secs_f64(cli.idle_timeout.max(0.01)),
        max_members: cli.max_members,
        rate: cli.rate.max(0.001),
        burst: cli.burst.max(1.0),
    };
    let room = handler(cfg);
    let addr = cli.addr.as_str();
    let builder = cli
        .serve
        .builder()
        .max_packet_size(RECV_BUFFER)
        .service_interval(room.config().service_interval());
    serve_room(builder.bind_udp(addr, room)?)
}

fn main() {
    common::init_logging();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("chat_server: {e}");
        std::process::exit(2);
    }
}
