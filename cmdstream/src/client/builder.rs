//! The builder that configures a client and connects it.

#[cfg(unix)]
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use tokio::io::{AsyncRead, AsyncWrite};

use super::breaker::{Breaker, CircuitBreaker};
use super::config::ClientConfig;
use super::dial::{self, Dial};
use super::group::{self, Change, Group};
use super::options::CallOptions;
use super::reconnect::{self, Reconnect};
use super::route::Route;
use super::Client;
use crate::codec::{Codec, DefaultCodec};
use crate::error::Error;
use crate::service::ServiceInfo;
use crate::transport::{Connector, Dialer, Endpoint, IntoEndpoint};

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
    reconnect: Option<Reconnect>,
    breaker: Option<CircuitBreaker>,
}

impl Default for ClientBuilder<DefaultCodec> {
    fn default() -> Self {
        ClientBuilder {
            config: ClientConfig::default(),
            codec: DefaultCodec::default(),
            dialer: Dialer::default(),
            reconnect: None,
            breaker: None,
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
            reconnect: self.reconnect,
            breaker: self.breaker,
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

    /// Keeps a connection up through server restarts, redeploys and
    /// network faults, as `policy` says (see [`Reconnect`]): `connect`
    /// then returns a client that dials again whenever its connection is
    /// lost. Only for the `connect` methods; a client made with
    /// [`connect_io`](Self::connect_io) has nothing to dial again.
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.reconnect = Some(policy);
        self
    }

    /// Stops sending to an endpoint that keeps failing, for a while (see
    /// [`CircuitBreaker`]); off by default. For a group, each endpoint has
    /// its own breaker and an open one is skipped. A breaker needs a
    /// connection it can try again, so a client built with one reconnects
    /// (with the [`reconnect`](Self::reconnect) policy, or the default one
    /// if none is set). Only for the `connect` methods.
    pub fn circuit_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = Some(breaker);
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
    /// [`Error::PermissionDenied`] when it refuses this client. A
    /// [lazy](Reconnect::lazy) reconnecting client fails only on an
    /// endpoint it cannot read.
    pub async fn connect(
        self,
        endpoint: impl IntoEndpoint,
        service: &'static ServiceInfo,
    ) -> Result<Client<C>, Error> {
        let dial = Dial {
            config: self.config.clone(),
            dialer: self.dialer,
            endpoint: endpoint.into_endpoint()?,
            service,
            codec: C::NAME,
        };
        let policy = match (self.reconnect, &self.breaker) {
            (None, None) => None,
            (policy, _) => Some(policy.unwrap_or_default()),
        };
        let route = match policy {
            None => Route::Direct(Arc::new(dial.connect().await?)),
            Some(policy) => {
                let breaker = self
                    .breaker
                    .map(|config| Arc::new(Breaker::new(config, dial.endpoint.to_string())));
                let handle = Arc::new(reconnect::start(dial, policy, breaker).await?);
                Route::Reconnecting(reconnect::Attached::new(handle))
            }
        };
        Ok(Client::from_parts(
            route,
            self.codec,
            self.config.options,
            self.config.default_timeout,
            service,
        ))
    }

    /// Connects a [group](Group): `group`'s number of connections to each
    /// of `endpoints`, all dialed at once, each kept up by its own
    /// reconnect supervisor (with the [`reconnect`](Self::reconnect)
    /// policy, or the default one), and calls spread over them by the
    /// group's [`Balance`](crate::Balance). Generated clients wrap the
    /// result as they wrap any client: `CalcClient::from_client(client)`.
    ///
    /// # Errors
    ///
    /// An endpoint that cannot be read; and when no connection could be
    /// made at all (and the policy is not [lazy](Reconnect::lazy)), the
    /// first dial's error. Members whose first dial failed keep dialing.
    pub async fn connect_group<E: IntoEndpoint>(
        self,
        group: Group,
        endpoints: impl IntoIterator<Item = E>,
        service: &'static ServiceInfo,
    ) -> Result<Client<C>, Error> {
        let endpoints = endpoints
            .into_iter()
            .map(IntoEndpoint::into_endpoint)
            .collect::<Result<Vec<_>, _>>()?;
        self.connect_members(group, endpoints, None, service).await
    }

    /// Connects a [group](Group) whose endpoints come from `feed`: each
    /// [`Change::Insert`] dials an endpoint, each [`Change::Remove`] drains
    /// one (no new calls; its calls in flight finish). [`dns`](crate::dns)
    /// makes such a feed from a host name. Returns at once; calls made
    /// before the first member is up wait as during an outage.
    ///
    /// # Errors
    ///
    /// None today; the signature leaves room for settings checked at
    /// connect time.
    pub async fn connect_discovered(
        self,
        group: Group,
        feed: impl Stream<Item = Change> + Send + 'static,
        service: &'static ServiceInfo,
    ) -> Result<Client<C>, Error> {
        self.connect_members(group, Vec::new(), Some(Box::pin(feed)), service)
            .await
    }

    async fn connect_members(
        self,
        group: Group,
        endpoints: Vec<Endpoint>,
        feed: Option<group::Feed>,
        service: &'static ServiceInfo,
    ) -> Result<Client<C>, Error> {
        // Each member's dial replaces the endpoint.
        let dial = Dial {
            config: self.config.clone(),
            dialer: self.dialer,
            endpoint: Endpoint::host("", 0),
            service,
            codec: C::NAME,
        };
        let policy = self.reconnect.unwrap_or_default();
        let handle = group::connect(dial, policy, group, self.breaker, endpoints, feed).await?;
        Ok(Client::from_parts(
            Route::Group(group::Attached::new(Arc::new(handle))),
            self.codec,
            self.config.options,
            self.config.default_timeout,
            service,
        ))
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
        let conn = dial::establish(io, &self.config, service, C::NAME, peer).await?;
        Ok(Client::from_parts(
            Route::Direct(Arc::new(conn)),
            self.codec,
            self.config.options,
            self.config.default_timeout,
            service,
        ))
    }
}
