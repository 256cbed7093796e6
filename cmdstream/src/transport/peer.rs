//! Who is at the other end of a connection, as far as the transport
//! knows.

use std::fmt;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::Path;
use std::sync::Arc;

/// The address of a connection's peer.
///
/// The identity a TLS peer proved with its certificate is not an address;
/// it is in [`ConnectionInfo::tls`](crate::ConnectionInfo::tls).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PeerAddr {
    /// A TCP peer.
    Tcp(SocketAddr),
    /// A Unix-socket peer, with its path if it bound one (clients
    /// usually do not).
    #[cfg(unix)]
    Unix(Option<Arc<Path>>),
    /// Another transport, as it names the peer (an in-memory pipe, a
    /// custom connector).
    Other(Arc<str>),
    /// Nothing is known.
    #[default]
    Unknown,
}

impl PeerAddr {
    /// The socket address, for TCP peers.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            PeerAddr::Tcp(addr) => Some(*addr),
            _ => None,
        }
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        PeerAddr::Tcp(addr)
    }
}

impl From<Option<SocketAddr>> for PeerAddr {
    fn from(addr: Option<SocketAddr>) -> Self {
        addr.map_or(PeerAddr::Unknown, PeerAddr::Tcp)
    }
}

impl From<&str> for PeerAddr {
    fn from(name: &str) -> Self {
        PeerAddr::Other(name.into())
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Tcp(addr) => write!(f, "{addr}"),
            #[cfg(unix)]
            PeerAddr::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            #[cfg(unix)]
            PeerAddr::Unix(None) => f.write_str("unix:(unnamed)"),
            PeerAddr::Other(name) => f.write_str(name),
            PeerAddr::Unknown => f.write_str("(unknown)"),
        }
    }
}
