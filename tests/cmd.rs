//! The remote command example (`cmd_server` / `cmd_client`), run as built
//! binaries: deadlock-free pipes, timeout, output caps, exit status, the
//! token, malformed frames, the lesson's Python client and server, and one
//! test per finding of the security audit (browser-shaped requests, the
//! inherited token, short tokens, back-off, slowloris, `SO_PEERCRED`, the
//! output budget, `setsid`, dual-stack peers).

mod support;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use socketserver::framing::{self, FrameFormat};
use support::{LIMIT, ServerProcess, eventually, example_bin, run_with_timeout, within};

const MIB: usize = 1 << 20;
/// The token the tests' servers are started with (in `CMD_TOKEN`).
const TOKEN: &str = "3f5c0a9e1b7d4c2e8a6f0b1d9c7e5a3b";

fn server_cmd(extra: &[&str]) -> Command {
    let mut cmd = Command::new(example_bin("cmd_server"));
    cmd.env("CMD_TOKEN", TOKEN)
        .args(["--addr", "127.0.0.1:0"])
        .args(extra);
    cmd
}

fn server(extra: &[&str]) -> ServerProcess {
    support::start_with(&mut server_cmd(extra))
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to cmd_server");
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.set_write_timeout(Some(LIMIT)).unwrap();
    s
}

/// Reads one response: (header, body).
fn read_response(s: &mut impl Read) -> (Value, Vec<u8>) {
    let header: Value = FrameFormat::LESSON
        .read_json(s)
        .expect("response header")
        .expect("server closed instead of answering");
    let total = header["total_size"].as_u64().expect("total_size");
    let mut body = Vec::new();
    framing::copy_body(s, &mut body, total).expect("body");
    (header, body)
}

/// Sends a framed request and reads the response.
fn request<S: Read + Write>(s: &mut S, req: Value) -> (Value, Vec<u8>) {
    framing::write_json(s, &req).unwrap();
    read_response(s)
}

/// Runs `cmd` with the right token.
fn run<S: Read + Write>(s: &mut S, cmd: &str) -> (Value, Vec<u8>) {
    request(s, json!({ "cmd": cmd, "token": TOKEN }))
}

/// Asserts the server closed the connection (EOF, or reset) after an error.
fn assert_closed(s: &mut impl Read) {
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("expected the connection closed, got {n} more bytes"),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
    }
}

/// Asserts a refusal whose message contains `what`, then the close.
fn assert_refused(s: &mut impl Read, what: &str) {
    let (h, body) = read_response(s);
    let msg = h["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not refused: {h}"));
    assert!(msg.contains(what), "{msg:?} does not say {what:?}");
    assert_eq!(h["total_size"], 0);
    assert!(body.is_empty());
    assert_closed(s);
}

fn client_cmd(addr: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(example_bin("cmd_client"));
    cmd.env("CMD_TOKEN", TOKEN)
        .args(["--addr", addr])
        .args(args);
    cmd
}

fn client(addr: &str, args: &[&str]) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    let (status, out, err) = run_with_timeout(&mut client_cmd(addr, args), LIMIT);
    (status.code(), out, err)
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// True once `pid` no longer runs (gone, or a zombie waiting for its reaper).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

fn pid_in(body: &[u8]) -> u32 {
    String::from_utf8_lossy(body).trim().parse().expect("a pid")
}

#[test]
fn a_mebibyte_on_each_pipe_does_not_deadlock_in_either_order() {
    let srv = server(&[]);
    let mut s = connect(&srv.addr);
    // stderr first: a server that read stdout to the end first (the lesson's
    // order reversed) would block; stdout first blocks the lesson's order.
    for cmd in [
        "head -c 1048576 /dev/zero | tr '\\0' e >&2; head -c 1048576 /dev/zero | tr '\\0' o",
        "head -c 1048576 /dev/zero | tr '\\0' o; head -c 1048576 /dev/zero | tr '\\0' e >&2",
    ] {
        let (h, body) = run(&mut s, cmd);
        assert_eq!(h["stdout_size"], MIB, "{h}");
        assert_eq!(h["stderr_size"], MIB, "{h}");
        assert_eq!(h["total_size"], 2 * MIB, "{h}");
        assert_eq!(h["exit_code"], 0);
        assert_eq!(h["truncated"], false);
        assert_eq!(h["timed_out"], false);
        assert_eq!(h["hash"], sha256_hex(&body));
        assert_eq!(body.len(), 2 * MIB);
        assert!(body[..MIB].iter().all(|&b| b == b'o'), "stdout first");
        assert!(body[MIB..].iter().all(|&b| b == b'e'), "then stderr");
    }

    // The client binary puts each on its own stream.
    let (code, out, err) = client(
        &srv.addr,
        &["head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2"],
    );
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&err));
    assert_eq!(out.len(), MIB);
    assert_eq!(err.len(), MIB);
    assert!(srv.stop().success());
}

