//! Frame header, kinds, and the length-delimited frame decoder.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::primitives::truncate;
use crate::error::ErrorCode;

/// Bytes of the length prefix.
pub(crate) const LEN_SIZE: usize = 4;
/// Bytes after the length prefix that every frame has: kind and request id.
pub(crate) const HEADER_SIZE: usize = 1 + 8;
/// The smallest frame limit a peer may announce: room for every control
/// frame and for an error with its message.
pub(crate) const MIN_FRAME_LIMIT: usize = 1024;

/// What a frame means (`docs/PROTOCOL.md`, §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Command = 0x01,
    Result = 0x02,
    ResultLast = 0x03,
    Error = 0x04,
    Cancel = 0x05,
    Item = 0x06,
    End = 0x07,
    Credit = 0x08,
    Ping = 0x09,
    Pong = 0x0A,
    GoAway = 0x0B,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            0x01 => Kind::Command,
            0x02 => Kind::Result,
            0x03 => Kind::ResultLast,
            0x04 => Kind::Error,
            0x05 => Kind::Cancel,
            0x06 => Kind::Item,
            0x07 => Kind::End,
            0x08 => Kind::Credit,
            0x09 => Kind::Ping,
            0x0A => Kind::Pong,
            0x0B => Kind::GoAway,
            _ => return None,
        })
    }
}

/// One decoded frame. The body shares the read buffer's memory.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) kind: Kind,
    pub(crate) id: u64,
    pub(crate) body: Bytes,
}

impl Frame {
    /// Checks that a frame whose kind carries nothing (CANCEL, END) has
    /// an empty body.
    pub(crate) fn expect_empty(&self) -> Result<(), FrameError> {
        if self.body.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Malformed("CANCEL and END frames have no body"))
        }
    }

    /// The `u32` body of a CREDIT frame.
    pub(crate) fn credit(&self) -> Result<u32, FrameError> {
        let mut b = &self.body[..];
        if b.len() != 4 {
            return Err(FrameError::Malformed("CREDIT body must be 4 bytes"));
        }
        Ok(b.get_u32())
    }

    /// The 8 opaque bytes of a PING or PONG.
    pub(crate) fn ping_payload(&self) -> Result<u64, FrameError> {
        let mut b = &self.body[..];
        if b.len() != 8 {
            return Err(FrameError::Malformed("PING/PONG body must be 8 bytes"));
        }
        Ok(b.get_u64())
    }

    /// The code and message of an ERROR frame, and for code 8 (a frame
    /// too large) the size and limit it carries before its message, if its
    /// body is long enough to hold them.
    pub(crate) fn error(&self) -> Result<ErrorBody, FrameError> {
        let mut b = &self.body[..];
        if b.len() < 2 {
            return Err(FrameError::Malformed("ERROR body shorter than its code"));
        }
        let code = ErrorCode::from_u16(b.get_u16());
        // A code 8 too short for its sizes is read as a plain error: the
        // call fails, the connection need not.
        let too_large =
            (code == ErrorCode::FrameTooLarge && b.len() >= 8).then(|| (b.get_u32(), b.get_u32()));
        Ok(ErrorBody {
            code,
            too_large,
            message: String::from_utf8_lossy(b).into_owned(),
        })
    }
}

/// What an ERROR frame says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    pub(crate) code: ErrorCode,
    /// For code 8: the size of the frame refused and the limit it broke.
    pub(crate) too_large: Option<(u32, u32)>,
    pub(crate) message: String,
}

/// Why a byte stream could not be read as frames. Each one closes the
/// connection: after it the stream cannot be trusted to be in step.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The length prefix is above the receiver's limit.
    TooLarge { size: usize, max: usize },
    /// The length prefix is below the smallest frame.
    TooSmall(usize),
    /// The kind byte is not one the protocol defines.
    UnknownKind(u8),
    /// The body does not match its kind.
    Malformed(&'static str),
    /// Reading failed.
    Io(std::io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge { size, max } => {
                write!(
                    f,
                    "peer sent a frame of {size} bytes, above the limit of {max}"
                )
            }
            FrameError::TooSmall(n) => write!(
                f,
                "peer sent a frame of {n} bytes, below the 9-byte minimum"
            ),
            FrameError::UnknownKind(k) => write!(f, "peer sent an unknown frame kind 0x{k:02x}"),
            FrameError::Malformed(what) => write!(f, "peer sent a malformed frame: {what}"),
            FrameError::Io(e) => write!(f, "read failed: {e}"),
        }
    }
}

