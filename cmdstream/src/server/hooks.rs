//! Callbacks for connections opening and closing.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::metadata::Metadata;

/// A connection, as hooks and commands (through
/// [`CallContext::connection`](crate::CallContext::connection)) see it.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub(crate) id: u64,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) metadata: Metadata,
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
        self.peer
    }

    /// The metadata the client sent in its handshake.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }
}

type OnConnect = Arc<dyn Fn(&ConnectionInfo) + Send + Sync>;
type OnDisconnect = Arc<dyn Fn(&ConnectionInfo, Option<&Error>) + Send + Sync>;

#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) on_connect: Option<OnConnect>,
    pub(crate) on_disconnect: Option<OnDisconnect>,
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
