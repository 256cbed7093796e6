//! Server settings and the builder that sets them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::auth::{AuthError, Principal};
use super::dispatch::Dispatch;
use super::hooks::{ConnectionInfo, Hooks};
use super::Server;
use crate::codec::{Codec, DefaultCodec};
use crate::error::Error;

/// The longest duration a setting takes: any later instant is as good as
/// never, and one that far off can still be added to the clock.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Server limits and timings. Every field has a documented default; change
/// them through [`ServerBuilder`].
#[derive(Debug, Clone)]
pub(crate) struct ServerConfig {
    pub(crate) max_connections: usize,
    pub(crate) max_handshakes: usize,
    pub(crate) max_connections_per_ip: Option<usize>,
    pub(crate) max_frame_size: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) stream_window: u32,
    pub(crate) max_result_window: u32,
    pub(crate) max_output_buffer: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) keepalive_interval: Option<Duration>,
    pub(crate) shutdown_grace: Duration,
    pub(crate) run_ready_inline: bool,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::transport::tls::ServerTls>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 1024,
            max_handshakes: 128,
            max_connections_per_ip: None,
            max_frame_size: crate::DEFAULT_MAX_FRAME_SIZE,
            max_in_flight: 1024,
            stream_window: crate::DEFAULT_STREAM_WINDOW,
            max_result_window: 8192,
            max_output_buffer: 4 << 20,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(300)),
            keepalive_interval: Some(Duration::from_secs(10)),
            shutdown_grace: Duration::from_secs(30),
            run_ready_inline: true,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Builds a [`Server`].
///
/// # Examples
///
/// ```no_run
/// # fn f<D: cmdstream::Dispatch>(service: D) {
/// use std::time::Duration;
/// let server = cmdstream::Server::builder()
///     .max_connections(10_000)
///     .idle_timeout(Some(Duration::from_secs(60)))
///     .build(service);
/// # }
/// ```
pub struct ServerBuilder<C = DefaultCodec> {
    config: ServerConfig,
    codec: C,
    hooks: Hooks,
}

impl Default for ServerBuilder<DefaultCodec> {
    fn default() -> Self {
        ServerBuilder {
            config: ServerConfig::default(),
            codec: DefaultCodec::default(),
            hooks: Hooks::default(),
        }
    }
}

impl<C> fmt::Debug for ServerBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<C: Codec> ServerBuilder<C> {
    /// Uses `codec` for payloads. Clients must use the same codec.
    pub fn codec<C2: Codec>(self, codec: C2) -> ServerBuilder<C2> {
        ServerBuilder {
            config: self.config,
            codec,
            hooks: self.hooks,
        }
    }

