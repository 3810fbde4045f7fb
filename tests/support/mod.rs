//! Helpers shared by the integration tests: run an example binary, wait for
//! its `listening on <addr>` line, stop it with a signal.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The built example binary `name`.
///
/// A plain `cargo test` builds every example before running tests; a
/// filtered `cargo test --test X` does not, so this refuses a binary older
/// than its source rather than testing stale code.
pub fn example_bin(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test binary path");
    dir.pop(); // the test binary
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo test` (it builds examples) or `cargo build --examples`",
        path.display()
    );
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap();
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for source in [
        sources.join(format!("{name}.rs")),
        sources.join("common/mod.rs"),
    ] {
        if let Ok(changed) = std::fs::metadata(&source).and_then(|m| m.modified()) {
            assert!(
                changed <= built,
                "{} is older than {}: run `cargo build --examples` (a filtered `cargo test --test X` does not rebuild examples)",
                path.display(),
                source.display()
            );
        }
    }
    path
}

/// A running example server.
pub struct ServerProcess {
    pub child: Child,
    /// The address from its `listening on <addr>` line.
    pub addr: String,
    /// Lines of stdout after the `listening on` line.
    pub stdout: mpsc::Receiver<String>,
}

/// Starts example `name` with `args` and waits (up to 30 s) for its
/// `listening on <addr>` line.
pub fn start(name: &str, args: &[&str]) -> ServerProcess {
    start_with(Command::new(example_bin(name)).args(args))
}

/// Like [`start`] with a prepared command (env, current dir, ...).
pub fn start_with(cmd: &mut Command) -> ServerProcess {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn example");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    forward_lines(stdout, tx);
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server printed no `listening on` line within 30 s");
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line was {first:?}, not `listening on <addr>`"))
        .to_string();
    ServerProcess {
        child,
        addr,
        stdout: rx,
    }
}

fn forward_lines(stdout: ChildStdout, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

impl ServerProcess {
    /// Sends `sig` (e.g. `libc::SIGTERM`) and waits up to 30 s for exit.
    pub fn stop_with(mut self, sig: i32) -> ExitStatus {
        let pid = self.child.id() as i32;
        // SAFETY-free: kill(1) via a command keeps the tests free of unsafe.
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status();
        wait_timeout(&mut self.child, Duration::from_secs(30))
            .expect("server did not exit within 30 s")
    }

    /// SIGTERM, then the exit status.
    pub fn stop(self) -> ExitStatus {
        self.stop_with(15)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` to exit, at most `limit`.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a command to completion with a time limit, returning (status, stdout, stderr).
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> (ExitStatus, Vec<u8>, Vec<u8>) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = match wait_timeout(&mut child, limit) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            panic!("command did not finish within {limit:?}");
        }
    };
    (status, t_out.join().unwrap(), t_err.join().unwrap())
}
