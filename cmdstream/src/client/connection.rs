//! One established connection as callers see it: the two queues into its
//! driver, the request-id counter and what the handshake settled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::config::ClientConfig;
use super::driver::Driver;
use super::message::{Control, Request};
use super::settle::settle;
use super::shared::Shared;
use super::state::ConnectionState;
use crate::conn::framed::FramedIo;
use crate::error::Error;
use crate::service::ServiceInfo;
use crate::wire::compat::CommandSig;
use crate::wire::handshake;
use crate::wire::hello::ClientHello;

pub(crate) struct Connection {
    requests: mpsc::UnboundedSender<Request>,
    pub(crate) control: mpsc::UnboundedSender<Control>,
    next_id: AtomicU64,
    pub(crate) shared: Arc<Shared>,
}

impl Connection {
    /// Runs the handshake on `io`; returns the connection's handle and
    /// its driver, for the caller to run (as h2's client handshake hands
    /// back its send half and its connection).
    pub(crate) async fn establish<IO>(
        mut io: IO,
        config: &ClientConfig,
        info: &'static ServiceInfo,
        codec: &'static str,
        peer: Arc<str>,
    ) -> Result<(Connection, Driver<IO>), Error>
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
        let shared = Arc::new(Shared::new(settle(config, &server), peer));
        let (requests, requests_rx) = mpsc::unbounded_channel();
        let (control, control_rx) = mpsc::unbounded_channel();
        let framed = FramedIo::new(io, config.max_frame_size);
        let driver = Driver::new(framed, requests_rx, control_rx, shared.clone());
        let conn = Connection {
            requests,
            control,
            next_id: AtomicU64::new(1),
            shared,
        };
        Ok((conn, driver))
    }

    /// A fresh request id, unique on this connection.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn send(&self, request: Request) -> Result<(), Error> {
        self.requests.send(request).map_err(|_| self.lost())
    }

    /// The error for a call on a connection that is gone.
    pub(crate) fn lost(&self) -> Error {
        self.shared.unsent()
    }

    /// Why the connection ended, for a reconnecting client's state.
    pub(crate) fn lost_reason(&self) -> Error {
        let reason = self.shared.closed.get().cloned();
        Error::connection_lost(reason.unwrap_or_else(|| "the connection closed".into()))
    }

    /// Whether new calls may be sent on it.
    pub(crate) fn is_open(&self) -> bool {
        self.shared.is_open() && !self.requests.is_closed()
    }

    /// Takes no new calls, lets those in flight finish, closes, and
    /// returns once the driver is done.
    pub(crate) async fn close(&self) {
        let _ = self.control.send(Control::Close);
        self.shared.wait_closed().await;
    }

    /// What the connection can still do.
    pub(crate) fn state(&self) -> ConnectionState {
        let state = self.shared.state();
        if state != ConnectionState::Open {
            return state;
        }
        if self.requests.is_closed() {
            // `close` was called (or the driver is on its way out).
            return ConnectionState::Draining("the client is closing".into());
        }
        ConnectionState::Open
    }
}
