//! The tour's steps: each drives one server with its example client's own
//! code, prints a short transcript and checks its result.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use socketserver::framing::FrameFormat;

use crate::{chat_client, cmd_client, upload_client};

pub type Step = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const WAIT: Duration = Duration::from_secs(10);

pub fn check(ok: bool, what: &str) -> Step {
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

pub fn echo_step(addr: SocketAddr) -> Step {
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

pub fn sticky_step(addr: SocketAddr, token: &str) -> Step {
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

pub fn cmd_step(addr: SocketAddr, token: &str) -> Step {
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

pub fn upload_step(addr: SocketAddr, scratch: &Path, store: &Path, token: &str) -> Step {
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

pub fn chat_step(addr: SocketAddr) -> Step {
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
