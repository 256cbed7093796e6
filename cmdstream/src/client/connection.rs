//! One established connection as callers see it: the two queues into its
//! driver, the request-id counter and what the handshake settled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::builder::ClientConfig;
use super::driver::Driver;
use super::message::{Control, Request};
use super::result_stream;
use super::state::ConnectionState;
use crate::conn::backlog::Backlog;
use crate::conn::framed::FramedIo;
use crate::error::Error;
use crate::service::ServiceInfo;
use crate::wire::compat::CommandSig;
use crate::wire::handshake;
use crate::wire::hello::ClientHello;

/// The most credit the client keeps for one of its argument streams,
/// whatever the server grants: what the server's window or CREDIT frames
/// add beyond it is dropped.
pub(crate) const MAX_ARG_WINDOW: u32 = 8192;

/// The shortest keepalive interval taken from a server's hello: a server
/// that announces less does not make the client ping it more often.
const MIN_SERVER_KEEPALIVE: Duration = Duration::from_secs(1);

/// How many bytes of streamed arguments may wait to be written before the
/// argument pumps wait: a server that does not read must not make the
/// client buffer without bound.
const ARGS_BACKLOG: usize = 1 << 20;

/// What the driver and the handles both read.
pub(crate) struct Shared {
    /// Calls in flight at most: the smaller of ours and the server's.
    pub(crate) max_in_flight: usize,
    /// Initial credit the server grants each argument stream (at most
    /// [`MAX_ARG_WINDOW`]).
    pub(crate) server_window: u32,
    /// Initial credit we grant each result stream.
    pub(crate) our_window: u32,
    /// The most credit a result stream may grow to (see `ResultStream`).
    pub(crate) max_window: u32,
    /// The largest frame the client sends: the server's limit, or the
    /// client's own if smaller.
    pub(crate) server_max_frame: usize,
    pub(crate) keepalive: Option<Duration>,
    /// Bytes of streamed arguments queued and not yet written.
    pub(crate) args_backlog: Backlog,
    /// Why the connection closed, once it has.
    pub(crate) closed: OnceLock<Arc<str>>,
    /// The server's go-away reason, once it sent one.
    pub(crate) going_away: OnceLock<Arc<str>>,
}

impl Shared {
    /// The error for a call that was never sent: `Unavailable` after the
    /// server's go-away (nothing ran, retrying elsewhere is safe), else the
    /// reason the connection closed.
    pub(crate) fn unsent(&self) -> Error {
        if let Some(reason) = self.going_away.get() {
            return Error::unavailable(format!("the server sent go-away: {reason}"));
        }
        match self.closed.get() {
            Some(reason) => Error::ConnectionLost(reason.clone()),
            None => Error::connection_lost("the connection closed"),
        }
    }
}

pub(crate) struct Connection {
    requests: mpsc::UnboundedSender<Request>,
    pub(crate) control: mpsc::UnboundedSender<Control>,
    next_id: AtomicU64,
    pub(crate) shared: Arc<Shared>,
}

impl Connection {
    /// Runs the handshake on `io` and spawns the driver.
    pub(crate) async fn establish<IO>(
        mut io: IO,
        config: &ClientConfig,
        info: &'static ServiceInfo,
        codec: &'static str,
        peer: &str,
    ) -> Result<Connection, Error>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let hello = ClientHello {
            fingerprint: info.fingerprint,
            max_frame: config.max_frame_size as u32,
            stream_window: config.stream_window,
            service: info.name.to_owned(),
            codec: codec.to_owned(),
            commands: CommandSig::table(info.commands),
            metadata: config.metadata.clone(),
        };
        let server = tokio::time::timeout(
            config.handshake_timeout,
            handshake::connect(&mut io, &hello),
        )
        .await
        .map_err(|_| {
            Error::connection_lost(format!(
                "the server did not complete the handshake within {:?}",
                config.handshake_timeout
            ))
        })??;
        let keepalive = match (config.keepalive_interval, server.keepalive_ms) {
            (None, _) => None,
            (Some(ours), 0) => Some(ours),
            (Some(ours), theirs) => {
                let theirs = Duration::from_millis(theirs.into()).max(MIN_SERVER_KEEPALIVE);
                Some(ours.min(theirs))
            }
        };
        let shared = Arc::new(Shared {
            max_in_flight: config
                .max_in_flight
                .min(server.max_in_flight as usize)
                .max(1),
            server_window: server.stream_window.min(MAX_ARG_WINDOW),
            our_window: config.stream_window,
            max_window: if config.grow_window {
                config.stream_window.max(result_stream::MAX_GROWN_WINDOW)
            } else {
                config.stream_window
            },
            server_max_frame: (server.max_frame as usize).min(config.max_frame_size),
            keepalive,
            args_backlog: Backlog::new(ARGS_BACKLOG),
            closed: OnceLock::new(),
            going_away: OnceLock::new(),
        });
        let (requests, requests_rx) = mpsc::unbounded_channel();
        let (control, control_rx) = mpsc::unbounded_channel();
        let framed = FramedIo::new(io, config.max_frame_size);
        let driver = Driver::new(framed, requests_rx, control_rx, shared.clone());
        // The span only when a subscriber wants it: entered on every poll of
        // the driver, even a span nobody records costs hundreds of
        // instructions per call when tracing's `log` feature is on.
        if tracing::enabled!(tracing::Level::DEBUG) {
            let span = tracing::debug_span!("cmdstream.client.conn", service = info.name, peer);
            tokio::spawn(driver.run().instrument(span));
        } else {
            tokio::spawn(driver.run());
        }
        Ok(Connection {
            requests,
            control,
            next_id: AtomicU64::new(1),
            shared,
        })
    }

    /// A fresh request id, unique on this connection.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn send(&self, request: Request) -> Result<(), Error> {
        self.requests.send(request).map_err(|_| self.lost())
    }

    /// The error for a call on a connection that is gone.
    pub(crate) fn lost(&self) -> Error {
        self.shared.unsent()
    }

    /// What the connection can still do.
    pub(crate) fn state(&self) -> ConnectionState {
        if self.requests.is_closed() {
            let why = self.shared.closed.get().cloned();
            return ConnectionState::Closed(why.unwrap_or_else(|| "the connection closed".into()));
        }
        match self.shared.going_away.get() {
            Some(reason) => ConnectionState::Draining(reason.clone()),
            None => ConnectionState::Open,
        }
    }
}