#[test]
fn body_is_stdout_then_stderr_and_sizes_say_where_they_split() {
    let srv = server(&[]);
    let mut s = connect(&srv.addr);
    let (h, body) = run(&mut s, "echo out1; echo err1 >&2; echo out2");
    assert_eq!(body, b"out1\nout2\nerr1\n");
    assert_eq!(h["stdout_size"], 10);
    assert_eq!(h["stderr_size"], 5);
    assert_eq!(h["filename"], "stdout+stderr");
    assert_eq!(h["hash"], sha256_hex(&body));

    let (code, out, err) = client(&srv.addr, &["echo out1; echo err1 >&2; echo out2"]);
    assert_eq!(code, Some(0));
    assert_eq!(out, b"out1\nout2\n");
    assert_eq!(err, b"err1\n");
    assert!(srv.stop_with(2).success(), "SIGINT drains and exits 0");
}

#[test]
fn sleep_30_is_killed_at_the_timeout_with_its_process_group() {
    let srv = server(&["--timeout", "1"]);
    let mut s = connect(&srv.addr);
    let started = Instant::now();
    let (h, _) = run(&mut s, "sleep 30");
    let took = started.elapsed();
    assert_eq!(h["timed_out"], true, "{h}");
    assert_eq!(h["exit_code"], 128 + 9, "SIGKILL reported as 128+9: {h}");
    assert!(took < Duration::from_secs(20), "took {took:?}");

    // A background child in the same group holding the pipes open is killed
    // too: the group, not just the shell.
    let (h, body) = run(&mut s, "sleep 30 & echo $!; wait");
    assert_eq!(h["timed_out"], true, "{h}");
    let pid = pid_in(&body);
    eventually(LIMIT, "the background sleep is killed", || {
        process_gone(pid)
    });

    // The connection still serves, and the client reports the timeout.
    let (h, body) = run(&mut s, "echo alive");
    assert_eq!(
        (h["timed_out"].clone(), body),
        (json!(false), b"alive\n".to_vec())
    );
    let (code, _, err) = client(&srv.addr, &["sleep 30"]);
    assert_eq!(code, Some(137));
    assert!(String::from_utf8_lossy(&err).contains("timeout"));
}

#[test]
fn setsid_does_not_escape_the_timeout_or_the_end_of_the_command() {
    let srv = server(&["--timeout", "1"]);
    let mut s = connect(&srv.addr);
    // A new session, so out of the process group, holding the pipes.
    let (h, body) = run(&mut s, "setsid sleep 30 & echo $!; wait");
    assert_eq!(h["timed_out"], true, "{h}");
    let pid = pid_in(&body);
    eventually(LIMIT, "the setsid sleep is killed at the timeout", || {
        process_gone(pid)
    });
    // Detached from the pipes and orphaned when the shell exits at once: the
    // command answers, and what it left behind is swept.
    let (h, body) = run(&mut s, "setsid sleep 30 >/dev/null 2>&1 & echo $!");
    assert_eq!(h["timed_out"], false, "{h}");
    let pid = pid_in(&body);
    eventually(LIMIT, "the orphaned setsid sleep is swept", || {
        process_gone(pid)
    });
}

