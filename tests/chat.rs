//! The UDP chat room (`examples/chat_server/`, `examples/chat_client/`) on
//! the real binaries: delivery to every member exactly once, the commands,
//! idle drops, refusals that reach only the sender, the lesson's Python
//! client, the three thread strategies, the closing notice, and what the
//! room guards against (forged sources, floods, deceptive text).
//!
//! Every wait is bounded and waits on an event (a datagram, a line, an
//! exit). "Nobody else got it" is shown by a later sentinel message that
//! does arrive, with nothing refused before it. Each member sends from its
//! own loopback address (127.0.x.y) unless a test wants a shared one: the
//! room's limits are per source IP.
//!
//! A forged source is simulated by sending from the victim's own socket:
//! the server sees exactly what a spoofed datagram shows it (the victim's
//! address), and the test sees every byte the victim would receive.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::ServerProcess;

const LIMIT: Duration = Duration::from_secs(10);
/// After the sentinel: how long to keep listening for stray duplicates.
const AFTERWARDS: Duration = Duration::from_millis(300);

/// A loopback address no other member of this test run uses.
fn fresh_ip() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("127.0.{}.{}", 1 + n / 250, 1 + n % 250)
}

/// A chat member made of a plain UDP socket, doing the handshake by hand.
struct Peer {
    sock: UdpSocket,
    server: String,
    /// `guest-N`, from `/welcome` (empty if not joined).
    name: String,
    secret: String,
}

impl Peer {
    /// A member, from a fresh loopback address.
    fn new(server: &ServerProcess) -> Peer {
        Peer::at(server, &fresh_ip())
    }

    /// A member from `ip`.
    fn at(server: &ServerProcess, ip: &str) -> Peer {
        let mut p = Peer::raw_at(server, ip);
        if let Err(got) = p.join(LIMIT) {
            panic!("{ip}: could not join: {got:?}");
        }
        p
    }

    /// A socket that has not joined (the lesson's client, or a forger).
    fn raw(server: &ServerProcess) -> Peer {
        Peer::raw_at(server, &fresh_ip())
    }

    fn raw_at(server: &ServerProcess, ip: &str) -> Peer {
        Peer {
            sock: UdpSocket::bind(format!("{ip}:0")).unwrap(),
            server: server.addr.clone(),
            name: String::new(),
            secret: String::new(),
        }
    }

    /// `/hello` (padded), `/join COOKIE`, `/welcome SECRET NAME`. On
    /// failure, what came instead within `wait`.
    fn join(&mut self, wait: Duration) -> Result<(), Vec<String>> {
        self.send_raw(format!("{:<64}", "/hello"));
        let got = self.within(wait, |m| m.starts_with("/cookie "));
        let Some(cookie) = got.last().and_then(|m| m.strip_prefix("/cookie ")) else {
            return Err(got);
        };
        self.send_raw(format!("/join {cookie}"));
        let got = self.within(wait, |m| m.starts_with("/welcome ") || m.starts_with('!'));
        let Some(w) = got.last().and_then(|m| m.strip_prefix("/welcome ")) else {
            return Err(got);
        };
        let (secret, name) = w.split_once(' ').unwrap();
        (self.secret, self.name) = (secret.to_string(), name.to_string());
        Ok(())
    }

    fn addr(&self) -> String {
        self.sock.local_addr().unwrap().to_string()
    }

    /// Sends `text` signed with the member's secret.
    fn send(&self, text: impl AsRef<str>) {
        self.send_raw(format!("#{} {}", self.secret, text.as_ref()));
    }

    /// Sends bytes as they are: no secret.
    fn send_raw(&self, data: impl AsRef<[u8]>) {
        self.sock
            .send_to(data.as_ref(), self.server.as_str())
            .unwrap();
    }

