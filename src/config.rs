//! The settings a [`ServerBuilder`](crate::ServerBuilder) collects, read by
//! the transports, the loop and every request. Near a leaf: it depends only
//! on `net` and on the settings types of the connection's edge (`deadline`,
//! `proxy`, `tls`), none of which depend on it.

use std::io;
use std::time::Duration;

use crate::deadline::Deadlines;
use crate::net::Stream;
use crate::proxy::ProxyProtocol;
#[cfg(feature = "tls")]
use crate::tls::TlsConfig;

/// Every option of a server, at its default until a builder setter changes it.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) backlog: i32,
    pub(crate) reuse_address: bool,
    pub(crate) reuse_port: bool,
    pub(crate) only_v6: Option<bool>,
    pub(crate) nodelay: bool,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) max_connections: Option<usize>,
    pub(crate) max_connections_per_ip: Option<usize>,
    pub(crate) max_packet_size: usize,
    pub(crate) handle_request_timeout: Option<Duration>,
    pub(crate) drain_timeout: Option<Duration>,
    pub(crate) service_interval: Option<Duration>,
    pub(crate) quiet_panics: bool,
    pub(crate) edge: Edge,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            backlog: crate::sys::SOMAXCONN,
            reuse_address: true,
            reuse_port: false,
            only_v6: None,
            nodelay: false,
            read_timeout: None,
            write_timeout: None,
            max_connections: None,
            max_connections_per_ip: None,
            max_packet_size: 65535,
            handle_request_timeout: None,
            drain_timeout: None,
            service_interval: None,
            quiet_panics: false,
            edge: Default::default(),
        }
    }
}

impl Config {
    /// Applies the per-connection options to an accepted stream; runs on the
    /// worker, not on the accept loop.
    pub(crate) fn prepare(&self, stream: &Stream) -> io::Result<()> {
        // Linux's accept(2) never passes O_NONBLOCK on; BSDs and macOS do.
        #[cfg(not(target_os = "linux"))]
        stream.set_nonblocking(false)?;
        if self.read_timeout.is_some() {
            stream.set_read_timeout(self.read_timeout)?;
        }
        if self.write_timeout.is_some() {
            stream.set_write_timeout(self.write_timeout)?;
        }
        if self.nodelay {
            stream.set_nodelay(true)?;
        }
        Ok(())
    }
}

/// The connection-edge settings of a server (part of its `Config`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Edge {
    pub(crate) deadlines: Deadlines,
    pub(crate) proxy: Option<ProxyProtocol>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) serve_backlog: bool,
}
