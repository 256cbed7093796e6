//! Sends a caller's stream of arguments, item by item, as the server's
//! credit allows.

use std::sync::Arc;

use futures_core::Stream;
use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::AbortHandle;

use super::message::Control;
use super::shared::Shared;
use crate::codec::Codec;
use crate::conn::frame_buf::FrameBuf;
use crate::error::Error;
use crate::wire::frame::{self, Kind};

/// Stops the pump when the call is over from the caller's side.
pub(crate) struct PumpGuard(AbortHandle);

impl Drop for PumpGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Spawns the task that feeds `items` to call `id`.
///
/// It takes one unit of credit per item; the driver fills the credit with
/// the server's window once the COMMAND is queued, adds what CREDIT frames
/// grant, and closes it when the call ends, which stops the pump. Before
/// each item it also waits while the connection has too many streamed
/// bytes not yet written (a server that does not read).
pub(crate) fn spawn<I, S, C>(
    id: u64,
    items: S,
    credit: Arc<Semaphore>,
    control: mpsc::UnboundedSender<Control>,
    codec: C,
    shared: Arc<Shared>,
) -> PumpGuard
where
    I: Serialize + Send + 'static,
    S: Stream<Item = I> + Send + 'static,
    C: Codec,
{
    let task = tokio::spawn(async move {
        let mut items = std::pin::pin!(items);
        loop {
            let Ok(permit) = credit.acquire().await else {
                return;
            };
            permit.forget();
            shared.args_backlog.room().await;
            let Some(item) = std::future::poll_fn(|cx| items.as_mut().poll_next(cx)).await else {
                let end = FrameBuf::encode::<()>(|buf| {
                    frame::put_empty(buf, Kind::End, id);
                    Ok(())
                });
                if let Ok(end) = end {
                    // Every frame handed to the driver is charged: it
                    // releases what it writes.
                    shared.args_backlog.charge(end.len());
                    let _ = control.send(Control::Frame(id, end));
                }
                return;
            };
            match encode_item(id, &item, &codec, shared.settled.server_max_frame) {
                Ok(bytes) => {
                    shared.args_backlog.charge(bytes.len());
                    if control.send(Control::Frame(id, bytes)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = control.send(Control::Abort(id, e));
                    return;
                }
            }
        }
    });
    PumpGuard(task.abort_handle())
}

fn encode_item<I: Serialize, C: Codec>(
    id: u64,
    item: &I,
    codec: &C,
    max: usize,
) -> Result<FrameBuf, Error> {
    let frame = FrameBuf::encode(|buf| {
        let start = frame::begin(buf, Kind::Item, id);
        codec.encode(item, buf)?;
        frame::finish(buf, start);
        Ok::<_, Error>(())
    })?;
    let len = frame.len() - frame::LEN_SIZE;
    if len > max {
        return Err(Error::FrameTooLarge { size: len, max });
    }
    Ok(frame)
}

/// The items of a call that streams none: a stream that never yields.
pub(crate) enum NoItems {}

impl Stream for NoItems {
    type Item = ();

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<()>> {
        match *self {}
    }
}