#[test]
fn a_100_mib_output_is_capped_and_flagged() {
    let srv = server(&["--max-output", "1048576"]);
    let mut s = connect(&srv.addr);
    let (h, body) = run(&mut s, "head -c 104857600 /dev/zero; echo done >&2");
    assert_eq!(h["truncated"], true, "{h}");
    assert_eq!(h["total_size"], MIB);
    assert_eq!(body.len(), MIB);
    // The server reads and discards past the cap: the command completes.
    assert_eq!(h["timed_out"], false);
    assert_eq!(h["exit_code"], 0);
    assert_eq!(
        h["stderr_size"], 0,
        "the cap is shared by stdout and stderr"
    );

    let (h, body) = run(&mut s, "echo small");
    assert_eq!(
        (h["truncated"].clone(), body),
        (json!(false), b"small\n".to_vec())
    );

    let (code, out, err) = client(&srv.addr, &["head -c 104857600 /dev/zero"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.len(), MIB);
    assert!(String::from_utf8_lossy(&err).contains("truncated"));
}

#[test]
fn a_client_that_never_reads_holds_the_output_budget_until_the_write_timeout() {
    const BIG: usize = 32 * MIB; // more than loopback's socket buffers hold
    let dir = tempfile::tempdir().unwrap();
    let produced = dir.path().join("produced");
    let big = BIG.to_string();
    let srv = server(&[
        "--max-output",
        &big,
        "--output-budget",
        &big,
        "--write-timeout",
        "2",
    ]);
    // A asks for 32 MiB and never reads: its answer waits in the server.
    let mut a = connect(&srv.addr);
    let cmd = format!("head -c {BIG} /dev/zero; touch '{}'", produced.display());
    framing::write_json(&mut a, &json!({ "cmd": cmd, "token": TOKEN })).unwrap();
    eventually(LIMIT, "A's command ran", || produced.exists());

    // Meanwhile the budget is spent: B's output is cut.
    let (h, body) = run(&mut connect(&srv.addr), "head -c 1048576 /dev/zero");
    assert_eq!(h["truncated"], true, "{h}");
    assert!(body.len() < MIB);

    // The write timeout cuts A, which gives its bytes back.
    eventually(LIMIT, "the budget is given back", || {
        let (h, body) = run(&mut connect(&srv.addr), "head -c 1048576 /dev/zero");
        h["truncated"] == false && body.len() == MIB
    });
    let mut got = Vec::new();
    let _ = a.read_to_end(&mut got); // EOF or reset
    assert!(got.len() < BIG, "A was cut, not served");
}

#[test]
fn exit_status_comes_back_and_the_client_exits_with_it() {
    let srv = server(&[]);
    let mut s = connect(&srv.addr);
    assert_eq!(run(&mut s, "exit 3").0["exit_code"], 3);
    assert_eq!(run(&mut s, "kill -TERM $$").0["exit_code"], 128 + 15);

    assert_eq!(client(&srv.addr, &["exit 3"]).0, Some(3));
    // The last command's status.
    assert_eq!(client(&srv.addr, &["true", "exit 3"]).0, Some(3));
    assert_eq!(client(&srv.addr, &["exit 3", "true"]).0, Some(0));
    // A refused request is a failure of its own.
    assert_eq!(client(&srv.addr, &["--raw", ""]).0, Some(255));
}

#[test]
fn a_wrong_token_runs_nothing_and_failures_back_off() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let touch = format!("touch '{}'", marker.display());
    let srv = server(&["--raw"]);

    // Three free failures: each closes with an error and runs nothing.
    for req in [
        json!({ "cmd": touch, "token": "wrong-token" }),
        json!({ "cmd": touch, "token": &TOKEN[1..] }),
        json!({ "cmd": touch }),
    ] {
        let mut s = connect(&srv.addr);
        framing::write_json(&mut s, &req).unwrap();
        assert_refused(&mut s, "token");
    }
    // Then even the right token waits: the back-off.
    let (code, _, err) = client(&srv.addr, &[&touch]);
    assert_eq!(code, Some(255));
    let err = String::from_utf8_lossy(&err);
    assert!(err.contains("too many failed attempts"), "{err}");
    assert!(!marker.exists(), "a refused request ran");

    // The back-off ends (1 s after the third failure), and the right token
    // runs it (so the checks above could have failed).
    eventually(LIMIT, "the back-off ends", || {
        run(&mut connect(&srv.addr), &touch).0["exit_code"] == 0
    });
    assert!(marker.exists());
}

