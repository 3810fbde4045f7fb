//! The lesson's remote command client (day 27): send a command, read the
//! 4-byte header length, the JSON header, then `total_size` bytes of output.
//!
//! ```text
//! CMD_TOKEN=<token> cmd_client 'ls -l' 'echo oops >&2; exit 3'   # one-shot; exits 3
//! CMD_TOKEN=<token> cmd_client                                   # interactive prompt
//! cmd_client --token-file ~/.cmd_token --addr host:8000 uptime
//! cmd_client --unix /tmp/cmd.sock uptime                         # same user: no token
//! cmd_client --raw dir            # the lesson's unframed request (its own server, or --raw)
//! ```
//!
//! Each argument runs on one connection, stdout to stdout, stderr to stderr;
//! the exit status is the last command's (255 if the client or server
//! failed). No arguments: a prompt (`prompt.rs`). The lesson's own server
//! sends no `stdout_size` or `exit_code`: all is stdout, status 0. A
//! SHA-256 `hash` is checked (`verify.rs`).

#[path = "../common/mod.rs"]
mod common;

pub mod conn;
mod options;
mod prompt;
pub mod verify;

use std::io::{self, Read, Write};
use std::process::ExitCode;

use clap::Parser;
use serde::{Deserialize, Serialize};
use socketserver::framing::{self, FrameFormat};

use conn::Conn;
pub use options::Cli;
use verify::Hashing;

/// Longest raw (unframed) command: the lesson's server reads it with `recv(1024)`.
pub const RAW_MAX: usize = 1024;
/// Status the client exits with when it, not the command, failed.
pub const CLIENT_FAILURE: u8 = 255;

/// An answer's header, lenient enough for the lesson's server (which sends
/// only `filename`, `total_size` and `hash`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ResponseHeader {
    /// Body length.
    pub total_size: u64,
    /// SHA-256 of the body in hex (the lesson's server sends a placeholder).
    pub hash: Option<String>,
    /// Exit code, or 128 + signal.
    pub exit_code: Option<i32>,
    /// Bytes of stdout at the start of the body (absent: all of it).
    pub stdout_size: Option<u64>,
    /// The command was killed at the server's timeout.
    pub timed_out: bool,
    /// Output beyond the server's cap was discarded.
    pub truncated: bool,
    /// The server refused the request.
    pub error: Option<String>,
}

impl ResponseHeader {
    /// The remote exit status (0 when the server does not report one).
    pub fn status(&self) -> i32 {
        self.exit_code.unwrap_or(0)
    }
}

/// A command's result, buffered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdResponse {
    /// The response header.
    pub header: ResponseHeader,
    /// The command's stdout.
    pub stdout: Vec<u8>,
    /// The command's stderr.
    pub stderr: Vec<u8>,
}

/// Step 1: send the command (the lesson's `client.send(cmd.encode('utf8'))`):
/// framed JSON `{"cmd": ..., "token": ...}`, or with `raw` the bare bytes.
pub fn send_request<W: Write + ?Sized>(
    w: &mut W,
    cmd: &str,
    token: Option<&str>,
    raw: bool,
) -> io::Result<()> {
    #[derive(Serialize)]
    struct Request<'a> {
        cmd: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<&'a str>,
    }
    if !raw {
        return framing::write_json(w, &Request { cmd, token });
    }
    if cmd.is_empty() || cmd.len() > RAW_MAX {
        let msg = format!("a raw command must be 1 to {RAW_MAX} bytes long");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    }
    w.write_all(cmd.as_bytes())
}

/// Steps 2–4: read the header length, the header, then the body (the
/// lesson's `recv(4)`, `recv(header_len)`, `while recv_size < total_size`),
/// streaming its stdout part to `out` and its stderr part to `err`. A
/// refusal (`error`) or a body that does not match a SHA-256 `hash` is an
/// `Err`.
pub fn read_response<R, O, E>(r: &mut R, out: &mut O, err: &mut E) -> io::Result<ResponseHeader>
where
    R: Read + ?Sized,
    O: Write + ?Sized,
    E: Write + ?Sized,
{
    let header: ResponseHeader = FrameFormat::LESSON.read_json(r)?.ok_or_else(|| {
        let msg = "server closed the connection without answering";
        io::Error::new(io::ErrorKind::UnexpectedEof, msg)
    })?;
    if let Some(msg) = &header.error {
        return Err(io::Error::other(format!(
            "server refused the request: {msg}"
        )));
    }
    let total = header.total_size;
    let out_len = header.stdout_size.unwrap_or(total).min(total);
    let mut hashing = Hashing::default();
    framing::copy_body(r, &mut hashing.wrap(out), out_len)?;
    framing::copy_body(r, &mut hashing.wrap(err), total - out_len)?;
    hashing.check(header.hash.as_deref())?;
    Ok(header)
}

/// Runs `cmd` over `stream`, streaming its output to `out` and `err`.
pub fn run_command_to<S, O, E>(
    stream: &mut S,
    cmd: &str,
    token: Option<&str>,
    raw: bool,
    out: &mut O,
    err: &mut E,
) -> io::Result<ResponseHeader>
where
    S: Read + Write + ?Sized,
    O: Write + ?Sized,
    E: Write + ?Sized,
{
    if let Err(e) = send_request(stream, cmd, token, raw).and_then(|()| stream.flush()) {
        // Refused before it read the request (another user on the Unix
        // socket, the back-off), the server answered and closed: say why.
        return match read_response(stream, out, err) {
            Err(refused) if refused.kind() == io::ErrorKind::Other => Err(refused),
            _ => Err(e),
        };
    }
    read_response(stream, out, err)
}

/// Runs `cmd` over `stream` (framed request) and returns its output; the
/// stream stays usable for more commands unless this fails.
pub fn run_command<S: Read + Write + ?Sized>(
    stream: &mut S,
    cmd: &str,
    token: Option<&str>,
) -> io::Result<CmdResponse> {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let header = run_command_to(stream, cmd, token, false, &mut stdout, &mut stderr)?;
    Ok(CmdResponse {
        header,
        stdout,
        stderr,
    })
}

/// Runs one command and prints its output; returns its exit status.
pub fn run_and_print(
    conn: &mut Conn,
    cmd: &str,
    cli: &Cli,
    token: Option<&str>,
) -> io::Result<i32> {
    let header = {
        let (mut out, mut err) = (io::stdout().lock(), io::stderr().lock());
        let h = run_command_to(conn, cmd, token, cli.raw, &mut out, &mut err)?;
        out.flush()?;
        h
    };
    if header.timed_out {
        eprintln!("cmd_client: `{cmd}` was killed at the server's timeout");
    }
    if header.truncated {
        eprintln!("cmd_client: output of `{cmd}` was truncated at the server's cap");
    }
    Ok(header.status())
}

/// An exit status as this process's exit code.
pub fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(CLIENT_FAILURE))
}

fn one_shot(cli: &Cli, token: Option<&str>) -> io::Result<i32> {
    let mut conn = Conn::open(cli)?;
    let mut last = 0;
    for cmd in &cli.commands {
        last = run_and_print(&mut conn, cmd, cli, token)?;
    }
    Ok(last)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = cli.token().and_then(|token| {
        if cli.commands.is_empty() {
            prompt::interactive(&cli, token.as_deref())
        } else {
            one_shot(&cli, token.as_deref())
        }
    });
    match result {
        Ok(code) => exit_code(code),
        Err(e) => {
            eprintln!("cmd_client: {e}");
            ExitCode::from(CLIENT_FAILURE)
        }
    }
}
