//! Where a server's connections come from: TCP, Unix sockets, or anything
//! else that yields byte streams.

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

use super::peer::PeerAddr;

/// A source of incoming connections for [`Server::serve`](crate::Server::serve).
///
/// Implemented for [`tokio::net::TcpListener`] (setting `TCP_NODELAY` on
/// every connection) and [`tokio::net::UnixListener`]. Accepting should be
/// fast: anything slow about a new connection (a TLS handshake, say) is the
/// server's to do inside that connection's own task, under its handshake
/// timeout, so that one slow peer never holds up the others.
pub trait Listener: Send + 'static {
    /// The byte stream of one connection.
    type Io: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// Waits for the next connection; returns it with its peer's address.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, PeerAddr)>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Io, PeerAddr)> {
        let (stream, addr) = tokio::net::TcpListener::accept(self).await?;
        // Latency matters more than packet count: frames are already
        // coalesced by the writer.
        stream.set_nodelay(true)?;
        Ok((stream, PeerAddr::Tcp(addr)))
    }
}

#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;

    async fn accept(&mut self) -> io::Result<(Self::Io, PeerAddr)> {
        let (stream, addr) = tokio::net::UnixListener::accept(self).await?;
        let path = addr.as_pathname().map(std::sync::Arc::from);
        Ok((stream, PeerAddr::Unix(path)))
    }
}