#[test]
fn the_token_is_required_generated_when_none_is_given_and_never_short() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    let file_arg = file.to_str().unwrap();
    let srv = support::start_with(
        Command::new(example_bin("cmd_server"))
            .env_remove("CMD_TOKEN")
            .args(["--addr", "127.0.0.1:0", "--token-file", file_arg]),
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the generated token file is private");
    let token = std::fs::read_to_string(&file).unwrap();
    let token = token.trim();
    assert_eq!(token.len(), 32, "128 bits in hex: {token:?}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    // Without the token, nothing runs, even from loopback.
    let mut s = connect(&srv.addr);
    framing::write_json(&mut s, &json!({ "cmd": "echo hi" })).unwrap();
    assert_refused(&mut s, "requires a token");
    let (status, out, _) = run_with_timeout(
        Command::new(example_bin("cmd_client")).args([
            "--addr",
            &srv.addr,
            "--token-file",
            file_arg,
            "echo hi",
        ]),
        LIMIT,
    );
    assert_eq!((status.code(), out), (Some(0), b"hi\n".to_vec()));

    // A short or uniform token, or a token file others can read: no start.
    std::fs::write(dir.path().join("open"), format!("{TOKEN}\n")).unwrap();
    let open = dir.path().join("open");
    std::fs::set_permissions(&open, PermissionsExt::from_mode(0o644)).unwrap();
    for (env, file) in [
        (Some("right-token"), None),
        (Some(&*"a".repeat(40)), None),
        (None, Some(open.to_str().unwrap())),
    ] {
        let mut cmd = Command::new(example_bin("cmd_server"));
        cmd.env_remove("CMD_TOKEN").args(["--addr", "127.0.0.1:0"]);
        if let Some(env) = env {
            cmd.env("CMD_TOKEN", env);
        }
        if let Some(file) = file {
            cmd.args(["--token-file", file]);
        }
        let (status, out, err) = run_with_timeout(&mut cmd, LIMIT);
        let err = String::from_utf8_lossy(&err);
        assert_eq!(status.code(), Some(2), "{env:?} {file:?}: {err}");
        assert!(out.is_empty(), "must not start listening");
        assert!(
            err.contains("at least 32") || err.contains("chmod 600"),
            "{err}"
        );
    }
}

#[test]
fn commands_do_not_inherit_the_token_or_the_servers_environment() {
    let srv = support::start_with(server_cmd(&[]).env("OTHER_SECRET", "hunter2"));
    let (h, body) = run(&mut connect(&srv.addr), "env");
    let env = String::from_utf8(body).unwrap();
    assert_eq!(h["exit_code"], 0);
    assert!(!env.contains("CMD_TOKEN"), "{env}");
    assert!(!env.contains(TOKEN), "{env}");
    assert!(!env.contains("hunter2"), "{env}");
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
}

/// A request a web page can make the browser send to a local port, whose
/// request line is a shell command that creates `marker`.
fn browser_requests(port: &str, marker: &Path) -> [Vec<u8>; 2] {
    let m = marker.display();
    let img = format!(
        "GET /;touch$IFS{m}; HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Accept: image/avif,image/webp,*/*\r\n\r\n"
    );
    let body = format!("\ntouch {m}\n");
    let post = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nOrigin: http://evil.example\r\n\r\n{body}",
        body.len()
    );
    [img.into_bytes(), post.into_bytes()]
}

#[test]
fn browser_shaped_requests_are_refused_and_run_nothing_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    for mode in [&[][..], &["--raw"]] {
        let srv = server(mode);
        let port = srv.addr.rsplit_once(':').unwrap().1;
        for wire in browser_requests(port, &marker) {
            let mut s = connect(&srv.addr);
            s.write_all(&wire).unwrap();
            assert_refused(&mut s, "HTTP");
        }
        // The server still serves (and has run nothing meanwhile).
        assert_eq!(run(&mut connect(&srv.addr), "echo ok").1, b"ok\n");
        assert!(!marker.exists(), "{mode:?}: a browser's request ran");
    }
}

