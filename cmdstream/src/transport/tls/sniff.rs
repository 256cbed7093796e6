//! Telling a TLS client from a plaintext one by the first byte it sends,
//! and giving that byte back to the TLS handshake.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// A server's connection whose first byte was read to tell a TLS client
/// from a plaintext cmdstream client; the byte is given back to whoever
/// reads next (the TLS handshake).
pub(crate) struct Sniffed<IO> {
    first: Option<u8>,
    io: IO,
}

/// Reads the first byte of a connection: whether it opens a plaintext
/// cmdstream hello (a client that should have spoken TLS), and the
/// connection with the byte put back.
pub(crate) async fn sniff<IO: AsyncRead + Unpin>(mut io: IO) -> io::Result<(Sniffed<IO>, bool)> {
    let first = io.read_u8().await?;
    let plaintext = first == crate::wire::hello::CLIENT_MAGIC[0];
    Ok((
        Sniffed {
            first: Some(first),
            io,
        },
        plaintext,
    ))
}

impl<IO: AsyncRead + Unpin> AsyncRead for Sniffed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if let Some(first) = self.first.take() {
            buf.put_slice(&[first]);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Sniffed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn the_sniffed_byte_is_read_back_first_and_an_empty_read_keeps_it() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        theirs.write_all(b"\x16rest").await.unwrap();
        let (mut sniffed, plaintext) = sniff(ours).await.unwrap();
        assert!(!plaintext);
        let mut none = [0u8; 0];
        let mut empty = ReadBuf::new(&mut none);
        std::future::poll_fn(|cx| Pin::new(&mut sniffed).poll_read(cx, &mut empty))
            .await
            .unwrap();
        let mut all = [0u8; 5];
        sniffed.read_exact(&mut all).await.unwrap();
        assert_eq!(&all, b"\x16rest");
    }
}
