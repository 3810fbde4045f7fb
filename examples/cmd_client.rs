//! Client for `cmd_server` (and for the lesson's own Python server).
//!
//! ```text
//! cmd_client --addr 127.0.0.1:8000 'ls -l' 'echo oops >&2; exit 3'   # one-shot; exits 3
//! cmd_client --addr 127.0.0.1:8000                                   # interactive prompt
//! cmd_client --addr host:8000 --token s3cret uptime                  # or CMD_TOKEN=s3cret
//! cmd_client --addr 127.0.0.1:8000 --raw dir                         # the lesson's unframed request
//! ```
//!
//! One-shot mode runs each argument as a command on one connection, writes
//! each command's stdout to stdout and stderr to stderr, and exits with the
//! last command's exit status (255 if the client or server failed: refused
//! request, lost connection). Without commands it opens a prompt with line
//! editing and history (`rustyline`); `exit`/`quit`, Ctrl-D or Ctrl-C leave.
//!
//! Requests are framed JSON headers `{"cmd": ..., "token": ...}` by default;
//! `--raw` sends the command's bytes unframed, as the lesson's client does
//! (at most 1024 bytes, which is what the lesson's server reads). Responses
//! are parsed the same way either way: a framed JSON header, then
//! `total_size` bytes of body. Headers from the lesson's server lack
//! `stdout_size`/`exit_code`: the whole body then counts as stdout and the
//! exit status as 0. When the header's `hash` is a SHA-256 (64 hex digits) the
//! body is checked against it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

use clap::Parser;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use socketserver::framing::{self, FrameFormat};

/// Longest raw (unframed) command: the lesson's server reads it with `recv(1024)`.
pub const RAW_MAX: usize = 1024;

/// A response header, lenient enough for the lesson's server (which sends
/// only `filename`, `total_size` and `hash`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ResponseHeader {
    /// Body length.
    pub total_size: u64,
    /// The lesson's file name field.
    #[serde(default)]
    pub filename: Option<String>,
    /// SHA-256 of the body in hex (the lesson's server sends a placeholder).
    #[serde(default)]
    pub hash: Option<String>,
    /// Exit code, or 128 + signal.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Bytes of stdout at the start of the body (absent: all of it).
    #[serde(default)]
    pub stdout_size: Option<u64>,
    /// Bytes of stderr after stdout.
    #[serde(default)]
    pub stderr_size: Option<u64>,
    /// The command was killed at the server's timeout.
    #[serde(default)]
    pub timed_out: bool,
    /// Output beyond the server's cap was discarded.
    #[serde(default)]
    pub truncated: bool,
    /// The server refused the request.
    #[serde(default)]
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

/// The JSON request header.
#[derive(Debug, serde::Serialize)]
struct Request<'a> {
    cmd: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
}

/// Sends one request: framed JSON (with `token` if given), or with `raw` the
/// command's bytes unframed.
pub fn send_request<W: Write + ?Sized>(
    w: &mut W,
    cmd: &str,
    token: Option<&str>,
    raw: bool,
) -> io::Result<()> {
    if raw {
        if cmd.is_empty() || cmd.len() > RAW_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a raw command must be 1 to {RAW_MAX} bytes long"),
            ));
        }
        w.write_all(cmd.as_bytes())
    } else {
        framing::write_json(w, &Request { cmd, token })
    }
}

/// Feeds what passes through into a hasher.
struct HashingWriter<'a, W: ?Sized> {
    inner: &'a mut W,
    hasher: &'a mut Sha256,
}

impl<W: Write + ?Sized> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads one response, streaming the body's stdout part to `out` and its
/// stderr part to `err` (constant memory). A header with an `error` field
/// becomes an `Err`, as does a body that does not match a SHA-256 `hash`.
pub fn read_response<R, O, E>(r: &mut R, out: &mut O, err: &mut E) -> io::Result<ResponseHeader>
where
    R: Read + ?Sized,
    O: Write + ?Sized,
    E: Write + ?Sized,
{
    let header: ResponseHeader = FrameFormat::LESSON.read_json(r)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "server closed the connection without answering",
        )
    })?;
    if let Some(msg) = &header.error {
        return Err(io::Error::other(format!(
            "server refused the request: {msg}"
        )));
    }
    let total = header.total_size;
    let out_len = header.stdout_size.unwrap_or(total).min(total);
    let mut hasher = Sha256::new();
    framing::copy_body(
        r,
        &mut HashingWriter {
            inner: out,
            hasher: &mut hasher,
        },
        out_len,
    )?;
    framing::copy_body(
        r,
        &mut HashingWriter {
            inner: err,
            hasher: &mut hasher,
        },
        total - out_len,
    )?;
    if let Some(want) = header.hash.as_deref()
        && want.len() == 64
        && want.bytes().all(|b| b.is_ascii_hexdigit())
    {
        let got: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !got.eq_ignore_ascii_case(want) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("body hash mismatch: header says {want}, body is {got}"),
            ));
        }
    }
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
    send_request(stream, cmd, token, raw)?;
    stream.flush()?;
    read_response(stream, out, err)
}

