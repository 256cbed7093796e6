//! One incoming call, as generated dispatch code answers it.

use std::fmt::Display;
use std::future::poll_fn;
use std::sync::{Arc, OnceLock};
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, Semaphore, TryAcquireError};
use tracing::debug;

use super::answer::{encode_frame, Unsendable};
use super::arg_stream::ArgStream;
use super::context::CallContext;
use super::outbox::{CallRef, Out, Outbox};
use crate::codec::{Codec, CodecError};
use crate::error::ErrorCode;
use crate::service::CommandInfo;
use crate::telemetry::{CallTrace, Outcome};
use crate::wire::frame::{self, Kind};

/// A stream's results are handed to the connection in batches of about
/// this many bytes when they are ready together. After each full batch the
/// stream yields, so that the connection writes it while the stream goes
/// on; the client then works on one batch while the next is made.
const STREAM_BATCH: usize = 32 * 1024;

/// With a batch's worth from others already waiting for the connection, a
/// stream hands over what it has (and yields) from this many bytes on: many
/// streams then take short turns, not full batches, before the first write.
const SHORT_BATCH: usize = 4 * 1024;

/// A stream's results encoded and not yet handed to the connection.
#[derive(Default)]
struct Batch {
    bytes: BytesMut,
    /// How many results `bytes` holds: the connection counts them against
    /// the credit it granted.
    results: u32,
}

/// Where a client-streaming call's items come from.
pub(crate) struct ArgSource {
    pub(crate) items: mpsc::UnboundedReceiver<Bytes>,
    pub(crate) window: u32,
}

/// Takes every permit `credit` has; `Err` once it is closed. The stream
/// that owns `credit` is the only one taking from it, so what it has cannot
/// shrink between the look and the take.
fn take_all(credit: &Semaphore) -> Result<usize, ()> {
    let available = credit.available_permits();
    if available == 0 {
        return if credit.is_closed() { Err(()) } else { Ok(0) };
    }
    let n = u32::try_from(available).unwrap_or(u32::MAX);
    match credit.try_acquire_many(n) {
        Ok(permits) => {
            permits.forget();
            Ok(n as usize)
        }
        Err(TryAcquireError::Closed) => Err(()),
        Err(TryAcquireError::NoPermits) => Ok(0),
    }
}

/// One command to run and the means to answer it.
///
/// Generated [`Dispatch`](crate::Dispatch) code decodes the arguments with
/// [`args`](Self::args), runs the receiver, and answers with exactly one of
/// [`reply`](Self::reply), [`reply_stream`](Self::reply_stream) or
/// [`fail`](Self::fail). Dropped without an answer, the call tells the
/// client why: the command panicked, or its deadline passed.
pub struct Call<C> {
    call: CallRef,
    payload: Bytes,
    context: CallContext,
    codec: C,
    outbox: Outbox,
    args: Option<ArgSource>,
    /// Credit for streamed results, granted by the client.
    credit: Option<Arc<Semaphore>>,
    /// Set by an [`ArgStream`] whose item did not decode.
    arg_error: Option<Arc<OnceLock<CodecError>>>,
    answered: bool,
    /// The command's span and outcome, when it is observed.
    trace: Option<Box<CallTrace>>,
}

impl<C: Codec> Call<C> {
    #[inline]
    pub(crate) fn new(
        call: CallRef,
        payload: Bytes,
        context: CallContext,
        codec: C,
        outbox: Outbox,
        args: Option<ArgSource>,
        credit: Option<Arc<Semaphore>>,
    ) -> Self {
        Call {
            call,
            payload,
            context,
            codec,
            outbox,
            args,
            credit,
            arg_error: None,
            answered: false,
            trace: None,
        }
    }

    /// The call, observed through `trace` until it is answered.
    #[inline]
    pub(crate) fn observed(mut self, trace: Option<Box<CallTrace>>) -> Self {
        self.trace = trace;
        self
    }