/// A frame that cannot be read is a protocol violation: the connection
/// closes with [`Error::Protocol`](crate::Error::Protocol).
impl From<FrameError> for crate::error::Error {
    fn from(e: FrameError) -> Self {
        crate::error::Error::protocol(e.to_string())
    }
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        FrameError::Io(e)
    }
}

/// Splits a byte stream into [`Frame`]s, checking each length against the
/// limit before anything is reserved for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameDecoder {
    max_frame: usize,
}

impl FrameDecoder {
    pub(crate) fn new(max_frame: usize) -> Self {
        FrameDecoder { max_frame }
    }

    /// The largest frame it accepts, as the length prefix counts it.
    pub(crate) fn max_frame(&self) -> usize {
        self.max_frame
    }
}

impl Decoder for FrameDecoder {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(head) = self.whole_head(src)? else {
            return Ok(None);
        };
        Ok(Some(head.cut(src)))
    }
}

/// The head of a frame whose bytes have all arrived.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    /// Bytes of the whole frame, length prefix included.
    pub(crate) size: usize,
    pub(crate) kind: Kind,
    pub(crate) id: u64,
}

impl Head {
    /// Cuts the frame this is the head of from the start of `src`.
    #[inline]
    pub(crate) fn cut(self, src: &mut BytesMut) -> Frame {
        src.advance(LEN_SIZE + HEADER_SIZE);
        let body = src.split_to(self.size - LEN_SIZE - HEADER_SIZE).freeze();
        Frame {
            kind: self.kind,
            id: self.id,
            body,
        }
    }
}

