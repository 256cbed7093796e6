//! What callers hand the connection driver.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{oneshot, Semaphore};

use super::stream_sink::StreamSink;
use crate::conn::frame_buf::FrameBuf;
use crate::error::Error;

/// How one call's results reach its caller.
pub(crate) enum Reply {
    /// A unary or client-streaming call: one result or one error.
    Once(oneshot::Sender<Result<Bytes, Error>>),
    /// A result stream (boxed: most calls are unary, and every `Request`
    /// and in-flight entry is as large as its largest kind).
    Many(Box<StreamSink>),
}

impl Reply {
    pub(crate) fn fail(self, error: Error) {
        match self {
            Reply::Once(tx) => drop(tx.send(Err(error))),
            Reply::Many(sink) => sink.fail(error),
        }
    }

    /// Whether the caller stopped waiting (dropped its future or stream).
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Reply::Once(tx) => tx.is_closed(),
            Reply::Many(sink) => sink.is_closed(),
        }
    }
}

/// A new call: its whole COMMAND frame, already encoded by the caller.
pub(crate) struct Request {
    pub(crate) id: u64,
    pub(crate) command: u32,
    pub(crate) frame: FrameBuf,
    pub(crate) reply: Reply,
    /// Credit for the client-streamed arguments; starts empty and is filled
    /// with the server's window once the COMMAND is queued for writing, so
    /// no ITEM can overtake its COMMAND.
    pub(crate) args: Option<Arc<Semaphore>>,
}

/// Messages about calls already in flight. They have their own channel and
/// are always taken, even when the in-flight limit holds new calls back.
pub(crate) enum Control {
    /// The caller gave up: tell the server and forget the call.
    Cancel(u64),
    /// The caller consumed this many results: grant the server more credit.
    Credit(u64, u32),
    /// An ITEM or END frame of a client-streamed argument.
    Frame(u64, FrameBuf),
    /// The argument stream failed locally: cancel the call with this error.
    Abort(u64, Error),
    /// `Client::close`: take no new calls, finish those in flight, close.
    Close,
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use super::*;

    /// Every call's `Request` is moved through the channel and into the
    /// driver's batch: it stays within 88 bytes, a small COMMAND inline.
    #[test]
    fn a_request_stays_small() {
        assert!(std::mem::size_of::<Request>() <= 88);
        assert!(std::mem::size_of::<Reply>() <= 16);
    }
}
