//! B/S: the same room over HTTP/1.1, for a browser (`--web HOST:PORT`).
//!
//! A `StreamHandler` on a threading TCP server shares the UDP side's
//! [`Room`](super::room::Room): `GET /` is the page (`page.html`, embedded),
//! `GET /events` makes the browser a member and streams what the room says
//! (Server-Sent Events: one `data:` line per room line), and
//! `POST /send` is what the browser says, `/nick`, `/who` and `/quit`
//! included. Requests on a connection are read one after another
//! (keep-alive) with [`StreamRequest::next_request`], which a drain ends.
//!
//! Guards: the limits in `http.rs`; a cap on browser members (503); the
//! member token from the stream's first event, needed in an `X-Member`
//! header to send (another site's page cannot set it without a CORS
//! preflight this server never grants, nor read the stream); a
//! Content-Security-Policy allowing only the page's own script and style,
//! which puts every line in the page as text; on loopback, only loopback
//! host names (against DNS rebinding). A closed tab is noticed at
//! once (its connection's end of file) and the member leaves.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use socketserver::{
    HandlerResult, Server, ServerBuilder, Strategy, StreamHandler, StreamRequest, Threading,
    Transport,
};

use super::ChatHandler;
use super::http::{self, Refusal, Request};
use super::room::{CLIENT_BUFFER, CLOSING, Key, To};
use super::secret::Secret;

/// The page, with its script: no CDN, nothing else to fetch.
const PAGE: &str = include_str!("page.html");

/// A comment line on an idle event stream this often, so that a dead
/// connection is noticed even if its end of file never came.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// What the watcher thread sends when the browser's connection ends.
const GONE: &str = "\0gone";

/// The web side's rules.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Most browser members at once; more get 503.
    pub max_members: usize,
    /// Deadline to read one request, and how long an idle keep-alive
    /// connection stays open.
    pub timeout: Duration,
}

/// The HTTP handler: cheap to clone (everything is shared).
#[derive(Clone)]
pub struct WebHandler {
    chat: ChatHandler,
    cfg: Arc<WebConfig>,
    next_id: Arc<AtomicU64>,
}

impl StreamHandler for WebHandler {
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        req.set_write_timeout(Some(self.cfg.timeout))?;
        loop {
            let request = match http::read(req, self.cfg.timeout, CLIENT_BUFFER) {
                Ok(r) => r,
                Err(Refusal::Status(code, reason)) => {
                    return Ok(http::refuse(&mut req.wfile, code, reason, "")?);
                }
                Err(Refusal::Gone) => return Ok(()),
            };
            if !self.route(req, &request)? || !request.keep_alive {
                return Ok(());
            }
            // Keep-alive: wait (at most the timeout) for the next request.
            req.set_read_timeout(Some(self.cfg.timeout))?;
            if !req.next_request().unwrap_or(false) {
                return Ok(());
            }
        }
    }
}

impl WebHandler {
    /// One request: true if the connection may carry another.
    fn route(&self, req: &mut StreamRequest, r: &Request) -> io::Result<bool> {
        let path = r.path.split('?').next().unwrap_or_default();
        if !host_allowed(req, r) {
            return refuse(&mut req.wfile, 403, "Forbidden", "");
        }
        let w = &mut req.wfile;
        match (path, r.method.as_str()) {
            ("/", "GET") => {
                let headers = format!(
                    "Content-Type: text/html; charset=utf-8\r\nContent-Security-Policy: {}\r\n",
                    csp()
                );
                http::respond(w, (200, "OK"), &headers, PAGE.as_bytes(), r.keep_alive)?;
                Ok(true)
            }
            ("/events", "GET") => self.events(req).map(|_| false),
            ("/send", "POST") => self.send(req, r),
            ("/" | "/events", _) => refuse(w, 405, "Method Not Allowed", "Allow: GET\r\n"),
            ("/send", _) => refuse(w, 405, "Method Not Allowed", "Allow: POST\r\n"),
            _ => refuse(w, 404, "Not Found", ""),
        }
    }

    /// `GET /events`: admits the browser as a member and streams the room
    /// to it until it leaves, is dropped, or the connection ends.
    fn events(&self, req: &mut StreamRequest) -> io::Result<()> {
        let ip = req.peer.ip().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let (tx, rx) = mpsc::channel();
        let secret = Secret::new()?;
        let key = Key::Web(self.next_id.fetch_add(1, Ordering::Relaxed));
        let admitted = {
            let mut room = self.chat.room();
            if room.web_members() >= self.cfg.max_members {
                Err("! refused: too many browsers in the room; try again later".to_string())
            } else {
                let to = To::Web(tx.clone());
                room.admit(key.clone(), ip, to, Some(secret.clone()), Instant::now())
            }
        };
        let (name, out) = match admitted {
            Ok(ok) => ok,
            Err(why) => {
                log::warn!("{}: {why}", req.peer);
                return http::refuse(
                    &mut req.wfile,
                    503,
                    "Service Unavailable",
                    "Retry-After: 10\r\n",
                )
                .map(|_| ());
            }
        };
        let Key::Web(id) = key else { unreachable!() };
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
                    X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n";
        let welcome = format!(
            "{head}retry: 3000\nevent: welcome\ndata: {id}.{} {name}\n\n",
            secret.as_str()
        );
        let streamed = req.wfile.write_all(welcome.as_bytes());
        self.chat.deliver(out);
        if streamed.is_ok() {
            watch_for_close(req, tx)?;
            self.stream(req, &key, &rx);
        }
        let out = self.chat.room().leave(&key, Instant::now());
        self.chat.deliver(out);
        let _ = req.stream().shutdown(Shutdown::Both); // ends the watcher
        Ok(())
    }

