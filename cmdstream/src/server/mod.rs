//! The server: accepts connections, runs each command in a task of its own,
//! and shuts down gracefully.
//!
//! ```no_run
//! # async fn f<D: cmdstream::Dispatch>(service: D) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7000").await?;
//! let server = cmdstream::Server::new(service);
//! server.serve(listener).await
//! # }
//! ```

mod admission;
mod arg_stream;
mod call;
mod config;
mod connection;
mod context;
mod hooks;
mod listener;
mod outbox;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn, Instrument};

pub use self::arg_stream::ArgStream;
pub use self::call::Call;
pub use self::config::ServerBuilder;
pub use self::context::CallContext;
pub use self::hooks::ConnectionInfo;
pub use self::listener::Listener;

use self::admission::{Admission, Admitted};
use self::config::ServerConfig;
use self::connection::{Connection, Peer};
use self::hooks::Hooks;
use crate::codec::{Codec, DefaultCodec};
use crate::command::Dispatch;
use crate::conn::framed::FramedIo;
use crate::error::Error;
use crate::wire::compat::CommandSig;
use crate::wire::handshake;
use crate::wire::hello::{AckStatus, Refusal, ServerHello};

/// A cmdstream server for one service.
///
/// Cheap to clone: clones share the service value, the limits and the
/// shutdown signal, so one clone can [`serve`](Self::serve) while another
/// calls [`shutdown`](Self::shutdown).
pub struct Server<D, C = DefaultCodec> {
    inner: Arc<Inner<D, C>>,
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
        };
        let mut bytes = BytesMut::new();
        let hello_bytes = hello.encode(&mut bytes).map(|()| bytes.freeze());
        Server {
            inner: Arc::new(Inner {
                service,
                codec,
                admission: Admission::new(&config),
                config: Arc::new(config),
                hooks,
                hello,
                hello_bytes,
                shutdown: CancellationToken::new(),
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
    pub async fn serve<L: Listener>(&self, mut listener: L) -> std::io::Result<()> {
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
            let this = self.clone();
            inner.tracker.spawn(async move {
                let _ = this.serve_untracked(io, addr).await;
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
    ) -> std::io::Result<()> {
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
    pub async fn serve_connection<IO>(&self, io: IO, peer: Option<SocketAddr>) -> Result<(), Error>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        // Tracked, so that `shutdown` waits for it too.
        let tracker = self.inner.tracker.clone();
        tracker.track_future(self.serve_untracked(io, peer)).await
    }

    async fn serve_untracked<IO>(&self, mut io: IO, peer: Option<SocketAddr>) -> Result<(), Error>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let inner = &self.inner;
        let admitted = if inner.shutdown.is_cancelled() {
            Err((
                Refusal::ShuttingDown,
                "the server is shutting down".to_owned(),
            ))
        } else {
            inner.admission.admit(peer)
        };
        let admitted = match admitted {
            Ok(admitted) => admitted,
            Err((why, reason)) => {
                debug!(?peer, reason, "refusing connection");
                let refuse = handshake::refuse(&mut io, why, &reason);
                let _ = tokio::time::timeout(inner.config.handshake_timeout, refuse).await;
                return Err(Error::unavailable(reason));
            }
        };
        let conn_id = inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let run = self.run_connection(io, peer, conn_id, admitted);
        // The span only when a subscriber wants it (see the client's).
        let result = if tracing::enabled!(tracing::Level::DEBUG) {
            let span = tracing::debug_span!("cmdstream.server.conn", conn = conn_id, peer = ?peer);
            run.instrument(span).await
        } else {
            run.await
        };
        result
    }

    /// The server's side of the handshake: sends the hello, reads the
    /// client's, and accepts it only if the two sides can work together.
    async fn accept<IO>(&self, io: &mut IO) -> Result<crate::wire::hello::ClientHello, Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let ours = self.inner.hello_bytes.as_ref().map_err(|e| {
            tracing::error!(error = %e, "the service's hello cannot be sent");
            e.clone()
        })?;
        let (version, client) = handshake::greet(io, ours).await?;
        if let Some(why) = handshake::verdict(version, &client, &self.inner.hello) {
            handshake::answer(io, AckStatus::Incompatible, &why).await?;
            return Err(Error::Incompatible(why.into()));
        }
        handshake::answer(io, AckStatus::Ok, "").await?;
        Ok(client)
    }

    async fn run_connection<IO>(
        &self,
        mut io: IO,
        addr: Option<SocketAddr>,
        conn_id: u64,
        mut admitted: Admitted,
    ) -> Result<(), Error>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let inner = &self.inner;
        let config = &inner.config;
        let client =
            match tokio::time::timeout(config.handshake_timeout, self.accept(&mut io)).await {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => {
                    debug!(error = %e, "handshake failed");
                    return Err(e);
                }
                Err(_) => {
                    debug!("handshake timed out");
                    return Err(Error::Timeout);
                }
            };
        admitted.handshake_done();
        // What the client announced, within the server's own limits.
        let peer = Peer {
            addr,
            max_frame: (client.max_frame as usize).min(config.max_frame_size),
            stream_window: client.stream_window.min(config.max_result_window),
            metadata: Arc::new(client.metadata),
        };
        let info = ConnectionInfo {
            id: conn_id,
            peer: addr,
            metadata: peer.metadata.clone(),
        };
        inner.hooks.connected(&info);
        debug!("connected");
        let framed = FramedIo::new(io, config.max_frame_size);
        let shutdown = inner.shutdown.clone().cancelled_owned();
        let conn = Connection::new(
            framed,
            inner.service.clone(),
            inner.codec.clone(),
            config.clone(),
            peer,
            shutdown,
        );
        let result = conn.run().await;
        match &result {
            Ok(()) => debug!("closed"),
            Err(e) => debug!(error = %e, "closed with an error"),
        }
        inner.hooks.disconnected(&info, result.as_ref().err());
        result
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
