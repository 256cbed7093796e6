//! A generated client as a tower `Service` of its commands.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::client::SendCommand;
use crate::error::Error;

/// A generated client (`CalcClient`) as a `Service<CalcCommand>` whose
/// response is the matching reply (`CalcReply`).
///
/// It is always ready: the client itself queues calls beyond its
/// connection's in-flight limit. Put `ConcurrencyLimit`, `RateLimit` or
/// `LoadShed` in front to bound that instead; `Timeout` and `Retry`
/// compose too (the client's own rules of what may be sent again apply
/// beneath them). Each call boxes its future, as tower's `BoxService`
/// would; the plain client methods do not.
#[derive(Debug, Clone)]
pub struct ClientService<S> {
    client: S,
}

impl<S: SendCommand> ClientService<S> {
    /// Wraps `client`.
    pub fn new(client: S) -> Self {
        ClientService { client }
    }

    /// The client underneath.
    pub fn get_ref(&self) -> &S {
        &self.client
    }
}

impl<S: SendCommand> Service<S::Command> for ClientService<S> {
    type Response = S::Reply;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Reply, Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, command: S::Command) -> Self::Future {
        Box::pin(self.client.send_command(command))
    }
}
