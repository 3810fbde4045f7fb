//! The chat room's web side (`chat_server --web`): the HTTP protocol's
//! limits on raw TCP connections, Server-Sent Events delivery between a
//! browser member and a UDP member, and a real headless Chromium (Debian's
//! `chromium` driven by npm's `playwright-core`, `tests/browser/`) sharing
//! the room with the lesson's Python client.
//!
//! Every wait has a time limit; everything is on loopback, on ports the OS
//! picks.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::ServerProcess;

const LIMIT: Duration = Duration::from_secs(10);

/// A chat server with `--web`, and its web address.
fn start(extra: &[&str]) -> (ServerProcess, String) {
    let mut args = vec!["--addr", "127.0.0.1:0", "--web", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = support::start("chat_server", &args);
    let line = server.stdout.recv_timeout(LIMIT).expect("no second line");
    let web = line
        .strip_prefix("web listening on ")
        .unwrap_or_else(|| panic!("second line was {line:?}"))
        .to_string();
    (server, web)
}

fn connect(web: &str) -> TcpStream {
    let s = TcpStream::connect(web).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s
}

/// One response: status code, head, body (by Content-Length).
fn response(r: &mut BufReader<TcpStream>) -> (u16, String, Vec<u8>) {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "connection closed in a head: {head:?}"
        );
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let code = head[9..12].parse().unwrap();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0; length];
    r.read_exact(&mut body).unwrap();
    (code, head, body)
}

/// Sends `raw` on a new connection and reads one response.
fn exchange(web: &str, raw: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = connect(web);
    s.write_all(raw).unwrap();
    response(&mut BufReader::new(s))
}

/// Whether the server has closed `r`'s connection (end of file within
/// LIMIT, with nothing but the blank line ending an event before it).
fn closed(r: &mut BufReader<TcpStream>) -> bool {
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).is_ok() && rest.iter().all(u8::is_ascii_whitespace)
}

#[test]
fn the_page_is_served_with_its_fields_and_a_strict_policy() {
    let (_server, web) = start(&[]);
    let (code, head, body) = exchange(&web, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(code, 200, "{head}");
    let page = String::from_utf8(body).unwrap();
    for want in [
        "id=\"message\"",
        "id=\"log\"",
        "textContent",
        "new EventSource(\"/events\")",
    ] {
        assert!(page.contains(want), "page lacks {want}");
    }
    assert!(
        !page.contains("innerHTML"),
        "the page must never parse lines as HTML"
    );
    assert!(
        head.contains("Content-Security-Policy: default-src 'none'; script-src 'sha256-"),
        "{head}"
    );
}

#[test]
fn an_oversize_head_is_refused_with_431() {
    let (_server, web) = start(&[]);
    let big = format!("GET / HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(17 * 1024));
    let (code, ..) = exchange(&web, big.as_bytes());
    assert_eq!(code, 431);
    // Many small headers count too.
    let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
    let (code, ..) = exchange(&web, format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes());
    assert_eq!(code, 431);
}

#[test]
fn an_oversize_body_is_refused_with_413_before_it_is_read() {
    let (_server, web) = start(&[]);
    let head = "POST /send HTTP/1.1\r\nX-Member: 1.00\r\nContent-Length: 5000\r\n\r\n";
    let (code, ..) = exchange(&web, head.as_bytes());
    assert_eq!(code, 413);
}

#[test]
fn a_malformed_request_line_is_refused_with_400() {
    let (_server, web) = start(&[]);
    for bad in [
        "GET\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "G E T / HTTP/1.1\r\n\r\n",
        "\x16\x03\x01\x02\r\n\r\n",
    ] {
        let (code, ..) = exchange(&web, bad.as_bytes());
        assert_eq!(code, 400, "{bad:?}");
    }
}

#[test]
fn a_slow_request_gets_408_at_its_deadline_even_while_it_trickles() {
    let (_server, web) = start(&["--web-timeout", "1"]);
    let mut s = connect(&web);
    let started = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
    // A byte every 200 ms: each read succeeds, the request never ends.
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(200));
        if s.write_all(b"a").is_err() {
            break;
        }
    }
    let mut r = BufReader::new(s);
    let (code, ..) = response(&mut r);
    assert_eq!(code, 408);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(closed(&mut r), "the connection stays open after 408");
}

