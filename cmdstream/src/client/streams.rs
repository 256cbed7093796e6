//! Opening a streaming call: on the connection lent now, or, while a
//! reconnecting client or a group has none, as a stream that opens its
//! call once one is up; and the pump of a call's streamed arguments.

use std::sync::Arc;

use futures_core::Stream;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::connection::Connection;
use super::lease::Use;
use super::message::{Reply, Request};
use super::resend::Deadline;
use super::send::{Args, Payload};
use super::stream_sink::StreamSink;
use super::{arg_pump, result_stream, Client, ResultStream};
use crate::codec::Codec;
use crate::error::Error;
use crate::service::CommandInfo;
use crate::side::Side;
use crate::telemetry::{self, CallTrace, Outcome};
use tracing::Span;

impl<C: Codec> Client<C> {
    /// Opens a streaming call: on the handle's connection, or the one a
    /// reconnecting client has up; during an outage, a stream that opens
    /// the call once a connection is up (its arguments encoded now).
    pub(super) fn open_stream<A, R, I, S>(
        &self,
        command: &'static CommandInfo,
        args: &A,
        items: Option<S>,
    ) -> Result<ResultStream<R, C>, Error>
    where
        A: Serialize + ?Sized,
        I: Serialize + Send + 'static,
        S: Stream<Item = I> + Send + 'static,
    {
        if telemetry::call::observing(Side::Client) {
            let mut trace = CallTrace::client(command, C::NAME);
            let opened = self.open_with(command, args, items, Some(trace.span()));
            return match opened {
                Ok(stream) => Ok(stream.observed(trace)),
                Err(e) => {
                    trace.finish(Outcome::of_error(&e));
                    Err(e)
                }
            };
        }
        self.open_with(command, args, items, None)
    }

    /// Opens the call, its command recorded on `span` when it is observed.
    fn open_with<A, R, I, S>(
        &self,
        command: &'static CommandInfo,
        args: &A,
        items: Option<S>,
        span: Option<&Span>,
    ) -> Result<ResultStream<R, C>, Error>
    where
        A: Serialize + ?Sized,
        I: Serialize + Send + 'static,
        S: Stream<Item = I> + Send + 'static,
    {
        let timeout = self.timeout(command);
        let Some(lease) = self.route.pick(Use::Stream) else {
            return self.stream_when_connected(command, args, items, span.cloned());
        };
        let lease = lease.into_owned();
        let bound = self.open_on(
            &lease.conn,
            command,
            timeout,
            items,
            span,
            &Args {
                codec: &self.codec,
                args,
            },
        )?;
        Ok(ResultStream::new(
            bound.counted(lease.load),
            self.codec.clone(),
            timeout,
        ))
    }

    /// A stream whose call is opened once the reconnecting client has a
    /// connection (within the call's timeout, which runs from now).
    pub(super) fn stream_when_connected<A, R, I, S>(
        &self,
        command: &'static CommandInfo,
        args: &A,
        items: Option<S>,
        span: Option<Span>,
    ) -> Result<ResultStream<R, C>, Error>
    where
        A: Serialize + ?Sized,
        I: Serialize + Send + 'static,
        S: Stream<Item = I> + Send + 'static,
    {
        let mut payload = bytes::BytesMut::new();
        self.codec.encode(args, &mut payload)?;
        let timeout = self.timeout(command);
        let deadline = Deadline::after(timeout);
        let client = self.clone();
        let binding = async move {
            let lease = client
                .route
                .lease(deadline.at, Use::Stream)
                .await?
                .into_owned();
            let timeout = deadline.left()?;
            let bound = client.open_on(
                &lease.conn,
                command,
                timeout,
                items,
                span.as_ref(),
                &payload[..],
            )?;
            Ok(bound.counted(lease.load))
        };
        Ok(ResultStream::binding(binding, self.codec.clone(), timeout))
    }

    /// Sends a streaming call's COMMAND on `conn`, carrying `payload`, and
    /// starts the pump of its items, if it has any.
    pub(super) fn open_on<I, S>(
        &self,
        conn: &Arc<Connection>,
        command: &'static CommandInfo,
        timeout: Option<std::time::Duration>,
        items: Option<S>,
        span: Option<&Span>,
        payload: &(impl Payload + ?Sized),
    ) -> Result<result_stream::Bound, Error>
    where
        I: Serialize + Send + 'static,
        S: Stream<Item = I> + Send + 'static,
    {
        let id = conn.next_id();
        let frame = self.encode_command(conn, id, command, timeout, span, payload)?;
        let (sink, events) = StreamSink::new();
        let credit = items.is_some().then(|| Arc::new(Semaphore::new(0)));
        conn.send(Request {
            id,
            command: command.id,
            frame,
            reply: Reply::Many(Box::new(sink)),
            args: credit.clone(),
        })?;
        let pump = items
            .zip(credit)
            .map(|(items, credit)| self.spawn_pump(conn, id, items, credit));
        Ok(result_stream::Bound {
            id,
            events,
            control: conn.control.clone(),
            window: result_stream::Window {
                initial: conn.shared.settled.our_window,
                max: conn.shared.settled.max_window,
            },
            held: result_stream::Held {
                _pump: pump,
                _load: None,
            },
        })
    }

    pub(super) fn spawn_pump<I, S>(
        &self,
        conn: &Connection,
        id: u64,
        items: S,
        credit: Arc<Semaphore>,
    ) -> arg_pump::PumpGuard
    where
        I: Serialize + Send + 'static,
        S: Stream<Item = I> + Send + 'static,
    {
        arg_pump::spawn(
            id,
            items,
            credit,
            conn.control.clone(),
            self.codec.clone(),
            conn.shared.clone(),
        )
    }
}
