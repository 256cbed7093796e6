//! The server: accepts connections, runs each command in a task of its own,
//! and shuts down gracefully.
//!
//! ```no_run
//! # async fn f<D: cmdstream::Dispatch>(service: D) -> cmdstream::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7000").await?;
//! let server = cmdstream::Server::new(service);
//! server.serve(listener).await
//! # }
//! ```

mod admission;
mod answer;
mod arg_stream;
mod auth;
mod call;
mod config;
mod context;
mod dispatch;
mod driver;
mod hooks;
mod outbox;
mod panics;
mod session;
mod unary;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use tracing::warn;

pub use self::arg_stream::ArgStream;
pub use self::auth::{AuthError, Principal};
pub use self::call::Call;
pub use self::config::ServerBuilder;
pub use self::context::{CallContext, Shutdown};
pub use self::dispatch::Dispatch;
pub use self::hooks::ConnectionInfo;
#[doc(hidden)]
pub use self::unary::{Ran, Unary};

use self::admission::Admission;
use self::config::ServerConfig;
use self::hooks::Hooks;
use crate::codec::{Codec, DefaultCodec};
use crate::error::Error;
use crate::transport::{Listener, PeerAddr};
use crate::wire::compat::CommandSig;
use crate::wire::hello::ServerHello;

/// A cmdstream server for one service.
///
/// Cheap to clone: clones share the service value, the limits and the
/// shutdown signal, so one clone can [`serve`](Self::serve) while another
/// calls [`shutdown`](Self::shutdown).
///
/// # Dropping
///
/// A server lives while any of its handles does. Dropping the last one
/// (aborting the task that runs [`serve`](Self::serve), say, with no clone
/// kept elsewhere) shuts it down as [`shutdown`](Self::shutdown) would, in
/// the background: no new connections, and each open one is told to go
/// away, its calls in flight given the grace period. To stop accepting but
/// keep serving the open connections, keep a clone: they are served until
/// it calls `shutdown` or is dropped.
pub struct Server<D, C = DefaultCodec> {
    inner: Arc<Inner<D, C>>,
    /// Held by user handles only (connections hold `inner`): when the last
    /// is dropped, it cancels the shutdown token.
    handle: Arc<DropGuard>,
}

struct Inner<D, C> {
    service: Arc<D>,
    codec: C,
    config: Arc<ServerConfig>,
    hooks: Hooks,
    admission: Admission,
    /// What the server announces, and the same encoded once for every
    /// connection (or why it cannot be).
    hello: ServerHello,
    hello_bytes: Result<Bytes, Error>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    next_conn: AtomicU64,
}

impl<D, C> Clone for Server<D, C> {
    fn clone(&self) -> Self {
        Server {
            inner: self.inner.clone(),
            handle: self.handle.clone(),
        }
    }
}

impl<D, C> std::fmt::Debug for Server<D, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.inner.config)
            .field("connections", &self.inner.tracker.len())
            .finish_non_exhaustive()
    }
}

impl Server<(), DefaultCodec> {
    /// Settings for a new server.
    pub fn builder() -> ServerBuilder<DefaultCodec> {
        ServerBuilder::default()
    }
}

impl<D: Dispatch> Server<D, DefaultCodec> {
    /// A server for `service` with the default settings.
    pub fn new(service: D) -> Self {
        ServerBuilder::default().build(service)
    }
}

impl<D: Dispatch, C: Codec> Server<D, C> {
    pub(crate) fn from_parts(
        service: Arc<D>,
        codec: C,
        config: ServerConfig,
        hooks: Hooks,
    ) -> Self {
        let hello = ServerHello {
            fingerprint: D::INFO.fingerprint,
            max_frame: config.max_frame_size as u32,
            max_in_flight: config.max_in_flight as u32,
            keepalive_ms: config
                .keepalive_interval
                .map_or(0, |d| d.as_millis().clamp(1, u32::MAX as u128) as u32),
            stream_window: config.stream_window,
            service: D::INFO.name.to_owned(),
            codec: C::NAME.to_owned(),
            commands: CommandSig::table(D::INFO.commands),
            max_result_window: Some(config.max_result_window),
        };
        let mut bytes = BytesMut::new();
        let hello_bytes = hello.encode(&mut bytes).map(|()| bytes.freeze());
        let shutdown = CancellationToken::new();
        Server {
            handle: Arc::new(shutdown.clone().drop_guard()),
            inner: Arc::new(Inner {
                service,
                codec,
                admission: Admission::new(&config),
                config: Arc::new(config),
                hooks,
                hello,
                hello_bytes,
                shutdown,
                tracker: TaskTracker::new(),
                next_conn: AtomicU64::new(1),
            }),
        }
    }

    /// Accepts and serves connections until [`shutdown`](Self::shutdown),
    /// then waits for every connection to finish draining.
    ///
    /// Connections beyond the limit are refused in the handshake, not
    /// queued. Accept errors (such as running out of file descriptors) are
    /// logged and retried with a growing pause.
    ///
    /// # Errors
    ///
    /// None yet: the signature leaves room for listeners whose errors are
    /// fatal.
    pub async fn serve<L: Listener>(&self, mut listener: L) -> Result<(), Error> {
        let inner = &self.inner;
        let mut backoff = Duration::from_millis(1);
        loop {
            let accepted = tokio::select! {
                biased;
                _ = inner.shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (io, addr) = match accepted {
                Ok(conn) => {
                    backoff = Duration::from_millis(1);
                    conn
                }
                Err(e) => {
                    warn!(error = %e, ?backoff, "accept failed; retrying");
                    tokio::select! {
                        _ = inner.shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            // The connection holds the server's state, not a handle: it
            // does not keep the server from shutting down when the last
            // handle is dropped.
            let inner = inner.clone();
            self.inner.tracker.spawn(async move {
                let _ = inner.serve(io, addr).await;
            });
        }
        // Close the socket now: connection attempts during the drain are
        // refused at once instead of waiting in the backlog.
        drop(listener);
        self.drain().await;
        Ok(())
    }

    /// Like [`serve`](Self::serve), and also shuts down when `signal`
    /// completes (for example `tokio::signal::ctrl_c()`).
    ///
    /// # Errors
    ///
    /// As [`serve`](Self::serve).
    pub async fn serve_with_shutdown<L: Listener>(
        &self,
        listener: L,
        signal: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let token = self.inner.shutdown.clone();
        let watcher = async move {
            signal.await;
            token.cancel();
            std::future::pending::<()>().await
        };
        tokio::select! {
            result = self.serve(listener) => result,
            _ = watcher => unreachable!(),
        }
    }

    /// Serves one connection over any byte stream (a TLS stream, an
    /// in-memory pipe), counting against the connection limit. Returns when
    /// the connection closes.
    ///
    /// # Errors
    ///
    /// Why the connection ended, when it was not a clean close: a failed
    /// handshake, a protocol violation, a dead peer.
    pub async fn serve_connection<IO>(&self, io: IO, peer: impl Into<PeerAddr>) -> Result<(), Error>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        // Tracked, so that `shutdown` waits for it too.
        let tracker = self.inner.tracker.clone();
        tracker
            .track_future(self.inner.clone().serve(io, peer.into()))
            .await
    }

    /// Starts a graceful shutdown and waits for it to finish: no new
    /// connections; each open one is told to go away, its commands in flight
    /// finish (or are stopped at the end of the grace period), then it
    /// closes.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.drain().await;
    }

    async fn drain(&self) {
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }

    /// The number of connections being served now, those still in the
    /// handshake included.
    pub fn connections(&self) -> usize {
        self.inner.admission.connections()
    }
}
