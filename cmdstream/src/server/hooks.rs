//! Callbacks for connections opening and closing, and `ConnectionInfo`,
//! what they (and every call's context) know of a connection.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::auth::{Authenticator, Principal};
use crate::error::Error;
use crate::metadata::Metadata;
use crate::transport::PeerAddr;

/// A connection, as hooks and commands (through
/// [`CallContext::connection`](crate::CallContext::connection)) see it.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub(crate) id: u64,
    pub(crate) addr: PeerAddr,
    pub(crate) metadata: Metadata,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::transport::tls::TlsInfo>,
    /// Who the authentication hook said the client is.
    pub(crate) principal: Option<Principal>,
    /// The server's shutdown signal.
    pub(crate) shutdown: CancellationToken,
}

impl ConnectionInfo {
    /// A number unique among this server's connections.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The client's address, for TCP connections.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.addr.socket_addr()
    }

    /// The client's address, whatever the transport.
    pub fn addr(&self) -> &PeerAddr {
        &self.addr
    }

    /// The metadata the client sent in its handshake (a token, say).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// What the TLS handshake established: the client's verified
    /// certificate chain (with mutual TLS) and the server name it asked
    /// for. `None` for a connection without TLS.
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&crate::transport::tls::TlsInfo> {
        self.tls.as_ref()
    }

    /// Who the client is, as the authentication hook
    /// ([`ServerBuilder::authenticate`](crate::ServerBuilder::authenticate))
    /// established, if it is a `T`.
    pub fn principal<T: std::any::Any>(&self) -> Option<&T> {
        self.principal.as_ref().and_then(Principal::get)
    }
}

type OnConnect = Arc<dyn Fn(&ConnectionInfo) + Send + Sync>;
type OnDisconnect = Arc<dyn Fn(&ConnectionInfo, Option<&Error>) + Send + Sync>;

#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) on_connect: Option<OnConnect>,
    pub(crate) on_disconnect: Option<OnDisconnect>,
    pub(crate) authenticate: Option<Authenticator>,
}

impl Hooks {
    pub(crate) fn connected(&self, info: &ConnectionInfo) {
        if let Some(hook) = &self.on_connect {
            hook(info);
        }
    }

    pub(crate) fn disconnected(&self, info: &ConnectionInfo, error: Option<&Error>) {
        if let Some(hook) = &self.on_disconnect {
            hook(info, error);
        }
    }
}
