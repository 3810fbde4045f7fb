//! UDP: `UDPServer`.

use std::io;
use std::net::{ToSocketAddrs, UdpSocket};
use std::sync::Arc;

use socket2::Type;

use super::{Datagram, Incoming, Receiver, Transport, TransportImpl, each_addr, socket_for};
use crate::config::Config;
use crate::net::{Addr, DatagramSocket};

/// A UDP socket: each request is one datagram.
///
/// Datagrams are read in batches, up to 32 per `recvmmsg(2)` with
/// `MSG_DONTWAIT` on Linux (`recvmsg(2)` in a loop elsewhere), into fixed
/// slots of [`max_packet_size`](crate::ServerBuilder::max_packet_size)
/// bytes; one that did not fit (`MSG_TRUNC`) is reported, never handled
/// cut short. Replies made while a batch runs leave together after it, in
/// one `sendmmsg(2)` (see [`DatagramRequest::reply`](crate::DatagramRequest::reply)). The
/// socket itself stays blocking, so handlers' replies never fail with
/// `WouldBlock`.
#[derive(Debug)]
pub struct UdpTransport {
    socket: Arc<DatagramSocket>,
    receiver: Receiver,
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
            receiver: Receiver::new(config.max_packet_size),
            addr,
        })
    }
}

impl TransportImpl for UdpTransport {
    type Request = Datagram;

    fn datagram_socket(&self) -> Option<&Arc<DatagramSocket>> {
        Some(&self.socket)
    }

    fn local_addr(&self) -> &Addr {
        &self.addr
    }

    fn next(&mut self) -> Incoming<Datagram> {
        let mut one = Incoming::WouldBlock;
        self.next_batch(1, &mut |i| one = i);
        one
    }

    fn shared_recv(&self) -> Option<super::SharedRecv<Datagram>> {
        Some(self.receiver.shared(&self.socket, inet_addr))
    }

    fn next_batch(&mut self, max: usize, each: &mut dyn FnMut(Incoming<Datagram>)) {
        self.receiver.recv(&self.socket, max, inet_addr, each);
    }

    fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&*self.socket)
    }

    fn listener_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
}

impl Transport for UdpTransport {}

fn inet_addr(a: &socket2::SockAddr) -> Addr {
    Addr::Inet(a.as_socket().unwrap_or_else(|| ([0, 0, 0, 0], 0).into()))
}
