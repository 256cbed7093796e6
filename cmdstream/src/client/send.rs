//! Sending one call on one connection: its COMMAND frame encoded whole
//! (trace context and metadata in its head) and queued for the driver,
//! its result then awaited ([`Waiting`]); a unary call sent again as the
//! resend rules allow.

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{oneshot, Semaphore};

use super::connection::Connection;
use super::lease::Use;
use super::message::{Reply, Request};
use super::resend::{Deadline, Sends};
use super::route::Route;
use super::waiting::Waiting;
use super::Client;
use crate::codec::Codec;
use crate::conn::frame_buf::FrameBuf;
use crate::error::Error;
use crate::service::CommandInfo;
use crate::telemetry::{self, CallTrace};
use crate::wire::command::{put_head, put_small};
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
                .send_unary(&lease.conn, command, args, deadline.left()?)
                .await;
            lease.record(&result);
            if !sends.again(&result, &lease.conn) {
                return result.map_err(|e| sends.settle(e));
            }
        }
    }

    /// Sends one unary call on `conn` now, observed as one span when
    /// calls are observed (a resent call has a span per send); the future
    /// returned waits for its result.
    pub(super) fn send_unary<'c, A>(
        &self,
        conn: &'c Connection,
        command: &'static CommandInfo,
        args: &A,
        timeout: Option<std::time::Duration>,
    ) -> Waiting<'c>
    where
        A: Serialize + ?Sized,
    {
        self.send_answered_once(conn, command, args, timeout, None)
    }

    /// [`send_unary`](Self::send_unary) for any call answered once: with
    /// `arg_credit`, a client-streaming one, whose items take their credit
    /// from it.
    pub(super) fn send_answered_once<'c, A>(
        &self,
        conn: &'c Connection,
        command: &'static CommandInfo,
        args: &A,
        timeout: Option<std::time::Duration>,
        arg_credit: Option<Arc<Semaphore>>,
    ) -> Waiting<'c>
    where
        A: Serialize + ?Sized,
    {
        let trace = CallTrace::client_if_observed(command, C::NAME);
        let id = conn.next_id();
        let sent = self
            .encode_command(
                conn,
                id,
                command,
                timeout,
                trace.as_ref().map(|t| t.span()),
                &Args {
                    codec: &self.codec,
                    args,
                },
            )
            .and_then(|frame| self.send_once(conn, id, command, frame, arg_credit));
        match sent {
            Ok(rx) => Waiting::sent(conn, id, rx, timeout, trace),
            Err(e) => Waiting::failed(e, trace),
        }
    }

    /// Queues a call whose COMMAND is `frame`, to be answered once.
    #[inline]
    fn send_once(
        &self,
        conn: &Connection,
        id: u64,
        command: &'static CommandInfo,
        frame: FrameBuf,
        args: Option<Arc<Semaphore>>,
    ) -> Result<oneshot::Receiver<Result<bytes::Bytes, Error>>, Error> {
        let (tx, rx) = oneshot::channel();
        conn.send(Request {
            id,
            command: command.id,
            frame,
            reply: Reply::Once(tx),
            args,
        })?;
        Ok(rx)
    }

    /// Encodes a whole COMMAND frame carrying `payload` into a buffer of
    /// its own, so a failed encode leaves nothing behind.
    ///
    /// A COMMAND with neither trace context nor metadata, and no span to
    /// record its size on, is first written straight into a frame small
    /// enough to travel inline: no scratch buffer and no copy.
    pub(super) fn encode_command(
        &self,
        conn: &Connection,
        id: u64,
        command: &'static CommandInfo,
        timeout: Option<std::time::Duration>,
        span: Option<&tracing::Span>,
        payload: &(impl Payload + ?Sized),
    ) -> Result<FrameBuf, Error> {
        let set = self.options.traceparent.as_deref();
        let traceparent = match span {
            Some(span) => telemetry::call::traceparent(set, span),
            None => set.map(Cow::Borrowed),
        };
        let plain = traceparent.is_none()
            && self.options.metadata.is_none()
            && span.is_none_or(|span| span.is_disabled());
        let try_small = plain && !TOO_LARGE.get().is(command.id);
        if try_small {
            let frame = FrameBuf::inline(|dst| {
                put_small(dst, id, command.id, timeout, |dst| payload.put_small(dst))
            })?;
            if let Some(frame) = frame {
                return within_limit(conn, frame);
            }
        }
        let frame = FrameBuf::encode(|buf| {
            let start = frame::begin(buf, Kind::Command, id);
            put_head(
                buf,
                command.id,
                timeout,
                traceparent.as_deref(),
                self.options.metadata.as_deref(),
            )?;
            payload.put(buf)?;
            frame::finish(buf, start);
            Ok::<_, Error>(())
        })?;
        if plain {
            // Tried and too large: not tried for this command again until
            // one of its frames would have fitted.
            let fits = frame.len() <= FrameBuf::INLINE;
            TOO_LARGE.set(match (try_small, fits) {
                (true, false) => Marked::command(command.id),
                (false, true) => Marked::NONE,
                _ => TOO_LARGE.get(),
            });
        }
        let frame = within_limit(conn, frame)?;
        if let Some(span) = span {
            telemetry::call::sent(span, &conn.shared.peer, id, frame.len());
        }
        Ok(frame)
    }
}

