//! Joins the room the way the server requires, so its user never sees it:
//! a padded `/hello` (the server may answer at most 3 times what it got),
//! the cookie echoed in `/join` (proof that we receive at our address),
//! and the secret from `/welcome` in front of every later datagram (so
//! nobody forging our address can speak, rename or quit for us).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The lesson's receive buffer, which the server never exceeds.
pub const BUFFER: usize = 1024;

/// `/hello` padded with spaces to 64 bytes: the server answers at most 3
/// times what it received, and its `/cookie` is 40 bytes.
fn hello() -> String {
    format!("{:<64}", "/hello")
}

/// A UDP socket talking to one chat server, as a member of its room.
#[derive(Debug)]
pub struct ChatClient {
    socket: UdpSocket,
    server: SocketAddr,
    name: Option<String>,
    /// From `/welcome`; shared by every handle on the socket.
    secret: Arc<Mutex<Option<String>>>,
}

impl ChatClient {
    /// [`open`](Self::open), then [`join`](Self::join) (waiting up to 5 s):
    /// a member of the room, renamed by `/nick NAME` when a name is given.
    pub fn connect(addr: &str, name: Option<&str>) -> io::Result<ChatClient> {
        let client = ChatClient::open(addr, name)?;
        client.join(Duration::from_secs(5))?;
        Ok(client)
    }

    /// Binds an ephemeral port and connects it to the server at `addr` (so
    /// only the server's datagrams are received). Not a member yet: UDP,
    /// nothing is known about the server.
    pub fn open(addr: &str, name: Option<&str>) -> io::Result<ChatClient> {
        let no_addr = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no address for {addr}"),
            )
        };
        let server = addr.to_socket_addrs()?.next().ok_or_else(no_addr)?;
        let local: SocketAddr = if server.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(server)?;
        Ok(ChatClient {
            socket,
            server,
            name: name.map(str::to_string),
            secret: Arc::new(Mutex::new(None)),
        })
    }

    /// The handshake: `/hello` until a cookie comes (resent every 500 ms,
    /// datagrams get lost), then `/join` until `/welcome`.
    pub fn join(&self, limit: Duration) -> io::Result<()> {
        let start = Instant::now();
        self.rejoin()?;
        while start.elapsed() < limit {
            match self.recv(Duration::from_millis(500)) {
                Ok(Some(msg)) if msg.starts_with("! ") => return Err(io::Error::other(msg)),
                Ok(Some(msg)) => {
                    self.control(&msg)?;
                }
                Ok(None) => self.rejoin()?,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
            if self.is_member() {
                return Ok(());
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no answer from the chat server",
        ))
    }

    /// Starts joining again (after an idle drop, or a restarted server).
    pub fn rejoin(&self) -> io::Result<()> {
        *self.secret.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.socket.send(hello().as_bytes()).map(|_| ())
    }

    /// Whether the handshake has completed.
    pub fn is_member(&self) -> bool {
        self.secret
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Handles the handshake's datagrams (`/cookie`, `/welcome`): true if
    /// `msg` was one (it is not for the user's screen).
    pub fn control(&self, msg: &str) -> io::Result<bool> {
        if let Some(cookie) = msg.strip_prefix("/cookie ") {
            self.socket.send(format!("/join {cookie}").as_bytes())?;
            return Ok(true);
        }
        let Some(rest) = msg.strip_prefix("/welcome ") else {
            return Ok(false);
        };
        let secret = rest.split(' ').next().unwrap_or_default().to_string();
        let fresh = !self.is_member();
        *self.secret.lock().unwrap_or_else(|p| p.into_inner()) = Some(secret);
        if let (true, Some(name)) = (fresh, &self.name) {
            self.send(&format!("/nick {name}"))?;
        }
        Ok(true)
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// This client's own address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// A second handle on the same socket (and secret), for a second thread.
    pub fn try_clone(&self) -> io::Result<ChatClient> {
        Ok(ChatClient {
            socket: self.socket.try_clone()?,
            server: self.server,
            name: self.name.clone(),
            secret: Arc::clone(&self.secret),
        })
    }

    /// Sends one line (one datagram), signed with our secret.
    pub fn send(&self, line: &str) -> io::Result<()> {
        let secret = self
            .secret
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let secret = secret
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not in the room (yet)"))?;
        self.socket
            .send(format!("#{secret} {line}").as_bytes())
            .map(|_| ())
    }

    /// Waits up to `timeout` for one datagram: `Ok(None)` on timeout.
    /// `ConnectionRefused` means an earlier datagram found no server there.
    /// Not for two threads at once (it sets the socket's read timeout).
    pub fn recv(&self, timeout: Duration) -> io::Result<Option<String>> {
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut buf = [0u8; BUFFER];
        match self.socket.recv(&mut buf) {
            Ok(n) => Ok(Some(String::from_utf8_lossy(&buf[..n]).into_owned())),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// [`recv`](Self::recv) with errors folded into `None`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<String> {
        self.recv(timeout).ok().flatten()
    }
}
