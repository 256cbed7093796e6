//! [`SendCommand`]: a generated client seen as a sender of its service's
//! commands as values, for code that is generic over services (the tower
//! adapter, a queue of stored commands).

use std::future::Future;

use crate::error::Error;

/// A client that sends its service's commands as values and returns the
/// matching reply: every generated client (`CalcClient` sends
/// `CalcCommand` and returns `CalcReply`). Implemented by the macro.
///
/// # Examples
///
/// ```no_run
/// use cmdstream::SendCommand;
///
/// async fn replay<S: SendCommand>(client: &S, stored: Vec<S::Command>) -> Vec<S::Reply> {
///     let mut replies = Vec::new();
///     for command in stored {
///         if let Ok(reply) = client.send_command(command).await {
///             replies.push(reply);
///         }
///     }
///     replies
/// }
/// ```
pub trait SendCommand: Clone + Send + Sync + 'static {
    /// The service's commands as values (`{Trait}Command`).
    type Command: Send + 'static;
    /// The reply to each (`{Trait}Reply`).
    type Reply: Send + 'static;

    /// Sends `command` and waits for its reply (for a streaming command,
    /// the reply holds the stream).
    ///
    /// # Errors
    ///
    /// As the command's own method.
    fn send_command(
        &self,
        command: Self::Command,
    ) -> impl Future<Output = Result<Self::Reply, Error>> + Send + 'static;
}