    /// One datagram, or None after `wait`.
    fn recv(&self, wait: Duration) -> Option<String> {
        self.sock
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 2048];
        match self.sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                assert!(n <= 1024, "the room sent {n} bytes, over the lesson's 1024");
                Some(String::from_utf8(buf[..n].to_vec()).expect("the room sends UTF-8"))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("recv: {e}"),
        }
    }

    /// Everything received within `wait`, up to and including the first
    /// datagram `pred` accepts.
    fn within(&self, wait: Duration, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let start = Instant::now();
        let mut got = Vec::new();
        while let Some(left) = wait.checked_sub(start.elapsed()) {
            if let Some(m) = self.recv(left) {
                let done = pred(&m);
                got.push(m);
                if done {
                    break;
                }
            }
        }
        got
    }

    /// Like [`within`](Self::within) with [`LIMIT`], failing the test if
    /// nothing matches.
    fn until(&self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let got = self.within(LIMIT, &pred);
        assert!(
            got.last().is_some_and(|m| pred(m)),
            "{}: nothing matched within {LIMIT:?}; got {got:?}",
            self.addr()
        );
        got
    }

    /// Waits for exactly `text`, returning everything before it too.
    fn until_eq(&self, text: &str) -> Vec<String> {
        self.until(|m| m == text)
    }

    /// Whatever else arrives within [`AFTERWARDS`].
    fn rest(&self) -> Vec<String> {
        let mut got = Vec::new();
        while let Some(m) = self.recv(AFTERWARDS) {
            got.push(m);
        }
        got
    }

    /// Says `text` and waits for its own copy (sent last, so everyone else
    /// has theirs by then); returns what came before it.
    fn say(&self, text: &str) -> Vec<String> {
        self.send(text);
        self.until_eq(&format!("[{}] {text}", self.name))
    }
}

fn start(extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    support::start("chat_server", &args)
}

/// `n` members who have joined and heard every join notice: their sockets
/// hold nothing more when this returns.
fn room(server: &ServerProcess, n: usize) -> Vec<Peer> {
    let peers: Vec<Peer> = (0..n).map(|_| Peer::new(server)).collect();
    let ready = format!("[{}] ready", peers[0].name);
    peers[0].send("ready");
    for (i, p) in peers.iter().enumerate() {
        let got = p.until_eq(&ready);
        // The joins of those who came later, then the sentinel.
        assert_eq!(got.len(), n - i, "peer {i} got {got:?}");
    }
    peers
}

fn count(msgs: &[String], text: &str) -> usize {
    msgs.iter().filter(|m| *m == text).count()
}

/// Three members each say one thing: each message reaches all three exactly
/// once, under the right name; then SIGTERM tells all three the room is
/// closing and the server exits 0.
fn three_clients(strategy: &str) {
    let server = start(&["--strategy", strategy, "--workers", "4"]);
    let peers = room(&server, 3);
    let mut got: Vec<Vec<String>> = vec![Vec::new(); 3];
    for (i, p) in peers.iter().enumerate() {
        got[i].extend(p.say(&format!("hello from {i}")));
    }
    // Sentinel: once it arrives everywhere, all earlier messages have.
    let end = format!("[{}] end", peers[0].name);
    peers[0].send("end");
    for (i, p) in peers.iter().enumerate() {
        got[i].extend(p.until_eq(&end));
        got[i].extend(p.rest());
    }
    for (i, msgs) in got.iter().enumerate() {
        for (j, p) in peers.iter().enumerate() {
            let line = format!("[{}] hello from {j}", p.name);
            assert_eq!(count(msgs, &line), 1, "peer {i} got {msgs:?}");
        }
        assert_eq!(count(msgs, &end), 1, "peer {i} got {msgs:?}");
        assert_eq!(msgs.len(), 4, "peer {i} got extras: {msgs:?}");
    }

    let status = server.stop();
    assert!(status.success(), "chat_server exited with {status}");
    for p in &peers {
        p.until_eq("* room is closing");
    }
}

#[test]
fn three_clients_sequential() {
    three_clients("sequential");
}

#[test]
fn three_clients_threading() {
    three_clients("threading");
}

#[test]
fn three_clients_pool() {
    three_clients("pool");
}

#[test]
fn forking_is_refused_with_a_reason() {
    let (status, _out, err) = support::run_with_timeout(
        Command::new(support::example_bin("chat_server")).args([
            "--addr",
            "127.0.0.1:0",
            "--strategy",
            "forking",
        ]),
        LIMIT,
    );
    let err = String::from_utf8_lossy(&err);
    assert!(!status.success());
    assert!(err.contains("forking is not supported"), "stderr: {err}");
}

#[test]
fn default_names_are_neutral_not_addresses() {
    let server = start(&[]);
    let a = Peer::new(&server);
    let b = Peer::new(&server);
    assert!(a.name.starts_with("guest-"), "{}", a.name);
    let joined = a.until_eq(&format!("* {} joined", b.name));
    let said = b.say("hi");
    for m in joined.iter().chain(&said) {
        assert!(!m.contains("127.0."), "an address was published: {m}");
    }
}

