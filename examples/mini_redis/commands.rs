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

/// How a subscriber is made the first time a connection subscribes.
pub type MakeSubscriber<'a> = &'a dyn Fn() -> Arc<dyn Subscriber>;

type Run = fn(Args<'_>, &Shared, &mut Session, &mut Vec<u8>, MakeSubscriber<'_>) -> Flow;

/// A command: its name, how many arguments it takes (the name included)
/// and what runs it. GET and SET first: they are looked up most.
struct Command {
    name: &'static str,
    min: usize,
    max: usize,
    run: Run,
}

const MANY: usize = usize::MAX;

const COMMANDS: &[Command] = &[
    Command {
        name: "get",
        min: 2,
        max: 2,
        run: get,
    },
    Command {
        name: "set",
        min: 3,
        max: 7,
        run: set,
    },
    Command {
        name: "ping",
        min: 1,
        max: 2,
        run: ping,
    },
    Command {
        name: "echo",
        min: 2,
        max: 2,
        run: echo,
    },
    Command {
        name: "del",
        min: 2,
        max: MANY,
        run: del,
    },
    Command {
        name: "exists",
        min: 2,
        max: MANY,
        run: exists,
    },
    Command {
        name: "incr",
        min: 2,
        max: 2,
        run: incr,
    },
    Command {
        name: "decr",
        min: 2,
        max: 2,
        run: decr,
    },
    Command {
        name: "expire",
        min: 3,
        max: 3,
        run: expire,
    },
    Command {
        name: "ttl",
        min: 2,
        max: 2,
        run: ttl,
    },
    Command {
        name: "publish",
        min: 3,
        max: 3,
        run: publish,
    },
    Command {
        name: "subscribe",
        min: 2,
        max: MANY,
        run: subscribe,
    },
    Command {
        name: "unsubscribe",
        min: 1,
        max: MANY,
        run: unsubscribe,
    },
    Command {
        name: "quit",
        min: 1,
        max: MANY,
        run: quit,
    },
    // redis-benchmark and redis-cli ask for these when they start.
    Command {
        name: "config",
        min: 2,
        max: MANY,
        run: config,
    },
    Command {
        name: "command",
        min: 1,
        max: MANY,
        run: command,
    },
];

/// What a subscribed connection may still run (Redis's rule).
const WHILE_SUBSCRIBED: [&str; 4] = ["subscribe", "unsubscribe", "ping", "quit"];

/// Runs one command, appending its reply to `out`.
pub fn execute(
    args: Args<'_>,
    shared: &Shared,
    session: &mut Session,
    out: &mut Vec<u8>,
    subscriber: MakeSubscriber<'_>,
) -> Flow {
    if args.len() == 0 {
        return Flow::Continue;
    }
    let name = args.get(0);
    if !session.channels.is_empty() && !WHILE_SUBSCRIBED.iter().any(|c| is(name, c)) {
        let name = String::from_utf8_lossy(name).to_lowercase();
        let msg = format!(
            "ERR Can't execute '{name}': only SUBSCRIBE / UNSUBSCRIBE / PING / QUIT are allowed in this context"
        );
        resp::error(out, &msg);
        return Flow::Continue;
    }
    match COMMANDS.iter().find(|c| is(name, c.name)) {
        None => unknown(args, out),
        Some(c) if args.len() < c.min || args.len() > c.max => arity(out, name),
        Some(c) => return (c.run)(args, shared, session, out, subscriber),
    }
    Flow::Continue
}

fn get(
    args: Args<'_>,
    shared: &Shared,
    _: &mut Session,
    out: &mut Vec<u8>,
    _: MakeSubscriber<'_>,
) -> Flow {
    match shared.db.lock().get(args.get(1)) {
        Some(e) => resp::bulk(out, &e.value),
        None => resp::null(out),
    }
    Flow::Continue
}

fn ping(
    args: Args<'_>,
    _: &Shared,
    session: &mut Session,
    out: &mut Vec<u8>,
    _: MakeSubscriber<'_>,
) -> Flow {
    let msg = if args.len() == 2 {
        Some(args.get(1))
    } else {
        None
    };
    if session.channels.is_empty() {
        match msg {
            Some(m) => resp::bulk(out, m),
            None => resp::simple(out, "PONG"),
        }
    } else {
        resp::array(out, 2);
        resp::bulk(out, b"pong");
        resp::bulk(out, msg.unwrap_or(b""));
    }
    Flow::Continue
}

fn echo(
    args: Args<'_>,
    _: &Shared,
    _: &mut Session,
    out: &mut Vec<u8>,
    _: MakeSubscriber<'_>,
) -> Flow {
    resp::bulk(out, args.get(1));
    Flow::Continue
}

fn del(
    args: Args<'_>,
    shared: &Shared,
    _: &mut Session,
    out: &mut Vec<u8>,
    _: MakeSubscriber<'_>,
) -> Flow {
    let mut keys = shared.db.lock();
    let n = (1..args.len())
        .filter(|&i| keys.remove(args.get(i)))
        .count();
    resp::int(out, n as i64);
    Flow::Continue
}

