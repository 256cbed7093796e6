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
pub(crate) use crate::side::Side;
use crate::telemetry::metrics::{self, OpenConnection};
use crate::wire::frame::{self, Frame, Kind};
use crate::wire::results::Incoming;

/// Stop taking new work (calls on the client, frames from command tasks
/// on the server) while this much waits to be written: a peer that does
/// not read must not make the write buffer grow without bound.
pub(crate) const HIGH_WATER: usize = 1 << 20;

/// The longest a driver spends closing its connection politely.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(5);

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

pub(crate) struct Link<IO> {
    io: FramedIo<IO>,
    keepalive: Keepalive,
    policy: WritePolicy,
    /// The other side, for error messages.
    peer: &'static str,
    pings: u64,
    /// The last write found the socket full.
    blocked: bool,
    side: Side,
    /// Counted in the open connections while the link lives.
    _open: OpenConnection,
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
            blocked: false,
            side,
            _open: OpenConnection::new(side),
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
            Poll::Ready(Ok(n)) if n > 0 => {
                // Any bytes are a sign of life; one clock read per read.
                self.keepalive.heard();
                metrics::read(self.side, n);
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Ok(_)) if self.io.has_partial_frame() => {
                Poll::Ready(Err(Error::connection_lost(format!(
                    "the {} closed the connection in the middle of a frame",
                    self.peer
                ))))
            }
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(false)),
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
    #[inline]
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
            Poll::Ready(Tick::Dead(silent)) => {
                // A driver that stopped reading (its peer's answers pile up
                // unwritten) may have the peer's answer waiting unread.
                if self.io.poll_fill_within(cx) {
                    self.keepalive.heard();
                    return Ok(false);
                }
                metrics::keepalive_failed(self.side);
                Err(Error::connection_lost(format!(
                    "the {} sent nothing for {:.1}s, not even an answer to a ping (keepalive interval {:?})",
                    self.peer,
                    silent.as_secs_f64(),
                    self.keepalive.interval().unwrap_or_default(),
                )))
            }
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
        self.out_frames(1)
    }

    /// [`out`](Self::out), to put `frames` frames (or answers) in at once.
    pub(crate) fn out_frames(&mut self, frames: usize) -> &mut BytesMut {
        self.policy.queued(frames);
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

    /// Writes what is queued and flushes it, unless fewer frames are queued
    /// than `expected` soon, in which case it asks the driver to yield
    /// once. A flush left pending by an earlier write is retried.
    ///
    /// # Errors
    ///
    /// `ConnectionLost` when writing fails.
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        expected: usize,
    ) -> Result<Written, Error> {
        if !self.io.has_output() {
            return Ok(Written::Nothing);
        }
        // Only a flush left to retry: nothing to coalesce.
        if self.io.queued() > 0 && self.policy.should_yield(expected) {
            return Ok(Written::Yield);
        }
        let before = self.io.written();
        let flushed = self.io.poll_flush(cx);
        if self.blocked && self.io.written() != before {
            // The socket was full and took bytes again: the peer reads what
            // we send, so it is alive, though it may be too busy reading to
            // answer a ping queued behind it. (Bytes taken into a socket
            // with room prove nothing.)
            self.keepalive.heard();
        }
        self.blocked = flushed.is_pending();
        let took = self.io.written() - before;
        match flushed {
            Poll::Ready(Ok(())) => {
                metrics::written(self.side, took, Some(self.policy.frames()));
                self.policy.wrote();
                Ok(Written::All)
            }
            Poll::Ready(Err(e)) => Err(Error::connection_lost(format!("write failed: {e}"))),
            Poll::Pending => {
                metrics::written(self.side, took, None);
                Ok(Written::Blocked)
            }
        }
    }

    /// Flushes what is queued and shuts the write side down, giving up
    /// after [`CLOSE_WAIT`]: a TLS stream still holds records to flush and
    /// its close notification to send, which a peer that stopped reading
    /// would never let through.
    pub(crate) async fn close(&mut self) {
        let close = std::future::poll_fn(|cx| self.io.poll_close(cx));
        let _ = tokio::time::timeout(CLOSE_WAIT, close).await;
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::io;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::Waker;

    use super::*;

    /// What a TLS stream does with what it is given: takes it at once and
    /// holds it until a flush gets it to the socket, which is full until
    /// the test says otherwise.
    #[derive(Default)]
    struct Held {
        taken: Vec<u8>,
        delivered: Vec<u8>,
        socket_full: bool,
        waker: Option<Waker>,
    }

    #[derive(Clone, Default)]
    struct HoldingWriter(Arc<Mutex<Held>>);

    impl AsyncRead for HoldingWriter {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for HoldingWriter {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.lock().unwrap().taken.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let mut held = self.0.lock().unwrap();
            if held.socket_full {
                held.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let taken = std::mem::take(&mut held.taken);
            held.delivered.extend(taken);
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.poll_flush(cx)
        }
    }

    #[test]
    fn a_pending_flush_is_retried_with_nothing_new_queued() {
        let writer = HoldingWriter::default();
        writer.0.lock().unwrap().socket_full = true;
        let mut link = Link::new(FramedIo::new(writer.clone(), 1 << 20), None, Side::Server);
        let mut cx = Context::from_waker(Waker::noop());

        frame::put_ping(link.out(), Kind::Ping, 7);
        assert!(matches!(link.poll_write(&mut cx, 0), Ok(Written::Blocked)));
        assert!(writer.0.lock().unwrap().delivered.is_empty());

        // The socket drains and the driver is woken: it must flush what
        // the stream holds, though its own buffer is empty.
        let waker = {
            let mut held = writer.0.lock().unwrap();
            held.socket_full = false;
            held.waker.take()
        };
        assert!(waker.is_some(), "the pending flush registered no waker");
        assert!(matches!(link.poll_write(&mut cx, 0), Ok(Written::All)));
        assert!(!writer.0.lock().unwrap().delivered.is_empty());
        assert!(matches!(link.poll_write(&mut cx, 0), Ok(Written::Nothing)));
    }

    #[tokio::test(start_paused = true)]
    async fn closing_gives_up_on_a_peer_that_never_lets_a_flush_through() {
        let writer = HoldingWriter::default();
        writer.0.lock().unwrap().socket_full = true;
        let mut link = Link::new(FramedIo::new(writer.clone(), 1 << 20), None, Side::Client);
        frame::put_ping(link.out(), Kind::Ping, 1);
        tokio::time::timeout(CLOSE_WAIT * 2, link.close())
            .await
            .expect("closing waited on the peer for good");
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_whose_answer_waits_unread_is_not_given_up() {
        use tokio::io::AsyncWriteExt;

        let (ours, mut theirs) = tokio::io::duplex(1024);
        let interval = Duration::from_secs(1);
        let mut link = Link::new(FramedIo::new(ours, 1 << 20), Some(interval), Side::Server);
        // The peer answered, but the driver is not taking frames (its
        // writes are backed up, say).
        theirs.write_all(&[0; 16]).await.unwrap();
        let verdict = poll_fn(|cx| match link.poll_keepalive(cx) {
            Err(e) => Poll::Ready(e),
            Ok(_) => Poll::Pending,
        });
        let started = tokio::time::Instant::now();
        let dead = tokio::time::timeout(interval * 10, verdict).await;
        let dead = dead.expect("a silent peer was never given up");
        // Given up two intervals after the bytes were found, not after the
        // connection began.
        assert!(started.elapsed() >= interval * 4, "{dead}");
    }
}
