//! The room itself: who is in it, where each member hears, and what each
//! command does. Every function returns an [`Outbox`] (what to send where);
//! the caller sends once the room's lock is released.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use socketserver::Addr;

use super::cookie::Cookies;
use super::flood::Flood;
use super::names::{self, Held};
use super::secret::Secret;

/// The lesson's client reads with `recv(1024)`: nothing the room sends may
/// be longer, or that client would print it cut.
pub const CLIENT_BUFFER: usize = 1024;

/// What every member hears when the server shuts down.
pub const CLOSING: &str = "* room is closing";

const HELP: &str = "* commands: /nick NAME, /who, /quit, /help, /ping; \
anything else is said to the room";

/// The room's rules.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// UDP members silent this long are dropped.
    pub idle_timeout: Duration,
    /// Most members at once; newcomers beyond it are refused.
    pub max_members: usize,
    /// Most members from one source IP.
    pub max_members_per_ip: usize,
    /// Datagrams per second one source IP may send, on average.
    pub rate: f64,
    /// Datagrams one source IP may send in a burst before the rate applies.
    pub burst: f64,
    /// `--lesson`: an address that sends plain text (the lesson's client,
    /// which cannot echo a cookie) becomes a member. Loopback only.
    pub lesson: bool,
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        ChatConfig {
            idle_timeout: Duration::from_secs(300),
            max_members: 100,
            max_members_per_ip: 4,
            rate: 5.0,
            burst: 10.0,
            lesson: false,
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

/// Who a member is: a UDP address, or a browser's number (see `web.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Udp(Addr),
    Web(u64),
}

/// Where a member hears what the room says.
#[derive(Debug, Clone)]
pub enum To {
    Udp(Addr),
    Web(Sender<String>),
}

/// One member of the room.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub ip: IpAddr,
    /// `chat_client` members sign every datagram with it; members admitted
    /// by `--lesson` (and browsers, whose connection is their proof) have none.
    pub secret: Option<Secret>,
    pub to: To,
    last_seen: Instant,
    joined: u64,
}

/// Datagrams and browser lines to send once the room's lock is released.
#[derive(Debug, Default)]
pub struct Outbox(pub Vec<(To, String)>);

impl Outbox {
    /// One line for one destination.
    pub fn one(to: To, text: impl Into<String>) -> Outbox {
        Outbox(vec![(to, text.into())])
    }

    pub fn push(&mut self, to: &To, text: impl Into<String>) {
        self.0.push((to.clone(), text.into()));
    }
}

/// The shared state of the room.
pub struct Room {
    pub cfg: ChatConfig,
    pub cookies: Cookies,
    pub flood: Flood,
    members: HashMap<Key, Member>,
    held: Held,
    next_join: u64,
    closed: bool,
}

impl Room {
    /// An empty room.
    pub fn new(cfg: ChatConfig) -> std::io::Result<Room> {
        Ok(Room {
            cookies: Cookies::new()?,
            flood: Flood::new(cfg.rate, cfg.burst),
            cfg,
            members: HashMap::new(),
            held: Held::default(),
            next_join: 0,
            closed: false,
        })
    }

    pub fn member(&self, key: &Key) -> Option<&Member> {
        self.members.get(key)
    }

    /// How many members are browsers.
    pub fn web_members(&self) -> usize {
        self.members
            .keys()
            .filter(|k| matches!(k, Key::Web(_)))
            .count()
    }

    /// Members in the order they joined.
    pub fn members(&self) -> Vec<&Member> {
        let mut v: Vec<&Member> = self.members.values().collect();
        v.sort_by_key(|m| m.joined);
        v
    }

    /// `text` to every member but `except`, then to `except` if it is a
    /// member: when a sender sees its own line, everyone else has been sent theirs.
    fn to_all(&self, except: Option<&Key>, text: &str) -> Outbox {
        let mut out = Outbox::default();
        for (k, m) in &self.members {
            if Some(k) != except {
                out.push(&m.to, text);
            }
        }
        if let Some(m) = except.and_then(|k| self.members.get(k)) {
            out.push(&m.to, text);
        }
        out
    }

    /// Admits a newcomer at `key` under a `guest-N` name, if the room, its
    /// IP's share and its IP's join bucket allow; returns the name and the
    /// join notice for the others, or the refusal.
    pub fn admit(
        &mut self,
        key: Key,
        ip: IpAddr,
        to: To,
        secret: Option<Secret>,
        now: Instant,
    ) -> Result<(String, Outbox), String> {
        if self.closed {
            return Err(CLOSING.into());
        }
        if self.members.len() >= self.cfg.max_members {
            log::warn!("{key:?} refused: room full");
            return Err(format!(
                "! refused: the room is full ({} members); try again later",
                self.cfg.max_members
            ));
        }
        let from_ip = self.members.values().filter(|m| m.ip == ip).count();
        if from_ip >= self.cfg.max_members_per_ip {
            return Err(format!(
                "! refused: {from_ip} members from your address already"
            ));
        }
        if !self.flood.join(ip, now) {
            return Err("! slow down: too many joins from your address; wait a little".into());
        }
        self.next_join += 1;
        let name = names::guest(self.next_join);
        let notice = format!("* {name} joined");
        let out = self.to_all(None, &notice);
        log::info!("{name} joined ({key:?})");
        let joined = self.next_join;
        let member = Member {
            name: name.clone(),
            ip,
            secret,
            to,
            last_seen: now,
            joined,
        };
        self.members.insert(key, member);
        Ok((name, out))
    }

