//! Running `sh -c CMD` so that nothing it starts outlives its answer or its
//! timeout, and nothing of the server's environment leaks into it.
//!
//! - stdin is `/dev/null`; the environment is cleared to [`ENV_ALLOW`] (so
//!   no secret the server was started with, such as `CMD_TOKEN`, reaches a
//!   command);
//! - the shell leads a process group of its own, and the whole group gets
//!   `SIGKILL` at the timeout and again when the command has answered;
//! - a process that left the group (`setsid`, a daemon's double fork) is
//!   found by a mark in its environment (`CMD_SERVER_RUN=<random id>`) and
//!   killed too: the sweep reads `/proc/*/environ`. A process that also
//!   replaces its environment (`env -i`, `setsid env -i ...`) escapes it;
//!   only a cgroup per command (systemd-run, a container) would not leak.

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use super::auth::random_hex;
use super::sys;

/// Variables a command inherits from the server; every other one is dropped.
pub const ENV_ALLOW: [&str; 11] = [
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ",
    "TMPDIR",
];
/// The variable that marks every process of one command for the sweep.
pub const RUN_VAR: &str = "CMD_SERVER_RUN";
/// `PATH` for a command when the server has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A running shell: its pid (and process group) and its exit status to come.
pub struct Shell {
    pid: u32,
    mark: String,
    exited: mpsc::Receiver<io::Result<ExitStatus>>,
    status: Option<ExitStatus>,
}

/// Starts `sh -c cmd` in its own process group with a cleared environment;
/// returns it with its stdout and stderr pipes.
pub fn spawn(cmd: &str, cgi: &[(&str, String)]) -> io::Result<(Shell, ChildStdout, ChildStderr)> {
    let run = random_hex(16)?;
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .env_clear()
        .envs(cgi.iter().cloned()); // REMOTE_ADDR, REMOTE_PORT
    for name in ENV_ALLOW {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    if std::env::var_os("PATH").is_none() {
        command.env("PATH", DEFAULT_PATH);
    }
    let mut child = command
        .env(RUN_VAR, &run)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (tx, exited) = mpsc::channel();
    let shell = Shell {
        pid: child.id(),
        mark: format!("{RUN_VAR}={run}"),
        exited,
        status: None,
    };
    let waiter = std::thread::Builder::new()
        .name("cmd-wait".into())
        .spawn(move || tx.send(child.wait()));
    if let Err(e) = waiter {
        shell.kill();
        return Err(e);
    }
    Ok((shell, stdout.expect("piped"), stderr.expect("piped")))
}

impl Shell {
    /// Whether the shell exited by `until`.
    pub fn wait_until(&mut self, until: Instant) -> io::Result<bool> {
        if self.status.is_none() {
            let left = until.saturating_duration_since(Instant::now());
            match self.exited.recv_timeout(left) {
                Ok(status) => self.status = Some(status?),
                Err(mpsc::RecvTimeoutError::Timeout) => return Ok(false),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other("the waiter thread died"));
                }
            }
        }
        Ok(true)
    }

    /// Kills the shell's process group and every process marked as this
    /// command's (the sweep).
    ///
    /// After the shell was reaped its pid names its group only while a
    /// member lives; a reuse of that pid as a new group leader in between is
    /// the small race every `kill(-pgid)` after `wait` has.
    pub fn kill(&self) {
        sys::kill_group(self.pid);
        sweep(self.mark.as_bytes());
    }

    /// The exit code as a shell reports it (128 + signal; 137 if it never
    /// reported one after the kill).
    pub fn exit_code(&self) -> i32 {
        self.status.map_or(128 + libc::SIGKILL, exit_code)
    }
}

/// An exit status as a shell shows it: the code, or 128 + the signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

/// Kills every process whose environment carries `mark`, until none is
/// left (one may fork while we look). Processes of other users cannot be
/// read, and are not ours to kill anyway.
fn sweep(mark: &[u8]) {
    for _ in 0..10 {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        let mut found = 0;
        for entry in procs.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let Ok(env) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if env.split(|&b| b == 0).any(|var| var == mark) {
                sys::kill(pid);
                found += 1;
            }
        }
        if found == 0 {
            return;
        }
    }
}