#[test]
fn nick_who_quit() {
    let server = start(&[]);
    let [a, b, c]: [Peer; 3] = room(&server, 3).try_into().ok().unwrap();
    let (an, bn, cn) = (&a.name, &b.name, &c.name);

    // A new name is announced to everyone, the asker included.
    a.send("/nick alice");
    let renamed = format!("* {an} is now known as alice");
    for p in [&a, &b, &c] {
        p.until_eq(&renamed);
    }
    a.send("I am alice now");
    a.until_eq("[alice] I am alice now");

    // Taken (case-insensitively) and invalid names are refused to the asker.
    b.send("/nick ALICE");
    b.until_eq("! refused: the name ALICE is taken");
    b.send("/nick no spaces!");
    b.until(|m| m.starts_with("! refused: \"no spaces!\" is not a valid name"));
    b.send(format!("/nick {}", "x".repeat(21)));
    b.until(|m| m.starts_with("! refused:") && m.contains("not a valid name"));
    b.send("/nick guest-1");
    b.until(|m| m.starts_with("! refused: \"guest-1\" is not a valid name"));
    b.send("/nick bob");
    let bob = format!("* {bn} is now known as bob");
    for p in [&a, &b, &c] {
        p.until_eq(&bob);
    }

    // /who lists the members, in the order they joined, to the asker.
    c.send("/who");
    c.until_eq(&format!("* 3 in the room: alice, bob, {cn}"));
    c.send("/help");
    c.until(|m| m.starts_with("* commands: /nick NAME"));
    c.send("/frobnicate");
    c.until_eq("! unknown command /frobnicate; try /help");

    // /quit: a goodbye to the leaver, an announcement to the others.
    b.send("/quit");
    b.until_eq("* goodbye, bob");
    a.until_eq("* bob left");
    c.until_eq("* bob left");
    c.send("/who");
    c.until_eq(&format!("* 2 in the room: alice, {cn}"));

    // A message said now reaches alice and c but not bob. Sender last:
    // when alice sees her copy, bob's would already have been sent.
    a.send("after the quit");
    let after = a.until_eq("[alice] after the quit");
    c.until_eq("[alice] after the quit");
    let stray: Vec<String> = b.rest();
    assert!(
        stray.is_empty(),
        "bob left but got {stray:?} (and {after:?})"
    );
    let a_rest = a.rest();
    assert!(
        !a_rest.iter().any(|m| m.starts_with('!')),
        "alice got {a_rest:?}"
    );
}

#[test]
fn a_freed_nick_is_held_for_the_address_that_had_it() {
    let server = start(&[]);
    let ip = fresh_ip();
    let alice = Peer::at(&server, &ip);
    let mallory = Peer::new(&server);
    alice.send("/nick alice");
    alice.until(|m| m.ends_with(" is now known as alice"));
    alice.send("/quit");
    alice.until_eq("* goodbye, alice");
    // Someone else cannot take it at once...
    mallory.send("/nick alice");
    mallory.until_eq("! refused: the name alice was in use moments ago");
    // ...but alice, back from the same address (a new port), can.
    let back = Peer::at(&server, &ip);
    back.send("/nick alice");
    back.until_eq(&format!("* {} is now known as alice", back.name));
}

#[test]
fn idle_member_is_dropped_and_announced() {
    let server = start(&["--idle-timeout", "1"]);
    let (quiet, lively) = (Peer::new(&server), Peer::new(&server));
    quiet.say("hello");
    lively.say("hello");
    let joined_at = Instant::now();

    // `lively` keeps pinging (a keepalive); `quiet` says nothing.
    let dropped = format!("* {} was dropped (silent for over 1s)", quiet.name);
    let mut seen = Vec::new();
    let mut pongs = 0;
    for _ in 0..100 {
        lively.send("/ping");
        let m = lively.until(|m| m == "/pong" || m == dropped);
        pongs += count(&m, "/pong");
        let done = m.contains(&dropped);
        seen.extend(m);
        if done {
            break;
        }
        // Pace the keepalive well inside the 1 s idle timeout.
        if let Some(m) = lively.recv(Duration::from_millis(200)) {
            let done = m == dropped;
            seen.push(m);
            if done {
                break;
            }
        }
    }
    assert!(seen.contains(&dropped), "no drop announced: {seen:?}");
    assert!(pongs >= 1, "/ping was not answered /pong: {seen:?}");
    assert!(
        joined_at.elapsed() >= Duration::from_secs(1),
        "dropped before the idle timeout"
    );
    quiet.until_eq("* you were dropped: silent for over 1s");
    quiet.send("still here?");
    quiet.until_eq("* you are not in the room");
    lively.send("/who");
    lively.until_eq(&format!("* 1 in the room: {}", lively.name));
}

