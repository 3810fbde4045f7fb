//! The lesson's remote command server (day 27): a client sends a shell
//! command, the server runs it with `subprocess` and answers with the
//! lesson's two-level header (4-byte length, JSON header) and the output.
//!
//! ```text
//! cargo run --example cmd_server                    # 127.0.0.1:8000, prints its token
//! CMD_TOKEN=<token> cargo run --example cmd_client -- 'ls -l' 'uname -a'
//! cargo run --example cmd_server -- --raw           # also the lesson's unframed form
//! cargo run --example cmd_server -- --unix /tmp/cmd.sock   # local, same user only
//! ```
//!
//! Per request, as in the lesson: [`read_request`] (its `conn.recv`),
//! [`run`] (its `subprocess.Popen`, reading stdout and stderr at the same
//! time so a full pipe cannot deadlock), [`reply`] (its `conn.send`s).
//! What guards it lives beside this file (`auth.rs`, `sniff.rs`, `limits.rs`,
//! `process.rs`, `sys.rs`); docs/guide/08-production.md says what it does not.

#[path = "../common/mod.rs"]
mod common;

pub mod auth;
pub mod header;
pub mod limits;
mod options;
pub mod process;
pub mod sniff;
mod sys;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use socketserver::framing::FrameFormat;
use socketserver::{HandlerResult, StreamHandler, StreamRequest, Wfile};

use auth::{Auth, Peer};
use header::{Header, Request};
use limits::{Capture, Deadline, Limits};
use options::Cli;
use sniff::Kind;

/// What the server allows, shared by every connection.
#[derive(Debug)]
pub struct Config {
    /// Who may run commands.
    pub auth: Auth,
    /// What a client and a command may cost.
    pub limits: Limits,
    /// Accept the lesson's unframed form (from local peers only).
    pub raw: bool,
}

impl Config {
    /// The defaults, with `token` required of every framed request.
    pub fn new(token: auth::Token) -> Config {
        Config {
            auth: Auth::new(token),
            limits: Limits::default(),
            raw: false,
        }
    }
}

/// What a command produced.
pub struct Output {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    header: Header,
    _cap: Arc<limits::Cap>, // gives its bytes back to the budget when dropped
}

/// What the next request asks for.
enum Next {
    Run(String),
    Refuse(String),
    Done,
}

/// Step 1: read one request (the lesson's `cmd = conn.recv(1024)`).
fn read_request(
    config: &Config,
    req: &mut StreamRequest,
    peer: Peer,
    first: Option<Instant>,
) -> io::Result<Next> {
    let Some(until) = config.limits.next_request(req, first)? else {
        return Ok(Next::Done);
    };
    let (kind, head) = sniff::read_head(req, until)?;
    match kind {
        Kind::Http => Ok(Next::Refuse("this is not an HTTP server".into())),
        Kind::Raw if !config.raw => Ok(Next::Refuse("unframed requests need --raw".into())),
        Kind::Raw if !peer.is_local() => Ok(Next::Refuse("unframed requests: local only".into())),
        Kind::Raw => Ok(String::from_utf8(head).map_or_else(
            |_| Next::Refuse("the command is not UTF-8".into()),
            Next::Run,
        )),
        Kind::Framed => read_framed(config, req, peer, &head, until),
    }
}

/// The framed form: the lesson's header (4-byte length, JSON), here the
/// request `{"cmd": ..., "token": ...}`, which must arrive by `until`.
fn read_framed(
    config: &Config,
    req: &mut StreamRequest,
    peer: Peer,
    head: &[u8],
    until: Instant,
) -> io::Result<Next> {
    if let Err(msg) = config.auth.may_try(peer) {
        return Ok(Next::Refuse(msg));
    }
    let sock = req.stream().try_clone()?;
    let mut r = head.chain(Deadline::new(&mut req.rfile, &sock, until));
    let request = match FrameFormat::LESSON.read_json::<_, Request>(&mut r) {
        Ok(Some(request)) => request,
        Ok(None) => return Ok(Next::Done),
        Err(e) if limits::is_timeout(&e) || e.kind() == io::ErrorKind::UnexpectedEof => {
            log::info!("{}: incomplete request: {e}", req.peer);
            return Ok(Next::Done);
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Ok(Next::Refuse(format!("bad request: {e}")));
        }
        Err(e) => return Err(e),
    };
    Ok(match config.auth.check(peer, request.token.as_deref()) {
        Ok(()) => Next::Run(request.cmd),
        Err(msg) => Next::Refuse(msg),
    })
}