impl FrameDecoder {
    /// The head of the frame at the start of `src`, once the whole frame
    /// is there.
    pub(crate) fn whole_head(&self, src: &[u8]) -> Result<Option<Head>, FrameError> {
        if src.len() < LEN_SIZE {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max_frame {
            return Err(FrameError::TooLarge {
                size: len,
                max: self.max_frame,
            });
        }
        if len < HEADER_SIZE {
            return Err(FrameError::TooSmall(len));
        }
        if src.len() < LEN_SIZE + len {
            // Nothing is reserved for the rest of the body: the reader grows
            // its buffer as bytes arrive, so a header alone cannot make the
            // receiver set aside a whole frame's worth of memory.
            return Ok(None);
        }
        let kind = Kind::from_u8(src[LEN_SIZE]).ok_or(FrameError::UnknownKind(src[LEN_SIZE]))?;
        let mut id = [0; 8];
        id.copy_from_slice(&src[LEN_SIZE + 1..LEN_SIZE + HEADER_SIZE]);
        Ok(Some(Head {
            size: LEN_SIZE + len,
            kind,
            id: u64::from_be_bytes(id),
        }))
    }
}

/// Starts a frame in `dst`; returns the position of its length prefix, to be
/// passed to [`finish`] once the body has been appended.
pub(crate) fn begin(dst: &mut BytesMut, kind: Kind, id: u64) -> usize {
    let start = dst.len();
    dst.extend_from_slice(&head(0, kind, id));
    start
}

/// The length prefix and header of a frame, as one array: appending it
/// with `extend_from_slice` (which inlines) is one fixed-size copy, where
/// `BufMut::put_u32` and friends are each an out-of-line `memcpy` call.
#[inline]
pub(crate) fn head(len: u32, kind: Kind, id: u64) -> [u8; LEN_SIZE + HEADER_SIZE] {
    let mut out = [0; LEN_SIZE + HEADER_SIZE];
    out[..LEN_SIZE].copy_from_slice(&len.to_be_bytes());
    out[LEN_SIZE] = kind as u8;
    out[LEN_SIZE + 1..].copy_from_slice(&id.to_be_bytes());
    out
}

/// Writes the length prefix of the frame begun at `start`; returns the
/// frame's length as the prefix counts it.
pub(crate) fn finish(dst: &mut BytesMut, start: usize) -> usize {
    let len = dst.len() - start - LEN_SIZE;
    dst[start..start + LEN_SIZE].copy_from_slice(&(len as u32).to_be_bytes());
    len
}

/// Appends a whole frame with the given body.
pub(crate) fn put(dst: &mut BytesMut, kind: Kind, id: u64, body: &[u8]) {
    dst.reserve(LEN_SIZE + HEADER_SIZE + body.len());
    dst.extend_from_slice(&head((HEADER_SIZE + body.len()) as u32, kind, id));
    dst.extend_from_slice(body);
}

/// Appends an empty-bodied frame (CANCEL, END).
pub(crate) fn put_empty(dst: &mut BytesMut, kind: Kind, id: u64) {
    put(dst, kind, id, &[]);
}

/// Appends a CREDIT frame.
pub(crate) fn put_credit(dst: &mut BytesMut, id: u64, credit: u32) {
    put(dst, Kind::Credit, id, &credit.to_be_bytes());
}

/// Appends a PING or PONG frame.
pub(crate) fn put_ping(dst: &mut BytesMut, kind: Kind, payload: u64) {
    put(dst, kind, 0, &payload.to_be_bytes());
}

/// Appends an ERROR frame, its message cut (at a character boundary) so
/// that the frame fits in `max_frame`: an error must always reach the peer.
pub(crate) fn put_error(
    dst: &mut BytesMut,
    id: u64,
    code: ErrorCode,
    message: &str,
    max_frame: usize,
) {
    let message = truncate(message, max_frame.saturating_sub(HEADER_SIZE + 2));
    let start = begin(dst, Kind::Error, id);
    dst.extend_from_slice(&code.to_u16().to_be_bytes());
    dst.extend_from_slice(message.as_bytes());
    finish(dst, start);
}

/// Appends an ERROR frame with code 8: a result of `size` bytes is above
/// the receiver's limit `max`. Both travel as `u32`s ahead of the message.
pub(crate) fn put_too_large(dst: &mut BytesMut, id: u64, size: usize, max: usize) {
    let start = begin(dst, Kind::Error, id);
    dst.extend_from_slice(&ErrorCode::FrameTooLarge.to_u16().to_be_bytes());
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    dst.extend_from_slice(&clamp(size).to_be_bytes());
    dst.extend_from_slice(&clamp(max).to_be_bytes());
    // Short enough for any frame limit (at least 1 KiB).
    let message = format!("result of {size} bytes exceeds the limit of {max} bytes");
    dst.extend_from_slice(message.as_bytes());
    finish(dst, start);
}

/// Appends a GO_AWAY frame, its reason cut to fit in `max_frame`.
pub(crate) fn put_go_away(dst: &mut BytesMut, reason: &str, max_frame: usize) {
    let reason = truncate(reason, max_frame.saturating_sub(HEADER_SIZE));
    put(dst, Kind::GoAway, 0, reason.as_bytes());
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;

    use super::*;

    fn decode_all(dec: &mut FrameDecoder, buf: &mut BytesMut) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(f) = dec.decode(buf).unwrap() {
            out.push(f);
        }
        out
    }

