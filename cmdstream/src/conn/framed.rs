//! One socket, one read buffer, one write buffer.
//!
//! The read side fills a large buffer with whatever the socket has and cuts
//! as many frames out of it as it holds; each frame's body shares the
//! buffer's memory. The write side collects every queued frame in one buffer
//! and hands it to the socket in as few writes as it will take.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Decoder;

use crate::wire::frame::{Frame, FrameDecoder, FrameError};
use crate::wire::results::Incoming;

/// How much the read buffer grows by when it runs low.
const READ_CHUNK: usize = 64 * 1024;
/// Below this much free space the read buffer is grown before reading.
const READ_MIN_FREE: usize = 4 * 1024;

pub(crate) struct FramedIo<IO> {
    io: IO,
    rbuf: BytesMut,
    wbuf: BytesMut,
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
            decoder: FrameDecoder::new(max_frame),
        }
    }

    /// Reads once from the socket. `Ready(Ok(false))` means the peer closed
    /// its side.
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
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
        Poll::Ready(Ok(n > 0))
    }

    /// The next whole frame in the read buffer, if there is one.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        self.decoder.decode(&mut self.rbuf)
    }

    /// The next whole frame in the read buffer, or the run of RESULT frames
    /// of one call that starts there.
    pub(crate) fn next_incoming(&mut self) -> Result<Option<Incoming>, FrameError> {
        self.decoder.decode_incoming(&mut self.rbuf)
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

    /// Writes every queued byte, then flushes. Pending while the socket is
    /// full; whatever was written stays written.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.wbuf.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.wbuf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wbuf.advance(n);
        }
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    /// Shuts the write side down, after flushing what is queued.
    pub(crate) fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_flush(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