#[test]
fn bad_input_is_refused_to_the_sender_only() {
    let server = start(&[]);
    let [a, b, c]: [Peer; 3] = room(&server, 3).try_into().ok().unwrap();
    let an = a.name.clone();

    // Exactly the lesson's 1024 bytes once prefixed: relayed.
    let room = 1024 - format!("[{an}] ").len();
    let fits = "x".repeat(room);
    a.say(&fits);
    // One byte more: refused, with its length.
    a.send("y".repeat(room + 1));
    a.until_eq(&format!(
        "! refused: too long (1025 bytes as \"[{an}] ...\", limit 1024)"
    ));
    // Longer than the server's receive buffer: seen truncated, refused.
    a.send("z".repeat(5000));
    a.until(|m| m.starts_with("! refused: too long (over 4096 bytes"));
    // Not UTF-8.
    a.send_raw([format!("#{} ", a.secret).as_bytes(), b"caf\xe9 \xff\xfe"].concat());
    a.until_eq("! refused: not valid UTF-8");
    // A newline would let a member forge another's line.
    a.send(format!("hi\n[{}] I owe alice 100", b.name));
    a.until_eq("! refused: control characters (newlines...) (U+000A) are not allowed");

    // The sentinel: once b and c have it, everything before it has come.
    let end = format!("[{}] end", c.name);
    c.send("end");
    for (p, name) in [(&b, "b"), (&c, "c")] {
        let mut got = p.until_eq(&end);
        got.extend(p.rest());
        assert_eq!(got, vec![format!("[{an}] {fits}"), end.clone()], "{name}");
    }
}

#[test]
fn text_that_hides_reorders_or_forges_lines_is_refused() {
    let server = start(&[]);
    let [a, b]: [Peer; 2] = room(&server, 2).try_into().ok().unwrap();
    for (text, code, what) in [
        (
            "evil \u{202E}txt.exe",
            "U+202E",
            "invisible or direction-changing",
        ),
        (
            "zero\u{200B}width",
            "U+200B",
            "invisible or direction-changing",
        ),
        ("bom\u{FEFF}", "U+FEFF", "invisible or direction-changing"),
        (
            "line\u{2028}[alice] hi",
            "U+2028",
            "line and paragraph separators",
        ),
        ("tab\u{85}nel", "U+0085", "control characters"),
    ] {
        a.send(text);
        a.until(|m| m.starts_with(&format!("! refused: {what}")) && m.contains(code));
    }
    // Padding that would wrap a fake line onto a screen row of its own is
    // collapsed to one space.
    let padded = format!("hi{}[alice] send me your password", " ".repeat(200));
    a.send(&padded);
    let line = format!("[{}] hi [alice] send me your password", a.name);
    a.until_eq(&line);
    let mut got = b.until_eq(&line);
    got.extend(b.rest());
    assert_eq!(got, vec![line], "b saw a refused line");
}

#[test]
fn a_flood_is_refused_to_the_sender_only() {
    let server = start(&["--rate", "1", "--burst", "3"]);
    let [a, b]: [Peer; 2] = room(&server, 2).try_into().ok().unwrap();

    const N: usize = 12;
    for i in 0..N {
        a.send(format!("flood {i}"));
    }
    // Every datagram gets exactly one answer: its own copy or a refusal.
    let mut answers = Vec::new();
    for _ in 0..N {
        answers.extend(a.until(|m| m.starts_with('[') || m.starts_with('!')));
    }
    let relayed: Vec<&String> = answers.iter().filter(|m| m.starts_with('[')).collect();
    let refused = answers
        .iter()
        .filter(|m| m.starts_with("! slow down"))
        .count();
    assert_eq!(relayed.len() + refused, N, "{answers:?}");
    assert!(
        refused >= N / 2,
        "a flood of {N} at 1/s burst 3: {answers:?}"
    );
    assert!(!relayed.is_empty(), "{answers:?}");

    // b got exactly what a saw relayed, and none of the refusals.
    let end = format!("[{}] end", b.name);
    b.send("end");
    let mut got = b.until_eq(&end);
    got.extend(b.rest());
    let mut to_b: Vec<&String> = got
        .iter()
        .filter(|m| m.starts_with(&format!("[{}]", a.name)))
        .collect();
    let mut expect = relayed.clone();
    expect.sort();
    to_b.sort();
    assert_eq!(to_b, expect, "b got {got:?}");
    assert!(!got.iter().any(|m| m.starts_with('!')), "b got {got:?}");
}

