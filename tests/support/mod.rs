//! Helpers shared by the integration tests: time limits on every wait
//! ([`within`], [`eventually`]), and example binaries (run one, wait for its
//! `listening on <addr>` line, stop it with a signal).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest any single wait in a test may take before it fails.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on its own thread and returns its result, or fails the test
/// (naming `what`) if it has not finished within `limit`: a deadlock fails
/// instead of hanging the run. The thread of a timed-out `f` is left behind.
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Waits until `cond` holds, checking every 5 ms; fails the test (naming
/// `what`) after `limit`. For state with no event to wait on (a file
/// appearing, a process's children reaped).
pub fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: not true within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

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
    let mut files = vec![sources.join(format!("{name}.rs"))];
    for dir in [sources.join(name), sources.join("common")] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            files.extend(entries.flatten().map(|e| e.path()));
        }
    }
    for source in files {
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

/// Sends signal `sig` to `child` with kill(1), which keeps the tests free
/// of `unsafe`.
pub fn signal(child: &Child, sig: i32) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill(1)");
    assert!(status.success(), "kill -{sig} failed");
}

impl ServerProcess {
    /// Sends `sig` (e.g. `libc::SIGTERM`) and waits up to 30 s for exit.
    pub fn stop_with(mut self, sig: i32) -> ExitStatus {
        signal(&self.child, sig);
        wait_timeout(&mut self.child, LIMIT).expect("server did not exit within 30 s")
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
pub mod servers;