/// Runs `cmd` over `stream` (framed request) and returns its output.
/// The stream stays usable for further commands unless this fails.
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

/// Like [`run_command`] with the lesson's unframed request.
pub fn run_command_raw<S: Read + Write + ?Sized>(
    stream: &mut S,
    cmd: &str,
) -> io::Result<CmdResponse> {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let header = run_command_to(stream, cmd, None, true, &mut stdout, &mut stderr)?;
    Ok(CmdResponse {
        header,
        stdout,
        stderr,
    })
}

/// Client options.
#[derive(Debug, Parser)]
#[command(about = "Run commands on a cmd_server (or the lesson's Python server)")]
struct Cli {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: String,
    /// Shared secret the server requires (default: $CMD_TOKEN if set).
    #[arg(long)]
    token: Option<String>,
    /// Send the lesson's unframed request (for the lesson's own server).
    #[arg(long)]
    raw: bool,
    /// Commands to run, one per argument; none = interactive prompt.
    commands: Vec<String>,
}

/// Status the client exits with when it, not the command, failed.
const CLIENT_FAILURE: u8 = 255;

/// Runs one command and prints it; returns its exit status.
fn run_and_print(
    stream: &mut TcpStream,
    cmd: &str,
    cli: &Cli,
    token: Option<&str>,
) -> io::Result<i32> {
    let header = {
        let mut out = io::stdout().lock();
        let mut err = io::stderr().lock();
        let h = run_command_to(stream, cmd, token, cli.raw, &mut out, &mut err)?;
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

fn interactive(cli: &Cli, token: Option<&str>) -> Result<i32, Box<dyn std::error::Error>> {
    let mut editor = rustyline::DefaultEditor::new()?;
    let mut stream: Option<TcpStream> = None;
    let mut last = 0;
    let prompt = format!("{}> ", cli.addr);
    loop {
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            Err(
                rustyline::error::ReadlineError::Eof | rustyline::error::ReadlineError::Interrupted,
            ) => {
                return Ok(last);
            }
            Err(e) => return Err(e.into()),
        };
        let cmd = line.trim();
        if cmd.is_empty() {
            continue;
        }
        editor.add_history_entry(cmd)?;
        if cmd == "exit" || cmd == "quit" {
            return Ok(last);
        }
        let conn = match &mut stream {
            Some(s) => s,
            None => match TcpStream::connect(&cli.addr) {
                Ok(s) => stream.insert(s),
                Err(e) => {
                    eprintln!("cmd_client: cannot connect to {}: {e}", cli.addr);
                    continue;
                }
            },
        };
        match run_and_print(conn, cmd, cli, token) {
            Ok(code) => {
                if code != 0 {
                    eprintln!("[exit {code}]");
                }
                last = code;
            }
            Err(e) => {
                // The server closes the connection after an error: start afresh.
                eprintln!("cmd_client: {e}");
                stream = None;
                last = i32::from(CLIENT_FAILURE);
            }
        }
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(CLIENT_FAILURE))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let token = cli
        .token
        .clone()
        .or_else(|| std::env::var("CMD_TOKEN").ok())
        .filter(|t| !t.is_empty());
    if cli.commands.is_empty() {
        return match interactive(&cli, token.as_deref()) {
            Ok(code) => exit_code(code),
            Err(e) => {
                eprintln!("cmd_client: {e}");
                ExitCode::from(CLIENT_FAILURE)
            }
        };
    }
    let mut stream = match TcpStream::connect(&cli.addr) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cmd_client: cannot connect to {}: {e}", cli.addr);
            return ExitCode::from(CLIENT_FAILURE);
        }
    };
    let mut last = 0;
    for cmd in &cli.commands {
        match run_and_print(&mut stream, cmd, &cli, token.as_deref()) {
            Ok(code) => last = code,
            Err(e) => {
                eprintln!("cmd_client: {e}");
                return ExitCode::from(CLIENT_FAILURE);
            }
        }
    }
    exit_code(last)
}
