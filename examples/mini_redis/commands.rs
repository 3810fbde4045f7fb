//! The commands, written once and served by every strategy: they read
//! parsed arguments and append RESP replies to an output buffer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::pubsub::{Hub, Subscriber};
use crate::resp::{self, Args};
use crate::store::Db;

/// What every connection shares.
#[derive(Default)]
pub struct Shared {
    pub db: Db,
    pub hub: Hub,
    ids: AtomicU64,
}

/// One connection's state: its channels, and how to reach it.
pub struct Session {
    pub id: u64,
    pub channels: Vec<Vec<u8>>,
    subscriber: Option<Arc<dyn Subscriber>>,
}

/// What the connection should do after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
}

impl Session {
    pub fn new(shared: &Shared) -> Session {
        Session {
            id: shared.ids.fetch_add(1, Ordering::Relaxed),
            channels: Vec::new(),
            subscriber: None,
        }
    }

    /// Leaves every channel (the connection closed).
    pub fn end(&mut self, shared: &Shared) {
        for ch in self.channels.drain(..) {
            shared.hub.unsubscribe(&ch, self.id);
        }
    }
}

fn is(name: &[u8], s: &str) -> bool {
    name.eq_ignore_ascii_case(s.as_bytes())
}

fn arity(out: &mut Vec<u8>, name: &[u8]) {
    let name = String::from_utf8_lossy(name).to_lowercase();
    resp::error(
        out,
        &format!("ERR wrong number of arguments for '{name}' command"),
    );
}

