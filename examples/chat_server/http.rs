//! Guards the web side against what a public HTTP server receives: a
//! request head over 16 KiB (431), a body over the room's message limit
//! (413), a request that arrives too slowly (408: one deadline for the
//! whole request, so a byte-a-second trickle does not keep it alive),
//! malformed requests (400). Parsing is httparse's; this module only reads
//! up to the limits and writes responses.
//!
//! Not protected: many slow connections at once beyond `max_connections`
//! wait in the backlog; there is no TLS.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use socketserver::StreamRequest;

/// Most bytes in a request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;

/// Most headers in a request.
const MAX_HEADERS: usize = 64;

/// One parsed request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// HTTP/1.1 without `Connection: close`.
    pub keep_alive: bool,
}

impl Request {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why no request could be read: an error status to answer, or a
/// connection that is gone (nothing to answer).
#[derive(Debug)]
pub enum Refusal {
    Status(u16, &'static str),
    Gone,
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads bytes into `into` until `done` says how many of them belong to
/// the request, the `deadline` passes (408), or more than `limit` would be
/// needed (`too_big`).
fn read_until(
    req: &mut StreamRequest,
    into: &mut Vec<u8>,
    deadline: Instant,
    limit: usize,
    too_big: Refusal,
    done: impl Fn(&[u8]) -> Option<usize>,
) -> Result<(), Refusal> {
    loop {
        if let Some(end) = done(into) {
            return if end > limit { Err(too_big) } else { Ok(()) };
        }
        if into.len() > limit {
            return Err(too_big);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Refusal::Status(408, "Request Timeout"));
        }
        req.set_read_timeout(Some(left))
            .map_err(|_| Refusal::Gone)?;
        let got = match req.rfile.fill_buf() {
            Ok([]) => return Err(Refusal::Gone),
            Ok(buf) => buf,
            Err(e) if timed_out(&e) => return Err(Refusal::Status(408, "Request Timeout")),
            Err(_) => return Err(Refusal::Gone),
        };
        // Take only what this request needs: the rest is the next one's.
        let start = into.len();
        into.extend_from_slice(got);
        let used = match done(into) {
            Some(end) => end.saturating_sub(start).min(got.len()),
            None => got.len(),
        };
        into.truncate(start + used);
        req.rfile.consume(used);
    }
}

/// Reads one request, head and body, within `timeout` from its first byte
/// to its last; a body over `max_body` is refused.
pub fn read(
    req: &mut StreamRequest,
    timeout: Duration,
    max_body: usize,
) -> Result<Request, Refusal> {
    let deadline = Instant::now() + timeout;
    let mut head = Vec::new();
    let too_big = Refusal::Status(431, "Request Header Fields Too Large");
    read_until(req, &mut head, deadline, MAX_HEAD, too_big, |h| {
        h.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
    })?;
    let mut request = parse(&head)?;
    let length = match request.header("content-length") {
        None => 0,
        Some(v) => v.trim().parse().map_err(|_| bad())?,
    };
    if request.header("transfer-encoding").is_some() {
        return Err(Refusal::Status(411, "Length Required"));
    }
    let too_big = Refusal::Status(413, "Content Too Large");
    if length > max_body {
        return Err(too_big);
    }
    let mut body = Vec::with_capacity(length);
    read_until(req, &mut body, deadline, max_body, too_big, |b| {
        (b.len() >= length).then_some(length)
    })?;
    request.body = body;
    Ok(request)
}

fn bad() -> Refusal {
    Refusal::Status(400, "Bad Request")
}

/// The head, parsed by httparse.
fn parse(head: &[u8]) -> Result<Request, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::Status(431, "Request Header Fields Too Large"));
        }
        _ => return Err(bad()),
    }
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value).into_owned();
            (h.name.to_string(), value)
        })
        .collect();
    let close = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close"));
    Ok(Request {
        method: parsed.method.unwrap_or_default().to_string(),
        path: parsed.path.unwrap_or_default().to_string(),
        keep_alive: parsed.version == Some(1) && !close,
        headers,
        body: Vec::new(),
    })
}

/// Headers every response carries: nothing is cached, sniffed as another
/// type, framed by another site, or sent to other origins.
const COMMON: &str = "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n";

/// Writes a whole response: one `write!`, one send.
pub fn respond(
    w: &mut impl Write,
    status: (u16, &str),
    headers: &str,
    body: &[u8],
    keep_alive: bool,
) -> io::Result<()> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let head = format!(
        "HTTP/1.1 {} {}\r\n{COMMON}{headers}Content-Length: {}\r\nConnection: {connection}\r\n\r\n",
        status.0,
        status.1,
        body.len()
    );
    w.write_all(&[head.as_bytes(), body].concat())?;
    w.flush()
}

/// An error response with a one-line text body; the connection closes.
pub fn refuse(w: &mut impl Write, code: u16, reason: &str, headers: &str) -> io::Result<()> {
    let body = format!("{code} {reason}\n");
    let headers = format!("Content-Type: text/plain; charset=utf-8\r\n{headers}");
    respond(w, (code, reason), &headers, body.as_bytes(), false)
}
