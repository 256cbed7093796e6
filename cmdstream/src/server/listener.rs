//! Where connections come from: TCP, Unix sockets, or anything else that
//! yields byte streams.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// A source of incoming connections for [`Server::serve`](super::Server::serve).
///
/// Implemented for [`tokio::net::TcpListener`] (setting `TCP_NODELAY` on
/// every connection) and [`tokio::net::UnixListener`].
pub trait Listener: Send + 'static {
    /// The byte stream of one connection.
    type Io: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// Waits for the next connection; returns it with the peer's address
    /// when it has one.
    fn accept(&mut self)
        -> impl Future<Output = io::Result<(Self::Io, Option<SocketAddr>)>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Io, Option<SocketAddr>)> {
        let (stream, addr) = tokio::net::TcpListener::accept(self).await?;
        // Latency matters more than packet count: frames are already
        // coalesced by the writer.
        stream.set_nodelay(true)?;
        Ok((stream, Some(addr)))
    }
}

#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;

    async fn accept(&mut self) -> io::Result<(Self::Io, Option<SocketAddr>)> {
        let (stream, _) = tokio::net::UnixListener::accept(self).await?;
        Ok((stream, None))
    }
}
