//! A UDP chat room: the lesson's 聊天室, made a real room.
//!
//! The lesson's server waited for three datagrams, then sent its operator's
//! line to those three addresses. Here every datagram is handled as it
//! arrives, in three steps ([`handle`](ChatHandler)):
//!
//! 1. **receive a datagram** and tell what it is ([`receive`]);
//! 2. **look up or admit the member** it comes from ([`cookie::join`], [`plain`]);
//! 3. **broadcast**: send what the room says to every member ([`broadcast`]).
//!
//! Members are `guest-7` until `/nick NAME`; `/who`, `/quit`, `/help`,
//! `/ping` are commands; the rest goes to all as `[name] text`, sender last.
//!
//! UDP source addresses can be forged, so admission takes a handshake that
//! `chat_client` does for its user:
//!
//! ```text
//! client: /hello + spaces (64 bytes)   server: /cookie C       (cookie.rs)
//! client: /join C                      server: /welcome S guest-7
//! client: #S hello everyone            everyone: [guest-7] hello everyone
//! ```
//!
//! The lesson's Python client cannot echo a cookie: what it sends comes back
//! to it unchanged and reaches nobody else, unless the server runs with
//! `--lesson` (loopback only), where plain text makes a member. Beside this
//! file: `room.rs` (the room and its commands), and the hardening, each
//! module named for what it guards: `cookie.rs` (the Internet:
//! anti-amplification), `secret.rs` (a member's identity), `flood.rs`
//! (rate per source IP), `names.rs` (what members read); `--web HOST:PORT`
//! serves the same room to browsers (`web.rs`, `http.rs`, `page.html`).
//!
//! ```text
//! cargo run --example chat_server -- --addr 127.0.0.1:9527 --web 127.0.0.1:8080
//! cargo run --example chat_client -- --addr 127.0.0.1:9527 --name alice
//! ```

mod cli;
#[path = "../common/mod.rs"]
mod common;
mod cookie;
mod flood;
mod http;
mod names;
mod room;
mod secret;
mod web;

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use clap::Parser;
use cli::Cli;
use socketserver::{
    Addr, DatagramHandler, DatagramRequest, DatagramSocket, HandlerError, HandlerResult, Server,
    Strategy, Transport, TruncatedDatagram,
};

use cookie::Allowance;
pub use room::{CLIENT_BUFFER, CLOSING, ChatConfig};
use room::{Key, Outbox, Room, To};

/// The server's receive buffer: larger than [`CLIENT_BUFFER`] so that a
/// too-long message is seen whole and refused with its length.
pub const RECV_BUFFER: usize = 4096;

/// The chat room's handler: cheap to clone (the room is shared).
#[derive(Clone)]
pub struct ChatHandler {
    room: Arc<Mutex<Room>>,
    socket: Arc<OnceLock<Arc<DatagramSocket>>>,
}

/// A handler for a new, empty room.
pub fn handler(cfg: ChatConfig) -> io::Result<ChatHandler> {
    Ok(ChatHandler {
        room: Arc::new(Mutex::new(Room::new(cfg)?)),
        socket: Arc::new(OnceLock::new()),
    })
}

impl ChatHandler {
    /// Locks the room (never send while holding it).
    pub fn room(&self) -> MutexGuard<'_, Room> {
        self.room.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The socket the room sends from outside a request (idle drops, the
    /// closing notice, what browsers say).
    pub fn attach(&self, socket: Arc<DatagramSocket>) {
        let _ = self.socket.set(socket);
    }

    /// Sends what the room said outside a datagram's request (idle drops,
    /// the closing notice, what browsers say): all to members.
    pub fn deliver(&self, out: Outbox) {
        match self.socket.get() {
            Some(socket) => broadcast(socket, out, None),
            None if out.0.is_empty() => {}
            None => log::error!("no socket attached: {} lines not sent", out.0.len()),
        }
    }

    /// Tells every member the room is closing and empties it.
    pub fn close_room(&self) -> usize {
        let out = self.room().close();
        let told = out.0.len();
        self.deliver(out);
        told
    }
}

impl DatagramHandler for ChatHandler {
    fn handle(&mut self, req: &mut DatagramRequest) -> HandlerResult {
        self.attach(Arc::clone(req.socket()));
        let (out, proven) = {
            let mut room = self.room();
            let out = receive(&mut room, &req.peer, req.data(), Instant::now());
            (out, room.member(&Key::Udp(req.peer.clone())).is_some())
        };
        // The lock is released: now send.
        let mut allowance = (!proven).then(|| Allowance::new(&req.peer, req.data().len()));
        broadcast(req.socket(), out, allowance.as_mut());
        Ok(())
    }

