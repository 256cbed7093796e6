//! The stream of results of a server-streaming or bidirectional call.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::Sleep;

use super::arg_pump::PumpGuard;
use super::group::Load;
use super::message::Control;
use super::stream_sink::{Chunk, Event, Events};
use crate::codec::Codec;
use crate::error::Error;
use crate::telemetry::{CallTrace, Outcome};
use crate::wire::results::Results;

/// The most items a result window grows to by default.
pub(crate) const MAX_GROWN_WINDOW: u32 = 8192;

/// While a stream's items are small, its window grows until about this many
/// bytes of results may wait for the consumer. 64 streams stalled at once
/// hold about 8 MiB.
const GROWN_WINDOW_BYTES: usize = 128 * 1024;

/// What one waiting result costs beyond its body: the head of its frame,
/// which waits with it in the read buffer (results arrive as runs of
/// frames, so there is no handle or queue slot per result), and a little
/// for the run's own bookkeeping.
const ITEM_OVERHEAD: usize = 16;

/// A result stream's window: the credit it starts with (and never goes
/// below) and the most it may grow to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) initial: u32,
    pub(crate) max: u32,
}

/// Results of a streaming call, in the order the server produced them.
///
/// Yields `Ok(item)` per result, then ends; a failure is yielded once as
/// `Err` and ends the stream. The server sends at most a window of results
/// ahead of this consumer (flow control), so a slow consumer holds bounded
/// memory and never stalls other calls on the connection.
///
/// A call with a timeout ends at its deadline however the network behaves:
/// the stream then yields [`Error::Timeout`] and cancels the call on the
/// server. Results that arrived before the deadline are yielded first, as
/// long as the consumer keeps up with them.
///
/// Dropping the stream before its end cancels the call on the server.
pub struct ResultStream<T, C> {
    link: Link,
    /// Results received and not yet yielded: the run being walked, then
    /// the rest of the last batch.
    run: Option<Results>,
    ready: std::vec::IntoIter<Chunk>,
    codec: C,
    /// The credit granted so far beyond what was consumed: the window.
    window: u32,
    /// The window it starts with, and never goes below.
    min_window: u32,
    /// What the window may grow to; equal to `min_window` when it may not.
    max_window: u32,
    /// Credit is returned in batches of a quarter window.
    batch: u32,
    /// The items still to consume before the batch's credit is returned.
    until_credit: u32,
    /// The bodies' bytes of the items consumed since the last credit was
    /// returned; what their frames and bookkeeping add is counted per
    /// batch.
    consumed_bytes: usize,
    /// When the call times out, if it has a timeout.
    deadline: Option<Pin<Box<Sleep>>>,
    done: bool,
    /// The call's span and outcome, when it is observed.
    trace: Option<Box<CallTrace>>,
    _held: Held,
    _item: PhantomData<fn() -> T>,
}

/// Which call on which connection a stream reads.
enum Link {
    /// Opened on a connection.
    Bound {
        id: u64,
        events: Events,
        control: mpsc::UnboundedSender<Control>,
    },
    /// Waiting for a reconnecting client's connection, on which it then
    /// opens the call.
    Binding(Pin<Box<dyn Future<Output = Result<Bound, Error>> + Send>>),
}

/// A call opened on a connection: what a stream needs to read it.
pub(crate) struct Bound {
    pub(crate) id: u64,
    pub(crate) events: Events,
    pub(crate) control: mpsc::UnboundedSender<Control>,
    pub(crate) window: Window,
    pub(crate) held: Held,
}

/// What a stream keeps alive while it lives: the pump of its items, and
/// its count in a group member's calls in flight.
#[derive(Default)]
pub(crate) struct Held {
    pub(crate) _pump: Option<PumpGuard>,
    pub(crate) _load: Option<Load<'static>>,
}

impl Bound {
    /// The stream counted in a group member's calls in flight while it
    /// lives.
    pub(crate) fn counted(mut self, load: Option<Load<'static>>) -> Self {
        self.held._load = load;
        self
    }