/// Step 2: run the command (the lesson's `subprocess.Popen(cmd, shell=True,
/// stdout=PIPE, stderr=PIPE)`), reading both pipes at once, until it ends
/// or its time is up.
pub fn run(cmd: &str, limits: &Limits, cgi: &[(&str, String)]) -> io::Result<Output> {
    let (mut shell, stdout, stderr) = process::spawn(cmd, cgi)?;
    let cap = limits.cap();
    // Both pipes at once, a thread each: a command that fills one pipe
    // while we would be reading the other cannot deadlock (the lesson's can).
    let stdout = Capture::start(stdout, &cap).inspect_err(|_| shell.kill())?;
    let stderr = Capture::start(stderr, &cap).inspect_err(|_| shell.kill())?;
    let deadline = Instant::now() + limits.timeout;
    let exited = shell.wait_until(deadline);
    let drained = stdout.wait_until(deadline) & stderr.wait_until(deadline);
    // Nothing the command started outlives its answer (or its timeout).
    shell.kill();
    let ended = exited? && drained;
    let grace = Instant::now() + limits::KILL_GRACE;
    shell.wait_until(grace)?; // an escaped process may keep a pipe open:
    stdout.wait_until(grace); // then what it wrote so far is all we send
    stderr.wait_until(grace);
    let (stdout, stderr) = (stdout.take(), stderr.take());
    let mut header = Header::new(&stdout, &stderr, shell.exit_code());
    (header.timed_out, header.truncated) = (!ended, cap.truncated());
    Ok(Output {
        stdout,
        stderr,
        header,
        _cap: cap,
    })
}

/// Step 3: answer (the lesson's `conn.send(struct.pack('i', len(header)))`,
/// `conn.send(header_bytes)`, `conn.send(stdout)`, `conn.send(stderr)`).
pub fn reply(w: &mut Wfile, out: &Output) -> io::Result<()> {
    FrameFormat::LESSON.write_json(w, &out.header)?;
    w.write_all(&out.stdout)?;
    w.write_all(&out.stderr)
}

/// Refuses a request: an error header with no body; the connection closes.
fn refuse(req: &mut StreamRequest, msg: &str) -> HandlerResult {
    log::warn!("{}: refused: {msg}", req.peer);
    let _ = FrameFormat::LESSON.write_json(&mut req.wfile, &Header::refusal(msg));
    // Closing with unread input resets the connection, which can destroy
    // the answer before the client reads it: read what it sent already.
    let _ = req.stream().set_nonblocking(true);
    let _ = io::copy(&mut (&mut req.rfile).take(1 << 20), &mut io::sink());
    Ok(())
}

/// One connection: requests until the client leaves, stays silent past a
/// deadline, the server drains, or a request is refused.
pub fn serve_connection(config: &Config, req: &mut StreamRequest) -> HandlerResult {
    let peer = match Peer::of(req) {
        Ok(peer) => peer,
        Err(msg) => return refuse(req, &msg),
    };
    let mut first = Some(Instant::now() + config.limits.request_deadline);
    loop {
        let cmd = match read_request(config, req, peer, first.take())? {
            Next::Run(cmd) => cmd,
            Next::Refuse(msg) => return refuse(req, &msg),
            Next::Done => return Ok(()),
        };
        let out = run(&cmd, &config.limits, &common::edge::cgi_env(&req.peer))?;
        let h = &out.header;
        let (code, size) = (h.exit_code, h.total_size);
        log::info!("{}: {cmd:?} -> exit {code:?}, {size} bytes", req.peer);
        reply(&mut req.wfile, &out).map_err(limits::explain_write)?;
    }
}

/// The handler: cheap to clone, every clone shares one [`Config`].
#[derive(Debug, Clone)]
pub struct CmdHandler(Arc<Config>);

impl StreamHandler for CmdHandler {
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        serve_connection(&self.0, req)
    }
}

/// A handler serving commands under `config`.
pub fn handler(config: Config) -> CmdHandler {
    CmdHandler(Arc::new(config))
}

fn main() -> io::Result<()> {
    let env_token = auth::take_env_token(); // before any thread starts
    common::init_logging();
    let cli = Cli::parse();
    let h = handler(cli.config(env_token));
    let max = cli
        .serve
        .max_connections
        .unwrap_or(limits::DEFAULT_MAX_CONNECTIONS);
    let builder = cli.serve.builder().max_connections(max);
    let builder = cli.edge.apply(builder.write_timeout(cli.write_timeout()))?; // TLS, PROXY
    if let Some(path) = &cli.unix {
        let server = builder.bind_unix_stream(path, h)?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        return common::serve(server);
    }
    // Resolved once: the addresses logged are the addresses bound.
    let addrs: Vec<SocketAddr> = cli.addr.to_socket_addrs()?.collect();
    if let Some(a) = addrs.iter().find(|a| !a.ip().to_canonical().is_loopback()) {
        log::warn!(
            "{a} is reachable from other machines: anyone with the token runs commands as this user"
        );
    }
    common::serve(common::edge::bind_tcp(builder, &addrs[..], h)?) // or LISTEN_FDS
}
