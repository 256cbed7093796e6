//! What both connection drivers do with their socket: read frames, keep the
//! peer alive, and write queued frames in as few writes as possible.

use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};

use super::framed::FramedIo;
use super::keepalive::{Keepalive, Tick};
use super::write_policy::WritePolicy;
use crate::error::Error;
use crate::wire::frame::{self, Frame, Kind};
use crate::wire::results::Incoming;

/// Stop taking new work (calls on the client, frames from command tasks
/// on the server) while this much waits to be written: a peer that does
/// not read must not make the write buffer grow without bound.
pub(crate) const HIGH_WATER: usize = 1 << 20;

/// What a write attempt did.
pub(crate) enum Written {
    /// Nothing was queued.
    Nothing,
    /// Everything queued went to the socket.
    All,
    /// The socket is full; the driver is woken when it drains.
    Blocked,
    /// More frames are expected in a moment: the driver should wake itself
    /// and return, so the tasks about to queue them run first.
    Yield,
}

/// Which end of the connection a driver is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

impl Side {
    /// The other end, as error messages name it.
    fn peer(self) -> &'static str {
        match self {
            Side::Client => "server",
            Side::Server => "client",
        }
    }
}

pub(crate) struct Link<IO> {
    io: FramedIo<IO>,
    keepalive: Keepalive,
    policy: WritePolicy,
    /// The other side, for error messages.
    peer: &'static str,
    pings: u64,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Link<IO> {
    pub(crate) fn new(io: FramedIo<IO>, keepalive: Option<Duration>, side: Side) -> Self {
        let peer = side.peer();
        Link {
            io,
            keepalive: Keepalive::new(keepalive),
            policy: WritePolicy::default(),
            peer,
            pings: 0,
        }
    }

    /// Reads once. `Ready(Ok(true))`: bytes arrived, take frames with
    /// [`next_frame`](Self::next_frame). `Ready(Ok(false))`: the peer closed
    /// its side cleanly, between frames.
    ///
    /// # Errors
    ///
    /// `ConnectionLost` when reading fails or the peer closed mid-frame.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, Error>> {
        match self.io.poll_fill(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(true)) => {
                // Any bytes are a sign of life; one clock read per read.
                self.keepalive.heard();
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Ok(false)) if self.io.has_partial_frame() => {
                Poll::Ready(Err(Error::connection_lost(format!(
                    "the {} closed the connection in the middle of a frame",
                    self.peer
                ))))
            }
            Poll::Ready(Ok(false)) => Poll::Ready(Ok(false)),
            Poll::Ready(Err(e)) => {
                Poll::Ready(Err(Error::connection_lost(format!("read failed: {e}"))))
            }
        }
    }

    /// The next whole frame read, if any.
    ///
    /// # Errors
    ///
    /// `Protocol` when the bytes are not a valid frame.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, Error> {
        Ok(self.io.next_frame()?)
    }

    /// [`next_frame`](Self::next_frame), but a RESULT frame comes with the
    /// RESULT frames of the same call that follow it.
    ///
    /// # Errors
    ///
    /// `Protocol` when the bytes are not valid frames.
    pub(crate) fn next_incoming(&mut self) -> Result<Option<Incoming>, Error> {
        Ok(self.io.next_incoming()?)
    }

    /// Runs the keepalive schedule; `Ok(true)` when it queued a ping.
    ///
    /// # Errors
    ///
    /// `ConnectionLost` when the peer stayed silent for two intervals, a
    /// ping notwithstanding.
    pub(crate) fn poll_keepalive(&mut self, cx: &mut Context<'_>) -> Result<bool, Error> {
        match self.keepalive.poll_tick(cx) {
            Poll::Pending => Ok(false),
            Poll::Ready(Tick::SendPing) => {
                self.pings += 1;
                let pings = self.pings;
                frame::put_ping(self.out(), Kind::Ping, pings);
                Ok(true)
            }
            Poll::Ready(Tick::Dead(silent)) => Err(Error::connection_lost(format!(
                "the {} sent nothing for {:.1}s, not even an answer to a ping (keepalive interval {:?})",
                self.peer,
                silent.as_secs_f64(),
                self.keepalive.interval().unwrap_or_default(),
            ))),
        }
    }

    /// Handles a PING (answered with a PONG) or a PONG (any frame already
    /// counted as a sign of life) for either driver.
    ///
    /// # Errors
    ///
    /// `Protocol` when its body is not the 8 bytes it must be.
    pub(crate) fn ping_or_pong(&mut self, frame: &Frame) -> Result<(), Error> {
        let payload = frame.ping_payload()?;
        if frame.kind == Kind::Ping {
            frame::put_ping(self.out(), Kind::Pong, payload);
        }
        Ok(())
    }

    /// The write buffer, to append exactly one frame to.
    pub(crate) fn out(&mut self) -> &mut BytesMut {
        self.policy.queued();
        self.io.wbuf()
    }

    /// Frames queued since the last write.
    pub(crate) fn frames_queued(&self) -> usize {
        self.policy.frames()
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.io.queued()
    }

    /// Whether more than [`HIGH_WATER`] waits to be written.
    pub(crate) fn backed_up(&self) -> bool {
        self.io.queued() >= HIGH_WATER
    }

    /// Bytes the socket has taken since the connection began.
    pub(crate) fn written(&self) -> u64 {
        self.io.written()
    }

    /// Where the next byte queued goes in the stream to the peer: a frame
    /// queued now has reached the socket (in part at least) once
    /// [`written`](Self::written) is past this.
    pub(crate) fn offset(&self) -> u64 {
        self.io.written() + self.io.queued() as u64
    }

    /// Writes what is queued, unless fewer frames are queued than
    /// `expected` soon, in which case it asks the driver to yield once.
    ///
    /// # Errors
    ///
    /// `ConnectionLost` when writing fails.
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        expected: usize,
    ) -> Result<Written, Error> {
        if self.io.queued() == 0 {
            return Ok(Written::Nothing);
        }
        if self.policy.should_yield(expected) {
            return Ok(Written::Yield);
        }
        match self.io.poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.policy.wrote();
                Ok(Written::All)
            }
            Poll::Ready(Err(e)) => Err(Error::connection_lost(format!("write failed: {e}"))),
            Poll::Pending => Ok(Written::Blocked),
        }
    }

    /// Flushes what is queued and shuts the write side down.
    pub(crate) fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.io.poll_close(cx)
    }
}
