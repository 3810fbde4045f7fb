//! The PROXY protocol (v1 text and v2 binary, as HAProxy, AWS NLB and most
//! load balancers send it): the original client's address, written by the
//! proxy before the client's first byte.
//!
//! A listener either takes no header at all (the default) or **requires**
//! one, and only from the proxies it trusts ([`ProxyProtocol`]): accepting an
//! optional header would let any client claim any address. The header is
//! read where the handler runs (worker thread, forked child), never on the
//! accept loop, within a short deadline (default 1 s). A connection from an
//! untrusted address, a malformed header, or a header not complete in time
//! is closed without reaching the handler and counted in
//! [`ServerStats::proxy_rejects`](crate::ServerStats::proxy_rejects).
//!
//! Exactly the header's bytes are read (16 bytes and the announced length
//! for v2; up to the `\r\n` for v1), so what follows (a TLS ClientHello, the
//! application's first line) is untouched. Parsing is done by the [`ppp`]
//! crate; see the commit that added it for the comparison with
//! `proxy-header`.
//!
//! The handler's [`peer`](crate::StreamRequest::peer) is the client's
//! address from the header; [`StreamRequest::proxy`](crate::StreamRequest::proxy)
//! keeps the proxy's own address and the original destination.
//! [`verify_request`](crate::StreamHandler::verify_request) runs on the
//! accept loop before the header is read, so it sees the proxy's address:
//! check the client's in `setup`. A v2 `LOCAL`
//! header or a v1 `UNKNOWN` one (HAProxy's health checks) keeps the socket's
//! address as the peer.

use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use crate::net::Addr;

/// The 12-byte signature that starts every v2 header.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header the specification allows, `\r\n` included.
const V1_MAX: usize = 107;

/// A network of trusted proxies: `10.0.0.0/8`, `::1/128`, or a bare address
/// (a /32 or /128).
///
/// ```
/// use socketserver::TrustedNet;
/// let net: TrustedNet = "10.1.0.0/16".parse().unwrap();
/// assert!(net.contains("10.1.200.3".parse().unwrap()));
/// assert!(!net.contains("10.2.0.1".parse().unwrap()));
/// let one: TrustedNet = "::1".parse().unwrap();
/// assert!(one.contains("::1".parse().unwrap()));
/// assert!("10.0.0.0/33".parse::<TrustedNet>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrustedNet {
    addr: IpAddr,
    prefix: u8,
}

impl TrustedNet {
    /// The network `addr/prefix`; `None` if the prefix is longer than the
    /// address (32 for IPv4, 128 for IPv6).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<TrustedNet> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(TrustedNet { addr, prefix })
    }

    /// True if `ip` is in this network. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.1`, as a dual-stack listener reports IPv4 peers)
    /// counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn bits(ip: IpAddr) -> (u128, u32) {
            match ip.to_canonical() {
                IpAddr::V4(v4) => (u32::from(v4) as u128, 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        }
        let (net, width) = bits(self.addr);
        let (ip, ip_width) = bits(ip);
        if width != ip_width {
            return false;
        }
        let shift = width - u32::from(self.prefix);
        shift == width || (net >> shift) == (ip >> shift)
    }
}

impl FromStr for TrustedNet {
    type Err = String;

    fn from_str(s: &str) -> Result<TrustedNet, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|e| format!("bad address in {s:?}: {e}"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .map_err(|e| format!("bad prefix in {s:?}: {e}"))?,
            None => max,
        };
        TrustedNet::new(ip, prefix).ok_or_else(|| format!("prefix too long in {s:?}"))
    }
}

impl fmt::Display for TrustedNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A listener's PROXY protocol policy, set with
/// [`ServerBuilder::proxy_protocol`](crate::ServerBuilder::proxy_protocol).
///
/// ```
/// use std::time::Duration;
/// use socketserver::ProxyProtocol;
/// let policy = ProxyProtocol::required_from(["127.0.0.1".parse().unwrap()])
///     .timeout(Duration::from_millis(500));
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    trusted: Vec<TrustedNet>,
    timeout: Duration,
}

impl ProxyProtocol {
    /// Every connection must start with a PROXY header (v1 or v2), and
    /// only from an address in `trusted`; Unix-socket peers are trusted
    /// (only local processes can reach them). Anyone else is closed
    /// unserved. An empty list trusts no TCP peer at all.
    pub fn required_from(trusted: impl IntoIterator<Item = TrustedNet>) -> ProxyProtocol {
        ProxyProtocol {
            trusted: trusted.into_iter().collect(),
            timeout: Duration::from_secs(1),
        }
    }