    /// Writes each room line as an event until the member is gone.
    fn stream(&self, req: &mut StreamRequest, key: &Key, rx: &mpsc::Receiver<String>) {
        loop {
            let event = match rx.recv_timeout(KEEPALIVE) {
                Ok(line) if line == GONE => return,
                Ok(line) => format!("data: {line}\n\n"),
                Err(mpsc::RecvTimeoutError::Timeout) => ": keepalive\n\n".to_string(),
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            if req.wfile.write_all(event.as_bytes()).is_err()
                || event.ends_with(&format!("{CLOSING}\n\n"))
            {
                return;
            }
            if self.chat.room().member(key).is_none() {
                return; // it quit or was dropped: the goodbye was the last line
            }
        }
    }

    /// `POST /send`: the body is what the member says (text or a command).
    fn send(&self, req: &mut StreamRequest, r: &Request) -> io::Result<bool> {
        let member = r.header("x-member").and_then(|v| v.split_once('.'));
        let key = member.and_then(|(id, _)| id.parse().ok()).map(Key::Web);
        let out = key.and_then(|key| {
            let mut room = self.chat.room();
            let secret = room.member(&key)?.secret.as_ref()?;
            secret
                .matches(member?.1)
                .then(|| room.say(&key, &r.body, Instant::now()))
        });
        let Some(out) = out else {
            return refuse(&mut req.wfile, 403, "Forbidden", "");
        };
        self.chat.deliver(out);
        http::respond(&mut req.wfile, (204, "No Content"), "", b"", r.keep_alive)?;
        Ok(true)
    }
}

/// On a loopback address, a request naming another host is refused: a
/// site whose name was pointed at 127.0.0.1 (DNS rebinding) would
/// otherwise be same-origin with the room.
fn host_allowed(req: &StreamRequest, r: &Request) -> bool {
    let local = req.stream().local_addr().is_ok_and(|a| a.is_loopback());
    let Some(host) = r.header("host") else {
        return true; // not a browser: browsers always send Host
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    !local || loopback
}

fn refuse(w: &mut impl Write, code: u16, reason: &str, headers: &str) -> io::Result<bool> {
    http::refuse(w, code, reason, headers).map(|_| false)
}

/// A thread that blocks reading the event stream's connection (a browser
/// sends nothing more on it) and reports its end: a closed tab leaves at once.
fn watch_for_close(req: &StreamRequest, tx: mpsc::Sender<String>) -> io::Result<()> {
    let mut stream = req.stream().try_clone()?;
    std::thread::Builder::new()
        .name("web-watch".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            while matches!(stream.read(&mut byte), Ok(1)) {}
            let _ = tx.send(GONE.to_string());
        })?;
    Ok(())
}

/// The page's Content-Security-Policy: only its own inline script and
/// style (by hash) run; nothing is loaded from anywhere, images included.
fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = |tag: &str| {
            let inner = PAGE
                .split(&format!("<{tag}>"))
                .nth(1)
                .and_then(|s| s.split(&format!("</{tag}>")).next());
            format!(
                "'sha256-{}'",
                base64(&Sha256::digest(inner.unwrap_or_default().as_bytes()))
            )
        };
        format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hash("script"),
            hash("style")
        )
    })
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| (n << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            let c = if i <= chunk.len() {
                ABC[(n >> (18 - 6 * i)) as usize & 63]
            } else {
                b'='
            };
            out.push(char::from(c));
        }
    }
    out
}

/// Serves the room over UDP and HTTP until SIGINT/SIGTERM: prints
/// `listening on <udp>` then `web listening on <http>`, tells every member
/// the room is closing, drains both.
pub fn serve<T: Transport, S: Strategy>(
    udp: Server<T, ChatHandler, S>,
    addr: &str,
    cfg: WebConfig,
) -> io::Result<()> {
    let chat = udp.handler().clone();
    let socket = Arc::clone(udp.socket().expect("a datagram server has a socket"));
    chat.attach(Arc::clone(&socket));
    let handler = WebHandler {
        chat: chat.clone(),
        next_id: Arc::new(AtomicU64::new(1)),
        cfg: Arc::new(cfg.clone()),
    };
    let web = ServerBuilder::new()
        .strategy(Threading::new())
        .max_connections(cfg.max_members + 32)
        .drain_timeout(Duration::from_secs(2));
    let web = match super::common::edge::inherited_tcp()? {
        Some(listener) => web.from_tcp_listener(listener, handler)?, // a second LISTEN_FDS socket
        None => web.bind_tcp(addr, handler)?,
    };
    socketserver::shutdown_on_signals(&udp.handle())?;
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {}", udp.server_address())?;
    writeln!(out, "web listening on {}", web.server_address())?;
    out.flush()?;
    drop(out);
    super::common::edge::notify_ready();
    std::thread::scope(|s| {
        let web_loop = s.spawn(|| web.serve_forever());
        let udp_result = udp.serve_forever();
        super::common::edge::notify_stopping();
        web.shutdown();
        eprintln!("room closing: {} members told", chat.close_room());
        let web_result = web_loop.join().expect("the web loop panicked");
        udp_result.and(web_result)
    })?;
    web.server_close()?;
    let report = udp.server_close()?;
    eprintln!(
        "closed: {} completed, {} cut",
        report.completed, report.forced
    );
    Ok(())
}