    fn split(self) -> (Link, Window, Held) {
        let link = Link::Bound {
            id: self.id,
            events: self.events,
            control: self.control,
        };
        (link, self.window, self.held)
    }
}

impl<T, C> ResultStream<T, C> {
    pub(crate) fn new(bound: Bound, codec: C, timeout: Option<Duration>) -> Self {
        let (link, window, held) = bound.split();
        let mut stream = ResultStream::unbound(link, codec, timeout);
        stream.set_window(window);
        stream._held = held;
        stream
    }

    /// A stream whose call is opened once `binding` has a connection for
    /// it; `timeout` runs from now.
    pub(crate) fn binding(
        binding: impl Future<Output = Result<Bound, Error>> + Send + 'static,
        codec: C,
        timeout: Option<Duration>,
    ) -> Self {
        ResultStream::unbound(Link::Binding(Box::pin(binding)), codec, timeout)
    }

    fn unbound(link: Link, codec: C, timeout: Option<Duration>) -> Self {
        ResultStream {
            link,
            run: None,
            ready: Vec::new().into_iter(),
            codec,
            window: 1,
            min_window: 1,
            max_window: 1,
            batch: 1,
            until_credit: 1,
            consumed_bytes: 0,
            deadline: timeout.map(|t| Box::pin(tokio::time::sleep(t))),
            done: false,
            trace: None,
            _held: Held::default(),
            _item: PhantomData,
        }
    }

    /// The stream, its call observed through `trace` until it ends.
    pub(crate) fn observed(mut self, trace: CallTrace) -> Self {
        self.trace = Some(Box::new(trace));
        self
    }

    /// The stream is over: nothing more is yielded, and an observed call
    /// reports how it ended.
    fn end(&mut self, outcome: Outcome) {
        self.done = true;
        self.run = None;
        self.report_received();
        if let Some(trace) = &mut self.trace {
            trace.finish(outcome);
        }
    }

    /// Counts the items consumed since the last credit in an observed
    /// call's size: once per batch, and at the end, not per item.
    fn report_received(&mut self) {
        if let Some(trace) = &mut self.trace {
            let items = self.batch - self.until_credit;
            trace.received_items(items as usize, self.consumed_bytes);
        }
    }

    fn bind(&mut self, bound: Bound) {
        let (link, window, held) = bound.split();
        self.link = link;
        self.set_window(window);
        self._held = held;
    }

    fn set_window(&mut self, window: Window) {
        self.window = window.initial;
        self.min_window = window.initial;
        self.max_window = window.max.max(window.initial);
        self.batch = (window.initial / 4).max(1);
        self.until_credit = self.batch;
    }

    /// Whether the deadline has passed (arming its timer if not).
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline
            .as_mut()
            .is_some_and(|d| d.as_mut().poll(cx).is_ready())
    }
}

impl<T: DeserializeOwned, C: Codec> ResultStream<T, C> {
    /// The next result, or `None` once the stream has ended.
    ///
    /// The same as `StreamExt::next`, without the layers of generic
    /// polling in between: the common case, a result already received,
    /// inlines into the caller's loop. On a `ResultStream` (or a `&mut`
    /// one) it shadows the trait's method, so `stream.next().await` needs
    /// no trait in scope and picks this one when the trait is; code that
    /// imported `StreamExt` only for `next` can drop the import.
    ///
    /// ```no_run
    /// # async fn demo(mut items: cmdstream::ResultStream<u64, cmdstream::codec::Bincode>) -> Result<(), cmdstream::Error> {
    /// while let Some(item) = items.next().await {
    ///     println!("{}", item?);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    // An async `next`, as streams have it; not an iterator's.
    #[allow(clippy::should_implement_trait)]
    #[inline]
    pub fn next(&mut self) -> NextResult<'_, T, C> {
        NextResult { stream: self }
    }
}