/// What a COMMAND carries after its head.
pub(super) trait Payload {
    /// Writes it at the start of `dst`: its length, or `None` when it does
    /// not fit.
    fn put_small(&self, dst: &mut [u8]) -> Result<Option<usize>, Error>;

    /// Appends it to `dst`.
    fn put(&self, dst: &mut bytes::BytesMut) -> Result<(), Error>;
}

/// A call's arguments, encoded as they are written.
pub(super) struct Args<'a, C, A: ?Sized> {
    pub(super) codec: &'a C,
    pub(super) args: &'a A,
}

impl<C: Codec, A: Serialize + ?Sized> Payload for Args<'_, C, A> {
    #[inline]
    fn put_small(&self, dst: &mut [u8]) -> Result<Option<usize>, Error> {
        Ok(self.codec.encode_to_slice(self.args, dst)?)
    }

    fn put(&self, dst: &mut bytes::BytesMut) -> Result<(), Error> {
        Ok(self.codec.encode(self.args, dst)?)
    }
}

/// Arguments encoded already.
impl Payload for [u8] {
    fn put_small(&self, dst: &mut [u8]) -> Result<Option<usize>, Error> {
        Ok(dst.get_mut(..self.len()).map(|dst| {
            dst.copy_from_slice(self);
            self.len()
        }))
    }

    fn put(&self, dst: &mut bytes::BytesMut) -> Result<(), Error> {
        dst.extend_from_slice(self);
        Ok(())
    }
}

thread_local! {
    /// The command whose last COMMAND on this thread did not fit inline:
    /// its next one goes to the scratch buffer at once, instead of being
    /// encoded twice (a 1 KiB argument, say).
    static TOO_LARGE: Cell<Marked> = const { Cell::new(Marked::NONE) };
}

/// A command id, or none.
#[derive(Clone, Copy)]
struct Marked(u64);

impl Marked {
    const NONE: Marked = Marked(0);

    fn command(id: u32) -> Marked {
        Marked(u64::from(id) + 1)
    }

    fn is(self, id: u32) -> bool {
        self.0 == u64::from(id) + 1
    }
}

/// `frame`, if the server takes frames that large.
#[inline]
fn within_limit(conn: &Connection, frame: FrameBuf) -> Result<FrameBuf, Error> {
    let (len, max) = (
        frame.len() - frame::LEN_SIZE,
        conn.shared.settled.server_max_frame,
    );
    if len > max {
        return Err(Error::FrameTooLarge { size: len, max });
    }
    Ok(frame)
}