#[test]
fn quit_and_rejoin_or_a_new_port_does_not_reset_the_rate_limit() {
    // One token per 10 s after a burst of 3: nothing refills during the test.
    let server = start(&["--rate", "0.1", "--burst", "3"]);
    let ip = fresh_ip();
    let first = Peer::at(&server, &ip);
    for i in 0..3 {
        first.say(&format!("burst {i}"));
    }
    first.send("one too many");
    first.until(|m| m.starts_with("! slow down"));
    // Leaving is never refused...
    first.send("/quit");
    first.until(|m| m.starts_with("* goodbye"));
    // ...and coming back from the same IP, on a new port, finds the same
    // empty bucket.
    let again = Peer::at(&server, &ip);
    again.send("fresh start?");
    again.until(|m| m.starts_with("! slow down"));
    // Another address has its own.
    Peer::new(&server).say("I may speak");
}

#[test]
fn joins_from_one_address_are_rate_limited() {
    let server = start(&[]);
    let watcher = Peer::new(&server);
    let ip = fresh_ip();
    let mut joined = 0;
    for _ in 0..8 {
        let mut p = Peer::raw_at(&server, &ip);
        if p.join(Duration::from_secs(1)).is_err() {
            break;
        }
        joined += 1;
        p.send("/quit");
        p.until(|m| m.starts_with("* goodbye"));
    }
    assert_eq!(joined, 5, "join/quit cycles allowed in a burst");
    // The watcher heard exactly those five joins and leaves, no more.
    let end = format!("[{}] end", watcher.name);
    watcher.send("end");
    let got = watcher.until_eq(&end);
    assert_eq!(got.len(), 2 * joined + 1, "{got:?}");
}

#[test]
fn members_per_address_are_capped() {
    let server = start(&[]);
    let ip = fresh_ip();
    let _four: Vec<Peer> = (0..4).map(|_| Peer::at(&server, &ip)).collect();
    let mut fifth = Peer::raw_at(&server, &ip);
    let got = fifth.join(LIMIT).unwrap_err();
    assert_eq!(
        got.last().unwrap(),
        "! refused: 4 members from your address already"
    );

    let server = start(&["--max-members-per-ip", "6"]);
    let _five: Vec<Peer> = (0..5).map(|_| Peer::at(&server, &ip)).collect();
}

#[test]
fn a_full_room_refuses_newcomers() {
    let server = start(&["--max-members", "2"]);
    let (a, b) = (Peer::new(&server), Peer::new(&server));
    b.say("hi");
    let mut c = Peer::raw(&server);
    let got = c.join(LIMIT).unwrap_err();
    assert_eq!(
        got.last().unwrap(),
        "! refused: the room is full (2 members); try again later"
    );
    let end = format!("[{}] end", b.name);
    b.send("end");
    let mut got = a.until_eq(&end);
    got.extend(a.rest());
    assert_eq!(got.len(), 3, "a got {got:?}"); // b's join, "hi", "end"
    // Once someone leaves there is room.
    b.send("/quit");
    b.until(|m| m.starts_with("* goodbye"));
    c.join(LIMIT).unwrap();
    c.say("now?");
}

/// Bytes in and out of a forged source, and the members' view, for
/// `attack` sent from a socket that never completes the handshake.
fn forge(server: &ServerProcess, members: &[Peer], attack: &[Vec<u8>]) -> (usize, usize) {
    let victim = Peer::raw(server);
    for d in attack {
        victim.send_raw(d);
    }
    // Sequential server, one socket pair: the sentinel's echo comes after
    // every answer to the attack.
    victim.send_raw("sentinel");
    let got = victim.until_eq("sentinel");
    let out: usize = got[..got.len() - 1].iter().map(String::len).sum();
    let inn: usize = attack.iter().map(Vec::len).sum();
    let end = format!("[{}] end", members[0].name);
    members[0].send("end");
    for m in members {
        let seen = m.until_eq(&end);
        assert_eq!(seen, vec![end.clone()], "a member heard the forged source");
    }
    (inn, out)
}