#[test]
fn keep_alive_answers_two_requests_sent_in_one_write() {
    let (_server, web) = start(&[]);
    let mut s = connect(&web);
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\nGET /missing HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let (first, head, _) = response(&mut r);
    assert_eq!(first, 200);
    assert!(head.contains("Connection: keep-alive"), "{head}");
    let (second, ..) = response(&mut r);
    assert_eq!(second, 404);
}

#[test]
fn a_foreign_host_name_is_refused_on_loopback() {
    // DNS rebinding: another site's name pointed at 127.0.0.1 would make
    // its pages same-origin with the room.
    let (_server, web) = start(&[]);
    let (code, ..) = exchange(
        &web,
        b"GET /events HTTP/1.1\r\nHost: evil.example:80\r\n\r\n",
    );
    assert_eq!(code, 403);
    let (code, ..) = exchange(
        &web,
        format!("GET / HTTP/1.1\r\nHost: {web}\r\n\r\n").as_bytes(),
    );
    assert_eq!(code, 200);
}

#[test]
fn wrong_methods_get_405_and_unknown_paths_404() {
    let (_server, web) = start(&[]);
    let (code, head, _) = exchange(&web, b"DELETE / HTTP/1.1\r\n\r\n");
    assert_eq!(code, 405);
    assert!(head.contains("Allow: GET"), "{head}");
    let (code, head, _) = exchange(&web, b"GET /send HTTP/1.1\r\n\r\n");
    assert_eq!(code, 405);
    assert!(head.contains("Allow: POST"), "{head}");
    let (code, ..) = exchange(&web, b"GET /../../etc/passwd HTTP/1.1\r\n\r\n");
    assert_eq!(code, 404);
}

/// An open `GET /events`: the member token and name from its first event.
struct Events {
    r: BufReader<TcpStream>,
    token: String,
    name: String,
}

impl Events {
    fn open(web: &str) -> Result<Events, u16> {
        let mut s = connect(web);
        s.write_all(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let code: u16 = line[9..12].parse().unwrap();
        if code != 200 {
            return Err(code);
        }
        let mut events = Events {
            r,
            token: String::new(),
            name: String::new(),
        };
        let welcome = events.until(|l| l.starts_with("data: ") && l.contains('.'));
        let (token, name) = welcome
            .strip_prefix("data: ")
            .unwrap()
            .split_once(' ')
            .unwrap();
        (events.token, events.name) = (token.to_string(), name.to_string());
        Ok(events)
    }

    /// Lines up to the first `pred` accepts; its text is returned.
    fn until(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let mut seen = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.r.read_line(&mut line).unwrap_or(0);
            assert!(n > 0, "the event stream ended; saw {seen:?}");
            let line = line.trim_end_matches('\n').to_string();
            if pred(&line) {
                return line;
            }
            seen.push(line);
        }
    }

    fn data(&mut self, text: &str) {
        let want = format!("data: {text}");
        self.until(|l| l == want);
    }
}

