//! One connection from arrival to close: admission, the handshake and its
//! verdict, the hooks, then the connection's driver.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, Instrument};

use super::admission::Admitted;
use super::connection::{Connection, Peer};
use super::dispatch::Dispatch;
use super::hooks::ConnectionInfo;
use super::Inner;
use crate::codec::Codec;
use crate::conn::framed::FramedIo;
use crate::error::Error;
use crate::wire::handshake;
use crate::wire::hello::{AckStatus, ClientHello, Refusal};

impl<D: Dispatch, C: Codec> Inner<D, C> {
    /// Serves one connection: refuses it if the server is shutting down or
    /// at a limit, otherwise runs it until it closes.
    pub(super) async fn serve<IO>(
        self: Arc<Self>,
        mut io: IO,
        peer: Option<SocketAddr>,
    ) -> Result<(), Error>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let admitted = if self.shutdown.is_cancelled() {
            Err((
                Refusal::ShuttingDown,
                "the server is shutting down".to_owned(),
            ))
        } else {
            self.admission.admit(peer)
        };
        let admitted = match admitted {
            Ok(admitted) => admitted,
            Err((why, reason)) => {
                debug!(?peer, reason, "refusing connection");
                let refuse = handshake::refuse(&mut io, why, &reason);
                let _ = tokio::time::timeout(self.config.handshake_timeout, refuse).await;
                return Err(Error::unavailable(reason));
            }
        };
        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let run = self.run(io, peer, conn_id, admitted);
        // The span only when a subscriber wants it (see the client's).
        if tracing::enabled!(tracing::Level::DEBUG) {
            let span = tracing::debug_span!("cmdstream.server.conn", conn = conn_id, peer = ?peer);
            run.instrument(span).await
        } else {
            run.await
        }
    }

    /// The server's side of the handshake: sends the hello, reads the
    /// client's, and accepts it only if the two sides can work together.
    async fn accept<IO>(&self, io: &mut IO) -> Result<ClientHello, Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let ours = self.hello_bytes.as_ref().map_err(|e| {
            tracing::error!(error = %e, "the service's hello cannot be sent");
            e.clone()
        })?;
        let (version, client) = handshake::greet(io, ours).await?;
        if let Some(why) = handshake::verdict(version, &client, &self.hello) {
            handshake::answer(io, AckStatus::Incompatible, &why).await?;
            return Err(Error::Incompatible(why.into()));
        }
        handshake::answer(io, AckStatus::Ok, "").await?;
        Ok(client)
    }

    async fn run<IO>(
        &self,
        mut io: IO,
        addr: Option<SocketAddr>,
        conn_id: u64,
        mut admitted: Admitted,
    ) -> Result<(), Error>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let config = &self.config;
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
        let info = Arc::new(ConnectionInfo {
            id: conn_id,
            peer: addr,
            metadata: client.metadata,
            shutdown: self.shutdown.clone(),
        });
        // What the client announced, within the server's own limits.
        let peer = Peer {
            max_frame: (client.max_frame as usize).min(config.max_frame_size),
            stream_window: client.stream_window.min(config.max_result_window),
            info: info.clone(),
        };
        self.hooks.connected(&info);
        debug!("connected");
        let framed = FramedIo::new(io, config.max_frame_size);
        let shutdown = self.shutdown.clone().cancelled_owned();
        let conn = Connection::new(
            framed,
            self.service.clone(),
            self.codec.clone(),
            config.clone(),
            peer,
            shutdown,
        );
        let result = conn.run().await;
        match &result {
            Ok(()) => debug!("closed"),
            Err(e) => debug!(error = %e, "closed with an error"),
        }
        self.hooks.disconnected(&info, result.as_ref().err());
        result
    }
}