/// The future of [`ResultStream::next`].
#[must_use = "futures do nothing unless polled"]
pub struct NextResult<'a, T, C> {
    stream: &'a mut ResultStream<T, C>,
}

impl<T: DeserializeOwned, C: Codec> Future for NextResult<'_, T, C> {
    type Output = Option<Result<T, Error>>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut *self.stream).poll_next(cx)
    }
}

impl<T: DeserializeOwned, C: Codec> Stream for ResultStream<T, C> {
    type Item = Result<T, Error>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // The common case, kept small: the next result of the run being
        // walked. A run is only held while the stream is not done.
        let Some(body) = this.run.as_mut().and_then(Results::next_body) else {
            return this.poll_refill(cx);
        };
        let len = body.len();
        let item = this.codec.decode(body);
        this.consumed(len);
        Poll::Ready(Some(item.map_err(Error::from)))
    }
}

impl<T: DeserializeOwned, C: Codec> ResultStream<T, C> {
    /// The next item when the run being walked has none left: the rest of
    /// the last batch, then the next event, or how the call ended.
    #[inline(never)]
    fn poll_refill(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Link::Binding(binding) = &mut self.link {
            match binding.as_mut().poll(cx) {
                Poll::Ready(Ok(bound)) => self.bind(bound),
                Poll::Ready(Err(e)) => {
                    self.end(Outcome::of_error(&e));
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Pending if self.timed_out(cx) => {
                    // Nothing was sent: nothing to cancel.
                    self.end(Outcome::Timeout);
                    return Poll::Ready(Some(Err(Error::Timeout)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        let (item, len) = loop {
            if let Some(run) = &mut self.run {
                if let Some(body) = run.next_body() {
                    break (self.codec.decode(body), body.len());
                }
                self.run = None;
            }
            match self.ready.next() {
                Some(Chunk::One(body)) => break (self.codec.decode(&body), body.len()),
                Some(Chunk::Run(run)) => {
                    self.run = Some(run);
                    continue;
                }
                None => {}
            }
            // Nothing left to yield: the deadline is looked at (and its
            // timer armed) each time the stream is about to wait.
            if self.timed_out(cx) {
                self.end(Outcome::Timeout);
                if let Link::Bound { id, .. } = self.link {
                    self.send(Control::Cancel(id));
                }
                return Poll::Ready(Some(Err(Error::Timeout)));
            }
            let Link::Bound { events, .. } = &mut self.link else {
                unreachable!("bound above")
            };
            match std::task::ready!(events.poll_recv(cx)) {
                Some(Event::Items(items)) => self.ready = items.into_iter(),
                Some(Event::End) => {
                    self.end(Outcome::Ok);
                    return Poll::Ready(None);
                }
                Some(Event::Failed(e)) => {
                    self.end(Outcome::of_error(&e));
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    // The driver went without a word (its runtime shut
                    // down, say): the call was sent, for all we know.
                    self.end(Outcome::ConnectionLost);
                    let lost = Error::ConnectionLost {
                        reason: "the connection closed".into(),
                        sent: true,
                    };
                    return Poll::Ready(Some(Err(lost)));
                }
            }
        };
        self.consumed(len);
        Poll::Ready(Some(item.map_err(Error::from)))
    }
}

impl<T, C> ResultStream<T, C> {
    /// Counts an item of `len` bytes as consumed, returning credit once a
    /// batch is: a count down and a sum per item, all else per batch.
    #[inline]
    fn consumed(&mut self, len: usize) {
        self.consumed_bytes += len;
        self.until_credit -= 1;
        if self.until_credit == 0 {
            self.return_credit();
        }
    }

    /// Returns the credit for the batch just consumed.
    #[cold]
    fn return_credit(&mut self) {
        self.report_received();
        let credit = self.resize();
        if let Link::Bound { id, .. } = self.link {
            if credit > 0 {
                self.send(Control::Credit(id, credit));
            }
        }
        self.until_credit = self.batch;
        self.consumed_bytes = 0;
    }

    /// Tells the driver of the stream's connection.
    fn send(&self, msg: Control) {
        if let Link::Bound { control, .. } = &self.link {
            let _ = control.send(msg);
        }
    }

    /// Moves the window toward [`GROWN_WINDOW_BYTES`] of items the size of
    /// those just consumed, between `min_window` and `max_window`, and
    /// returns the credit to grant for the batch consumed: more than it to
    /// grow the window, less to shrink it (a grant cannot be taken back, so
    /// a window shrinks only by withholding credit for consumed items).
    fn resize(&mut self) -> u32 {
        let consumed = self.batch;
        if self.min_window == self.max_window {
            return consumed;
        }
        let average = (self.consumed_bytes / consumed as usize + ITEM_OVERHEAD).max(1);
        let wanted = (GROWN_WINDOW_BYTES / average)
            .clamp(self.min_window as usize, self.max_window as usize) as u32;
        let credit = if wanted >= self.window {
            let growth = wanted - self.window;
            self.window = wanted;
            consumed + growth
        } else {
            let shrink = (self.window - wanted).min(consumed);
            self.window -= shrink;
            consumed - shrink
        };
        self.batch = (self.window / 4).max(1);
        credit
    }
}

// Nothing in a ResultStream is pinned structurally.
impl<T, C> Unpin for ResultStream<T, C> {}

impl<T, C> Drop for ResultStream<T, C> {
    fn drop(&mut self) {
        if let (false, Link::Bound { id, .. }) = (self.done, &self.link) {
            self.send(Control::Cancel(*id));
            self.report_received();
        }
    }
}

impl<T, C> std::fmt::Debug for ResultStream<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = match &self.link {
            Link::Bound { id, .. } => Some(*id),
            Link::Binding(_) => None,
        };
        f.debug_struct("ResultStream")
            .field("id", &id)
            .field("done", &self.done)
            .finish()
    }
}

impl<T, C> std::fmt::Debug for NextResult<'_, T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("NextResult").field(&self.stream).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::pin::Pin;

    use super::*;
    use crate::codec::Bincode;

    /// A stream fed `items` results of `size` bytes each, with window
    /// `window` (growing to `max`); returns the credits it returned after
    /// consuming them all.
    async fn credits(window: u32, max: u32, items: usize, size: usize) -> Vec<u32> {
        let (tx, events) = mpsc::unbounded_channel();
        let (control, mut sent) = mpsc::unbounded_channel();
        let bound = Bound {
            id: 1,
            events,
            control,
            window: Window {
                initial: window,
                max,
            },
            held: Held::default(),
        };
        let mut stream: ResultStream<Vec<u8>, Bincode> = ResultStream::new(bound, Bincode, None);
        let mut item = bytes::BytesMut::new();
        Bincode.encode(&vec![7u8; size], &mut item).unwrap();
        let item = item.freeze();
        for _ in 0..items {
            tx.send(Event::Items(vec![Chunk::One(item.clone())]))
                .unwrap();
            poll_fn(|cx| Pin::new(&mut stream).poll_next(cx))
                .await
                .unwrap()
                .unwrap();
        }
        let mut out = Vec::new();
        while let Ok(Control::Credit(1, n)) = sent.try_recv() {
            out.push(n);
        }
        out
    }

    #[tokio::test]
    async fn a_stream_whose_driver_vanished_says_the_call_may_have_run() {
        let (tx, events) = mpsc::unbounded_channel();
        let (control, _sent) = mpsc::unbounded_channel();
        let window = Window { initial: 4, max: 4 };
        let mut stream: ResultStream<u8, Bincode> = ResultStream::new(
            Bound {
                id: 1,
                events,
                control,
                window,
                held: Held::default(),
            },
            Bincode,
            None,
        );
        drop(tx);
        let end = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await;
        assert!(
            matches!(end, Some(Err(Error::ConnectionLost { sent: true, .. }))),
            "{end:?}"
        );
    }

    #[tokio::test]
    async fn small_items_grow_the_window_up_to_its_cap() {
        // Batches of 2 at first: the first grant returns those 2 and adds
        // 56, growing the window from 8 to its cap of 64; batches are then
        // 16, and nothing more is added.
        assert_eq!(credits(8, 64, 2 + 16 * 3, 8).await, [58, 16, 16, 16]);
    }

    #[tokio::test]
    async fn large_items_keep_the_window() {
        // 64 KiB items: 128 KiB of waiting results is fewer than the window.
        assert_eq!(credits(8, 4096, 8, 64 * 1024).await, [2, 2, 2, 2]);
    }

    #[tokio::test]
    async fn a_grown_window_shrinks_when_items_get_large() {
        let (tx, events) = mpsc::unbounded_channel();
        let (control, mut sent) = mpsc::unbounded_channel();
        let bound = Bound {
            id: 1,
            events,
            control,
            window: Window {
                initial: 8,
                max: 64,
            },
            held: Held::default(),
        };
        let mut stream: ResultStream<Vec<u8>, Bincode> = ResultStream::new(bound, Bincode, None);
        async fn next(
            tx: &mpsc::UnboundedSender<Event>,
            stream: &mut ResultStream<Vec<u8>, Bincode>,
            size: usize,
        ) {
            let mut item = bytes::BytesMut::new();
            Bincode.encode(&vec![7u8; size], &mut item).unwrap();
            tx.send(Event::Items(vec![Chunk::One(item.freeze())]))
                .unwrap();
            poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx))
                .await
                .unwrap()
                .unwrap();
        }
        // Small items grow the window to 64 (2 consumed + 56 more)...
        for _ in 0..2 {
            next(&tx, &mut stream, 8).await;
        }
        // ...then items of 32 KiB want a window of 1, floored at 8: the
        // batches (16, 12, 9, 6, 5, 4, 3 items) return nothing while the
        // window shrinks back, the next returns 1 of its 2, and from then on
        // each batch of 2 returns 2.
        for _ in 0..60 {
            next(&tx, &mut stream, 32 * 1024).await;
        }
        let mut got = Vec::new();
        while let Ok(Control::Credit(1, n)) = sent.try_recv() {
            got.push(n);
        }
        assert_eq!(got, [58, 1, 2]);
        assert_eq!(stream.window, 8);
    }

    #[tokio::test]
    async fn an_observed_stream_counts_every_frame_it_received() {
        use crate::service::{CommandInfo, CommandKind};
        use crate::wire::frame::{HEADER_SIZE, LEN_SIZE};
        static COUNT: CommandInfo = CommandInfo::new(1, "count", CommandKind::ServerStream, 0);
        // Batches of 2: 5 items end the call in the middle of a batch.
        let (tx, events) = mpsc::unbounded_channel();
        let (control, _sent) = mpsc::unbounded_channel();
        let bound = Bound {
            id: 1,
            events,
            control,
            window: Window { initial: 8, max: 8 },
            held: Held::default(),
        };
        let trace = CallTrace::client(&COUNT, "bincode");
        let mut stream: ResultStream<Vec<u8>, Bincode> =
            ResultStream::new(bound, Bincode, None).observed(trace);
        let mut body = bytes::BytesMut::new();
        Bincode.encode(&vec![7u8; 20], &mut body).unwrap();
        let body = body.freeze();
        for _ in 0..5 {
            tx.send(Event::Items(vec![Chunk::One(body.clone())]))
                .unwrap();
            let next = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await;
            assert!(matches!(next, Some(Ok(_))), "{next:?}");
        }
        tx.send(Event::End).unwrap();
        let end = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await;
        assert!(end.is_none(), "{end:?}");
        let frame = (LEN_SIZE + HEADER_SIZE + body.len()) as u64;
        assert_eq!(stream.trace.as_ref().unwrap().bytes_in(), 5 * frame);
    }

    #[tokio::test]
    async fn a_fixed_window_never_grows() {
        assert_eq!(credits(8, 8, 6, 1).await, [2, 2, 2]);
    }
}
