//! UDP: `UDPServer`.

use std::io;
use std::net::{ToSocketAddrs, UdpSocket};
use std::sync::Arc;

use socket2::Type;

use super::Incoming;
use super::tcp::{each_addr, socket_for};
use crate::builder::Config;
use crate::handler::Datagram;
use crate::net::{Addr, DatagramSocket};

/// A UDP socket: each request is one datagram.
///
/// Datagrams are read with `recvmsg(2)` and `MSG_DONTWAIT` into a buffer of
/// [`max_packet_size`](crate::ServerBuilder::max_packet_size) bytes; one
/// that did not fit (`MSG_TRUNC`) is reported, never handled cut short. The
/// socket itself stays blocking, so handlers' replies never fail with
/// `WouldBlock`.
#[derive(Debug)]
pub struct UdpTransport {
    socket: Arc<DatagramSocket>,
    buf: Vec<u8>,
    addr: Addr,
}

impl UdpTransport {
    pub(crate) fn bind<A: ToSocketAddrs>(addr: A, config: &Config) -> io::Result<UdpTransport> {
        each_addr(addr, |a| {
            let socket = socket_for(&a, Type::DGRAM, config)?;
            socket.bind(&a.into())?;
            UdpTransport::from_socket(socket.into(), config)
        })
    }

    pub(crate) fn from_socket(socket: UdpSocket, config: &Config) -> io::Result<UdpTransport> {
        let addr = Addr::Inet(socket.local_addr()?);
        Ok(UdpTransport {
            socket: Arc::new(DatagramSocket::Udp(socket)),
            buf: vec![0; config.max_packet_size],
            addr,
        })
    }
}

/// One non-blocking `recvmsg` into `buf`, shared by both datagram transports.
#[cfg(unix)]
pub(super) fn recv(
    socket: &Arc<DatagramSocket>,
    buf: &mut [u8],
    to_addr: impl FnOnce(&socket2::SockAddr) -> Addr,
) -> Incoming<Datagram> {
    use std::os::fd::AsFd;
    match crate::sys::recv_datagram(socket.as_fd(), buf) {
        Ok((_, true, from)) => Incoming::Truncated(to_addr(&from)),
        Ok((n, false, from)) => Incoming::Request(
            Datagram {
                data: buf[..n].to_vec(),
                socket: Arc::clone(socket),
            },
            to_addr(&from),
        ),
        Err(e) => Incoming::from_error(e),
    }
}

impl super::Transport for UdpTransport {
    type Request = Datagram;

    fn datagram_socket(&self) -> Option<&Arc<DatagramSocket>> {
        Some(&self.socket)
    }

    fn local_addr(&self) -> &Addr {
        &self.addr
    }

    fn next(&mut self) -> Incoming<Datagram> {
        recv(&self.socket, &mut self.buf, |a| {
            Addr::Inet(a.as_socket().unwrap_or_else(|| ([0, 0, 0, 0], 0).into()))
        })
    }

    #[cfg(unix)]
    fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&*self.socket)
    }

    #[cfg(unix)]
    fn child_closes(&self) -> Option<std::os::fd::RawFd> {
        None
    }
}
