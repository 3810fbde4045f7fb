//! The remote command example (`cmd_server` / `cmd_client`), run as built
//! binaries: deadlock-free pipes, timeout, output cap, exit status, token,
//! malformed frames, the lesson's Python client, and several commands per
//! connection.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use socketserver::framing::{self, FrameFormat};
use support::{ServerProcess, example_bin, run_with_timeout};

const MIB: usize = 1 << 20;
/// Upper bound on anything a test waits for.
const LIMIT: Duration = Duration::from_secs(60);

fn server(extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    support::start("cmd_server", &args)
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to cmd_server");
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.set_write_timeout(Some(LIMIT)).unwrap();
    s
}

/// Reads one response: (header, body).
fn read_response(s: &mut TcpStream) -> (Value, Vec<u8>) {
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
fn request(s: &mut TcpStream, req: Value) -> (Value, Vec<u8>) {
    framing::write_json(s, &req).unwrap();
    read_response(s)
}

fn run(s: &mut TcpStream, cmd: &str) -> (Value, Vec<u8>) {
    request(s, json!({ "cmd": cmd }))
}

/// Asserts the server closed the connection (EOF, or reset) after an error.
fn assert_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("expected the connection closed, got {n} more bytes"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

fn client(addr: &str, args: &[&str]) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    let (status, out, err) = run_with_timeout(
        Command::new(example_bin("cmd_client"))
            .args(["--addr", addr])
            .args(args),
        LIMIT,
    );
    (status.code(), out, err)
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
    let pid: u32 = String::from_utf8(body).unwrap().trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process_gone(pid) {
        assert!(
            Instant::now() < deadline,
            "background sleep {pid} still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

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
fn a_wrong_token_runs_nothing_and_closes_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let touch = format!("touch '{}'", marker.display());
    let srv = server(&["--token", "right-token"]);

    for req in [
        json!({ "cmd": touch, "token": "wrong-token" }),
        json!({ "cmd": touch, "token": "right-toke" }),
        json!({ "cmd": touch }),
    ] {
        let mut s = connect(&srv.addr);
        let (h, body) = request(&mut s, req.clone());
        assert!(h["error"].is_string(), "{req} -> {h}");
        assert_eq!(h["total_size"], 0);
        assert!(body.is_empty());
        assert_closed(&mut s);
    }
    // The raw form cannot carry a token: refused when one is set.
    let mut s = connect(&srv.addr);
    s.write_all(touch.as_bytes()).unwrap();
    let (h, _) = read_response(&mut s);
    assert!(h["error"].is_string(), "{h}");
    assert_closed(&mut s);

    let (code, _, err) = client(&srv.addr, &["--token", "wrong-token", &touch]);
    assert_eq!(code, Some(255));
    assert!(
        String::from_utf8_lossy(&err).contains("wrong token"),
        "{err:?}"
    );
    assert!(!marker.exists(), "a refused request ran");

    // The right token runs it (so the check above could have failed).
    let (code, _, err) = client(&srv.addr, &["--token", "right-token", &touch]);
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&err));
    assert!(marker.exists());
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
        let (h, body) = read_response(&mut s);
        let msg = h["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{frame:?} -> {h}"));
        assert!(msg.starts_with("bad request"), "{msg}");
        assert_eq!(h["total_size"], 0);
        assert!(body.is_empty());
        assert_closed(&mut s);
    }

    // The client connected all along still works, and new ones too.
    assert_eq!(run(&mut good, "echo after").1, b"after\n");
    assert_eq!(run(&mut connect(&srv.addr), "echo new").1, b"new\n");
    assert!(srv.stop().success());
}

#[test]
fn several_commands_per_connection_and_the_handler_ends_at_eof() {
    // Sequential: a handler that did not end at EOF would block the next client.
    let srv = server(&["--strategy", "sequential"]);
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
fn the_lessons_python_client_drives_the_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("only.txt"), "x").unwrap();
    let srv = support::start_with(
        Command::new(example_bin("cmd_server"))
            .args(["--addr", "127.0.0.1:0"])
            .current_dir(dir.path()),
    );
    let port = srv.addr.rsplit_once(':').unwrap().1;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/lesson_cmd_client.py");
    let (status, out, err) = run_with_timeout(
        Command::new("python3")
            .arg(&script)
            .args(["127.0.0.1", port])
            // "ls" is 2 bytes: too short to classify at once.
            .args(["echo hello; echo oops >&2", "ls", "printf '中文'", "exit 4"]),
        LIMIT,
    );
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
fn interactive_prompt_reads_commands_from_stdin() {
    let srv = server(&[]);
    let mut child = Command::new(example_bin("cmd_client"))
        .args(["--addr", &srv.addr])
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

#[test]
fn refuses_a_non_loopback_address_without_token_or_insecure() {
    let (status, out, err) = run_with_timeout(
        Command::new(example_bin("cmd_server")).args(["--addr", "0.0.0.0:0"]),
        LIMIT,
    );
    assert!(!status.success());
    assert!(out.is_empty(), "must not start listening");
    let err = String::from_utf8_lossy(&err);
    assert!(
        err.contains("--token") && err.contains("--insecure"),
        "{err}"
    );
}

#[test]
fn sigterm_lets_a_running_command_answer_and_closes_idle_connections() {
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    // A drain deadline far beyond the test's bound: finishing early means the
    // idle connection was closed by the handler, not cut at the deadline.
    let srv = server(&["--drain-timeout", "120"]);
    let mut idle = connect(&srv.addr);
    assert_eq!(run(&mut idle, "echo hi").1, b"hi\n");
    let mut busy = connect(&srv.addr);
    framing::write_json(
        &mut busy,
        &json!({ "cmd": format!("touch '{}'; sleep 1; echo done", started.display()) }),
    )
    .unwrap();
    let deadline = Instant::now() + LIMIT;
    while !started.exists() {
        assert!(Instant::now() < deadline, "command never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let stopping = std::thread::spawn(move || srv.stop());
    let (h, body) = read_response(&mut busy);
    assert_eq!(
        (h["exit_code"].clone(), body),
        (json!(0), b"done\n".to_vec())
    );
    assert_closed(&mut busy);
    assert_closed(&mut idle);
    assert!(stopping.join().unwrap().success());
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
