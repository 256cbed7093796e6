//! One connection from arrival to close: admission, TLS if configured,
//! the handshake with its verdict and authentication, the hooks, then the
//! connection's driver.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tracing::{info, warn, Instrument};

use super::admission::Admitted;
use super::auth::AuthError;
use super::dispatch::Dispatch;
use super::driver::{Driver, Peer};
use super::hooks::ConnectionInfo;
use super::Inner;
use crate::codec::Codec;
use crate::conn::framed::FramedIo;
use crate::error::Error;
use crate::transport::PeerAddr;
use crate::wire::handshake;
use crate::wire::hello::{AckStatus, ClientHello, Refusal};

/// What is known of a connection before its handshake.
struct Arrival {
    addr: PeerAddr,
    /// Admitted, or refused.
    admitted: Result<Admitted, Refused>,
    /// When the handshake (TLS included) must be done.
    deadline: Instant,
    #[cfg(feature = "tls")]
    tls: Option<crate::transport::tls::TlsInfo>,
}

/// A connection refused, with the slot in which it is told why.
struct Refused {
    why: Refusal,
    reason: String,
    _telling: OwnedSemaphorePermit,
}

impl<D: Dispatch, C: Codec> Inner<D, C> {
    /// Serves one connection: refuses it if the server is shutting down or
    /// at a limit, otherwise runs it until it closes.
    pub(super) async fn serve<IO>(self: Arc<Self>, io: IO, addr: PeerAddr) -> Result<(), Error>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let admitted = if self.shutdown.is_cancelled() {
            Err((
                Refusal::ShuttingDown,
                "the server is shutting down".to_owned(),
            ))
        } else {
            self.admission.admit(addr.socket_addr())
        };
        let admitted = match admitted {
            Ok(admitted) => Ok(admitted),
            Err((why, reason)) => match self.admission.refusal_slot() {
                Some(telling) => Err(Refused {
                    why,
                    reason,
                    _telling: telling,
                }),
                None => {
                    // Too many refusals being told: closed at once.
                    warn!(peer = %addr, reason, "refusing a connection without a word");
                    return Err(Error::unavailable(reason));
                }
            },
        };
        let arrival = Arrival {
            addr,
            admitted,
            deadline: Instant::now() + self.config.handshake_timeout,
            #[cfg(feature = "tls")]
            tls: None,
        };
        #[cfg(feature = "tls")]
        if let Some(tls) = self.config.tls.clone() {
            return self.serve_tls(io, arrival, tls).await;
        }
        self.serve_plain(io, arrival).await
    }

    /// The TLS handshake first, in this connection's own task and within
    /// its handshake deadline; a refusal, too, is told through TLS (a TLS
    /// client could not read it otherwise).
    #[cfg(feature = "tls")]
    async fn serve_tls<IO>(
        self: Arc<Self>,
        io: IO,
        mut arrival: Arrival,
        tls: crate::transport::tls::ServerTls,
    ) -> Result<(), Error>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let handshake = async {
            let (mut io, plaintext) = crate::transport::tls::sniff(io).await?;
            if plaintext {
                // A cmdstream client speaking plaintext: told so in
                // plaintext, which it can read.
                let reason = "this server speaks TLS: connect with TLS";
                let _ = handshake::refuse(&mut io, Refusal::TlsRequired, reason).await;
                return Err(std::io::Error::other(reason));
            }
            tls.acceptor.accept(io).await
        };
        let stream = match tokio::time::timeout_at(arrival.deadline, handshake).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                let e = crate::transport::tls::classify(e.into());
                warn!(peer = %arrival.addr, error = %e, "TLS handshake failed");
                return Err(e);
            }
            Err(_) => {
                warn!(peer = %arrival.addr, "TLS handshake timed out");
                return Err(Error::Timeout);
            }
        };
        arrival.tls = Some(crate::transport::tls::TlsInfo::of(&stream));
        self.serve_plain(stream, arrival).await
    }

    async fn serve_plain<IO>(self: Arc<Self>, mut io: IO, arrival: Arrival) -> Result<(), Error>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let admitted = match arrival.admitted {
            Ok(admitted) => admitted,
            Err(refused) => {
                let Refused { why, reason, .. } = &refused;
                warn!(peer = %arrival.addr, reason, "refusing a connection");
                let refuse = handshake::refuse(&mut io, *why, reason);
                let _ = tokio::time::timeout_at(arrival.deadline, refuse).await;
                return Err(Error::unavailable(refused.reason));
            }
        };
        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let info = ConnectionInfo {
            id: conn_id,
            addr: arrival.addr,
            metadata: Default::default(),
            #[cfg(feature = "tls")]
            tls: arrival.tls,
            principal: None,
            shutdown: self.shutdown.clone(),
        };
        let run = self.run(io, info, admitted, arrival.deadline);
        // The span only when a subscriber wants it (see the client's).
        if tracing::enabled!(tracing::Level::DEBUG) {
            let span = tracing::debug_span!("cmdstream.server.conn", conn = conn_id);
            run.instrument(span).await
        } else {
            run.await
        }
    }

    /// The server's side of the handshake: sends the hello, reads the
    /// client's, and accepts it only if the two sides can work together
    /// and the authentication hook (if any) accepts the client; fills in
    /// what the client announced.
    async fn accept<IO>(&self, io: &mut IO, info: &mut ConnectionInfo) -> Result<ClientHello, Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let ours = self.hello_bytes.as_ref().map_err(|e| {
            tracing::error!(error = %e, "the service's hello cannot be sent");
            e.clone()
        })?;
        let (version, mut client) = handshake::greet(io, ours).await?;
        if let Some(why) = handshake::verdict(version, &client, &self.hello) {
            handshake::answer(io, AckStatus::Incompatible, &why).await?;
            return Err(Error::Incompatible(why.into()));
        }
        info.metadata = std::mem::take(&mut client.metadata);
        if let Some(authenticate) = &self.hooks.authenticate {
            match authenticate(info).await {
                Ok(principal) => info.principal = Some(principal),
                Err(refusal) => {
                    warn!(%refusal, "authentication refused the client");
                    let (status, why, error) = match &refusal {
                        AuthError::Unauthenticated(why) => (
                            AckStatus::Unauthenticated,
                            why,
                            Error::Unauthenticated(why.as_str().into()),
                        ),
                        AuthError::PermissionDenied(why) => (
                            AckStatus::PermissionDenied,
                            why,
                            Error::PermissionDenied(why.as_str().into()),
                        ),
                    };
                    handshake::answer(io, status, why).await?;
                    return Err(error);
                }
            }
        }
        handshake::answer(io, AckStatus::Ok, "").await?;
        Ok(client)
    }

    async fn run<IO>(
        &self,
        mut io: IO,
        mut info: ConnectionInfo,
        mut admitted: Admitted,
        deadline: Instant,
    ) -> Result<(), Error>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let config = &self.config;
        let client = match tokio::time::timeout_at(deadline, self.accept(&mut io, &mut info)).await
        {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                warn!(error = %e, "handshake failed");
                return Err(e);
            }
            Err(_) => {
                warn!("handshake timed out");
                return Err(Error::Timeout);
            }
        };
        admitted.handshake_done();
        let info = Arc::new(info);
        // What the client announced, within the server's own limits.
        let peer = Peer {
            max_frame: (client.max_frame as usize).min(config.max_frame_size),
            stream_window: client.stream_window.min(config.max_result_window),
            info: info.clone(),
        };
        self.hooks.connected(&info);
        info!(peer = %info.addr, "connection opened");
        let framed = FramedIo::new(io, config.max_frame_size);
        let shutdown = self.shutdown.clone().cancelled_owned();
        let conn = Driver::new(
            framed,
            self.service.clone(),
            self.codec.clone(),
            config.clone(),
            peer,
            shutdown,
        );
        let result = conn.run().await;
        match &result {
            Ok(()) => info!("connection closed"),
            Err(e) => warn!(error = %e, "connection closed with an error"),
        }
        self.hooks.disconnected(&info, result.as_ref().err());
        result
    }
}
