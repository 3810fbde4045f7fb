//! The tour: every example server in one process, on ports the OS picks,
//! each driven by its example client's own code, with a short transcript.
//!
//! ```text
//! cargo run --example tour
//! ```
//!
//! It includes the example files themselves as modules (their handlers and
//! client functions are `pub`), so it cannot drift from them. Each step
//! checks its result and the tour exits non-zero if one fails; after the
//! last step every server is shut down and drained.

// Each included example declares `mod common;`, so the shared module is
// compiled once per example here; that duplication is the price of running
// the examples' own files rather than copies.
#![allow(clippy::duplicate_mod)]

#[allow(dead_code, unused_imports, unused_macros)]
#[path = "chat_client/main.rs"]
mod chat_client;
#[allow(dead_code, unused_imports, unused_macros)]
#[path = "chat_server/main.rs"]
mod chat_server;
#[allow(dead_code, unused_imports, unused_macros)]
#[path = "cmd_client/main.rs"]
mod cmd_client;
#[allow(dead_code, unused_imports, unused_macros)]
#[path = "cmd_server/main.rs"]
mod cmd_server;
#[allow(dead_code, unused_imports, unused_macros)]
#[path = "echo.rs"]
mod echo;
#[allow(dead_code, unused_imports, unused_macros)]
#[path = "upload_client/main.rs"]
mod upload_client;
#[allow(dead_code, unused_imports, unused_macros)]
#[path = "upload_server/main.rs"]
mod upload_server;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use socketserver::framing::FrameFormat;
use socketserver::{DrainReport, ServerBuilder, ThreadPool, Threading};

type Step = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const WAIT: Duration = Duration::from_secs(10);

fn check(ok: bool, what: &str) -> Step {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(WAIT))?;
    Ok(s)
}

fn echo_step(addr: SocketAddr) -> Step {
    println!("\n== 1. echo: a ThreadingTcpServer whose handler is one line of io::copy");
    let mut c = connect(addr)?;
    for msg in ["hello, socketserver", "你好"] {
        c.write_all(msg.as_bytes())?;
        let mut back = vec![0; msg.len()];
        c.read_exact(&mut back)?;
        println!(
            "   sent {msg:?}, got back {:?}",
            String::from_utf8_lossy(&back)
        );
        check(back == msg.as_bytes(), "echo returns what was sent")?;
    }
    Ok(())
}

