//! The builder that configures a client and connects it.

#[cfg(unix)]
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite};

use super::config::ClientConfig;
use super::connection::Connection;
use super::options::CallOptions;
use super::Client;
use crate::codec::{Codec, DefaultCodec};
use crate::error::Error;
use crate::service::ServiceInfo;
#[cfg(unix)]
use crate::transport::Unix;
use crate::transport::{Connector, Dialer, Endpoint, IntoEndpoint, Tcp};

/// Builds a [`Client`]: settings first, then one of the `connect` methods.
///
/// # Examples
///
/// ```no_run
/// # use cmdstream::{Client, ServiceInfo};
/// # async fn f(info: &'static ServiceInfo) -> Result<(), cmdstream::Error> {
/// use std::time::Duration;
/// let client = Client::builder()
///     .max_in_flight(256)
///     .timeout(Duration::from_secs(2))
///     .connect("127.0.0.1:7000", info)
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder<C = DefaultCodec> {
    config: ClientConfig,
    codec: C,
    /// How `connect` gets a byte stream.
    dialer: Dialer,
}

impl Default for ClientBuilder<DefaultCodec> {
    fn default() -> Self {
        ClientBuilder {
            config: ClientConfig::default(),
            codec: DefaultCodec::default(),
            dialer: Dialer::default(),
        }
    }
}

impl<C: Codec> ClientBuilder<C> {
    /// Uses `codec` for payloads. The server must use the same codec.
    pub fn codec<C2: Codec>(self, codec: C2) -> ClientBuilder<C2> {
        ClientBuilder {
            config: self.config,
            codec,
            dialer: self.dialer,
        }
    }

