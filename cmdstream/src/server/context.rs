//! What a command knows about the call it serves.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::hooks::ConnectionInfo;
use crate::metadata::Metadata;
use crate::service::CommandInfo;
use crate::wire::command::{self, Extras};

/// The context of one call: who called, until when, with what metadata.
///
/// Receiver methods that want it take `&CallContext` as an argument; the
/// server fills it from the COMMAND frame and the connection's handshake.
///
/// Cancellation needs no flag to poll: when the caller drops its call, the
/// connection closes or the deadline passes, the server drops the command's
/// future, so whatever it holds is dropped with it — a `Drop` guard (for
/// example `tokio_util::sync::CancellationToken::drop_guard`) tells work
/// the command spawned to stop. A graceful shutdown, which lets calls
/// finish, is told through [`shutdown`](Self::shutdown).
#[derive(Debug, Clone)]
pub struct CallContext {
    pub(crate) request_id: u64,
    pub(crate) command: &'static CommandInfo,
    pub(crate) deadline: Option<Instant>,
    /// Trace context and metadata, when the COMMAND carried either.
    pub(crate) extras: Option<Box<Extras>>,
    /// The connection's: one reference count per call.
    pub(crate) connection: Arc<ConnectionInfo>,
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
        self.connection.peer()
    }

    /// When the caller stops waiting. The server stops the command then
    /// (dropping its future) and answers `Timeout`; long commands can check
    /// it to give up early.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The W3C `traceparent` the caller sent, if any.
    pub fn traceparent(&self) -> Option<&str> {
        command::traceparent(&self.extras)
    }

    /// The metadata sent with this call.
    pub fn metadata(&self) -> &Metadata {
        command::metadata(&self.extras)
    }

    /// The metadata the client sent once, in its handshake.
    pub fn connection_metadata(&self) -> &Metadata {
        &self.connection.metadata
    }

    /// The connection the call came on: its address, handshake metadata,
    /// TLS identity and principal.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.connection
    }

    /// Who the client is, as the authentication hook established, if it is
    /// a `T` (see [`ServerBuilder::authenticate`](crate::ServerBuilder::authenticate)).
    pub fn principal<T: std::any::Any>(&self) -> Option<&T> {
        self.connection.principal()
    }

    /// Completes when the server begins a graceful shutdown: new calls are
    /// refused, and those in flight have the grace period to finish. A
    /// command that would otherwise run on (a watch-style stream, a long
    /// poll) should end then, so that the shutdown need not wait out the
    /// grace period. The future owns what it needs, so it can go into the
    /// stream a command returns.
    ///
    /// # Examples
    ///
    /// A stream that ends at shutdown:
    ///
    /// ```
    /// use cmdstream::{CallContext, Stream};
    /// use futures_util::StreamExt;
    ///
    /// fn ticks(ctx: &CallContext) -> impl Stream<Item = u64> + Send + 'static {
    ///     futures_util::stream::iter(0..).take_until(ctx.shutdown())
    /// }
    /// ```
    pub fn shutdown(&self) -> Shutdown {
        Shutdown(Box::pin(self.connection.shutdown.clone().cancelled_owned()))
    }

    /// Whether the server has begun a graceful shutdown.
    pub fn is_shutting_down(&self) -> bool {
        self.connection.shutdown.is_cancelled()
    }
}

/// Completes when the server begins a graceful shutdown; see
/// [`CallContext::shutdown`].
#[derive(Debug)]
pub struct Shutdown(Pin<Box<WaitForCancellationFutureOwned>>);

impl Future for Shutdown {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}