    /// The command to run.
    pub fn command(&self) -> &'static CommandInfo {
        self.context.command
    }

    /// The call's context: peer, deadline, metadata.
    pub fn context(&self) -> &CallContext {
        &self.context
    }

    /// Decodes the command's arguments.
    ///
    /// # Errors
    ///
    /// When the payload is not a valid encoding of `A`; answer with
    /// [`reject_args`](Self::reject_args).
    pub fn args<A: DeserializeOwned>(&self) -> Result<A, CodecError> {
        self.codec.decode(&self.payload)
    }

    /// The stream of items the client sends after the command. Empty for
    /// commands that do not stream arguments, and when taken twice.
    pub fn arg_stream<T: DeserializeOwned>(&mut self) -> ArgStream<T, C> {
        let error = self.arg_error.get_or_insert_with(Default::default).clone();
        let (items, window) = match self.args.take() {
            Some(src) => (src.items, src.window),
            None => (mpsc::unbounded_channel().1, 1),
        };
        ArgStream::new(
            self.call,
            items,
            self.outbox.clone(),
            self.codec.clone(),
            window,
            error,
        )
    }

    /// Answers with the one result.
    #[inline]
    pub fn reply<R: Serialize + ?Sized>(mut self, result: &R) {
        // Answered in place: `self` is most of a command's future, and
        // passing it on by value would copy it.
        self.send_reply(result);
    }

    fn send_reply<R: Serialize + ?Sized>(&mut self, result: &R) {
        if self.fail_on_bad_item() {
            return;
        }
        let mut len = 0;
        let sent = self.outbox.send_frames(self.call, true, |buf| {
            self.encode_into(buf, Kind::ResultLast, result)
                .map(|n| len = n)
        });
        match sent {
            Ok(()) => {
                self.answered = true;
                self.finish(Outcome::Ok, len);
            }
            Err(refused) => self.refuse_answer(refused),
        }
    }

    /// Answers with a stream of results, sent as the client's credit allows,
    /// then the end of the stream.
    ///
    /// Results that are ready together travel together: they are encoded
    /// into one buffer and handed to the connection at once, until the
    /// stream has nothing ready, credit runs out or the batch is full.
    /// While the connection's queue is full (a client that reads slowly)
    /// the stream waits before producing more.
    pub async fn reply_stream<R, S>(mut self, results: S)
    where
        R: Serialize,
        S: Stream<Item = R> + Send,
    {
        let mut results = std::pin::pin!(results);
        let credit = self.credit.clone();
        // Credit taken from the semaphore and not spent yet: taken all at
        // once, spent item by item without touching the semaphore.
        let mut held = 0usize;
        let mut batch = Batch::default();
        loop {
            let next = if batch.bytes.is_empty() {
                poll_fn(|cx| results.as_mut().poll_next(cx)).await
            } else {
                match poll_fn(|cx| Poll::Ready(results.as_mut().poll_next(cx))).await {
                    Poll::Ready(next) => next,
                    Poll::Pending => {
                        self.send_batch(&mut batch);
                        self.outbox.room().await;
                        continue;
                    }
                }
            };
            let Some(item) = next else { break };
            if let Some(credit) = &credit {
                if credit.is_closed() {
                    // The call ended on the driver's side (cancel): stop.
                    return self.abandon();
                }
                if held == 0 {
                    held = match take_all(credit) {
                        Ok(0) => {
                            // Let the consumer have what is ready while we
                            // wait.
                            self.send_batch(&mut batch);
                            match credit.acquire().await {
                                Ok(permit) => permit.forget(),
                                // The call ended on the driver's side
                                // (cancel): stop.
                                Err(_) => return self.abandon(),
                            }
                            1 + take_all(credit).unwrap_or(0)
                        }
                        Ok(n) => n,
                        Err(()) => return self.abandon(),
                    };
                }
                held -= 1;
            }
            if let Err(refused) = self.encode_into(&mut batch.bytes, Kind::Result, &item) {
                self.send_batch(&mut batch);
                return self.refuse_answer(refused);
            }
            batch.results += 1;
            let made = batch.bytes.len();
            if made >= STREAM_BATCH
                || (made >= SHORT_BATCH && self.outbox.backlog().queued() >= STREAM_BATCH)
            {
                self.send_batch(&mut batch);
                // Let the connection write it while the next is made, and
                // make no more while it cannot take them.
                if self.outbox.backlog().has_room() {
                    tokio::task::yield_now().await;
                } else {
                    self.outbox.room().await;
                }
            }
        }
        if self.arg_error().is_some() {
            self.send_batch(&mut batch);
            self.fail_on_bad_item();
            return;
        }
        frame::put_empty(&mut batch.bytes, Kind::End, self.call.id);
        self.answered = true;
        self.finish(Outcome::Ok, batch.bytes.len());
        self.outbox.send(Out::Frame {
            call: self.call,
            last: true,
            results: batch.results,
            frame: batch.bytes.into(),
        });
    }

    /// Hands the batched results to the connection.
    fn send_batch(&mut self, batch: &mut Batch) {
        if !batch.bytes.is_empty() {
            if let Some(trace) = &mut self.trace {
                trace.sent(batch.bytes.len());
            }
            self.outbox.send(Out::Frame {
                call: self.call,
                last: false,
                results: std::mem::take(&mut batch.results),
                frame: batch.bytes.split().into(),
            });
        }
    }

    /// Answers with an error the client sees as
    /// [`Error::Remote`](crate::Error::Remote) (or the matching variant of
    /// [`Error`](crate::Error) for codes that have one).
    pub fn fail(mut self, code: ErrorCode, message: impl Display) {
        self.send_error(code, &message.to_string());
    }

    /// Answers that the arguments did not decode.
    pub fn reject_args(self, error: CodecError) {
        self.fail(
            ErrorCode::BadPayload,
            format_args!("arguments did not decode: {error}"),
        );
    }

    fn abandon(mut self) {
        self.answered = true;
        self.finish(Outcome::Cancelled, 0);
    }

    /// The decode error of a streamed argument item, if one failed.
    fn arg_error(&self) -> Option<CodecError> {
        self.arg_error.as_ref().and_then(|e| e.get()).cloned()
    }

    fn fail_on_bad_item(&mut self) -> bool {
        let Some(e) = self.arg_error() else {
            return false;
        };
        self.send_error(
            ErrorCode::BadPayload,
            &format!("a streamed item did not decode: {e}"),
        );
        true
    }

    /// Appends one frame holding `value`; on failure `dst` is left as it
    /// was.
    fn encode_into<R: Serialize + ?Sized>(
        &self,
        dst: &mut BytesMut,
        kind: Kind,
        value: &R,
    ) -> Result<usize, Unsendable> {
        let max = self.outbox.client_max_frame();
        encode_frame(&self.codec, dst, kind, self.call.id, value, max)
    }

    /// Tells the client why its result cannot be sent.
    fn refuse_answer(&mut self, refused: Unsendable) {
        self.answered = true;
        self.finish(refused.outcome(), 0);
        let (call, max) = (self.call, self.outbox.client_max_frame());
        let _ = self.outbox.send_frames(call, true, |buf| {
            refused.put(buf, call.id, max);
            Ok::<_, std::convert::Infallible>(())
        });
    }
}