#[test]
fn the_raw_form_needs_raw_and_the_lessons_python_client_passes_with_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("only.txt"), "x").unwrap();
    let marker = dir.path().join("marker");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/lesson_cmd_client.py");
    let lesson = |addr: &str, cmds: &[&str]| {
        let port = addr.rsplit_once(':').unwrap().1;
        run_with_timeout(
            Command::new("python3")
                .arg(&script)
                .args(["127.0.0.1", port])
                .args(cmds),
            LIMIT,
        )
    };
    // Without --raw: refused, nothing runs.
    let srv = server(&[]);
    let mut s = connect(&srv.addr);
    s.write_all(format!("touch '{}'", marker.display()).as_bytes())
        .unwrap();
    assert_refused(&mut s, "--raw");
    assert!(!marker.exists());
    drop(srv);

    let srv = support::start_with(server_cmd(&["--raw"]).current_dir(dir.path()));
    // "ls" is 2 bytes: too short to classify at once.
    let cmds = ["echo hello; echo oops >&2", "ls", "printf '中文'", "exit 4"];
    let (status, out, err) = lesson(&srv.addr, &cmds);
    let err = String::from_utf8(err).unwrap();
    assert!(status.success(), "python3 failed: {err}");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "hello\noops\n\nonly.txt\n\n中文\n\n"
    );
    let headers: Vec<Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let codes: Vec<_> = headers.iter().map(|h| h["exit_code"].clone()).collect();
    assert_eq!(codes, [json!(0), json!(0), json!(0), json!(4)]);
    assert_eq!(headers[0]["stdout_size"], 6);
}

#[test]
fn a_dual_stack_listener_sees_ipv4_loopback_peers_as_loopback() {
    // An IPv6 socket bound to the IPv4-mapped loopback address: IPv4
    // clients arrive as ::ffff:127.0.0.1, which the raw form's local-only
    // check must see as 127.0.0.1.
    let srv = support::start_with(
        Command::new(example_bin("cmd_server"))
            .env("CMD_TOKEN", TOKEN)
            .args(["--addr", "[::ffff:127.0.0.1]:0", "--raw"]),
    );
    let port = srv.addr.rsplit_once(':').unwrap().1;
    let mut s = connect(&format!("127.0.0.1:{port}"));
    s.write_all(b"echo mapped").unwrap();
    let (h, body) = read_response(&mut s);
    assert_eq!(body, b"mapped\n", "{h}");
}

#[test]
fn a_host_name_is_resolved_once_and_those_addresses_are_bound() {
    // `localhost` resolves to a loopback address; the server binds what it
    // resolved (and warned about), not a second lookup's answer.
    let srv = support::start_with(
        Command::new(example_bin("cmd_server"))
            .env("CMD_TOKEN", TOKEN)
            .args(["--addr", "localhost:0"]),
    );
    let addr: std::net::SocketAddr = srv.addr.parse().expect("an IP address");
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_eq!(run(&mut connect(&srv.addr), "echo named").1, b"named\n");
}

/// Connects, sends nothing, and returns the connection.
fn silent(addr: &str) -> TcpStream {
    connect(addr)
}

#[test]
fn a_silent_connection_does_not_lock_out_a_sequential_server() {
    // The default pre-request deadline (10 s) closes the silent connection;
    // the real client, queued behind it, is then served.
    let srv = server(&["--strategy", "sequential"]);
    let mut quiet = silent(&srv.addr);
    let addr = srv.addr.clone();
    let started = Instant::now();
    let out = within(LIMIT, "a real client behind a silent one", move || {
        run(&mut connect(&addr), "echo served").1
    });
    assert_eq!(out, b"served\n");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_closed(&mut quiet);
}

/// Threads of process `pid`.
fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line[8..].trim().parse().unwrap()
}

#[test]
fn silent_connections_cost_at_most_max_connections_threads_and_are_closed() {
    // The default strategy (a thread per connection) with the default cap
    // (64) and deadline (10 s).
    let srv = server(&[]);
    let quiet: Vec<TcpStream> = (0..100).map(|_| silent(&srv.addr)).collect();
    eventually(LIMIT, "the server accepted up to its cap", || {
        threads(srv.child.id()) >= 64
    });
    assert!(
        threads(srv.child.id()) <= 64 + 8,
        "one thread per silent connection"
    );
    let addr = srv.addr.clone();
    let out = within(LIMIT, "a real client behind 100 silent ones", move || {
        run(&mut connect(&addr), "echo served").1
    });
    assert_eq!(out, b"served\n");
    for mut q in quiet.into_iter().take(64) {
        assert_closed(&mut q);
    }
}

