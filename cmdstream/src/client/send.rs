//! Sending one call on one connection: its COMMAND frame encoded whole
//! (trace context and metadata in its head), queued for the driver, its
//! result waited for within the timeout, and CANCEL sent when the caller
//! stops waiting; a unary call sent again as the resend rules allow.

use std::borrow::Cow;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::connection::Connection;
use super::lease::Use;
use super::message::{Control, Reply, Request};
use super::resend::{Deadline, Sends};
use super::route::Route;
use super::Client;
use crate::codec::Codec;
use crate::conn::frame_buf::FrameBuf;
use crate::error::Error;
use crate::service::CommandInfo;
use crate::telemetry::{self, CallTrace};
use crate::wire::command::put_head;
use crate::wire::frame::{self, Kind};

impl<C: Codec> Client<C> {
    /// Sends a unary call on whichever connection comes up, for as long as
    /// `sends` allows and its deadline lasts.
    pub(super) async fn unary_resent<A>(
        &self,
        route: &Route,
        command: &'static CommandInfo,
        args: &A,
        deadline: Deadline,
        mut sends: Sends,
    ) -> Result<bytes::Bytes, Error>
    where
        A: Serialize + ?Sized,
    {
        loop {
            let lease = match route.lease(deadline.at, Use::Call).await {
                Ok(lease) => lease,
                Err(e) => return Err(sends.settle(e)),
            };
            let result = self
                .unary_on(&lease.conn, command, args, deadline.left()?)
                .await;
            lease.record(&result);
            if !sends.again(&result, &lease.conn) {
                return result.map_err(|e| sends.settle(e));
            }
        }
    }

    /// One unary call on `conn`: one send, observed as one span when
    /// calls are observed (a resent call has a span per send).
    pub(super) async fn unary_on<A>(
        &self,
        conn: &Connection,
        command: &'static CommandInfo,
        args: &A,
        timeout: Option<std::time::Duration>,
    ) -> Result<bytes::Bytes, Error>
    where
        A: Serialize + ?Sized,
    {
        let mut trace = CallTrace::client_if_observed(command, C::NAME);
        let id = conn.next_id();
        let sent = self
            .encode_command(
                conn,
                id,
                command,
                timeout,
                trace.as_ref().map(|t| t.span()),
                |buf| Ok(self.codec.encode(args, buf)?),
            )
            .and_then(|frame| {
                let (tx, rx) = oneshot::channel();
                conn.send(Request {
                    id,
                    command: command.id,
                    frame,
                    reply: Reply::Once(tx),
                    args: None,
                })?;
                Ok(rx)
            });
        let result = match sent {
            Ok(rx) => self.wait(conn, id, timeout, rx).await,
            Err(e) => Err(e),
        };
        if let Some(trace) = &mut trace {
            trace.ended(&result);
        }
        result
    }

    /// Encodes a whole COMMAND frame, its payload written by `payload`,
    /// into a buffer of its own, so a failed encode leaves nothing behind.
    pub(super) fn encode_command(
        &self,
        conn: &Connection,
        id: u64,
        command: &'static CommandInfo,
        timeout: Option<std::time::Duration>,
        span: Option<&tracing::Span>,
        payload: impl FnOnce(&mut bytes::BytesMut) -> Result<(), Error>,
    ) -> Result<FrameBuf, Error> {
        let set = self.options.traceparent.as_deref();
        let traceparent = match span {
            Some(span) => telemetry::call::traceparent(set, span),
            None => set.map(Cow::Borrowed),
        };
        let frame = FrameBuf::encode(|buf| {
            let start = frame::begin(buf, Kind::Command, id);
            put_head(
                buf,
                command.id,
                timeout,
                traceparent.as_deref(),
                self.options.metadata.as_deref(),
            )?;
            payload(buf)?;
            frame::finish(buf, start);
            Ok::<_, Error>(())
        })?;
        let (len, max) = (
            frame.len() - frame::LEN_SIZE,
            conn.shared.settled.server_max_frame,
        );
        if len > max {
            return Err(Error::FrameTooLarge { size: len, max });
        }
        if let Some(span) = span {
            telemetry::call::sent(span, &conn.shared.peer, id, frame.len());
        }
        Ok(frame)
    }

    /// Waits for a single result, cancelling the call if this future is
    /// dropped or the timeout expires first.
    pub(super) async fn wait(
        &self,
        conn: &Connection,
        id: u64,
        timeout: Option<std::time::Duration>,
        rx: oneshot::Receiver<Result<bytes::Bytes, Error>>,
    ) -> Result<bytes::Bytes, Error> {
        let guard = CancelOnDrop {
            control: &conn.control,
            id,
            armed: true,
        };
        let result = match timeout {
            None => rx.await,
            Some(t) => match tokio::time::timeout(t, rx).await {
                Ok(r) => r,
                Err(_) => return Err(Error::Timeout),
            },
        };
        guard.disarm();
        // The driver answers every call it took before it goes: an
        // unanswered one is treated as sent.
        result.unwrap_or_else(|_| {
            Err(Error::ConnectionLost {
                reason: "the connection closed".into(),
                sent: true,
            })
        })
    }
}

/// Sends CANCEL for a call whose caller stopped waiting.
struct CancelOnDrop<'a> {
    control: &'a mpsc::UnboundedSender<Control>,
    id: u64,
    armed: bool,
}

impl CancelOnDrop<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.control.send(Control::Cancel(self.id));
        }
    }
}