    /// A member's text (the datagram after its secret): a command or a
    /// line for everyone. Counts against its IP's rate, except `/ping` and
    /// `/quit`.
    pub fn say(&mut self, key: &Key, raw: &[u8], now: Instant) -> Outbox {
        let Some(m) = self.members.get_mut(key) else {
            return Outbox::default();
        };
        m.last_seen = now;
        let (to, ip) = (m.to.clone(), m.ip);
        if raw.is_empty() {
            return Outbox::default(); // an empty datagram: a keepalive, says nothing
        }
        if raw == b"/ping" {
            return Outbox::one(to, "/pong");
        }
        if raw == b"/quit" {
            return self.leave(key, now); // leaving is never refused
        }
        if !self.flood.datagram(ip, now) {
            return Outbox::one(to, self.flood.refusal());
        }
        let text = match std::str::from_utf8(raw) {
            Ok(t) => names::clean(t),
            Err(_) => Err("! refused: not valid UTF-8".into()),
        };
        match text {
            Ok(t) => self.command(key, &to, &t, now),
            Err(e) => Outbox::one(to, e),
        }
    }

    fn command(&mut self, key: &Key, to: &To, text: &str, now: Instant) -> Outbox {
        let (cmd, arg) = text.split_once(' ').unwrap_or((text, ""));
        match cmd {
            "/help" => Outbox::one(to.clone(), HELP),
            "/who" => {
                let names: Vec<String> = self.members().iter().map(|m| m.name.clone()).collect();
                Outbox(
                    who_lines(&names)
                        .into_iter()
                        .map(|l| (to.clone(), l))
                        .collect(),
                )
            }
            "/nick" => self.nick(key, to, arg, now),
            "/quit" => self.leave(key, now),
            c if c.starts_with('/') && c.len() > 1 => {
                Outbox::one(to.clone(), format!("! unknown command {c}; try /help"))
            }
            "" => Outbox::one(to.clone(), "! refused: empty message"),
            _ => {
                let line = format!("[{}] {text}", self.members[key].name);
                if line.len() > CLIENT_BUFFER {
                    return Outbox::one(
                        to.clone(),
                        format!(
                            "! refused: too long ({} bytes as \"[{}] ...\", limit {CLIENT_BUFFER})",
                            line.len(),
                            self.members[key].name
                        ),
                    );
                }
                self.to_all(Some(key), &line)
            }
        }
    }

    fn nick(&mut self, key: &Key, to: &To, new: &str, now: Instant) -> Outbox {
        let (old, ip) = (self.members[key].name.clone(), self.members[key].ip);
        let refuse = |why: String| Outbox::one(to.clone(), why);
        if !names::valid(new) {
            return refuse(format!(
                "! refused: {new:?} is not a valid name ({})",
                names::RULE
            ));
        }
        if new == old {
            return refuse(format!("* you are already {old}"));
        }
        let taken = self
            .members
            .iter()
            .any(|(k, m)| k != key && m.name.eq_ignore_ascii_case(new));
        if taken {
            return refuse(format!("! refused: the name {new} is taken"));
        }
        if !self.held.take(new, ip, now) {
            return refuse(format!("! refused: the name {new} was in use moments ago"));
        }
        self.held.hold(&old, ip, now);
        self.members.get_mut(key).expect("member").name = new.to_string();
        log::info!("{old} is now {new}");
        self.to_all(Some(key), &format!("* {old} is now known as {new}"))
    }

    /// `key` leaves: a goodbye to it, a notice to the others; its nick is
    /// held for its IP.
    pub fn leave(&mut self, key: &Key, now: Instant) -> Outbox {
        let Some(m) = self.members.remove(key) else {
            return Outbox::default();
        };
        log::info!("{} left", m.name);
        self.held.hold(&m.name, m.ip, now);
        let mut out = self.to_all(None, &format!("* {} left", m.name));
        out.push(&m.to, format!("* goodbye, {}", m.name));
        out
    }

    /// Drops UDP members silent for longer than the idle timeout (a
    /// browser stays while its connection is open) and tells everyone.
    pub fn drop_idle(&mut self, now: Instant) -> Outbox {
        let limit = self.cfg.idle_timeout;
        let idle: Vec<Key> = self
            .members
            .iter()
            .filter(|(k, m)| matches!(k, Key::Udp(_)) && now.duration_since(m.last_seen) > limit)
            .map(|(k, _)| k.clone())
            .collect();
        let secs = limit.as_secs_f64();
        let mut out = Outbox::default();
        for key in idle {
            let m = self.members.remove(&key).expect("member");
            log::info!("{} dropped: idle", m.name);
            self.held.hold(&m.name, m.ip, now);
            out.push(
                &m.to,
                format!("* you were dropped: silent for over {secs}s"),
            );
            out.0.extend(
                self.to_all(
                    None,
                    &format!("* {} was dropped (silent for over {secs}s)", m.name),
                )
                .0,
            );
        }
        self.flood.sweep(now);
        self.held.sweep(now);
        out
    }

    /// Empties the room, telling everyone it is closing; refuses everyone
    /// from now on.
    pub fn close(&mut self) -> Outbox {
        self.closed = true;
        let out = self.to_all(None, CLOSING);
        self.members.clear();
        out
    }
}

/// `/who`'s answer, split so that no datagram exceeds [`CLIENT_BUFFER`].
pub fn who_lines(names: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = format!("* {} in the room: ", names.len());
    for (i, n) in names.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        if cur.len() + sep.len() + n.len() > CLIENT_BUFFER {
            lines.push(std::mem::replace(&mut cur, format!("* ...{n}")));
        } else {
            cur.push_str(sep);
            cur.push_str(n);
        }
    }
    lines.push(cur);
    lines
}