#[test]
fn a_forged_source_gets_at_most_three_times_what_it_sent() {
    // No rate limit in the way: the 3x rule alone is under test.
    let server = start(&[
        "--strategy",
        "sequential",
        "--rate",
        "10000",
        "--burst",
        "10000",
    ]);
    let members = room(&server, 20);
    let mut attack: Vec<Vec<u8>> = vec![
        b"x".to_vec(),
        b"/hello".to_vec(),
        b"/join 00000000000000000000000000000000".to_vec(),
        b"/who".to_vec(),
        b"/nick mallory".to_vec(),
        b"/quit".to_vec(),
        b"#00000000000000000000000000000000 hi".to_vec(),
        b"\xff".to_vec(),
    ];
    attack.extend((0..20).map(|_| b"y".to_vec()));
    let (inn, out) = forge(&server, &members, &attack);
    assert!(out <= 3 * inn, "{out} bytes out for {inn} in");
    // A padded /hello is answered with a cookie, within the rule too.
    let (inn, out) = forge(
        &server,
        &members,
        &[format!("{:<64}", "/hello").into_bytes()],
    );
    assert!(out > 0 && out <= 3 * inn, "{out} bytes out for {inn} in");
}

#[test]
fn forged_datagrams_cannot_speak_rename_or_kick_a_member() {
    let server = start(&["--strategy", "sequential"]);
    let [alice, bob]: [Peer; 2] = room(&server, 2).try_into().ok().unwrap();
    // Datagrams from alice's address without alice's secret.
    let wrong = "0123456789abcdef0123456789abcdef";
    for d in [
        "I owe mallory 100".to_string(),
        "/nick mallory".to_string(),
        "/quit".to_string(),
        format!("#{wrong} /quit"),
        format!("#{wrong} I owe mallory 100"),
        format!("/join {wrong}"),
    ] {
        alice.send_raw(d);
    }
    let end = format!("[{}] end", bob.name);
    bob.send("end");
    for p in [&alice, &bob] {
        assert_eq!(p.until_eq(&end), vec![end.clone()], "{}", p.name);
    }
    bob.send("/who");
    bob.until_eq(&format!("* 2 in the room: {}, {}", alice.name, bob.name));
    alice.say("still me");
}

fn lesson_client(server: &ServerProcess, line: &str) -> String {
    let (host, port) = server.addr.rsplit_once(':').unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/lesson_chat_client.py"
    );
    let (status, out, err) = support::run_with_timeout(
        Command::new("python3").args([script, host, port, line]),
        LIMIT,
    );
    let err = String::from_utf8_lossy(&err);
    assert!(status.success(), "python: {status}\n{err}");
    String::from_utf8(out).unwrap()
}

#[test]
fn the_lessons_python_client_gets_its_line_back_and_reaches_nobody_by_default() {
    let server = start(&[]);
    let member = Peer::new(&server);
    let line = "hello from python 你好";
    assert_eq!(lesson_client(&server, line), format!("{line}\n"));
    let end = format!("[{}] end", member.name);
    member.send("end");
    assert_eq!(member.until_eq(&end), vec![end]);
}

#[test]
fn the_lessons_python_client_is_a_member_with_lesson() {
    let server = start(&["--lesson"]);
    let member = Peer::new(&server);
    let line = "hello from python 你好";
    let out = lesson_client(&server, line);
    let expect = "[guest-2] hello from python 你好";
    assert_eq!(out, format!("{expect}\n"));
    let got = member.until_eq(expect);
    assert_eq!(
        got,
        vec!["* guest-2 joined".to_string(), expect.to_string()]
    );
}

#[test]
fn with_lesson_an_empty_line_joins_silently_and_hears_the_next_line() {
    // The lesson's client prints one datagram per line sent: an empty line
    // says nothing, so what it prints is what someone else says next.
    let server = start(&["--lesson"]);
    let member = Peer::new(&server);
    let listening = {
        let addr = server.addr.clone();
        std::thread::spawn(move || {
            let (host, port) = addr.rsplit_once(':').unwrap();
            let script = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/python/lesson_chat_client.py"
            );
            support::run_with_timeout(
                Command::new("python3").args([script, host, port, ""]),
                LIMIT,
            )
        })
    };
    member.until_eq("* guest-2 joined");
    member.say("hello, lesson");
    let (status, out, _) = listening.join().unwrap();
    assert!(status.success());
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("[{}] hello, lesson\n", member.name)
    );
}

#[test]
fn lesson_is_refused_off_loopback() {
    let (status, _out, err) = support::run_with_timeout(
        Command::new(support::example_bin("chat_server")).args(["--addr", "0.0.0.0:0", "--lesson"]),
        LIMIT,
    );
    let err = String::from_utf8_lossy(&err);
    assert!(!status.success());
    assert!(err.contains("only on a loopback address"), "stderr: {err}");
}

