//! How a client gets a byte stream to an endpoint: TCP, a Unix socket,
//! TLS over either, or a connector of the user's. Used for the first dial
//! and for every dial after it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::endpoint::Endpoint;

/// Dials an [`Endpoint`]: the transport under a client.
///
/// cmdstream dials TCP and Unix sockets itself (and TLS over them, with
/// the `tls` feature); implement this for anything else that yields a byte
/// stream (a QUIC stream, a proxy, an in-memory pipe in tests) and hand it
/// to [`ClientBuilder::connector`](crate::ClientBuilder::connector). The
/// client applies its connect timeout around [`connect`](Self::connect).
///
/// # Examples
///
/// ```
/// use cmdstream::{Connector, Endpoint};
///
/// /// TCP, but only to addresses in 10.0.0.0/8.
/// struct Internal;
///
/// impl Connector for Internal {
///     type Io = tokio::net::TcpStream;
///
///     async fn connect(&self, endpoint: &Endpoint) -> std::io::Result<Self::Io> {
///         match endpoint {
///             Endpoint::Addr(addr) if addr.ip().to_string().starts_with("10.") => {
///                 cmdstream::Tcp.connect(endpoint).await
///             }
///             other => Err(std::io::Error::other(format!("{other} is not internal"))),
///         }
///     }
/// }
/// ```
pub trait Connector: Send + Sync + 'static {
    /// The byte stream of one connection.
    type Io: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// Opens a byte stream to `endpoint`.
    fn connect(&self, endpoint: &Endpoint) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// TCP, with `TCP_NODELAY`; a host name is resolved at every dial and its
/// addresses are tried in turn.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tcp;

impl Connector for Tcp {
    type Io = TcpStream;

    async fn connect(&self, endpoint: &Endpoint) -> io::Result<TcpStream> {
        let mut last = None;
        for addr in endpoint.resolve().await? {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    // Frames are coalesced by the writer already: latency
                    // matters more than packet count.
                    stream.set_nodelay(true)?;
                    return Ok(stream);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::ErrorKind::NotFound.into()))
    }
}

/// A Unix domain socket.
#[cfg(unix)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Unix;

#[cfg(unix)]
impl Connector for Unix {
    type Io = tokio::net::UnixStream;

    async fn connect(&self, endpoint: &Endpoint) -> io::Result<Self::Io> {
        match endpoint {
            Endpoint::Unix(path) => tokio::net::UnixStream::connect(path).await,
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{other} is not a Unix socket"),
            )),
        }
    }
}

/// A byte stream of any transport.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

type Dialing<'a> = Pin<Box<dyn Future<Output = io::Result<Box<dyn Io>>> + Send + 'a>>;

/// [`Connector`] made object-safe: a boxed future per dial, a boxed
/// stream per connection.
pub(crate) trait DynConnector: Send + Sync {
    fn dial<'a>(&'a self, endpoint: &'a Endpoint) -> Dialing<'a>;
}

impl<K: Connector> DynConnector for K {
    fn dial<'a>(&'a self, endpoint: &'a Endpoint) -> Dialing<'a> {
        Box::pin(async move {
            let io = Connector::connect(self, endpoint).await?;
            Ok(Box::new(io) as Box<dyn Io>)
        })
    }
}

/// How a client dials: what its builder was told.
#[derive(Clone, Default)]
pub(crate) enum Dialer {
    /// TCP, or a Unix socket for a Unix endpoint. Each keeps its own
    /// stream type all the way down, so the call path is monomorphic.
    #[default]
    Plain,
    /// TLS over TCP (or a Unix socket).
    #[cfg(feature = "tls")]
    Tls(super::tls::ClientTls),
    /// A connector of the user's.
    Custom(Arc<dyn DynConnector>),
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dialer::Plain => "Plain",
            #[cfg(feature = "tls")]
            Dialer::Tls(_) => "Tls",
            Dialer::Custom(_) => "Custom",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_tries_each_address_of_a_name() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream = Tcp.connect(&Endpoint::host("localhost", port)).await;
        // `localhost` may resolve to ::1 first, where nothing listens: the
        // next address is tried.
        let stream = stream.unwrap();
        assert!(stream.nodelay().unwrap());
        let refused = Tcp
            .connect(&Endpoint::Addr(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                1,
            ))))
            .await;
        assert!(refused.is_err());
    }
}