    /// How long the whole header may take to arrive. Default: 1 s.
    pub fn timeout(mut self, limit: Duration) -> ProxyProtocol {
        self.timeout = limit;
        self
    }

    pub(crate) fn limit(&self) -> Duration {
        self.timeout
    }

    /// True if a connection from `peer` may send a header.
    pub(crate) fn trusts(&self, peer: &Addr) -> bool {
        match peer {
            Addr::Inet(a) => self.trusted.iter().any(|n| n.contains(a.ip())),
            #[cfg(unix)]
            Addr::Unix(_) => true,
        }
    }
}

/// What a PROXY header said, from
/// [`StreamRequest::proxy`](crate::StreamRequest::proxy).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyInfo {
    /// The proxy's own address: the socket's peer.
    pub proxy: Addr,
    /// The original client's address; `None` for a `LOCAL`/`UNKNOWN`
    /// header or a non-IP address family.
    pub source: Option<SocketAddr>,
    /// The address the client connected to, on the proxy.
    pub destination: Option<SocketAddr>,
    /// 1 (text) or 2 (binary).
    pub version: u8,
    /// True for a v2 `LOCAL` command or a v1 `UNKNOWN` header: the proxy
    /// speaking for itself (a health check), not for a client.
    pub local: bool,
}

impl ProxyInfo {
    /// The address the handler should see: the client's, or the socket's
    /// when the header names none.
    pub(crate) fn peer(&self) -> Addr {
        self.source.map_or_else(|| self.proxy.clone(), Addr::Inet)
    }
}

/// Why a connection was refused before its handler.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The peer is not a trusted proxy.
    Untrusted,
    /// The header was not a valid PROXY header.
    Malformed(String),
    /// The header did not arrive in time, or the socket failed.
    Io(io::Error),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Untrusted => f.write_str("not a trusted proxy"),
            Refusal::Malformed(why) => write!(f, "malformed PROXY header: {why}"),
            Refusal::Io(e) => write!(f, "reading the PROXY header: {e}"),
        }
    }
}

impl From<io::Error> for Refusal {
    fn from(e: io::Error) -> Refusal {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Refusal::Malformed("the connection ended inside the header".into())
        } else {
            Refusal::Io(e)
        }
    }
}

/// Reads exactly one PROXY header from `sock` (whose reads are bounded by
/// the caller's deadline) and says what it holds.
pub(crate) fn read_header(mut sock: impl Read, proxy: Addr) -> Result<ProxyInfo, Refusal> {
    let mut head = [0u8; 16];
    sock.read_exact(&mut head[..6])?;
    if &head[..6] == b"PROXY " {
        let line = read_v1_line(&mut sock, &head[..6])?;
        let text = std::str::from_utf8(&line)
            .map_err(|_| Refusal::Malformed("v1 header is not ASCII".into()))?;
        let header =
            ppp::v1::Header::try_from(text).map_err(|e| Refusal::Malformed(format!("v1: {e}")))?;
        return Ok(from_v1(&header.addresses, proxy));
    }
    if head[..6] != V2_SIGNATURE[..6] {
        return Err(Refusal::Malformed("no PROXY signature".into()));
    }
    sock.read_exact(&mut head[6..])?;
    if head[..12] != V2_SIGNATURE[..] {
        return Err(Refusal::Malformed("bad v2 signature".into()));
    }
    let len = u16::from_be_bytes([head[14], head[15]]) as usize;
    let mut whole = Vec::with_capacity(16 + len);
    whole.extend_from_slice(&head);
    whole.resize(16 + len, 0);
    sock.read_exact(&mut whole[16..])?;
    let header = ppp::v2::Header::try_from(&whole[..])
        .map_err(|e| Refusal::Malformed(format!("v2: {e}")))?;
    Ok(from_v2(&header, proxy))
}

/// Reads a v1 line one byte at a time up to `\r\n`: the header has no
/// length field, and reading past it would swallow the client's bytes.
/// At most [`V1_MAX`] bytes, so the loop is bounded.
fn read_v1_line(sock: &mut impl Read, start: &[u8]) -> Result<Vec<u8>, Refusal> {
    let mut line = start.to_vec();
    while line.len() < V1_MAX {
        let mut byte = [0u8; 1];
        sock.read_exact(&mut byte)?;
        line.push(byte[0]);
        if line.ends_with(b"\r\n") {
            return Ok(line);
        }
    }
    Err(Refusal::Malformed("v1 header longer than 107 bytes".into()))
}

