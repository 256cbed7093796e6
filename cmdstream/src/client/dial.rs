//! Making one connection: dial the endpoint over the configured transport
//! within the connect timeout, TLS if configured, then the handshake, and
//! the driver started. What a client's first connect and every redial of a
//! reconnecting client do.

use std::future::Future;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::config::ClientConfig;
use super::connection::Connection;
use crate::error::Error;
use crate::service::ServiceInfo;
#[cfg(unix)]
use crate::transport::Unix;
use crate::transport::{Connector, Dialer, Endpoint, Tcp};

/// Everything a dial needs.
#[derive(Debug, Clone)]
pub(crate) struct Dial {
    pub(crate) config: ClientConfig,
    pub(crate) dialer: Dialer,
    pub(crate) endpoint: Endpoint,
    pub(crate) service: &'static ServiceInfo,
    /// The payload codec's name, for the hello.
    pub(crate) codec: &'static str,
}

impl Dial {
    /// Dials, runs the handshake and starts the connection's driver.
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::connect`](super::ClientBuilder::connect).
    pub(crate) async fn connect(&self) -> Result<Connection, Error> {
        let endpoint = &self.endpoint;
        match &self.dialer {
            #[cfg(unix)]
            Dialer::Plain if matches!(endpoint, Endpoint::Unix(_)) => {
                let io = self.dial(Unix.connect(endpoint)).await?;
                self.establish(io).await
            }
            Dialer::Plain => {
                let io = self.dial(Tcp.connect(endpoint)).await?;
                self.establish(io).await
            }
            #[cfg(feature = "tls")]
            Dialer::Tls(tls) => {
                #[cfg(unix)]
                if matches!(endpoint, Endpoint::Unix(_)) {
                    let io = self.dial(Unix.connect(endpoint)).await?;
                    return self.establish_tls(io, tls).await;
                }
                let io = self.dial(Tcp.connect(endpoint)).await?;
                self.establish_tls(io, tls).await
            }
            Dialer::Custom(connector) => {
                let io = self.dial(connector.dial(endpoint)).await?;
                self.establish(io).await
            }
        }
    }

    /// Runs `dial` within the connect timeout; the same error for every
    /// transport when it runs out.
    async fn dial<IO>(&self, dial: impl Future<Output = std::io::Result<IO>>) -> Result<IO, Error> {
        let (endpoint, timeout) = (&self.endpoint, self.config.connect_timeout);
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
    async fn establish_tls<IO>(
        &self,
        io: IO,
        tls: &crate::tls::ClientTls,
    ) -> Result<Connection, Error>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (endpoint, timeout) = (&self.endpoint, self.config.handshake_timeout);
        let stream = tokio::time::timeout(timeout, tls.connect(io, endpoint))
            .await
            .map_err(|_| {
                Error::connection_lost(format!(
                    "the TLS handshake with {endpoint} did not complete within {timeout:?}"
                ))
            })??;
        self.establish(stream)
            .await
            .map_err(crate::transport::tls::classify)
    }

    async fn establish<IO>(&self, io: IO) -> Result<Connection, Error>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        establish(
            io,
            &self.config,
            self.service,
            self.codec,
            &self.endpoint.to_string(),
        )
        .await
    }
}

/// Runs the handshake over `io` and starts the connection's driver; `peer`
/// names the other side in logs.
pub(crate) async fn establish<IO>(
    io: IO,
    config: &ClientConfig,
    service: &'static ServiceInfo,
    codec: &'static str,
    peer: &str,
) -> Result<Connection, Error>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let peer: Arc<str> = peer.into();
    let (conn, driver) = Connection::establish(io, config, service, codec, peer.clone()).await?;
    driver.spawn(service, &peer);
    Ok(conn)
}
