//! The UDP chat room (`examples/chat_server.rs`, `examples/chat_client.rs`)
//! on the real binaries: delivery to every member exactly once, the
//! commands, idle drops, refusals that reach only the sender, the lesson's
//! Python client, the three thread strategies, and the closing notice.
//!
//! Every wait is bounded and waits on an event (a datagram, a line, an
//! exit). "Nobody else got it" is shown by a later sentinel message that
//! does arrive, with nothing refused before it.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::ServerProcess;

const LIMIT: Duration = Duration::from_secs(10);
/// After the sentinel: how long to keep listening for stray duplicates.
const AFTERWARDS: Duration = Duration::from_millis(300);

/// A chat member made of a plain UDP socket.
struct Peer {
    sock: UdpSocket,
    server: String,
}

impl Peer {
    fn new(server: &ServerProcess) -> Peer {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        Peer {
            sock,
            server: server.addr.clone(),
        }
    }

    /// The name the room gives it before `/nick`.
    fn addr(&self) -> String {
        self.sock.local_addr().unwrap().to_string()
    }

    fn send(&self, data: impl AsRef<[u8]>) {
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

    /// Everything received up to and including the first datagram `pred`
    /// accepts; panics (showing what came) if none does within [`LIMIT`].
    fn until(&self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let start = Instant::now();
        let mut got = Vec::new();
        while let Some(left) = LIMIT.checked_sub(start.elapsed()) {
            if let Some(m) = self.recv(left) {
                let done = pred(&m);
                got.push(m);
                if done {
                    return got;
                }
            }
        }
        panic!(
            "{}: nothing matched within {LIMIT:?}; got {got:?}",
            self.addr()
        );
    }

    /// Waits for exactly `text`, returning everything before it too.
    fn until_eq(&self, text: &str) -> Vec<String> {
        self.until(|m| m == text)
    }

    /// Whatever else arrives within [`AFTERWARDS`].
    fn rest(&self) -> Vec<String> {
        let mut got = Vec::new();
        for _ in 0..100 {
            match self.recv(AFTERWARDS) {
                Some(m) => got.push(m),
                None => break,
            }
        }
        got
    }

    /// Says `text` and waits for its own copy (sent last, so everyone else
    /// has theirs by then); returns what came before it.
    fn say(&self, name: &str, text: &str) -> Vec<String> {
        self.send(text);
        self.until_eq(&format!("[{name}] {text}"))
    }
}

fn start(extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    support::start("chat_server", &args)
}

/// `n` members who have joined (with `/ping`) and heard every join notice:
/// their sockets hold nothing more when this returns.
fn room(server: &ServerProcess, n: usize) -> Vec<Peer> {
    let peers: Vec<Peer> = (0..n).map(|_| Peer::new(server)).collect();
    for p in &peers {
        p.send("/ping");
        p.until_eq("/pong");
    }
    let ready = format!("[{}] ready", peers[0].addr());
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
    let names: Vec<String> = peers.iter().map(Peer::addr).collect();
    let mut got: Vec<Vec<String>> = vec![Vec::new(); 3];
    for (i, p) in peers.iter().enumerate() {
        got[i].extend(p.say(&names[i], &format!("hello from {i}")));
    }
    // Sentinel: once it arrives everywhere, all earlier messages have.
    let end = format!("[{}] end", names[0]);
    peers[0].send("end");
    for (i, p) in peers.iter().enumerate() {
        got[i].extend(p.until_eq(&end));
        got[i].extend(p.rest());
    }
    for (i, msgs) in got.iter().enumerate() {
        for (j, name) in names.iter().enumerate() {
            let line = format!("[{name}] hello from {j}");
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
fn nick_who_quit() {
    let server = start(&[]);
    let [a, b, c]: [Peer; 3] = room(&server, 3).try_into().ok().unwrap();
    let (an, bn, cn) = (a.addr(), b.addr(), c.addr());

    // A new name is announced to everyone, the asker included.
    a.send("/nick alice");
    let renamed = format!("* {an} is now known as alice");
    for p in [&a, &b, &c] {
        p.until_eq(&renamed);
    }
    a.say("alice", "I am alice now");

    // Taken (case-insensitively) and invalid names are refused to the asker.
    b.send("/nick ALICE");
    b.until_eq("! refused: the name ALICE is taken");
    b.send("/nick no spaces!");
    b.until(|m| m.starts_with("! refused: \"no spaces!\" is not a valid name"));
    b.send(format!("/nick {}", "x".repeat(21)));
    b.until(|m| m.starts_with("! refused:") && m.contains("not a valid name"));
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
    let after = a.say("alice", "after the quit");
    c.until_eq("[alice] after the quit");
    let stray: Vec<String> = b.rest();
    assert!(
        stray.is_empty(),
        "bob left but got {stray:?} (and {after:?})"
    );
    // Nobody else saw b's, c's, or others' refusals.
    let a_rest = a.rest();
    assert!(
        !a_rest.iter().any(|m| m.starts_with('!')),
        "alice got {a_rest:?}"
    );
}

#[test]
fn idle_member_is_dropped_and_announced() {
    let server = start(&["--idle-timeout", "1"]);
    let (quiet, lively) = (Peer::new(&server), Peer::new(&server));
    let (qn, ln) = (quiet.addr(), lively.addr());
    quiet.say(&qn, "hello");
    lively.say(&ln, "hello");
    let joined_at = Instant::now();

    // `lively` keeps pinging (a keepalive); `quiet` says nothing.
    let dropped = format!("* {qn} was dropped (silent for over 1s)");
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
    lively.send("/who");
    lively.until_eq(&format!("* 1 in the room: {ln}"));
}

#[test]
fn bad_input_is_refused_to_the_sender_only() {
    let server = start(&[]);
    let [a, b, c]: [Peer; 3] = room(&server, 3).try_into().ok().unwrap();
    let (an, bn, cn) = (a.addr(), b.addr(), c.addr());

    // Exactly the lesson's 1024 bytes once prefixed: relayed.
    let room = 1024 - format!("[{an}] ").len();
    let fits = "x".repeat(room);
    a.say(&an, &fits);
    // One byte more: refused, with its length.
    a.send("y".repeat(room + 1));
    a.until_eq(&format!(
        "! refused: too long (1025 bytes as \"[{an}] ...\", limit 1024)"
    ));
    // Longer than the server's receive buffer: seen truncated, refused.
    a.send("z".repeat(5000));
    a.until(|m| m.starts_with("! refused: too long (over 4096 bytes"));
    // Not UTF-8.
    a.send(b"caf\xe9 \xff\xfe");
    a.until_eq("! refused: not valid UTF-8");
    // A newline would let a member forge another's line.
    a.send(format!("hi\n[{bn}] I owe alice 100"));
    a.until(|m| m.starts_with("! refused: control characters"));
    // A newcomer sending garbage is refused and does not become a member.
    let d = Peer::new(&server);
    d.send(b"\xc3\x28");
    d.until_eq("! refused: not valid UTF-8");

    // The sentinel: once b and c have it, everything before it has come.
    let end = format!("[{cn}] end");
    c.send("end");
    for (p, name) in [(&b, "b"), (&c, "c")] {
        let mut got = p.until_eq(&end);
        got.extend(p.rest());
        let from_a: Vec<&String> = got
            .iter()
            .filter(|m| m.starts_with(&format!("[{an}]")))
            .collect();
        assert_eq!(
            from_a,
            vec![&format!("[{an}] {fits}")],
            "{name} got {got:?}"
        );
        assert!(
            !got.iter().any(|m| m.starts_with('!')),
            "{name} got {got:?}"
        );
        assert!(
            !got.iter().any(|m| m.contains(&d.addr())),
            "{name} got {got:?}"
        );
        assert_eq!(got.len(), 2, "{name} got {got:?}");
    }
    c.send("/who");
    c.until_eq(&format!("* 3 in the room: {an}, {bn}, {cn}"));
}

#[test]
fn a_flood_is_refused_to_the_sender_only() {
    let server = start(&["--rate", "1", "--burst", "3"]);
    let [a, b]: [Peer; 2] = room(&server, 2).try_into().ok().unwrap();
    let (an, bn) = (a.addr(), b.addr());

    const N: usize = 12;
    for i in 0..N {
        a.send(format!("flood {i}"));
    }
    // Every datagram gets exactly one answer: its own copy or a refusal.
    let mut answers = Vec::new();
    for _ in 0..N {
        answers.extend(a.until(|m| m.starts_with("[") || m.starts_with("!")));
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
    let end = format!("[{bn}] end");
    b.send("end");
    let mut got = b.until_eq(&end);
    got.extend(b.rest());
    let to_b: Vec<&String> = got
        .iter()
        .filter(|m| m.starts_with(&format!("[{an}]")))
        .collect();
    let mut expect = relayed.clone();
    expect.sort();
    let mut to_b_sorted = to_b.clone();
    to_b_sorted.sort();
    assert_eq!(to_b_sorted, expect, "b got {got:?}");
    assert!(!got.iter().any(|m| m.starts_with('!')), "b got {got:?}");
}

#[test]
fn a_full_room_refuses_newcomers() {
    let server = start(&["--max-members", "2"]);
    let (a, b, c) = (Peer::new(&server), Peer::new(&server), Peer::new(&server));
    let (an, bn) = (a.addr(), b.addr());
    a.say(&an, "hi");
    b.say(&bn, "hi");
    c.send("let me in");
    c.until_eq("! refused: the room is full (2 members); try again later");
    let end = format!("[{bn}] end");
    b.send("end");
    let mut got = a.until_eq(&end);
    got.extend(a.rest());
    assert!(!got.iter().any(|m| m.contains(&c.addr())), "a got {got:?}");
    // Once someone leaves there is room.
    b.send("/quit");
    b.until_eq(&format!("* goodbye, {bn}"));
    c.say(&c.addr(), "now?");
}

#[test]
fn the_lessons_python_client_gets_its_line_back() {
    let server = start(&[]);
    let member = Peer::new(&server);
    member.say(&member.addr(), "hi");
    let (host, port) = server.addr.rsplit_once(':').unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/lesson_chat_client.py"
    );
    let line = "hello from python 你好";
    let (status, out, err) = support::run_with_timeout(
        Command::new("python3").args([script, host, port, line]),
        LIMIT,
    );
    let (out, err) = (
        String::from_utf8(out).unwrap(),
        String::from_utf8_lossy(&err),
    );
    assert!(status.success(), "python: {status}\n{err}");
    let py_port = err
        .lines()
        .find_map(|l| l.strip_prefix("port "))
        .unwrap_or_else(|| panic!("no port on stderr: {err}"));
    let expect = format!("[127.0.0.1:{py_port}] {line}");
    assert_eq!(out, format!("{expect}\n"));
    // The member heard it too, after the join.
    let got = member.until_eq(&expect);
    assert_eq!(got, vec![format!("* 127.0.0.1:{py_port} joined"), expect]);
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

/// Lines from `rx` up to and including the first equal to `want`.
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
    let bn = bob.addr();
    bob.say(&bn, "hi");

    let mut alice = ClientProcess::start(&[
        "--addr",
        &server.addr,
        "--name",
        "alice",
        "--keepalive",
        "0.3",
    ]);
    // `--name` sends /nick at start: bob hears the join, then the name.
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
    bob.say(&bn, "hi alice");
    wait_line(
        &alice.stdout,
        |l| l == format!("[{bn}] hi alice"),
        "bob's line",
    );

    // Both are members; alice's keepalive (every 0.3 s) has been pinging
    // meanwhile, and its /pong answers are never printed (checked below).
    bob.send("/who");
    bob.until_eq(&format!("* 2 in the room: {bn}, alice"));

    // End of input: /quit, announced to bob, and a clean exit.
    let (status, out, err) = alice.end_input();
    assert!(
        status.success(),
        "chat_client exited {status}; stderr {err:?}"
    );
    bob.until_eq("* alice left");
    let all: Vec<String> = out;
    assert!(!all.iter().any(|l| l == "/pong"), "printed /pong: {all:?}");
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
    // It really retried: at least two pings reached the silent port.
    silent.set_read_timeout(Some(LIMIT)).unwrap();
    let mut buf = [0u8; 64];
    let mut pings = 0;
    while pings < 2 {
        let (n, _) = silent.recv_from(&mut buf).expect("no ping within 10 s");
        if &buf[..n] == b"/ping" {
            pings += 1;
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
    let bn = bob.addr();
    bob.say(&bn, "hi");
    let client = ClientProcess::start(&["--addr", &server.addr, "--name", "dave"]);
    wait_line(
        &client.stdout,
        |l| l.ends_with(" is now known as dave"),
        "the rename",
    );
    bob.until(|m| m.ends_with(" is now known as dave"));
    let mut client = client;
    let pid = client.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    bob.until_eq("* dave left");
    let status = support::wait_timeout(&mut client.child, LIMIT).expect("client did not exit");
    assert!(status.success(), "exit {status}");
}

#[test]
fn who_splits_a_long_list_to_fit_the_lessons_buffer() {
    // 60 members named ip:port (~15 bytes each) need more than 1024 bytes.
    let server = start(&["--rate", "1000", "--burst", "1000"]);
    let peers = room(&server, 60);
    peers[5].send("/who");
    let mut names = Vec::new();
    let mut lines = Vec::new();
    while names.len() < 60 {
        // `Peer::recv` asserts that no datagram exceeds 1024 bytes.
        let line = peers[5].recv(LIMIT).expect("the rest of /who");
        let list = if let Some(rest) = line.strip_prefix("* ...") {
            rest
        } else {
            line.strip_prefix("* 60 in the room: ")
                .unwrap_or_else(|| panic!("not a /who line: {line}"))
        };
        names.extend(list.split(", ").map(str::to_string));
        lines.push(line);
    }
    assert!(lines.len() >= 2, "{lines:?}");
    let expect: Vec<String> = peers.iter().map(Peer::addr).collect();
    assert_eq!(names, expect);
}

#[test]
fn the_chat_client_reclaims_its_name_after_an_idle_drop() {
    let server = start(&["--idle-timeout", "1"]);
    let bob = Peer::new(&server);
    bob.send("/ping");
    bob.until_eq("/pong");
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
        if renames == 2 {
            break;
        }
        let _ = bob.recv(Duration::from_millis(200)).map(|m| seen.push(m));
    }
    // Named, dropped, then back under the same name.
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