    #[test]
    fn round_trips_every_helper() {
        let mut buf = BytesMut::new();
        put(&mut buf, Kind::Result, 7, b"abc");
        put_empty(&mut buf, Kind::End, 7);
        put_credit(&mut buf, 9, 16);
        put_ping(&mut buf, Kind::Ping, 0xdead_beef);
        put_error(&mut buf, 3, ErrorCode::Application, "nope", 1024);
        let frames = decode_all(&mut FrameDecoder::new(1024), &mut buf);
        assert!(buf.is_empty());
        assert_eq!(frames.len(), 5);
        assert_eq!(
            (frames[0].kind, frames[0].id, &frames[0].body[..]),
            (Kind::Result, 7, &b"abc"[..])
        );
        assert_eq!(frames[1].kind, Kind::End);
        assert_eq!(frames[2].credit().unwrap(), 16);
        assert_eq!(frames[3].ping_payload().unwrap(), 0xdead_beef);
        let e = frames[4].error().unwrap();
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::Application, "nope")
        );
        assert_eq!(e.too_large, None);
    }

    #[test]
    fn errors_and_go_aways_are_cut_to_fit_the_peers_limit() {
        let mut buf = BytesMut::new();
        put_error(&mut buf, 1, ErrorCode::Application, &"é".repeat(1000), 1024);
        put_go_away(&mut buf, &"x".repeat(5000), 1024);
        let frames = decode_all(&mut FrameDecoder::new(1024), &mut buf);
        let e = frames[0].error().unwrap();
        assert_eq!(e.code, ErrorCode::Application);
        assert_eq!(e.message.len(), 1012, "1024 - 9 - 2, less half a character");
        assert_eq!(frames[1].body.len(), 1024 - HEADER_SIZE);
    }

    #[test]
    fn a_frame_too_large_carries_its_size_and_limit_as_numbers() {
        let mut buf = BytesMut::new();
        put_too_large(&mut buf, 4, 5000, 1024);
        let frames = decode_all(&mut FrameDecoder::new(1024), &mut buf);
        let e = frames[0].error().unwrap();
        assert_eq!(e.code, ErrorCode::FrameTooLarge);
        assert_eq!(e.too_large, Some((5000, 1024)));
        assert!(e.message.contains("5000 bytes"), "{}", e.message);
        // A code 8 without its sizes is a code 8 with a message.
        let short = Frame {
            kind: Kind::Error,
            id: 1,
            body: Bytes::from_static(&[0, 8, b'b', b'i', b'g']),
        };
        let e = short.error().unwrap();
        assert_eq!((e.code, e.too_large), (ErrorCode::FrameTooLarge, None));
        assert_eq!(e.message, "big");
    }

    #[test]
    fn waits_for_a_whole_frame_byte_by_byte() {
        let mut whole = BytesMut::new();
        put(&mut whole, Kind::ResultLast, 1, b"hello");
        let mut dec = FrameDecoder::new(1024);
        let mut buf = BytesMut::new();
        for (i, b) in whole.iter().enumerate() {
            buf.put_u8(*b);
            let got = dec.decode(&mut buf).unwrap();
            assert_eq!(got.is_some(), i == whole.len() - 1);
        }
    }

    #[test]
    fn rejects_oversized_length_before_reserving() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 1][..]);
        let cap = buf.capacity();
        let err = FrameDecoder::new(1024).decode(&mut buf).unwrap_err();
        assert!(matches!(
            err,
            FrameError::TooLarge {
                size: 0xffff_ffff,
                max: 1024
            }
        ));
        assert_eq!(buf.capacity(), cap, "nothing reserved for a rejected frame");
    }

    #[test]
    fn a_header_alone_reserves_nothing_for_the_body() {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_u32(1 << 20);
        buf.put_u8(Kind::Result as u8);
        buf.put_u64(1);
        assert!(FrameDecoder::new(2 << 20)
            .decode(&mut buf)
            .unwrap()
            .is_none());
        assert!(buf.capacity() < 1024, "capacity grew to {}", buf.capacity());
    }

    #[test]
    fn rejects_short_length_and_unknown_kind() {
        let mut buf = BytesMut::from(&[0, 0, 0, 3, 1, 2, 3][..]);
        assert!(matches!(
            FrameDecoder::new(64).decode(&mut buf),
            Err(FrameError::TooSmall(3))
        ));
        let mut buf = BytesMut::new();
        put(&mut buf, Kind::Ping, 0, &[0; 8]);
        buf[4] = 0x7f;
        assert!(matches!(
            FrameDecoder::new(64).decode(&mut buf),
            Err(FrameError::UnknownKind(0x7f))
        ));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let f = Frame {
            kind: Kind::Credit,
            id: 1,
            body: Bytes::from_static(&[1, 2]),
        };
        assert!(f.credit().is_err());
        let f = Frame {
            kind: Kind::Error,
            id: 1,
            body: Bytes::from_static(&[1]),
        };
        assert!(f.error().is_err());
        let f = Frame {
            kind: Kind::Ping,
            id: 0,
            body: Bytes::new(),
        };
        assert!(f.ping_payload().is_err());
    }
}
