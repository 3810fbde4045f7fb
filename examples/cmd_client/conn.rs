//! The connection to the server: TCP or a Unix socket, and noticing that
//! the server closed an idle one (its idle timeout, a drain) before a
//! command is sent into it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

use super::Cli;

/// A connection to the server.
pub enum Conn {
    /// `--addr HOST:PORT`.
    Tcp(TcpStream),
    /// `--unix PATH`.
    Unix(UnixStream),
}

impl Conn {
    /// Connects as `cli` says.
    pub fn open(cli: &Cli) -> io::Result<Conn> {
        let conn = match &cli.unix {
            Some(path) => UnixStream::connect(path).map(Conn::Unix),
            None => TcpStream::connect(&cli.addr).map(Conn::Tcp),
        };
        conn.map_err(|e| {
            let to = cli
                .unix
                .as_ref()
                .map_or(cli.addr.clone(), |p| p.display().to_string());
            io::Error::new(e.kind(), format!("cannot connect to {to}: {e}"))
        })
    }

    /// True if the server has closed this connection. Between two answers the
    /// server sends nothing, so a read that does not block means it is gone
    /// (or speaks out of turn, which is as bad).
    pub fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        let read = match self {
            Conn::Tcp(s) => s.set_nonblocking(true).and_then(|()| s.read(&mut byte)),
            Conn::Unix(s) => s.set_nonblocking(true).and_then(|()| s.read(&mut byte)),
        };
        let restored = match self {
            Conn::Tcp(s) => s.set_nonblocking(false),
            Conn::Unix(s) => s.set_nonblocking(false),
        };
        restored.is_err() || !matches!(read, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