fn parse_i64(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Runs one command. `subscriber` makes this connection's subscriber the
/// first time it subscribes.
pub fn execute(
    args: Args<'_>,
    shared: &Shared,
    session: &mut Session,
    out: &mut Vec<u8>,
    subscriber: &dyn Fn() -> Arc<dyn Subscriber>,
) -> Flow {
    if args.len() == 0 {
        return Flow::Continue;
    }
    let name = args.get(0);
    let n = args.len();
    if !session.channels.is_empty()
        && !["subscribe", "unsubscribe", "ping", "quit"]
            .iter()
            .any(|c| is(name, c))
    {
        let name = String::from_utf8_lossy(name).to_lowercase();
        resp::error(
            out,
            &format!(
                "ERR Can't execute '{name}': only SUBSCRIBE / UNSUBSCRIBE / PING / QUIT are allowed in this context"
            ),
        );
        return Flow::Continue;
    }
    match () {
        _ if is(name, "get") && n == 2 => match shared.db.lock().get(args.get(1)) {
            Some(e) => resp::bulk(out, &e.value),
            None => resp::null(out),
        },
        _ if is(name, "set") && n >= 3 => set(args, shared, out),
        _ if is(name, "ping") && n <= 2 => match (n, session.channels.is_empty()) {
            (1, true) => resp::simple(out, "PONG"),
            (_, true) => resp::bulk(out, args.get(1)),
            (_, false) => {
                resp::array(out, 2);
                resp::bulk(out, b"pong");
                resp::bulk(out, if n == 2 { args.get(1) } else { b"" });
            }
        },
        _ if is(name, "echo") && n == 2 => resp::bulk(out, args.get(1)),
        _ if (is(name, "del") || is(name, "exists")) && n >= 2 => {
            let mut keys = shared.db.lock();
            let del = is(name, "del");
            let count = (1..n)
                .filter(|&i| {
                    if del {
                        keys.remove(args.get(i))
                    } else {
                        keys.get(args.get(i)).is_some()
                    }
                })
                .count();
            resp::int(out, count as i64);
        }
        _ if (is(name, "incr") || is(name, "decr")) && n == 2 => incr(
            args.get(1),
            if is(name, "incr") { 1 } else { -1 },
            shared,
            out,
        ),
        _ if is(name, "expire") && n == 3 => match parse_i64(args.get(2)) {
            None => resp::error(out, "ERR value is not an integer or out of range"),
            Some(secs) => {
                let mut keys = shared.db.lock();
                let now = keys.now();
                let found = match keys.get(args.get(1)) {
                    Some(e) if secs > 0 => {
                        e.expires = Some(now + Duration::from_secs(secs as u64));
                        true
                    }
                    Some(_) => {
                        keys.remove(args.get(1));
                        true
                    }
                    None => false,
                };
                resp::int(out, found as i64);
            }
        },
        _ if is(name, "ttl") && n == 2 => {
            let mut keys = shared.db.lock();
            let now = keys.now();
            let ttl = match keys.get(args.get(1)) {
                None => -2,
                Some(e) => e
                    .expires
                    .map_or(-1, |t| ((t - now).as_millis() as i64 + 500) / 1000),
            };
            resp::int(out, ttl);
        }
        _ if is(name, "publish") && n == 3 => {
            resp::int(out, shared.hub.publish(args.get(1), args.get(2)))
        }
        _ if is(name, "subscribe") && n >= 2 => {
            let sub = session.subscriber.get_or_insert_with(subscriber).clone();
            for i in 1..n {
                let ch = args.get(i);
                if !session.channels.iter().any(|c| c == ch) {
                    session.channels.push(ch.to_vec());
                    shared.hub.subscribe(ch, session.id, Arc::clone(&sub));
                }
                confirm(out, b"subscribe", Some(ch), session.channels.len());
            }
        }
        _ if is(name, "unsubscribe") => unsubscribe(args, shared, session, out),
        _ if is(name, "quit") => {
            resp::simple(out, "OK");
            return Flow::Close;
        }
        // redis-benchmark and redis-cli ask for these at start.
        _ if is(name, "config") && n >= 3 && is(args.get(1), "get") => {
            resp::array(out, 2);
            resp::bulk(out, args.get(2));
            resp::bulk(out, b"");
        }
        _ if is(name, "command") => resp::array(out, 0),
        _ if [
            "get",
            "set",
            "ping",
            "echo",
            "del",
            "exists",
            "incr",
            "decr",
            "expire",
            "ttl",
            "publish",
            "subscribe",
            "config",
        ]
        .iter()
        .any(|c| is(name, c)) =>
        {
            arity(out, name)
        }
        _ => unknown(args, out),
    }
    Flow::Continue
}

fn unknown(args: Args<'_>, out: &mut Vec<u8>) {
    let mut msg = format!(
        "ERR unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(args.get(0))
    );
    for i in 1..args.len() {
        msg.push_str(&format!("'{}' ", String::from_utf8_lossy(args.get(i))));
    }
    resp::error(out, &msg);
}

fn confirm(out: &mut Vec<u8>, kind: &[u8], channel: Option<&[u8]>, count: usize) {
    resp::array(out, 3);
    resp::bulk(out, kind);
    match channel {
        Some(ch) => resp::bulk(out, ch),
        None => resp::null(out),
    }
    resp::int(out, count as i64);
}

fn unsubscribe(args: Args<'_>, shared: &Shared, session: &mut Session, out: &mut Vec<u8>) {
    let named: Vec<Vec<u8>> = if args.len() > 1 {
        (1..args.len()).map(|i| args.get(i).to_vec()).collect()
    } else {
        session.channels.clone()
    };
    if named.is_empty() {
        return confirm(out, b"unsubscribe", None, 0);
    }
    for ch in named {
        session.channels.retain(|c| *c != ch);
        shared.hub.unsubscribe(&ch, session.id);
        confirm(out, b"unsubscribe", Some(&ch), session.channels.len());
    }
}

/// SET key value [EX seconds | PX milliseconds] [NX | XX]
fn set(args: Args<'_>, shared: &Shared, out: &mut Vec<u8>) {
    let (mut ttl, mut nx, mut xx) = (None, false, false);
    let mut i = 3;
    while i < args.len() {
        let opt = args.get(i);
        if (is(opt, "ex") || is(opt, "px")) && i + 1 < args.len() && ttl.is_none() {
            match parse_i64(args.get(i + 1)) {
                Some(v) if v > 0 => {
                    let v = v as u64;
                    ttl = Some(if is(opt, "ex") {
                        Duration::from_secs(v)
                    } else {
                        Duration::from_millis(v)
                    });
                }
                _ => return resp::error(out, "ERR invalid expire time in 'set' command"),
            }
            i += 2;
        } else if is(opt, "nx") && !xx {
            nx = true;
            i += 1;
        } else if is(opt, "xx") && !nx {
            xx = true;
            i += 1;
        } else {
            return resp::error(out, "ERR syntax error");
        }
    }
    let mut keys = shared.db.lock();
    let exists = (nx || xx) && keys.get(args.get(1)).is_some();
    if (nx && exists) || (xx && !exists) {
        return resp::null(out);
    }
    keys.set(args.get(1), args.get(2), ttl);
    resp::simple(out, "OK");
}

fn incr(key: &[u8], by: i64, shared: &Shared, out: &mut Vec<u8>) {
    let mut keys = shared.db.lock();
    let current = match keys.get(key) {
        None => Some(0),
        Some(e) => parse_i64(&e.value),
    };
    match current.and_then(|v| v.checked_add(by)) {
        None => resp::error(out, "ERR value is not an integer or out of range"),
        Some(v) => {
            // INCR keeps the key's expiry, as Redis does.
            let expires = keys.get(key).and_then(|e| e.expires);
            keys.set(key, v.to_string().as_bytes(), None);
            if let Some(e) = keys.get(key) {
                e.expires = expires;
            }
            resp::int(out, v);
        }
    }
}