#[test]
fn a_request_trickled_byte_by_byte_is_cut_at_the_deadline() {
    let srv = server(&["--request-deadline", "1"]);
    let mut s = connect(&srv.addr);
    let mut frame = Vec::new();
    let req = json!({ "cmd": "echo late", "token": TOKEN });
    FrameFormat::LESSON.write_json(&mut frame, &req).unwrap();
    let started = Instant::now();
    let mut cut = false;
    for byte in &frame {
        if s.write_all(std::slice::from_ref(byte)).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100)); // the trickle itself
    }
    if !cut {
        assert_closed(&mut s);
    }
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn the_unix_socket_serves_only_the_servers_own_user() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("cmd.sock");
    let marker = dir.path().join("marker");
    let srv = support::start_with(
        Command::new(example_bin("cmd_server"))
            .env_remove("CMD_TOKEN")
            .args(["--unix", sock.to_str().unwrap()]),
    );
    assert_eq!(srv.addr, sock.display().to_string());
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is private");
    // Our own user: no token needed.
    let unix = ["--unix", sock.to_str().unwrap()];
    let (status, out, _) = run_with_timeout(
        Command::new(example_bin("cmd_client"))
            .env_remove("CMD_TOKEN")
            .args(unix)
            .arg("echo local"),
        LIMIT,
    );
    assert_eq!((status.code(), out), (Some(0), b"local\n".to_vec()));

    if !Path::new("/proc/self").exists() || !is_root() {
        eprintln!("not root: the other-user half of this test is skipped");
        return;
    }
    // Another user, past the file permissions: SO_PEERCRED refuses it.
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&sock, PermissionsExt::from_mode(0o666)).unwrap();
    let touch = format!("touch '{}'", marker.display());
    let (status, _, err) = run_with_timeout(
        Command::new(example_bin("cmd_client"))
            .env_remove("CMD_TOKEN")
            .uid(65534)
            .gid(65534)
            .args(unix)
            .arg(&touch),
        LIMIT,
    );
    let err = String::from_utf8_lossy(&err);
    assert_eq!(status.code(), Some(255), "{err}");
    assert!(err.contains("uid 65534"), "{err}");
    assert!(!marker.exists(), "another user's command ran");
}

fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
}

#[test]
fn malformed_frames_get_an_error_and_other_clients_are_unharmed() {
    let srv = server(&[]);
    let mut good = connect(&srv.addr);
    assert_eq!(run(&mut good, "echo before").1, b"before\n");

    let mut bad_frames: Vec<Vec<u8>> = vec![
        0x7fff_ffffi32.to_le_bytes().to_vec(), // huge length
        (-1i32).to_le_bytes().to_vec(),        // negative length
    ];
    for payload in [&b"nope!"[..], b"{\"command\": \"ls\"}", b"\xff\xfe"] {
        let mut f = (payload.len() as i32).to_le_bytes().to_vec();
        f.extend_from_slice(payload);
        bad_frames.push(f); // not JSON, wrong shape, not UTF-8
    }
    for frame in &bad_frames {
        let mut s = connect(&srv.addr);
        s.write_all(frame).unwrap();
        assert_refused(&mut s, "bad request");
    }

    // The client connected all along still works, and new ones too.
    assert_eq!(run(&mut good, "echo after").1, b"after\n");
    assert_eq!(run(&mut connect(&srv.addr), "echo new").1, b"new\n");
    assert!(srv.stop().success());
}

#[test]
fn several_commands_per_connection_and_the_handler_ends_at_eof() {
    // Sequential: a handler that did not end at EOF would block the next client.
    let srv = server(&["--strategy", "sequential", "--raw"]);
    let mut s = connect(&srv.addr);
    for i in 0..5 {
        let (h, body) = run(&mut s, &format!("echo {i}; exit {i}"));
        assert_eq!(body, format!("{i}\n").as_bytes());
        assert_eq!(h["exit_code"], i);
    }
    s.shutdown(Shutdown::Write).unwrap();
    assert_closed(&mut s); // the server closed its side: the handler returned

    let (code, out, _) = client(&srv.addr, &["echo a", "echo b", "echo c"]);
    assert_eq!((code, out), (Some(0), b"a\nb\nc\n".to_vec()));
    // The raw form from our client (one connection, several commands).
    let (code, out, _) = client(
        &srv.addr,
        &[
            "--raw",
            "echo r1",
            "ls /nonexistent-dir 2>/dev/null || echo r2",
        ],
    );
    assert_eq!((code, out), (Some(0), b"r1\nr2\n".to_vec()));
}

