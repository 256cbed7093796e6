//! The stream of client-streamed arguments, as a command consumes it.

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::outbox::{CallRef, Out, Outbox};
use crate::codec::{Codec, CodecError};

/// The items a client streams to a command, decoded as they are taken.
///
/// Ends when the client ends its stream. An item that does not decode ends
/// the stream early, and the call then fails with a bad-payload error
/// whatever the command returns. Credit goes back to the client as items are
/// taken, so a slow command holds at most one window of items in memory.
pub struct ArgStream<T, C> {
    call: CallRef,
    items: mpsc::UnboundedReceiver<Bytes>,
    outbox: Outbox,
    codec: C,
    batch: u32,
    consumed: u32,
    error: Arc<OnceLock<CodecError>>,
    done: bool,
    _item: PhantomData<fn() -> T>,
}

impl<T, C> ArgStream<T, C> {
    pub(crate) fn new(
        call: CallRef,
        items: mpsc::UnboundedReceiver<Bytes>,
        outbox: Outbox,
        codec: C,
        window: u32,
        error: Arc<OnceLock<CodecError>>,
    ) -> Self {
        ArgStream {
            call,
            items,
            outbox,
            codec,
            batch: (window / 4).max(1),
            consumed: 0,
            error,
            done: false,
            _item: PhantomData,
        }
    }
}

impl<T: DeserializeOwned, C: Codec> Stream for ArgStream<T, C> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let Some(bytes) = std::task::ready!(this.items.poll_recv(cx)) else {
            this.done = true;
            return Poll::Ready(None);
        };
        this.consumed += 1;
        if this.consumed >= this.batch {
            this.outbox.send(Out::ArgCredit {
                call: this.call,
                n: this.consumed,
            });
            this.consumed = 0;
        }
        match this.codec.decode(&bytes) {
            Ok(item) => Poll::Ready(Some(item)),
            Err(e) => {
                let _ = this.error.set(e);
                this.done = true;
                Poll::Ready(None)
            }
        }
    }
}

// Nothing in an ArgStream is pinned structurally.
impl<T, C> Unpin for ArgStream<T, C> {}

impl<T, C> std::fmt::Debug for ArgStream<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArgStream")
            .field("id", &self.call.id)
            .field("done", &self.done)
            .finish()
    }
}
