//! The wait for one call's single result: a future written by hand, not
//! an `async fn`, so that each poll of a unary call is one plain function
//! over a few fields rather than a chain of nested state machines.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Sleep;

use super::connection::Connection;
use super::message::Control;
use crate::error::Error;
use crate::telemetry::CallTrace;

/// Resolves to a sent call's result, or to [`Error::Timeout`] once its
/// timeout expires; the call's span (when observed) ends with it.
/// Dropped before that, or timed out, it sends CANCEL for the call.
pub(super) struct Waiting<'c> {
    call: Call<'c>,
    // Boxed: a `Sleep` is 112 bytes, most of this future, which is
    // moved into every caller's own future (and each of those moves
    // is a `memcpy`) whether the call has a timeout or not. A call
    // with one allocates its timer; the whole future is 56 bytes.
    deadline: Option<Pin<Box<Sleep>>>,
    trace: Option<Box<CallTrace>>,
}

enum Call<'c> {
    /// Sent: its result comes through `rx`.
    Sent {
        rx: oneshot::Receiver<Result<Bytes, Error>>,
        cancel: CancelOnDrop<'c>,
    },
    /// Never sent: this is the error, not yet handed out.
    Failed(Error),
    /// The result has been handed out.
    Done,
}

impl<'c> Waiting<'c> {
    /// Waits for call `id` on `conn`, answered through `rx`.
    #[inline]
    pub(super) fn sent(
        conn: &'c Connection,
        id: u64,
        rx: oneshot::Receiver<Result<Bytes, Error>>,
        timeout: Option<Duration>,
        trace: Option<Box<CallTrace>>,
    ) -> Self {
        Waiting {
            call: Call::Sent {
                rx,
                cancel: CancelOnDrop {
                    control: &conn.control,
                    id,
                    armed: true,
                },
            },
            deadline: timeout.map(|t| Box::pin(tokio::time::sleep(t))),
            trace,
        }
    }

    /// The request id of the call, if it was sent.
    pub(super) fn sent_id(&self) -> Option<u64> {
        match &self.call {
            Call::Sent { cancel, .. } => Some(cancel.id),
            _ => None,
        }
    }

    /// A call that could not be sent: resolves to `error` at once.
    pub(super) fn failed(error: Error, trace: Option<Box<CallTrace>>) -> Self {
        Waiting {
            call: Call::Failed(error),
            deadline: None,
            trace,
        }
    }
}

impl Future for Waiting<'_> {
    type Output = Result<Bytes, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Waiting {
            call,
            deadline,
            trace,
        } = self.get_mut();
        // Looked at in place: a call still waiting is not moved out and
        // back on every poll.
        let result = match call {
            Call::Sent { rx, cancel } => match Pin::new(rx).poll(cx) {
                Poll::Ready(result) => {
                    cancel.armed = false;
                    *call = Call::Done;
                    // The driver answers every call it took before it
                    // goes: an unanswered one is treated as sent.
                    result.unwrap_or_else(|_| {
                        Err(Error::ConnectionLost {
                            reason: "the connection closed".into(),
                            sent: true,
                        })
                    })
                }
                Poll::Pending => {
                    let expired = deadline
                        .as_mut()
                        .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                    if !expired {
                        return Poll::Pending;
                    }
                    // The call's `cancel`, dropped here, sends CANCEL.
                    *call = Call::Done;
                    Err(Error::Timeout)
                }
            },
            Call::Failed(_) => match std::mem::replace(call, Call::Done) {
                Call::Failed(error) => Err(error),
                _ => unreachable!("matched as failed just above"),
            },
            Call::Done => panic!("`Waiting` polled after it resolved"),
        };
        if let Some(trace) = trace {
            trace.ended(&result);
        }
        Poll::Ready(result)
    }
}

/// Sends CANCEL for a call whose caller stopped waiting.
struct CancelOnDrop<'a> {
    control: &'a mpsc::UnboundedSender<Control>,
    id: u64,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.control.send(Control::Cancel(self.id));
        }
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use super::*;

    /// Moved into every caller's future: it stays small, a timer or not.
    #[test]
    fn a_waiting_call_stays_small() {
        assert!(std::mem::size_of::<Waiting<'_>>() <= 56);
    }
}
