//! A COMMAND arrives: the checks it must pass (its request id, the
//! server's state, the command id, the in-flight limit), each answered on
//! its own call or closing the connection, and then the call that runs it.

use std::future::Future;
use std::sync::Arc;
use std::task::Context;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tracing::Instrument;

use super::{Command, Driver, Running};
use crate::codec::Codec;
use crate::error::{Error, ErrorCode};
use crate::server::call::{ArgSource, Call};
use crate::server::context::CallContext;
use crate::server::dispatch::Dispatch;
use crate::server::outbox::CallRef;
use crate::server::panics::Reported;
use crate::server::unary::Unary;
use crate::service::CommandKind;
use crate::side::Side;
use crate::telemetry::{self, CallTrace};
use crate::wire::command;
use crate::wire::frame;

impl<IO, D, C> Driver<IO, D, C>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    D: Dispatch,
    C: Codec,
{
    pub(super) fn reject(&mut self, id: u64, code: ErrorCode, message: &str) {
        frame::put_error(self.link.out(), id, code, message, self.peer.max_frame);
    }

    pub(super) fn on_command(
        &mut self,
        cx: &mut Context<'_>,
        id: u64,
        body: Bytes,
    ) -> Result<(), Error> {
        if id == 0 {
            return Err(Error::protocol("the client used request id 0"));
        }
        if self.running.contains_key(&id) {
            return Err(Error::protocol(format!(
                "the client reused request id {id} while it was in flight"
            )));
        }
        // The whole frame, as the client counted it.
        let frame_len = frame::LEN_SIZE + frame::HEADER_SIZE + body.len();
        let (head, payload) = command::parse(body)?;
        self.commands_seen += 1;
        if self.is_draining() {
            self.reject(id, ErrorCode::ShuttingDown, "the server is shutting down");
            return Ok(());
        }
        let Some(info) = D::INFO.command(head.command) else {
            let message = format!(
                "unknown command id {} for service {}",
                head.command,
                D::INFO.name
            );
            self.reject(id, ErrorCode::UnknownCommand, &message);
            return Ok(());
        };
        if self.running.len() >= self.config.max_in_flight {
            let message = format!(
                "too many calls in flight (limit {})",
                self.config.max_in_flight
            );
            self.reject(id, ErrorCode::Overloaded, &message);
            return Ok(());
        }

        let call = CallRef {
            id,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        let deadline = head.deadline.map(|d| Instant::now() + d);
        let mut trace = telemetry::call::observing(Side::Server).then(|| {
            Box::new(CallTrace::server(
                info,
                id,
                self.peer.info.id(),
                &self.peer.info.addr,
                C::NAME,
                frame_len,
                command::traceparent(&head.extras),
            ))
        });
        // The span only when a subscriber wants it: with tracing's `log`
        // feature on, even a span nobody records costs a few hundred
        // instructions, and its wrapper more on every poll.
        let span = trace
            .as_ref()
            .map(|t| t.span().clone())
            .filter(|span| !span.is_disabled());

        // A unary command polled at once, with no span to enter and a
        // deadline not yet passed, may skip its `Call` (see `Unary`).
        if info.kind == CommandKind::Unary
            && span.is_none()
            && self.config.run_ready_inline
            && !head.deadline.is_some_and(|d| d.is_zero())
        {
            let unary = Unary {
                call,
                info,
                payload: &payload,
                deadline,
                codec: &self.codec,
                waker: cx.waker(),
                out: self.link.out_frames(0),
                outbox: &self.outbox,
                connection: &self.peer.info,
                kept: &mut self.kept_unary,
                trace,
            };
            match D::dispatch_unary(&self.service, unary) {
                Ok(ran) => {
                    self.ran(call, ran);
                    return Ok(());
                }
                Err(unary) => trace = unary.trace,
            }
        }

        let (args_tx, args) = if info.kind.streams_arguments() {
            let (tx, items) = mpsc::unbounded_channel();
            (
                Some(tx),
                Some(ArgSource {
                    items,
                    window: self.config.stream_window,
                }),
            )
        } else {
            (None, None)
        };
        let results = info
            .kind
            .streams_results()
            .then(|| Arc::new(Semaphore::new(self.peer.stream_window as usize)));
        let context = CallContext {
            request_id: id,
            command: info,
            deadline,
            extras: head.extras,
            connection: self.peer.info.clone(),
        };
        let call_ref = call;
        let call = Call::new(
            call,
            payload,
            context,
            self.codec.clone(),
            self.outbox.clone(),
            args,
            results.clone(),
        )
        .observed(trace);
        let running = Running {
            seq: call_ref.seq,
            abort: None,
            args: args_tx,
            arg_credit: self.config.stream_window,
            results,
            result_credit: self.peer.stream_window,
        };
        let service = self.service.clone();
        let run = move || Reported::new(D::dispatch(service, call), info.name, id);
        // The command's future (several hundred bytes) is made where it is
        // kept, on the heap, and after that only the box moves. On expiry of
        // the deadline the call is dropped unanswered and reports it to the
        // client.
        let command: Command = match (deadline, span) {
            (None, None) => {
                self.start_recycling(cx, call_ref, running, run);
                return Ok(());
            }
            (None, Some(span)) => Box::pin(run().instrument(span)),
            (Some(at), None) => Box::pin(until(at, run())),
            (Some(at), Some(span)) => Box::pin(until(at, run()).instrument(span)),
        };
        self.start(cx, call_ref, running, command);
        Ok(())
    }
}

/// Runs `command` until `at`. One whose deadline passed before it started
/// (while it waited for room in its connection's queue, say) does not
/// start at all: polling it even once could act on a call its client has
/// given up on.
async fn until(at: Instant, command: impl Future<Output = ()>) {
    if Instant::now() < at {
        let _ = tokio::time::timeout_at(at, command).await;
    }
}