fn from_v1(addresses: &ppp::v1::Addresses, proxy: Addr) -> ProxyInfo {
    use ppp::v1::Addresses;
    let (source, destination) = match addresses {
        Addresses::Tcp4(a) => (
            Some(SocketAddr::from((a.source_address, a.source_port))),
            Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        ),
        Addresses::Tcp6(a) => (
            Some(SocketAddr::from((a.source_address, a.source_port))),
            Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        ),
        Addresses::Unknown => (None, None),
    };
    ProxyInfo {
        proxy,
        local: source.is_none(),
        source,
        destination,
        version: 1,
    }
}

fn from_v2(header: &ppp::v2::Header<'_>, proxy: Addr) -> ProxyInfo {
    use ppp::v2::{Addresses, Command};
    let local = header.command == Command::Local;
    let (source, destination) = match (local, &header.addresses) {
        (false, Addresses::IPv4(a)) => (
            Some(SocketAddr::from((a.source_address, a.source_port))),
            Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        ),
        (false, Addresses::IPv6(a)) => (
            Some(SocketAddr::from((a.source_address, a.source_port))),
            Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        ),
        _ => (None, None),
    };
    ProxyInfo {
        proxy,
        source,
        destination,
        version: 2,
        local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> (Result<ProxyInfo, Refusal>, usize) {
        let mut rest = bytes;
        let r = read_header(&mut rest, Addr::Inet("127.0.0.1:9".parse().unwrap()));
        (r, bytes.len() - rest.len())
    }

    #[test]
    fn v1_reads_exactly_the_line() {
        let input = b"PROXY TCP4 192.0.2.1 198.51.100.2 5555 443\r\nHELLO";
        let (info, used) = parse(input);
        let info = info.unwrap();
        assert_eq!(used, input.len() - 5);
        assert_eq!(info.source, Some("192.0.2.1:5555".parse().unwrap()));
        assert_eq!(info.destination, Some("198.51.100.2:443".parse().unwrap()));
        assert!(!info.local);
        assert_eq!(info.peer(), Addr::Inet("192.0.2.1:5555".parse().unwrap()));
    }

    #[test]
    fn v1_unknown_keeps_the_socket_address() {
        let (info, used) = parse(b"PROXY UNKNOWN\r\nX");
        let info = info.unwrap();
        assert_eq!(used, 15);
        assert!(info.local);
        assert_eq!(info.peer(), Addr::Inet("127.0.0.1:9".parse().unwrap()));
    }

    #[test]
    fn v2_proxy_and_local() {
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[
            0x21, 0x11, 0, 12, 192, 0, 2, 7, 10, 0, 0, 1, 0x1f, 0x90, 0, 80,
        ]);
        v2.extend_from_slice(b"\x16\x03\x01"); // a ClientHello follows
        let (info, used) = parse(&v2);
        assert_eq!(used, v2.len() - 3);
        assert_eq!(
            info.unwrap().source,
            Some("192.0.2.7:8080".parse().unwrap())
        );

        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        let (info, used) = parse(&local);
        assert_eq!(used, 16);
        let info = info.unwrap();
        assert!(info.local);
        assert_eq!(info.source, None);
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"PROXY TCP4 nonsense\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2", // never ends
            b"\r\n\r\n\0\r\nQUIX\n\x21\x11\0\0",
        ] {
            assert!(parse(bad).0.is_err(), "{bad:?} accepted");
        }
        let long = [b"PROXY ".as_slice(), &[b'1'; 200]].concat();
        assert!(parse(&long).0.is_err());
    }

    #[test]
    fn trust_is_by_network() {
        let p = ProxyProtocol::required_from(["10.0.0.0/8".parse().unwrap()]);
        assert!(p.trusts(&Addr::Inet("10.9.9.9:1".parse().unwrap())));
        assert!(p.trusts(&Addr::Inet("[::ffff:10.9.9.9]:1".parse().unwrap())));
        assert!(!p.trusts(&Addr::Inet("11.0.0.1:1".parse().unwrap())));
        let none = ProxyProtocol::required_from([]);
        assert!(!none.trusts(&Addr::Inet("127.0.0.1:1".parse().unwrap())));
        let all: TrustedNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
    }
}
