//! The commands on the event loop: a [`Protocol`] per connection. A
//! subscriber is reached through its connection's mailbox.

use std::io;
use std::sync::Arc;

use socketserver::reactor::{Conn, Mailbox, Message, Protocol};

use crate::commands::{self, Flow, Session, Shared};
use crate::pubsub::Subscriber;
use crate::resp::{self, Args, Parse};

pub struct Redis {
    shared: Arc<Shared>,
    session: Session,
    /// Argument ranges of the command being run (reused: no allocation).
    ranges: Vec<(usize, usize)>,
    mailbox: Option<Mailbox>,
}

impl Redis {
    pub fn new(shared: Arc<Shared>) -> Redis {
        let session = Session::new(&shared);
        Redis {
            shared,
            session,
            ranges: Vec::with_capacity(8),
            mailbox: None,
        }
    }
}

struct MailSub(Mailbox);

impl Subscriber for MailSub {
    fn deliver(&self, frame: &[u8]) -> bool {
        self.0.send(frame.to_vec())
    }
}

impl Protocol for Redis {
    fn connection_made(&mut self, conn: &mut Conn<'_>) {
        self.mailbox = Some(conn.mailbox());
    }

    fn data_received(&mut self, data: &[u8], conn: &mut Conn<'_>) -> io::Result<usize> {
        let mut used = 0;
        while used < data.len() && conn.pending_output() < 256 * 1024 {
            let rest = &data[used..];
            match resp::parse(rest, &mut self.ranges) {
                Parse::Command { used: n } => {
                    let args = Args {
                        buf: rest,
                        ranges: &self.ranges,
                    };
                    let mailbox = &self.mailbox;
                    let sub = || Arc::new(MailSub(mailbox.clone().unwrap())) as Arc<dyn Subscriber>;
                    let flow = commands::execute(
                        args,
                        &self.shared,
                        &mut self.session,
                        conn.output(),
                        &sub,
                    );
                    used += n;
                    if flow == Flow::Close {
                        conn.close();
                        return Ok(data.len());
                    }
                }
                Parse::Incomplete => break,
                Parse::Error(msg) => {
                    resp::error(conn.output(), &format!("ERR {msg}"));
                    return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
                }
            }
        }
        Ok(used)
    }

    fn message_received(&mut self, message: Message, conn: &mut Conn<'_>) {
        if let Ok(frame) = message.downcast::<Vec<u8>>() {
            conn.write(&frame);
        }
    }

    fn connection_lost(&mut self, _error: Option<&io::Error>) {
        self.session.end(&self.shared);
    }
}