    /// The most connections served at once. Beyond it, a new connection is
    /// told "too many connections" in the handshake and closed; it is not
    /// queued. The default is 1024.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n.max(1);
        self
    }

    /// How many connections may be in the handshake at once, counted
    /// within [`max_connections`](Self::max_connections): a host that
    /// connects and stalls, over and over, holds at most this many slots
    /// (each for at most the [handshake timeout](Self::handshake_timeout)).
    /// Beyond it a new connection is told "too many connections" and
    /// closed. The default is 128.
    pub fn max_handshakes(mut self, n: usize) -> Self {
        self.config.max_handshakes = n.max(1);
        self
    }

    /// The most connections from one IP address at once (TCP only), in the
    /// handshake or served; beyond it a new connection from that address is
    /// told "too many connections" and closed. `None` sets no such limit,
    /// which suits clients behind a shared address (NAT, a proxy). The
    /// default is `None`.
    pub fn max_connections_per_ip(mut self, n: Option<usize>) -> Self {
        self.config.max_connections_per_ip = n.map(|n| n.max(1));
        self
    }

    /// The largest frame the server accepts from a client, and the largest
    /// it sends: a larger command closes the connection, a larger result
    /// fails its call with [`Error::FrameTooLarge`]. A client that accepts
    /// less is sent at most that. At least 1 KiB. The default is 16 MiB.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.config.max_frame_size =
            bytes.clamp(crate::wire::frame::MIN_FRAME_LIMIT, u32::MAX as usize);
        self
    }

    /// The most commands running at once per connection. Clients are told
    /// and keep to it; extra commands are answered with
    /// [`Error::Unavailable`]. The default is 1024.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.config.max_in_flight = n.clamp(1, u32::MAX as usize);
        self
    }

    /// How many client-streamed items a command may have queued before it
    /// takes them; credit goes back after each quarter window consumed. The
    /// default is 128.
    pub fn stream_window(mut self, items: u32) -> Self {
        self.config.stream_window = items.max(1);
        self
    }

    /// The most results of one stream the server sends ahead of the
    /// client's consumer, whatever window or credit the client grants:
    /// credit beyond it is dropped. The server announces it in its hello,
    /// and clients keep their windows within it. The default is 8192, what
    /// the reference client grows its windows to for small items.
    pub fn max_result_window(mut self, items: u32) -> Self {
        self.config.max_result_window = items.max(1);
        self
    }

    /// How many bytes of answers one connection queues for a client that
    /// reads them slower than its commands produce them. Beyond it the
    /// connection reads no new commands, streams wait before producing
    /// their next results, and a command run in a task of its own waits
    /// before it starts; each command already running may still queue its
    /// one answer. Besides this the connection's write buffer holds up to
    /// 1 MiB. The default is 4 MiB.
    pub fn max_output_buffer(mut self, bytes: usize) -> Self {
        self.config.max_output_buffer = bytes.max(1);
        self
    }

    /// How long a new connection may take to complete the handshake. The
    /// default is 10 s. (This and the other durations are taken as at most
    /// a century: `Duration::MAX` means "never".)
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout.min(FOREVER);
        self
    }

    /// How long a connection may go without any command before the server
    /// closes it (with a go-away). `None` keeps idle connections open. The
    /// default is 5 minutes.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = timeout.map(|t| t.min(FOREVER));
        self
    }

    /// How long a connection may be silent before the server pings the
    /// client, and then before it declares the client dead and stops its
    /// commands. Announced to clients, which ping at least as often.
    /// `None` turns server pings off. The default is 10 s.
    pub fn keepalive(mut self, interval: Option<Duration>) -> Self {
        self.config.keepalive_interval = interval.map(|i| i.min(FOREVER));
        self
    }

    /// How long a graceful shutdown waits for commands in flight before it
    /// stops them. The default is 30 s.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace.min(FOREVER);
        self
    }

    /// Whether a command is first polled by its connection, and given a task
    /// of its own only if it has to wait. A command that completes at once
    /// (most unary ones) then costs no task, which roughly doubles the
    /// calls a connection serves per second; a command that waits never
    /// holds up its connection. Turn it off when commands do heavy
    /// synchronous work before their first `.await`, so that this work runs
    /// in their own task on a multi-threaded runtime. The default is on.
    pub fn run_ready_commands_inline(mut self, on: bool) -> Self {
        self.config.run_ready_inline = on;
        self
    }

    /// Serves every connection over TLS (cargo feature `tls`). The TLS
    /// handshake runs in the connection's own task, within the handshake
    /// timeout, so a slow or silent client holds up nobody else; a
    /// plaintext client is told at once that it must use TLS.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::ServerTls) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// Decides who may connect: `hook` sees each connection's handshake
    /// (its [metadata](ConnectionInfo::metadata), and with mutual TLS the
    /// client's verified [certificate](ConnectionInfo::tls)) before any
    /// command runs, and accepts it with a [`Principal`] (visible to every
    /// call through [`CallContext::principal`](crate::CallContext::principal))
    /// or refuses it with an [`AuthError`], whose reason the client gets
    /// as [`Error::Unauthenticated`] or [`Error::PermissionDenied`]. The
    /// hook runs within the handshake timeout. By default every connection
    /// is accepted, with no principal.
    ///
    /// # Examples
    ///
    /// ```
    /// use cmdstream::{AuthError, Principal};
    ///
    /// # fn f<D: cmdstream::Dispatch>(service: D) {
    /// let server = cmdstream::Server::builder()
    ///     .authenticate(|conn| {
    ///         let token = conn.metadata().get("token").map(str::to_owned);
    ///         async move {
    ///             match token.as_deref() {
    ///                 Some("s3cret") => Ok(Principal::new("ada".to_string())),
    ///                 Some(_) => Err(AuthError::unauthenticated("unknown token")),
    ///                 None => Err(AuthError::unauthenticated("no token")),
    ///             }
    ///         }
    ///     })
    ///     .build(service);
    /// # }
    /// ```
    pub fn authenticate<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(&ConnectionInfo) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Principal, AuthError>> + Send + 'static,
    {
        self.hooks.authenticate = Some(super::auth::boxed(hook));
        self
    }

    /// Called when a connection has completed its handshake.
    pub fn on_connect(mut self, hook: impl Fn(&ConnectionInfo) + Send + Sync + 'static) -> Self {
        self.hooks.on_connect = Some(Arc::new(hook));
        self
    }

    /// Called when a connection that completed its handshake closes, with
    /// the error that closed it (`None` for a clean close).
    pub fn on_disconnect(
        mut self,
        hook: impl Fn(&ConnectionInfo, Option<&Error>) + Send + Sync + 'static,
    ) -> Self {
        self.hooks.on_disconnect = Some(Arc::new(hook));
        self
    }

    /// A server for `service` with these settings.
    pub fn build<D: Dispatch>(self, service: D) -> Server<D, C> {
        Server::from_parts(Arc::new(service), self.codec, self.config, self.hooks)
    }
}