    fn handle_error(&self, peer: &Addr, error: &HandlerError) {
        let (Some(t), Some(socket)) =
            (error.downcast_ref::<TruncatedDatagram>(), self.socket.get())
        else {
            return log::error!("error while handling a datagram from {peer}: {error}");
        };
        let text = format!("! refused: too long (over {} bytes)", t.buffer_size);
        let mut allowance = Allowance::new(peer, t.buffer_size);
        let refusal = Outbox::one(To::Udp(peer.clone()), text);
        broadcast(socket, refusal, Some(&mut allowance));
    }

    fn service_actions(&self) {
        let out = self.room().drop_idle(Instant::now());
        self.deliver(out);
    }
}

/// Step 1: what the datagram is. A `/hello` gets a cookie (and costs the
/// server no state), `/join COOKIE` asks to be admitted, `#SECRET text` is a
/// member speaking; anything else is plain text, the lesson's client.
fn receive(room: &mut Room, peer: &Addr, data: &[u8], now: Instant) -> Outbox {
    let key = Key::Udp(peer.clone());
    if cookie::is_hello(data) {
        return cookie::hello(room, peer, now);
    }
    if let Some(cookie) = data.strip_prefix(b"/join ") {
        return cookie::join(room, peer, cookie, now);
    }
    if let Some((secret, text)) = secret::split_signed(data) {
        return match room.member(&key).map(|m| &m.secret) {
            Some(Some(s)) if s.matches(secret) => room.say(&key, text, now),
            Some(_) => secret::spoofed(peer),
            None => Outbox::one(To::Udp(peer.clone()), "* you are not in the room"),
        };
    }
    plain(room, peer, data, now)
}

/// Step 2, for plain text: a `--lesson` member speaking, or the lesson's
/// client: its line comes back to it only, unless `--lesson` admits it.
fn plain(room: &mut Room, peer: &Addr, data: &[u8], now: Instant) -> Outbox {
    let (key, to) = (Key::Udp(peer.clone()), To::Udp(peer.clone()));
    match room.member(&key) {
        Some(m) if m.secret.is_some() => return secret::spoofed(peer),
        Some(_) => return room.say(&key, data, now),
        None => {}
    }
    let ip = peer.ip().expect("a UDP peer has an IP address");
    let text = std::str::from_utf8(data).map_err(|_| "! refused: not valid UTF-8".to_string());
    if !room.cfg.lesson {
        if !room.flood.datagram(ip, now) {
            return Outbox::default();
        }
        return Outbox::one(to, String::from_utf8_lossy(data));
    }
    if let Err(refusal) = text.and_then(names::clean) {
        return Outbox::one(to, refusal); // bad input never makes a member
    }
    match room.admit(key.clone(), ip, to.clone(), None, now) {
        Ok((_, mut out)) => {
            out.0.extend(room.say(&key, data, now).0);
            out
        }
        Err(refusal) => Outbox::one(to, refusal),
    }
}

/// Step 3: send what the room said, the lock released. An address that
/// has not proved it receives gets at most 3 times what it sent.
fn broadcast(socket: &DatagramSocket, out: Outbox, mut allowance: Option<&mut Allowance>) {
    for (to, text) in out.0 {
        match to {
            To::Udp(addr) => {
                if allowance
                    .as_mut()
                    .is_none_or(|a| a.permits(&addr, text.len()))
                    && let Err(e) = socket.send_to(text.as_bytes(), &addr)
                {
                    log::warn!("send to {addr} failed: {e}");
                }
            }
            To::Web(tx) => {
                let _ = tx.send(text);
            }
        }
    }
}

/// Serves until SIGINT/SIGTERM, tells the room it is closing, drains.
pub fn serve_room<T: Transport, S: Strategy>(server: Server<T, ChatHandler, S>) -> io::Result<()> {
    let socket = Arc::clone(server.socket().expect("a datagram server has a socket"));
    server.handler().attach(Arc::clone(&socket));
    common::serve_with(server, |server| {
        let told = server.handler().close_room();
        eprintln!("room closing: {told} members told");
    })
}

fn run(cli: Cli) -> io::Result<()> {
    cli.check()?;
    let cfg = cli.config();
    let interval = cfg.service_interval();
    let builder = cli
        .serve
        .builder()
        .max_packet_size(RECV_BUFFER)
        .service_interval(interval);
    let server = common::edge::bind_udp(builder, cli.addr.as_str(), handler(cfg)?)?; // or LISTEN_FDS
    cli.check_bound(server.server_address())?;
    match &cli.web {
        Some(addr) => web::serve(server, addr, cli.web_config()),
        None => serve_room(server),
    }
}

fn main() {
    common::init_logging();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("chat_server: {e}");
        std::process::exit(2);
    }
}
