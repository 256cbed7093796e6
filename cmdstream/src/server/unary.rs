//! A unary command answered straight from its frame: its arguments
//! decoded, its receiver polled once, its result encoded into the
//! connection's write buffer, with no [`Call`] in between.
//!
//! Generated dispatch code takes this way for each unary command whose
//! receiver takes no [`CallContext`] (see `Dispatch::dispatch_unary`). A
//! receiver that has to wait gets its `Call` then, and a task: only a
//! command that completes at once skips them.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::debug;

use super::answer::encode_frame;
use super::call::Call;
use super::context::CallContext;
use super::hooks::ConnectionInfo;
use super::outbox::{CallRef, Outbox};
use super::panics::{self, Reported};
use crate::codec::{Codec, CodecError};
use crate::error::ErrorCode;
use crate::service::CommandInfo;
use crate::telemetry::{CallTrace, Outcome};
use crate::wire::frame::{self, Kind};

/// A unary command its connection offers to run without a [`Call`]: what
/// generated code needs to decode its arguments and run it.
#[doc(hidden)]
pub struct Unary<'a, C> {
    pub(crate) call: CallRef,
    pub(crate) info: &'static CommandInfo,
    pub(crate) payload: &'a [u8],
    pub(crate) deadline: Option<Instant>,
    pub(crate) codec: &'a C,
    /// The connection driver's waker, which the first poll runs with.
    pub(crate) waker: &'a Waker,
    /// The connection's write buffer.
    pub(crate) out: &'a mut BytesMut,
    pub(crate) outbox: &'a Outbox,
    pub(crate) connection: &'a Arc<ConnectionInfo>,
    /// The future of the last command that finished here, kept for the
    /// next one of the same type.
    pub(crate) kept: &'a mut Option<Box<dyn Any + Send>>,
    pub(crate) trace: Option<Box<CallTrace>>,
}

/// How a [`Unary`] went: see [`Step`].
#[doc(hidden)]
pub struct Ran(pub(crate) Step);

pub(crate) enum Step {
    /// Its answer (result or error) is in the write buffer.
    Answered,
    /// The receiver has to wait: it goes on in its own task, and answers
    /// through a `Call`.
    Waiting(AbortHandle),
    /// The receiver (or its result's `Serialize`) panicked; nothing of its
    /// answer was written.
    Panicked,
}

impl<C: Codec> Unary<'_, C> {
    /// The command to run.
    #[inline]
    pub fn command(&self) -> &'static CommandInfo {
        self.info
    }

    /// Decodes the command's arguments.
    ///
    /// # Errors
    ///
    /// When the payload is not a valid encoding of `A`; answer with
    /// [`reject_args`](Self::reject_args).
    #[inline]
    pub fn args<A: DeserializeOwned>(&self) -> Result<A, CodecError> {
        self.codec.decode(self.payload)
    }

    /// Answers that the arguments did not decode.
    pub fn reject_args(mut self, error: CodecError) -> Ran {
        let message = format!("arguments did not decode: {error}");
        debug!(code = ?ErrorCode::BadPayload, message, "answering with an error");
        let max = self.outbox.client_max_frame();
        frame::put_error(self.out, self.call.id, ErrorCode::BadPayload, &message, max);
        if let Some(trace) = &mut self.trace {
            trace.finish(Outcome::of_code(ErrorCode::BadPayload));
        }
        Ran(Step::Answered)
    }

    /// Runs the future `make` makes (the receiver's method, given the
    /// decoded arguments) and answers with its output.
    ///
    /// The future is made right where it is kept: in the box of the last
    /// such future, when it has the same type, so that a command that
    /// completes at once costs no allocation.
    #[inline(always)]
    pub fn run<F, R>(self, make: impl FnOnce() -> F) -> Ran
    where
        F: Future<Output = R> + Send + 'static,
        R: Serialize,
    {
        let Unary {
            call,
            info,
            deadline,
            codec,
            waker,
            out,
            outbox,
            connection,
            kept,
            mut trace,
            ..
        } = self;
        let mut future = match kept.take().map(|b| b.downcast::<Pin<Box<F>>>()) {
            Some(Ok(mut kept)) => {
                // Drops the finished future in place and moves this one in.
                Pin::set(&mut *kept, make());
                kept
            }
            _ => Box::new(Box::pin(make())),
        };
        let start = out.len();
        let max = outbox.client_max_frame();
        let mut cx = Context::from_waker(waker);
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            match (*future).as_mut().poll(&mut cx) {
                Poll::Ready(result) => Poll::Ready(encode_frame(
                    codec,
                    out,
                    Kind::ResultLast,
                    call.id,
                    &result,
                    max,
                )),
                Poll::Pending => Poll::Pending,
            }
        }));
        match polled {
            Ok(Poll::Ready(encoded)) => {
                *kept = Some(future);
                let (outcome, bytes) = match encoded {
                    Ok(bytes) => (Outcome::Ok, bytes),
                    Err(refused) => {
                        refused.put(out, call.id, max);
                        (refused.outcome(), 0)
                    }
                };
                if let Some(trace) = &mut trace {
                    trace.sent(bytes);
                    trace.finish(outcome);
                }
                Ran(Step::Answered)
            }
            Ok(Poll::Pending) => {
                let context = CallContext {
                    request_id: call.id,
                    command: info,
                    deadline,
                    // Only a command whose receiver takes no context comes
                    // this way: nothing reads its trace context or metadata.
                    extras: None,
                    connection: connection.clone(),
                };
                let answer = Call::new(
                    call,
                    Bytes::new(),
                    context,
                    codec.clone(),
                    outbox.clone(),
                    None,
                    None,
                )
                .observed(trace);
                let future: Pin<Box<F>> = *future;
                let rest = Reported::new(
                    async move {
                        let result = future.await;
                        answer.reply(&result);
                    },
                    info.name,
                    call.id,
                );
                // Past the deadline the rest is dropped, and with it the
                // `Call`, which tells the client.
                let task = match deadline {
                    Some(at) => tokio::spawn(async move {
                        let _ = tokio::time::timeout_at(at, rest).await;
                    }),
                    None => tokio::spawn(rest),
                };
                Ran(Step::Waiting(task.abort_handle()))
            }
            Err(payload) => {
                out.truncate(start);
                panics::report(payload.as_ref(), info.name, call.id);
                if let Some(trace) = &mut trace {
                    trace.finish(Outcome::of_code(ErrorCode::Internal));
                }
                Ran(Step::Panicked)
            }
        }
    }
}