/// `POST /send` of `text` as the member `token`: the status.
fn post(web: &str, token: &str, text: &str) -> u16 {
    let req = format!(
        "POST /send HTTP/1.1\r\nX-Member: {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    exchange(web, req.as_bytes()).0
}

/// A UDP member that does the cookie handshake.
struct Udp {
    sock: UdpSocket,
    secret: String,
    name: String,
}

impl Udp {
    fn join(server: &ServerProcess) -> Udp {
        let sock = UdpSocket::bind("127.0.0.2:0").unwrap();
        sock.connect(&server.addr).unwrap();
        sock.set_read_timeout(Some(LIMIT)).unwrap();
        let mut u = Udp {
            sock,
            secret: String::new(),
            name: String::new(),
        };
        u.sock.send(format!("{:<64}", "/hello").as_bytes()).unwrap();
        let cookie = u.until(|m| m.starts_with("/cookie ")).split_off(8);
        u.sock.send(format!("/join {cookie}").as_bytes()).unwrap();
        let welcome = u.until(|m| m.starts_with("/welcome "));
        let (secret, name) = welcome[9..].split_once(' ').unwrap();
        (u.secret, u.name) = (secret.to_string(), name.to_string());
        u
    }

    fn say(&self, text: &str) {
        self.sock
            .send(format!("#{} {text}", self.secret).as_bytes())
            .unwrap();
    }

    fn until(&self, pred: impl Fn(&str) -> bool) -> String {
        let mut buf = [0u8; 2048];
        loop {
            let n = self
                .sock
                .recv(&mut buf)
                .expect("no datagram within the limit");
            let m = String::from_utf8(buf[..n].to_vec()).unwrap();
            if pred(&m) {
                return m;
            }
        }
    }
}

#[test]
fn sse_delivers_both_ways_and_a_closed_stream_leaves() {
    let (server, web) = start(&[]);
    let udp = Udp::join(&server);
    let mut browser = Events::open(&web).unwrap();
    assert!(browser.name.starts_with("guest-"), "{}", browser.name);
    udp.until(|m| m == format!("* {} joined", browser.name));

    // UDP to browser.
    udp.say("hi browser");
    browser.data(&format!("[{}] hi browser", udp.name));
    // Browser to UDP, and its commands.
    assert_eq!(post(&web, &browser.token, "hello udp"), 204);
    udp.until(|m| m == format!("[{}] hello udp", browser.name));
    assert_eq!(post(&web, &browser.token, "/nick webby"), 204);
    udp.until(|m| m == format!("* {} is now known as webby", browser.name));
    assert_eq!(post(&web, &browser.token, "/who"), 204);
    browser.data(&format!("* 2 in the room: {}, webby", udp.name));
    // A wrong token is refused and says nothing.
    let forged = format!(
        "{}.{}",
        browser.token.split('.').next().unwrap(),
        "0".repeat(32)
    );
    assert_eq!(post(&web, &forged, "/quit"), 403);

    // The browser goes away (a closed tab): the room hears it leave.
    drop(browser);
    udp.until(|m| m == "* webby left");
}

#[test]
fn browser_quit_ends_its_stream() {
    let (_server, web) = start(&[]);
    let mut browser = Events::open(&web).unwrap();
    assert_eq!(post(&web, &browser.token, "/quit"), 204);
    browser.data(&format!("* goodbye, {}", browser.name));
    assert!(closed(&mut browser.r), "the stream stays open after /quit");
}

#[test]
fn browser_members_are_capped_with_503() {
    let (_server, web) = start(&["--max-web-members", "2"]);
    let _a = Events::open(&web).unwrap();
    let b = Events::open(&web).unwrap();
    assert_eq!(Events::open(&web).err(), Some(503));
    // A place frees up when one leaves.
    drop(b);
    support::eventually(LIMIT, "a freed browser place", || {
        Events::open(&web).is_ok()
    });
}

#[test]
fn sigterm_closes_the_streams_and_exits_zero() {
    let (server, web) = start(&[]);
    let mut browser = Events::open(&web).unwrap();
    let status = server.stop();
    assert!(status.success(), "{status}");
    browser.data("* room is closing");
}

/// The end-to-end test in a real browser: two pages and the lesson's
/// Python client exchange messages in every direction, the XSS line shows
/// as text, a closed page's member leaves. It fails, never skips, when
/// chromium or playwright-core is missing (`.ci/run` installs both).
#[test]
fn a_real_browser_and_the_lessons_client_share_the_room() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = root.join("tests/browser");
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: apt-get install chromium"
    );
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: npm install --prefix tests/browser"
    );
    let (server, web) = start(&[
        "--lesson",
        "--rate",
        "100",
        "--burst",
        "100",
        "--max-members-per-ip",
        "20",
    ]);
    let (host, port) = server.addr.rsplit_once(':').unwrap();
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chat-web.png");
    let (status, out, err) = support::run_with_timeout(
        Command::new("node")
            .arg(browser_dir.join("chat.mjs"))
            .args([
                &format!("http://{web}/"),
                host,
                port,
                root.join("tests/python/lesson_chat_client.py")
                    .to_str()
                    .unwrap(),
                shot.to_str().unwrap(),
            ]),
        Duration::from_secs(120),
    );
    let (out, err) = (String::from_utf8_lossy(&out), String::from_utf8_lossy(&err));
    assert!(
        status.success(),
        "browser test failed: {status}\n{out}\n{err}"
    );
    assert!(out.contains("browser test passed"), "{out}\n{err}");
    assert!(shot.exists(), "no screenshot at {}", shot.display());
    assert!(server.stop().success());
}
