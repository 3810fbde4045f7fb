//! The same commands on a thread per connection (or a pool): read, run
//! every complete command, write the replies in one `write`, repeat. A
//! subscriber is reached by writing to its socket under a lock shared with
//! its own replies.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use socketserver::{HandlerResult, Stream, StreamRequest};

use crate::commands::{self, Flow, Session, Shared};
use crate::pubsub::Subscriber;
use crate::resp::{self, Args, Parse};

struct SocketSub(Arc<Mutex<Stream>>);

impl Subscriber for SocketSub {
    fn deliver(&self, frame: &[u8]) -> bool {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        s.write_all(frame).is_ok()
    }
}

/// Serves one connection until EOF, QUIT or malformed input.
pub fn serve(shared: &Shared, req: &mut StreamRequest) -> HandlerResult {
    let writer = Arc::new(Mutex::new(req.stream().try_clone()?));
    let mut session = Session::new(shared);
    let result = run(shared, req, &writer, &mut session);
    session.end(shared);
    result
}

fn run(
    shared: &Shared,
    req: &mut StreamRequest,
    writer: &Arc<Mutex<Stream>>,
    session: &mut Session,
) -> HandlerResult {
    let (mut input, mut out, mut ranges) = (Vec::new(), Vec::new(), Vec::new());
    let sub = || Arc::new(SocketSub(Arc::clone(writer))) as Arc<dyn Subscriber>;
    // next_request: false at EOF, or when a drain closes this idle
    // connection.
    while req.next_request()? {
        let chunk = req.rfile.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        input.extend_from_slice(chunk);
        let n = chunk.len();
        req.rfile.consume(n);
        let mut used = 0;
        let mut close = false;
        loop {
            match resp::parse(&input[used..], &mut ranges) {
                Parse::Command { used: n } => {
                    let args = Args {
                        buf: &input[used..],
                        ranges: &ranges,
                    };
                    used += n;
                    if commands::execute(args, shared, session, &mut out, &sub) == Flow::Close {
                        close = true;
                        break;
                    }
                }
                Parse::Incomplete => break,
                Parse::Error(msg) => {
                    resp::error(&mut out, &format!("ERR {msg}"));
                    flush(writer, &mut out)?;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, msg).into());
                }
            }
        }
        input.drain(..used);
        if input.len() > resp::MAX_BULK + 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request too large").into());
        }
        flush(writer, &mut out)?;
        if close {
            return Ok(());
        }
    }
    Ok(())
}

fn flush(writer: &Mutex<Stream>, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_all(out)?;
        out.clear();
    }
    Ok(())
}