fn sticky_step(addr: SocketAddr, token: &str) -> Step {
    println!("\n== 2. sticky packets (粘包): the frame header says where a message ends");
    // One request written one byte per segment: the server still reads one
    // whole frame.
    let mut c = connect(addr)?;
    c.set_nodelay(true)?;
    let mut request = Vec::new();
    let request_for = |cmd: &str| serde_json::json!({"cmd": cmd, "token": token});
    FrameFormat::LESSON.write_json(&mut request, &request_for("echo split"))?;
    for byte in &request {
        c.write_all(std::slice::from_ref(byte))?;
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let header = cmd_client::read_response(&mut c, &mut out, &mut err)?;
    println!(
        "   a {}-byte frame sent in {} separate writes -> one command, stdout {:?}",
        request.len(),
        request.len(),
        String::from_utf8_lossy(&out)
    );
    check(
        out == b"split\n" && header.status() == 0,
        "byte-split frame",
    )?;
    // Two requests in one write: the server still sees two commands.
    let mut both = Vec::new();
    FrameFormat::LESSON.write_json(&mut both, &request_for("echo one"))?;
    FrameFormat::LESSON.write_json(&mut both, &request_for("echo two"))?;
    c.write_all(&both)?;
    let mut answers = Vec::new();
    for _ in 0..2 {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        cmd_client::read_response(&mut c, &mut out, &mut err)?;
        answers.push(String::from_utf8_lossy(&out).trim().to_string());
    }
    println!("   two frames in one write -> two commands, answers {answers:?}");
    check(answers == ["one", "two"], "two frames in one write")?;
    Ok(())
}

fn cmd_step(addr: SocketAddr, token: &str) -> Step {
    println!("\n== 3. remote command: stdout and stderr read concurrently, exit status kept");
    let mut c = connect(addr)?;
    let cmd = "echo to stdout; echo to stderr >&2; exit 3";
    let r = cmd_client::run_command(&mut c, cmd, Some(token))?;
    println!("   $ {cmd}");
    println!("   stdout: {:?}", String::from_utf8_lossy(&r.stdout));
    println!("   stderr: {:?}", String::from_utf8_lossy(&r.stderr));
    println!(
        "   exit code {}, timed out {}, truncated {}",
        r.header.status(),
        r.header.timed_out,
        r.header.truncated
    );
    check(
        r.stdout == b"to stdout\n" && r.stderr == b"to stderr\n" && r.header.status() == 3,
        "command output and status",
    )?;
    Ok(())
}

fn upload_step(addr: SocketAddr, scratch: &Path, store: &Path, token: &str) -> Step {
    const SIZE: usize = 8 << 20;
    println!("\n== 4. upload: streamed in constant memory, SHA-256 checked, renamed into place");
    let path = scratch.join("tour.bin");
    let mut data = Vec::with_capacity(SIZE);
    let mut x: u32 = 2463534242;
    while data.len() < SIZE {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(&path, &data)?;
    let expected = upload_client::hex(&Sha256::digest(&data));
    let start = Instant::now();
    let opts = upload_client::UploadOptions {
        token: Some(token.to_string()),
        ..Default::default()
    };
    let outcome = upload_client::upload(&addr.to_string(), &path, &opts, &mut |_| {})?;
    let secs = start.elapsed().as_secs_f64();
    let ack = outcome
        .ack
        .ok_or("the server did not acknowledge the upload")?;
    let stored = std::fs::read(store.join(&ack.file_name))?;
    println!(
        "   sent {} MiB in {:.2} s; server stored {:?}, sha256 {}…",
        outcome.sent >> 20,
        secs,
        ack.file_name,
        &ack.sha256[..16]
    );
    check(
        ack.sha256 == expected && stored == data,
        "stored file identical, SHA-256 matches",
    )?;
    println!("   the stored file is byte-identical to the original");
    Ok(())
}

type UploadServer =
    socketserver::Server<socketserver::TcpTransport, upload_server::UploadHandler, ThreadPool>;

/// The upload server with a fresh token, which the upload step presents.
fn upload_server(store: &Path) -> io::Result<(UploadServer, String)> {
    let token = upload_server::random_hex()?;
    let auth = upload_server::Auth::new(&token, false)?;
    let cfg = upload_server::UploadConfig::new(store.to_path_buf(), auth);
    let server = ServerBuilder::new()
        .strategy(ThreadPool::new(4))
        .bind_tcp("127.0.0.1:0", upload_server::handler(cfg)?)?;
    Ok((server, token))
}

fn chat_step(addr: SocketAddr) -> Step {
    println!("\n== 5. chat room: three members on a UdpServer sharing one room");
    let names = ["alice", "bob", "carol"];
    let mut members = Vec::new();
    for name in names {
        let c = chat_client::ChatClient::connect(&addr.to_string(), Some(name))?;
        // The rename is confirmed to the member itself.
        let first = c.recv(WAIT)?.ok_or("no answer from the chat server")?;
        println!("   {name} joins (cookie echoed, lines signed): {first:?}");
        members.push(c);
    }
    let lines = ["hi all", "hello alice", "hey both"];
    let mut heard: Vec<Vec<String>> = vec![Vec::new(); members.len()];
    for (i, line) in lines.iter().enumerate() {
        members[i].send(line)?;
        // Delivery order puts the sender's own copy last: once every member
        // has this line, move on.
        let expected = format!("[{}] {line}", names[i]);
        for (c, got) in members.iter().zip(heard.iter_mut()) {
            let start = Instant::now();
            while !got.contains(&expected) && start.elapsed() < WAIT {
                if let Some(m) = c.recv(WAIT)?
                    && m.starts_with('[')
                {
                    got.push(m);
                }
            }
        }
    }
    for (name, got) in names.iter().zip(&heard) {
        println!("   {name} heard: {got:?}");
    }
    let all: Vec<String> = names
        .iter()
        .zip(lines)
        .map(|(n, l)| format!("[{n}] {l}"))
        .collect();
    check(
        heard.iter().all(|got| *got == all),
        "every member heard every line once, in order",
    )?;
    for c in &members {
        c.send("/quit")?;
    }
    Ok(())
}

fn report(name: &str, r: DrainReport) {
    println!(
        "   {name:<7} drained: {} completed, {} cut, in {:?}",
        r.completed, r.forced, r.elapsed
    );
}

fn main() -> Step {
    let scratch = tempfile::tempdir()?;
    let store = scratch.path().join("uploads");

    let echo = ServerBuilder::new()
        .strategy(Threading::new())
        .bind_tcp("127.0.0.1:0", echo::echo)?;
    // The command server requires a token; the tour generates one, as the
    // server does when it is given none.
    let (token, secret) = cmd_server::auth::Token::generate()?;
    let cmd = ServerBuilder::new()
        .strategy(Threading::new())
        .drain_timeout(Duration::from_secs(5))
        .bind_tcp(
            "127.0.0.1:0",
            cmd_server::handler(cmd_server::Config::new(token)),
        )?;
    let (upload, upload_token) = upload_server(&store)?;
    let chat_cfg = chat_server::ChatConfig::default();
    let interval = chat_cfg.service_interval();
    let room = chat_server::handler(chat_cfg)?;
    let chat = ServerBuilder::new()
        .strategy(Threading::new())
        .max_packet_size(chat_server::RECV_BUFFER)
        .service_interval(interval)
        .bind_udp("127.0.0.1:0", room)?;

    println!("socketserver tour: four servers in one process, ports picked by the OS");
    for (name, addr) in [
        ("echo", echo.server_address()),
        ("command", cmd.server_address()),
        ("upload", upload.server_address()),
        ("chat", chat.server_address()),
    ] {
        println!("   {name:<8} listening on {addr}");
    }
    let inet = |a: &socketserver::Addr| a.as_inet().expect("an IP address");
    let (echo_addr, cmd_addr, upload_addr, chat_addr) = (
        inet(echo.server_address()),
        inet(cmd.server_address()),
        inet(upload.server_address()),
        inet(chat.server_address()),
    );

    let result = std::thread::scope(|s| {
        let loops = [
            s.spawn(|| echo.serve_forever()),
            s.spawn(|| cmd.serve_forever()),
            s.spawn(|| upload.serve_forever()),
            s.spawn(|| chat.serve_forever()),
        ];
        let result = echo_step(echo_addr)
            .and_then(|_| sticky_step(cmd_addr, &secret))
            .and_then(|_| cmd_step(cmd_addr, &secret))
            .and_then(|_| upload_step(upload_addr, scratch.path(), &store, &upload_token))
            .and_then(|_| chat_step(chat_addr));
        println!("\n== 6. shutdown: every loop wakes at once; then each server drains");
        let start = Instant::now();
        echo.shutdown();
        cmd.shutdown();
        upload.shutdown();
        chat.shutdown();
        for l in loops {
            l.join().expect("a server loop panicked")?;
        }
        println!(
            "   all four serve_forever loops returned in {:?}",
            start.elapsed()
        );
        result.map_err(|e| io::Error::other(e.to_string()))
    });
    report("echo", echo.server_close()?);
    report("command", cmd.server_close()?);
    report("upload", upload.server_close()?);
    report("chat", chat.server_close()?);
    result?;
    println!("\ntour complete");
    Ok(())
}
