//! What a command knows about the call it serves.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::time::Instant;

use crate::command::CommandInfo;
use crate::metadata::Metadata;

/// The context of one call: who called, until when, with what metadata.
///
/// Receiver methods that want it take `&CallContext` as an argument; the
/// server fills it from the COMMAND frame and the connection's handshake.
///
/// Cancellation needs no flag to poll: when the caller drops its call, the
/// connection closes or the deadline passes, the server drops the command's
/// future, so whatever it holds is dropped with it — a `Drop` guard (for
/// example `tokio_util::sync::CancellationToken::drop_guard`) tells work
/// the command spawned to stop.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub(crate) request_id: u64,
    pub(crate) command: &'static CommandInfo,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) traceparent: Option<String>,
    pub(crate) metadata: Metadata,
    pub(crate) connection_metadata: Arc<Metadata>,
}

impl CallContext {
    /// The request id, unique among the connection's calls in flight.
    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// The command being served.
    pub fn command(&self) -> &'static CommandInfo {
        self.command
    }

    /// The client's address, for TCP connections.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// When the caller stops waiting. The server stops the command then
    /// (dropping its future) and answers `Timeout`; long commands can check
    /// it to give up early.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The W3C `traceparent` the caller sent, if any.
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }

    /// The metadata sent with this call.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The metadata the client sent once, in its handshake.
    pub fn connection_metadata(&self) -> &Metadata {
        &self.connection_metadata
    }
}