impl<C> Call<C> {
    /// Reports how the call ended, `bytes` of answer written (more than
    /// what went out in batches already), when it is observed.
    fn finish(&mut self, outcome: Outcome, bytes: usize) {
        if let Some(trace) = &mut self.trace {
            trace.sent(bytes);
            trace.finish(outcome);
        }
    }

    fn send_error(&mut self, code: ErrorCode, message: &str) {
        self.answered = true;
        debug!(?code, message, "answering with an error");
        self.finish(Outcome::of_code(code), 0);
        let (call, max) = (self.call, self.outbox.client_max_frame());
        let _ = self.outbox.send_frames(call, true, |buf| {
            if code == ErrorCode::FrameTooLarge {
                // Code 8 carries sizes on the wire; a handler that names the
                // code itself has none to give.
                frame::put_too_large(buf, call.id, 0, 0);
            } else {
                frame::put_error(buf, call.id, code, message, max);
            }
            Ok::<_, std::convert::Infallible>(())
        });
    }
}

impl<C> Drop for Call<C> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let expired = self
            .context
            .deadline
            .is_some_and(|d| tokio::time::Instant::now() >= d);
        let (code, message) = if std::thread::panicking() {
            (
                ErrorCode::Internal,
                "the command panicked; see the server's log",
            )
        } else if expired {
            (
                ErrorCode::DeadlineExceeded,
                "the deadline passed; the server stopped the command",
            )
        } else {
            // Stopped before it answered: cancelled by its client, or its
            // connection closing under it (a `Dispatch` that never answers
            // ends here too).
            self.finish(Outcome::Cancelled, 0);
            (ErrorCode::Internal, "the command ended without a result")
        };
        self.send_error(code, message);
    }
}