#[test]
fn interactive_prompt_reads_commands_from_stdin() {
    let srv = server(&[]);
    let mut child = client_cmd(&srv.addr, &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo one\n\necho two >&2\nexit 5\n")
        .unwrap(); // stdin closes here: EOF ends the prompt
    let status = support::wait_timeout(&mut child, LIMIT).expect("client exits at EOF");
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(out.contains("one\n"), "{out:?}");
    assert!(err.contains("two\n"), "{err:?}");
    assert_eq!(status.code(), Some(5), "last command's status: {err}");
}

/// True once a loopback TCP connection to `port` is in CLOSE_WAIT: the
/// server closed it and the client has not yet.
fn closed_by_server(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table.lines().skip(1).any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let remote_port = cols[2].rsplit_once(':').map(|(_, p)| p);
        remote_port.and_then(|p| u16::from_str_radix(p, 16).ok()) == Some(port) && cols[3] == "08"
    })
}

#[test]
fn the_prompt_reconnects_when_the_server_closed_an_idle_connection() {
    let srv = server(&["--idle-timeout", "0.5"]);
    let port: u16 = srv.addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let mut child = client_cmd(&srv.addr, &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = io::BufReader::new(child.stdout.take().unwrap());
    stdin.write_all(b"echo one\n").unwrap();
    let mut line = String::new();
    let first = within(LIMIT, "the first answer", move || {
        io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        (line, stdout)
    });
    assert_eq!(first.0, "one\n");
    eventually(LIMIT, "the server closes the idle connection", || {
        closed_by_server(port)
    });
    stdin.write_all(b"echo two\n").unwrap();
    drop(stdin); // EOF ends the prompt
    let status = support::wait_timeout(&mut child, LIMIT).expect("client exits at EOF");
    let mut rest = String::new();
    let mut stdout = first.1;
    stdout.read_to_string(&mut rest).unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(rest, "two\n", "{err}");
    assert_eq!(status.code(), Some(0), "{err}");
}

#[test]
fn sigterm_lets_a_running_command_answer_and_closes_idle_connections() {
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    // A drain deadline far beyond the test's bound: finishing early means the
    // idle connection was closed at once by the drain, not cut at the deadline.
    let srv = server(&["--drain-timeout", "120"]);
    let mut idle = connect(&srv.addr);
    assert_eq!(run(&mut idle, "echo hi").1, b"hi\n");
    let mut busy = connect(&srv.addr);
    let cmd = format!("touch '{}'; sleep 1; echo done", started.display());
    framing::write_json(&mut busy, &json!({ "cmd": cmd, "token": TOKEN })).unwrap();
    eventually(LIMIT, "the command started", || started.exists());
    let stopping = std::thread::spawn(move || srv.stop());
    let (h, body) = read_response(&mut busy);
    assert_eq!(
        (h["exit_code"].clone(), body),
        (json!(0), b"done\n".to_vec())
    );
    assert_closed(&mut busy);
    assert_closed(&mut idle);
    let status = within(LIMIT, "the server exits", move || stopping.join().unwrap());
    assert!(status.success());
}

#[test]
fn raw_client_drives_the_lessons_own_python_server() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/lesson_cmd_server.py");
    let srv = support::start_with(Command::new("python3").arg(&script));
    let (code, out, err) = client(
        &srv.addr,
        &[
            "--raw",
            "echo hello",
            "echo oops >&2",
            "printf '中文'; exit 3",
        ],
    );
    // The lesson's header has no stdout_size or exit_code: the whole body
    // is printed as stdout and the status is 0.
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&err));
    assert_eq!(String::from_utf8(out).unwrap(), "hello\noops\n中文");
    assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
}

#[test]
fn every_strategy_runs_commands() {
    for strategy in ["sequential", "threading", "pool", "forking"] {
        let srv = server(&["--strategy", strategy]);
        let (code, out, err) = client(&srv.addr, &["echo $((6 * 7)); echo e >&2; exit 2"]);
        assert_eq!(
            code,
            Some(2),
            "{strategy}: {}",
            String::from_utf8_lossy(&err)
        );
        assert_eq!(
            (out, err),
            (b"42\n".to_vec(), b"e\n".to_vec()),
            "{strategy}"
        );
        assert!(srv.stop().success(), "{strategy}");
    }
}
