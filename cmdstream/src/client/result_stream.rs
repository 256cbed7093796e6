//! The stream of results of a server-streaming or bidirectional call.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::arg_pump::PumpGuard;
use super::message::Control;
use crate::codec::Codec;
use crate::error::Error;

/// What the driver sends a stream: `Ok(Some)` an item, `Ok(None)` the end,
/// `Err` the failure that ends it.
pub(crate) type Events = mpsc::UnboundedReceiver<Result<Option<Bytes>, Error>>;

/// Results of a streaming call, in the order the server produced them.
///
/// Yields `Ok(item)` per result, then ends; a failure is yielded once as
/// `Err` and ends the stream. The server sends at most a window of results
/// ahead of this consumer (flow control), so a slow consumer holds bounded
/// memory and never stalls other calls on the connection.
///
/// Dropping the stream before its end cancels the call on the server.
pub struct ResultStream<T, C> {
    id: u64,
    events: Events,
    control: mpsc::UnboundedSender<Control>,
    codec: C,
    /// Credit is returned in batches of a quarter window.
    batch: u32,
    consumed: u32,
    done: bool,
    _pump: Option<PumpGuard>,
    _item: PhantomData<fn() -> T>,
}

impl<T, C> ResultStream<T, C> {
    pub(crate) fn new(
        id: u64,
        events: Events,
        control: mpsc::UnboundedSender<Control>,
        codec: C,
        window: u32,
        pump: Option<PumpGuard>,
    ) -> Self {
        ResultStream {
            id,
            events,
            control,
            codec,
            batch: (window / 4).max(1),
            consumed: 0,
            done: false,
            _pump: pump,
            _item: PhantomData,
        }
    }
}

impl<T: DeserializeOwned, C: Codec> Stream for ResultStream<T, C> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let event = match this.events.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(event) => event,
        };
        match event {
            Some(Ok(Some(bytes))) => {
                this.consumed += 1;
                if this.consumed >= this.batch {
                    let _ = this.control.send(Control::Credit(this.id, this.consumed));
                    this.consumed = 0;
                }
                Poll::Ready(Some(this.codec.decode(&bytes).map_err(Error::from)))
            }
            Some(Ok(None)) => {
                this.done = true;
                Poll::Ready(None)
            }
            Some(Err(e)) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            None => {
                this.done = true;
                Poll::Ready(Some(Err(Error::connection_lost("the connection closed"))))
            }
        }
    }
}

// Nothing in a ResultStream is pinned structurally.
impl<T, C> Unpin for ResultStream<T, C> {}

impl<T, C> Drop for ResultStream<T, C> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.control.send(Control::Cancel(self.id));
        }
    }
}

impl<T, C> std::fmt::Debug for ResultStream<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultStream")
            .field("id", &self.id)
            .field("done", &self.done)
            .finish()
    }
}
