//! One socket, one read buffer, one write buffer.
//!
//! The read side fills a large buffer with whatever the socket has and cuts
//! as many frames out of it as it holds; each frame's body shares the
//! buffer's memory. The write side collects every queued frame in one buffer
//! and hands it to the socket in as few writes as it will take.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Decoder;

use crate::wire::frame::{Frame, FrameDecoder, FrameError};
use crate::wire::results::Incoming;

/// How much the read buffer grows by when it runs low.
const READ_CHUNK: usize = 64 * 1024;
/// Below this much free space the read buffer is grown before reading.
const READ_MIN_FREE: usize = 4 * 1024;
/// A run of stream results (or a streamed item) smaller than this is copied
/// out of the read buffer. A stream's results may wait long for a slow
/// consumer, and a small run must not keep a whole buffer alive meanwhile:
/// a stalled stream whose results each came mixed into other traffic would
/// otherwise hold a buffer per result. Larger runs keep at most a few
/// times their size.
const DETACH_BELOW: usize = READ_CHUNK / 8;

/// `body`, copied out of the read buffer if it is small (see
/// [`DETACH_BELOW`]): for a frame body that may wait long, such as a
/// streamed item its command has not taken yet.
pub(crate) fn detached(body: Bytes) -> Bytes {
    if body.len() < DETACH_BELOW {
        Bytes::copy_from_slice(&body)
    } else {
        body
    }
}

pub(crate) struct FramedIo<IO> {
    io: IO,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Bytes the socket has taken, in all.
    written: u64,
    /// The socket took bytes it has not flushed yet. A TLS stream holds
    /// its records until flushed, so a flush that was pending must be
    /// retried even when nothing new is queued.
    unflushed: bool,
    decoder: FrameDecoder,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> FramedIo<IO> {
    /// Frames larger than `max_frame` (as the length prefix counts them) are
    /// refused on read.
    pub(crate) fn new(io: IO, max_frame: usize) -> Self {
        FramedIo {
            io,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(READ_CHUNK),
            written: 0,
            unflushed: false,
            decoder: FrameDecoder::new(max_frame),
        }
    }

    /// Reads once from the socket; how many bytes arrived. `Ready(Ok(0))`
    /// means the peer closed its side.
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_MIN_FREE {
            // Grow by what has actually arrived (at least a chunk): a large
            // frame costs a logarithmic number of copies, and memory stays
            // within twice what the peer really sent.
            self.rbuf.reserve(READ_CHUNK.max(self.rbuf.len()));
        }
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.rbuf
        ))?;
        Poll::Ready(Ok(n))
    }

    /// Reads once into the read buffer's free space, without growing it;
    /// `false` when nothing arrived (or there is no room). For a look at
    /// whether the peer spoke while frames are not being taken: what it
    /// reads stays bounded by the buffer as it is.
    pub(crate) fn poll_fill_within(&mut self, cx: &mut Context<'_>) -> bool {
        if self.rbuf.capacity() == self.rbuf.len() {
            return false;
        }
        matches!(
            tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf),
            Poll::Ready(Ok(n)) if n > 0
        )
    }

    /// The next whole frame in the read buffer, if there is one.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        self.decoder.decode(&mut self.rbuf)
    }

    /// The next whole frame in the read buffer, or the run of RESULT frames
    /// of one call that starts there.
    #[inline]
    pub(crate) fn next_incoming(&mut self) -> Result<Option<Incoming>, FrameError> {
        let mut incoming = self.decoder.decode_incoming(&mut self.rbuf)?;
        if let Some(Incoming::Results(run)) = &mut incoming {
            if run.size() < DETACH_BELOW {
                run.detach();
            }
        }
        Ok(incoming)
    }

    /// Bytes read but not yet cut into frames (a truncated frame at EOF).
    pub(crate) fn has_partial_frame(&self) -> bool {
        !self.rbuf.is_empty()
    }

    /// The buffer frames are queued in before [`poll_flush`](Self::poll_flush).
    pub(crate) fn wbuf(&mut self) -> &mut BytesMut {
        &mut self.wbuf
    }

    /// Bytes queued but not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.wbuf.len()
    }

    /// Whether [`poll_flush`](Self::poll_flush) has anything to do: bytes
    /// queued, or written but not flushed.
    pub(crate) fn has_output(&self) -> bool {
        !self.wbuf.is_empty() || self.unflushed
    }

    /// Bytes the socket has taken since the connection began.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Writes every queued byte, then flushes. Pending while the socket is
    /// full; whatever was written stays written.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.wbuf.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.wbuf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wbuf.advance(n);
            self.written += n as u64;
            self.unflushed = true;
        }
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        self.unflushed = false;
        Poll::Ready(Ok(()))
    }

    /// Shuts the write side down, after flushing what is queued.
    pub(crate) fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_flush(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{put, Kind};

    fn run(incoming: Option<Incoming>) -> crate::wire::results::Results {
        match incoming {
            Some(Incoming::Results(r)) => r,
            other => panic!("expected results, got {other:?}"),
        }
    }

    #[test]
    fn small_runs_are_copied_out_of_the_read_buffer_large_ones_are_not() {
        let (io, _peer) = tokio::io::duplex(64);
        let mut framed = FramedIo::new(io, 1 << 20);
        put(&mut framed.rbuf, Kind::Result, 1, b"small");
        put(&mut framed.rbuf, Kind::Result, 1, b"run");
        for _ in 0..DETACH_BELOW / 64 + 1 {
            put(&mut framed.rbuf, Kind::Result, 2, &[7; 64]);
        }
        let start = framed.rbuf.as_ptr() as usize;
        let end = start + framed.rbuf.capacity();
        let inside = |bytes: &bytes::Bytes| (start..end).contains(&(bytes.as_ptr() as usize));

        let small = run(framed.next_incoming().unwrap());
        assert_eq!((small.id(), small.count()), (1, 2));
        let large = run(framed.next_incoming().unwrap());
        assert_eq!(large.id(), 2);
        assert!(large.size() >= DETACH_BELOW);
        assert!(
            !inside(small.frames()),
            "a small run keeps the read buffer alive"
        );
        assert!(inside(large.frames()), "a large run was copied");
    }
}