fn exists(
    args: Args<'_>,
    shared: &Shared,
    _: &mut Session,
    out: &mut Vec<u8>,
    _: MakeSubscriber<'_>,
) -> Flow {
    let mut keys = shared.db.lock();
    let n = (1..args.len())
        .filter(|&i| keys.get(args.get(i)).is_some())
        .count();
    resp::int(out, n as i64);
    Flow::Continue
}

fn incr(
    args: Args<'_>,
    shared: &Shared,
    _: &mut Session,
    out: &mut Vec<u8>,
    _: MakeSubscriber<'_>,
) -> Flow {
    add(args.get(1), 1, shared, out);
    Flow::Continue
}

fn decr(
    args: Args<'_>,
    shared: &Shared,
    _: &mut Session,
    out: &mut Vec<u8>,
    _: MakeSubscriber<'_>,
) -> Flow {
    add(args.get(1), -1, shared, out);
    Flow::Continue
}

fn expire(
    args: Args<'_>,
    shared: &Shared,
    _: &mut Session,
    out: &mut Vec<u8>,
    _: MakeSubscriber<'_>,
) -> Flow {
    let Some(secs) = parse_i64(args.get(2)) else {
        resp::error(out, "ERR value is not an integer or out of range");
        return Flow::Continue;
    };
    let mut keys = shared.db.lock();
    let now = keys.now();
    let found = match keys.get(args.get(1)) {
        Some(e) if secs > 0 => {
            e.expires = Some(now + Duration::from_secs(secs as u64));
            true
        }
        // A time not in the future deletes the key, as in Redis.
        Some(_) => keys.remove(args.get(1)),
        None => false,
    };
    resp::int(out, found as i64);
    Flow::Continue
}

fn ttl(
    args: Args<'_>,
    shared: &Shared,
    _: &mut Session,
    out: &mut Vec<u8>,
    _: MakeSubscriber<'_>,
) -> Flow {
    let mut keys = shared.db.lock();
    let now = keys.now();
    let ttl = match keys.get(args.get(1)) {
        None => -2,
        Some(e) => e
            .expires
            .map_or(-1, |t| ((t - now).as_millis() as i64 + 500) / 1000),
    };
    resp::int(out, ttl);
    Flow::Continue
}

fn publish(
    args: Args<'_>,
    shared: &Shared,
    _: &mut Session,
    out: &mut Vec<u8>,
    _: MakeSubscriber<'_>,
) -> Flow {
    resp::int(out, shared.hub.publish(args.get(1), args.get(2)));
    Flow::Continue
}

fn subscribe(
    args: Args<'_>,
    shared: &Shared,
    session: &mut Session,
    out: &mut Vec<u8>,
    subscriber: MakeSubscriber<'_>,
) -> Flow {
    let sub = session.subscriber.get_or_insert_with(subscriber).clone();
    for i in 1..args.len() {
        let ch = args.get(i);
        if !session.channels.iter().any(|c| c == ch) {
            session.channels.push(ch.to_vec());
            shared.hub.subscribe(ch, session.id, Arc::clone(&sub));
        }
        confirm(out, b"subscribe", Some(ch), session.channels.len());
    }
    Flow::Continue
}

fn quit(
    _: Args<'_>,
    _: &Shared,
    _: &mut Session,
    out: &mut Vec<u8>,
    _: MakeSubscriber<'_>,
) -> Flow {
    resp::simple(out, "OK");
    Flow::Close
}

fn config(
    args: Args<'_>,
    _: &Shared,
    _: &mut Session,
    out: &mut Vec<u8>,
    _: MakeSubscriber<'_>,
) -> Flow {
    if args.len() >= 3 && is(args.get(1), "get") {
        resp::array(out, 2);
        resp::bulk(out, args.get(2));
        resp::bulk(out, b"");
    } else {
        resp::simple(out, "OK");
    }
    Flow::Continue
}

fn command(
    _: Args<'_>,
    _: &Shared,
    _: &mut Session,
    out: &mut Vec<u8>,
    _: MakeSubscriber<'_>,
) -> Flow {
    resp::array(out, 0);
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

fn unsubscribe(
    args: Args<'_>,
    shared: &Shared,
    session: &mut Session,
    out: &mut Vec<u8>,
    _: MakeSubscriber<'_>,
) -> Flow {
    let named: Vec<Vec<u8>> = if args.len() > 1 {
        (1..args.len()).map(|i| args.get(i).to_vec()).collect()
    } else {
        session.channels.clone()
    };
    if named.is_empty() {
        confirm(out, b"unsubscribe", None, 0);
    }
    for ch in named {
        session.channels.retain(|c| *c != ch);
        shared.hub.unsubscribe(&ch, session.id);
        confirm(out, b"unsubscribe", Some(&ch), session.channels.len());
    }
    Flow::Continue
}

/// SET key value [EX seconds | PX milliseconds] [NX | XX]
fn set(
    args: Args<'_>,
    shared: &Shared,
    _: &mut Session,
    out: &mut Vec<u8>,
    _: MakeSubscriber<'_>,
) -> Flow {
    set_with_options(args, shared, out);
    Flow::Continue
}

fn set_with_options(args: Args<'_>, shared: &Shared, out: &mut Vec<u8>) {
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

fn add(key: &[u8], by: i64, shared: &Shared, out: &mut Vec<u8>) {
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