impl<C> std::fmt::Debug for Call<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("id", &self.call.id)
            .field("command", &self.context.command.name)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::codec::Bincode;
    use crate::server::hooks::ConnectionInfo;
    use crate::service::CommandKind;
    use crate::transport::PeerAddr;

    static COUNT: CommandInfo = CommandInfo::new(1, "count", CommandKind::ServerStream, 0);

    /// A server-streaming call with request id 1, without flow control.
    fn call(outbox: &Outbox) -> Call<Bincode> {
        let connection = Arc::new(ConnectionInfo {
            id: 1,
            addr: PeerAddr::Other("test".into()),
            metadata: Default::default(),
            #[cfg(feature = "tls")]
            tls: None,
            principal: None,
            shutdown: CancellationToken::new(),
        });
        let context = CallContext {
            request_id: 1,
            command: &COUNT,
            deadline: None,
            extras: None,
            connection,
        };
        let call = CallRef { id: 1, seq: 1 };
        Call::new(
            call,
            Bytes::new(),
            context,
            Bincode,
            outbox.clone(),
            None,
            None,
        )
    }

    /// Streams 2,000 results of about 100 bytes each while taking what
    /// the stream hands over as a driver would, with `waiting` bytes from
    /// other streams in the channel all along: the sizes of the batches
    /// before the last.
    async fn batches(waiting: usize) -> Vec<usize> {
        let (outbox, mut rx) = Outbox::new(1 << 20, 64 << 20);
        outbox.backlog().charge(waiting);
        let results = futures_util::stream::iter(std::iter::repeat_n(vec![7u8; 100], 2000));
        let stream = tokio::spawn(call(&outbox).reply_stream(results));
        let mut sizes = Vec::new();
        while let Some(Out::Frame { last, frame, .. }) = rx.recv().await {
            outbox.backlog().release(frame.len());
            if last {
                break;
            }
            sizes.push(frame.len());
        }
        stream.await.unwrap();
        sizes
    }

    #[tokio::test]
    async fn a_stream_alone_hands_over_full_batches() {
        let sizes = batches(0).await;
        assert!(sizes.len() >= 4, "{sizes:?}");
        assert!(sizes.iter().all(|&n| n >= STREAM_BATCH), "{sizes:?}");
    }

    #[tokio::test]
    async fn a_stream_hands_over_short_batches_while_a_full_one_waits() {
        let sizes = batches(STREAM_BATCH).await;
        assert!(sizes.len() >= 20, "{sizes:?}");
        assert!(
            sizes
                .iter()
                .all(|&n| (SHORT_BATCH..SHORT_BATCH + 200).contains(&n)),
            "{sizes:?}"
        );
    }
}