/// A running `chat_client` with piped stdio; lines arrive on channels.
struct ClientProcess {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl ClientProcess {
    fn start(args: &[&str]) -> ClientProcess {
        let mut child = Command::new(support::example_bin("chat_client"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chat_client");
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        ClientProcess {
            child,
            stdout,
            stderr,
        }
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin (Ctrl-D) and waits for a bounded exit.
    fn end_input(mut self) -> (std::process::ExitStatus, Vec<String>, Vec<String>) {
        drop(self.child.stdin.take());
        let status = support::wait_timeout(&mut self.child, LIMIT).expect("chat_client hung");
        let out: Vec<String> = self.stdout.try_iter().collect();
        let err: Vec<String> = self.stderr.try_iter().collect();
        (status, out, err)
    }
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Lines from `rx` up to and including the first `want` accepts.
fn wait_line(rx: &mpsc::Receiver<String>, want: impl Fn(&str) -> bool, what: &str) -> Vec<String> {
    let start = Instant::now();
    let mut got = Vec::new();
    while let Some(left) = LIMIT.checked_sub(start.elapsed()) {
        match rx.recv_timeout(left) {
            Ok(l) => {
                let done = want(&l);
                got.push(l);
                if done {
                    return got;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no {what} within {LIMIT:?}; got {got:?}");
}

#[test]
fn the_chat_client_sends_receives_and_quits() {
    let server = start(&[]);
    let bob = Peer::new(&server);
    bob.say("hi");

    let mut alice = ClientProcess::start(&[
        "--addr",
        &server.addr,
        "--name",
        "alice",
        "--keepalive",
        "0.3",
    ]);
    // The handshake is invisible; `--name` sends /nick once in: bob hears
    // the join, then the name.
    let got = bob.until(|m| m.ends_with(" is now known as alice"));
    assert!(got[0].ends_with(" joined"), "{got:?}");
    wait_line(
        &alice.stdout,
        |l| l.ends_with(" is now known as alice"),
        "rename on alice's stdout",
    );

    // What alice types reaches bob, and comes back to her own screen.
    alice.type_line("hello everyone");
    bob.until_eq("[alice] hello everyone");
    wait_line(
        &alice.stdout,
        |l| l == "[alice] hello everyone",
        "alice's own line",
    );

    // What bob says shows on alice's screen while her input stays open.
    bob.say("hi alice");
    let bobs = format!("[{}] hi alice", bob.name);
    wait_line(&alice.stdout, |l| l == bobs, "bob's line");

    bob.send("/who");
    bob.until_eq(&format!("* 2 in the room: {}, alice", bob.name));

    // End of input: /quit, announced to bob, and a clean exit.
    let (status, out, err) = alice.end_input();
    assert!(
        status.success(),
        "chat_client exited {status}; stderr {err:?}"
    );
    bob.until_eq("* alice left");
    for hidden in ["/pong", "/cookie", "/welcome"] {
        assert!(
            !out.iter().any(|l| l.starts_with(hidden)),
            "printed {hidden}: {out:?}"
        );
    }
    assert!(
        !err.iter().any(|l| l.contains("no answer")),
        "complained with a live server: {err:?}"
    );
}

#[test]
fn the_chat_client_reports_a_silent_server_and_does_not_hang() {
    // A UDP port that receives but never answers: like lost datagrams.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let client = ClientProcess::start(&[
        "--addr",
        &addr,
        "--keepalive",
        "0.2",
        "--answer-timeout",
        "0.3",
    ]);
    wait_line(
        &client.stderr,
        |l| l.starts_with("no answer from server, retrying"),
        "the report",
    );
    // It really retried: at least two (padded) hellos reached the port.
    silent.set_read_timeout(Some(LIMIT)).unwrap();
    let mut buf = [0u8; 128];
    let mut hellos = 0;
    while hellos < 2 {
        let (n, _) = silent.recv_from(&mut buf).expect("no hello within 10 s");
        if buf[..n].starts_with(b"/hello") {
            assert_eq!(n, 64, "the hello pays for its answer");
            hellos += 1;
        }
    }
    let (status, _out, err) = client.end_input();
    assert!(status.success(), "exit {status}; stderr {err:?}");
}

#[test]
fn the_chat_client_leaves_when_the_room_closes() {
    let server = start(&["--strategy", "pool"]);
    let client = ClientProcess::start(&["--addr", &server.addr, "--name", "carol"]);
    let carol = wait_line(
        &client.stdout,
        |l| l.ends_with("is now known as carol"),
        "the rename",
    );
    assert_eq!(carol.len(), 1, "{carol:?}");
    assert!(server.stop().success());
    wait_line(
        &client.stdout,
        |l| l == "* room is closing",
        "the closing notice",
    );
    let mut client = client;
    let status = support::wait_timeout(&mut client.child, LIMIT).expect("client did not exit");
    assert!(status.success());
}

#[test]
fn ctrl_c_in_the_chat_client_quits_the_room() {
    let server = start(&[]);
    let bob = Peer::new(&server);
    bob.say("hi");
    let client = ClientProcess::start(&["--addr", &server.addr, "--name", "dave"]);
    wait_line(
        &client.stdout,
        |l| l.ends_with(" is now known as dave"),
        "the rename",
    );
    bob.until(|m| m.ends_with(" is now known as dave"));
    let mut client = client;
    support::signal(&client.child, 2);
    bob.until_eq("* dave left");
    let status = support::wait_timeout(&mut client.child, LIMIT).expect("client did not exit");
    assert!(status.success(), "exit {status}");
}

#[test]
fn who_splits_a_long_list_to_fit_the_lessons_buffer() {
    // 60 members with 20-byte names need more than 1024 bytes.
    let server = start(&["--rate", "1000", "--burst", "1000"]);
    let peers = room(&server, 60);
    let names: Vec<String> = (0..60)
        .map(|i| format!("member-{i:02}-abcdefghij"))
        .collect();
    for (p, n) in peers.iter().zip(&names) {
        p.send(format!("/nick {n}"));
    }
    let last = format!("* {} is now known as {}", peers[59].name, names[59]);
    // Renames arrive in any order under threading: count them.
    let asker = &peers[5];
    let mut renames = 0;
    while renames < 60 {
        let m = asker
            .recv(LIMIT)
            .unwrap_or_else(|| panic!("only {renames} renames; waiting for {last}"));
        renames += usize::from(m.contains(" is now known as "));
    }
    asker.send("/who");
    let mut got = Vec::new();
    let mut lines = Vec::new();
    while got.len() < 60 {
        // `Peer::recv` asserts that no datagram exceeds 1024 bytes.
        let line = asker.recv(LIMIT).expect("the rest of /who");
        let list = if let Some(rest) = line.strip_prefix("* ...") {
            rest
        } else {
            line.strip_prefix("* 60 in the room: ")
                .unwrap_or_else(|| panic!("not a /who line: {line}"))
        };
        got.extend(list.split(", ").map(str::to_string));
        lines.push(line);
    }
    assert!(lines.len() >= 2, "{lines:?}");
    assert_eq!(got, names);
}

#[test]
fn the_chat_client_reclaims_its_name_after_an_idle_drop() {
    let server = start(&["--idle-timeout", "1"]);
    let bob = Peer::new(&server);
    // Its keepalive (5 s) is slower than the idle timeout (1 s): dropped.
    let client =
        ClientProcess::start(&["--addr", &server.addr, "--name", "erin", "--keepalive", "5"]);
    let dropped = "* erin was dropped (silent for over 1s)";
    let (mut seen, mut renames) = (Vec::new(), 0);
    for _ in 0..200 {
        bob.send("/ping"); // bob's own keepalive
        let m = bob.until(|m| m == "/pong" || m.ends_with(" is now known as erin"));
        renames += m
            .iter()
            .filter(|l| l.ends_with(" is now known as erin"))
            .count();
        seen.extend(m);
        if renames >= 2 {
            break;
        }
        if let Some(m) = bob.recv(Duration::from_millis(200)) {
            renames += usize::from(m.ends_with(" is now known as erin"));
            seen.push(m);
        }
        if renames >= 2 {
            break;
        }
    }
    // Named, dropped, then back under the same name (held for its address).
    let is_rename = |m: &String| m.ends_with(" is now known as erin");
    assert_eq!(renames, 2, "{seen:?}");
    let first = seen.iter().position(is_rename).unwrap();
    let last = seen.iter().rposition(is_rename).unwrap();
    let drop_at = seen
        .iter()
        .position(|m| m == dropped)
        .unwrap_or_else(|| panic!("no drop announced: {seen:?}"));
    assert!(first < drop_at && drop_at < last, "{seen:?}");
    wait_line(
        &client.stdout,
        |l| l.starts_with("* you were dropped"),
        "the drop notice",
    );
}