    /// The largest frame this client accepts from the server, and the
    /// largest it sends, in bytes: a larger result fails its call with
    /// [`Error::FrameTooLarge`], and so does a call whose command would be
    /// larger (or larger than the server accepts). At least 1 KiB. The
    /// default is 16 MiB.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.config.max_frame_size =
            bytes.clamp(crate::wire::frame::MIN_FRAME_LIMIT, u32::MAX as usize);
        self
    }

    /// The most calls in flight on the connection; further callers wait
    /// until one completes. The server's own limit applies too, whichever is
    /// smaller. The default is 1024.
    pub fn max_in_flight(mut self, calls: usize) -> Self {
        self.config.max_in_flight = calls.max(1);
        self
    }

    /// How many results of a stream the server may send ahead of the
    /// consumer; credit goes back after each quarter window consumed.
    ///
    /// By default a stream starts with a window of 128 items and, while its
    /// items are small, grows it (up to 8192 items) so that about 128 KiB
    /// of results may wait for the consumer: a stream of tiny items is not
    /// throttled by round trips, and one of large items stays at 128.
    /// Setting a window here fixes it at `items`. Either way a window stays
    /// within what the server keeps (its `max_result_window`).
    pub fn stream_window(mut self, items: u32) -> Self {
        self.config.stream_window = items.max(1);
        self.config.grow_window = false;
        self
    }

    /// How long the connection may be silent before the client pings, and
    /// then before it declares the server dead (failing every pending call
    /// with [`Error::ConnectionLost`]). `None` turns keepalive off. The
    /// default is 10 s (or the server's interval, if shorter).
    pub fn keepalive(mut self, interval: Option<Duration>) -> Self {
        self.config.keepalive_interval = interval;
        self
    }

    /// How long to wait for the TCP connection. The default is 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How long the server may take to complete the handshake. The default
    /// is 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// Metadata sent once, in the handshake; the server sees it in every
    /// call's context. Metadata the wire cannot carry (see [`Metadata`](crate::Metadata))
    /// fails the connect with [`Error::InvalidMetadata`].
    pub fn connection_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.metadata.insert(key, value);
        self
    }

    /// The timeout of calls that set none themselves (through
    /// [`CallOptions::timeout`]) and whose command has no default of its own
    /// (`#[command(timeout = "...")]`): the most specific setting wins (see
    /// [`CallOptions`], "Precedence"). The default is none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.default_timeout = Some(timeout);
        self
    }

    /// The default options of every call, layered over those set before
    /// (see [`CallOptions`], "Precedence"): a timeout here is the client's
    /// default timeout, the same setting as [`timeout`](Self::timeout);
    /// metadata and trace context go with every call unless a handle's
    /// own options replace them.
    pub fn call_options(mut self, mut options: CallOptions) -> Self {
        if let Some(timeout) = options.timeout.take() {
            self.config.default_timeout = timeout;
        }
        self.config.options = self.config.options.layered(options);
        self
    }

    /// Dials with `connector` (a transport of your own) instead of TCP
    /// and Unix sockets; the connect timeout applies around it.
    pub fn connector(mut self, connector: impl Connector) -> Self {
        self.dialer = Dialer::Custom(Arc::new(connector));
        self
    }

    /// Speaks TLS (cargo feature `tls`) over TCP or a Unix socket: the
    /// server's certificate is checked against the CAs in `tls`, and for the
    /// endpoint's host name unless `tls` names another.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::ClientTls) -> Self {
        self.dialer = Dialer::Tls(tls);
        self
    }

    /// Connects to `endpoint`: a `"host:port"` string (resolved at every
    /// dial), a socket address, an [`Endpoint`], or (on Unix) a path; over
    /// TCP (with `TCP_NODELAY`) or a Unix socket, with TLS if configured,
    /// or through the [connector](Self::connector) given.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the connection cannot be made (`TimedOut` when
    /// none is made within the connect timeout, whatever the transport),
    /// [`Error::Tls`] when TLS fails, [`Error::Incompatible`] when the
    /// server runs another service or version, [`Error::Unavailable`] when
    /// it refuses new connections, [`Error::Unauthenticated`] or
    /// [`Error::PermissionDenied`] when it refuses this client.
    pub async fn connect(
        self,
        endpoint: impl IntoEndpoint,
        service: &'static ServiceInfo,
    ) -> Result<Client<C>, Error> {
        let endpoint = endpoint.into_endpoint()?;
        let peer = endpoint.to_string();
        match self.dialer.clone() {
            #[cfg(unix)]
            Dialer::Plain if matches!(endpoint, Endpoint::Unix(_)) => {
                let io = self.dial(Unix.connect(&endpoint), &endpoint).await?;
                self.connect_io(io, service, &peer).await
            }
            Dialer::Plain => {
                let io = self.dial(Tcp.connect(&endpoint), &endpoint).await?;
                self.connect_io(io, service, &peer).await
            }
            #[cfg(feature = "tls")]
            Dialer::Tls(tls) => {
                #[cfg(unix)]
                if matches!(endpoint, Endpoint::Unix(_)) {
                    let io = self.dial(Unix.connect(&endpoint), &endpoint).await?;
                    return self.connect_tls(io, &tls, &endpoint, service).await;
                }
                let io = self.dial(Tcp.connect(&endpoint), &endpoint).await?;
                self.connect_tls(io, &tls, &endpoint, service).await
            }
            Dialer::Custom(connector) => {
                let io = self.dial(connector.dial(&endpoint), &endpoint).await?;
                self.connect_io(io, service, &peer).await
            }
        }
    }

    /// Connects over a Unix domain socket: [`connect`](Self::connect) to
    /// `Endpoint::unix(path)`.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    #[cfg(unix)]
    pub async fn connect_unix(
        self,
        path: impl AsRef<Path>,
        service: &'static ServiceInfo,
    ) -> Result<Client<C>, Error> {
        self.connect(Endpoint::unix(path), service).await
    }

    /// Runs `dial` within the connect timeout; the same error for every
    /// transport when it runs out.
    async fn dial<IO>(
        &self,
        dial: impl Future<Output = std::io::Result<IO>>,
        endpoint: &Endpoint,
    ) -> Result<IO, Error> {
        let timeout = self.config.connect_timeout;
        match tokio::time::timeout(timeout, dial).await {
            Ok(Ok(io)) => Ok(io),
            Ok(Err(e)) => Err(Error::Io(Arc::new(std::io::Error::new(
                e.kind(),
                format!("cannot connect to {endpoint}: {e}"),
            )))),
            Err(_) => Err(Error::Io(Arc::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection to {endpoint} within {timeout:?}"),
            )))),
        }
    }

    /// TLS over `io`, within the handshake timeout, then the protocol; a
    /// TLS failure during either reads as [`Error::Tls`].
    #[cfg(feature = "tls")]
    async fn connect_tls<IO>(
        self,
        io: IO,
        tls: &crate::tls::ClientTls,
        endpoint: &Endpoint,
        service: &'static ServiceInfo,
    ) -> Result<Client<C>, Error>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let timeout = self.config.handshake_timeout;
        let stream = tokio::time::timeout(timeout, tls.connect(io, endpoint))
            .await
            .map_err(|_| {
                Error::connection_lost(format!(
                    "the TLS handshake with {endpoint} did not complete within {timeout:?}"
                ))
            })??;
        self.connect_io(stream, service, &endpoint.to_string())
            .await
            .map_err(crate::transport::tls::classify)
    }

    /// Runs the protocol over any byte stream: a TLS stream, an in-memory
    /// pipe, a socket set up by hand. `peer` names the other side in logs.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect), without the I/O errors of dialing.
    pub async fn connect_io<IO>(
        self,
        io: IO,
        service: &'static ServiceInfo,
        peer: &str,
    ) -> Result<Client<C>, Error>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (conn, driver) = Connection::establish(io, &self.config, service, C::NAME).await?;
        driver.spawn(service, peer);
        Ok(Client::from_parts(
            Arc::new(conn),
            self.codec,
            self.config.options,
            self.config.default_timeout,
            service,
        ))
    }
}
