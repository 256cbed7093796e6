//! The head of a COMMAND frame's body: command id, flags, deadline, trace
//! context and user metadata (`docs/PROTOCOL.md`, §2.1).

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};

use super::frame::{self, FrameError, Kind};
use super::primitives::{put_metadata, take_metadata};
use crate::error::Error;
use crate::metadata::Metadata;

const DEADLINE: u8 = 1;
const TRACE: u8 = 2;
const USER: u8 = 4;

/// What a COMMAND carries besides its payload.
#[derive(Debug, Default)]
pub(crate) struct CommandHead {
    pub(crate) command: u32,
    pub(crate) deadline: Option<Duration>,
    /// `None` when the COMMAND carries neither trace context nor metadata.
    pub(crate) extras: Option<Box<Extras>>,
}

/// The trace context and metadata of a COMMAND: boxed, as most carry
/// neither, and every call's head and context would otherwise hold and
/// move them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Extras {
    pub(crate) traceparent: Option<String>,
    pub(crate) metadata: Metadata,
}

/// The metadata of a call that has none.
pub(crate) static NO_METADATA: Metadata = Metadata::new();

/// The W3C `traceparent` in `extras`, if any.
pub(crate) fn traceparent(extras: &Option<Box<Extras>>) -> Option<&str> {
    extras.as_ref()?.traceparent.as_deref()
}

/// The metadata in `extras`, empty if none.
pub(crate) fn metadata(extras: &Option<Box<Extras>>) -> &Metadata {
    extras.as_ref().map_or(&NO_METADATA, |e| &e.metadata)
}

/// A deadline as the wire carries it: at least 1 ms, as a zero deadline
/// would expire before the command starts.
fn millis(deadline: Duration) -> u32 {
    deadline.as_millis().clamp(1, u32::MAX as u128) as u32
}

/// Writes a whole COMMAND frame with neither trace context nor metadata
/// at the start of `dst`, its payload written by `payload` (the bytes it
/// wrote, or `None` when they do not fit): the frame's length, or `None`
/// when it does not fit in `dst`. The same bytes as [`frame::begin`],
/// [`put_head`], the payload and [`frame::finish`] append to a buffer.
#[inline]
pub(crate) fn put_small<E>(
    dst: &mut [u8],
    id: u64,
    command: u32,
    deadline: Option<Duration>,
    payload: impl FnOnce(&mut [u8]) -> Result<Option<usize>, E>,
) -> Result<Option<usize>, E> {
    const BODY: usize = frame::LEN_SIZE + frame::HEADER_SIZE;
    let [a, b, c, d] = command.to_be_bytes();
    let mut head = [a, b, c, d, 0, 0, 0, 0, 0];
    let head_len = match deadline {
        None => 5,
        Some(deadline) => {
            head[4] = DEADLINE;
            head[5..].copy_from_slice(&millis(deadline).to_be_bytes());
            9
        }
    };
    let Some(body) = dst.get_mut(BODY..).filter(|b| b.len() >= head_len) else {
        return Ok(None);
    };
    body[..head_len].copy_from_slice(&head[..head_len]);
    let Some(payload_len) = payload(&mut body[head_len..])? else {
        return Ok(None);
    };
    let len = frame::HEADER_SIZE + head_len + payload_len;
    let Ok(len32) = u32::try_from(len) else {
        return Ok(None);
    };
    dst[..BODY].copy_from_slice(&frame::head(len32, Kind::Command, id));
    Ok(Some(frame::LEN_SIZE + len))
}

/// Appends the head of a COMMAND body.
///
/// # Errors
///
/// [`Error::InvalidMetadata`] when `metadata` cannot be sent; nothing is
/// appended then.
pub(crate) fn put_head(
    dst: &mut BytesMut,
    command: u32,
    deadline: Option<Duration>,
    traceparent: Option<&str>,
    metadata: Option<&Metadata>,
) -> Result<(), Error> {
    let [a, b, c, d] = command.to_be_bytes();
    if deadline.is_none() && traceparent.is_none() && metadata.is_none() {
        // Most calls: the command id and no flags.
        dst.extend_from_slice(&[a, b, c, d, 0]);
        return Ok(());
    }
    let metadata = metadata.filter(|m| !m.is_empty());
    if let Some(m) = metadata {
        m.fits_wire()?;
    }
    let traceparent = traceparent.filter(|t| t.len() <= u8::MAX as usize);
    let mut flags = 0;
    if deadline.is_some() {
        flags |= DEADLINE;
    }
    if traceparent.is_some() {
        flags |= TRACE;
    }
    if metadata.is_some() {
        flags |= USER;
    }
    // Fixed-size arrays through the inlined `extend_from_slice`, not
    // `BufMut::put_*`, whose every call is an out-of-line `memcpy`.
    dst.extend_from_slice(&[a, b, c, d, flags]);
    if let Some(deadline) = deadline {
        dst.extend_from_slice(&millis(deadline).to_be_bytes());
    }
    if let Some(t) = traceparent {
        dst.extend_from_slice(&[t.len() as u8]);
        dst.extend_from_slice(t.as_bytes());
    }
    if let Some(m) = metadata {
        put_metadata(dst, m);
    }
    Ok(())
}

const BAD: FrameError = FrameError::Malformed("COMMAND head is truncated or invalid");

/// Splits a COMMAND body into its head and its payload.
#[inline]
pub(crate) fn parse(mut body: Bytes) -> Result<(CommandHead, Bytes), FrameError> {
    let [a, b, c, d, flags, ..] = body[..] else {
        return Err(BAD);
    };
    let command = u32::from_be_bytes([a, b, c, d]);
    if flags == 0 {
        // The common case, read where the frame is handled: nothing but
        // the command id.
        body.advance(5);
        let head = CommandHead {
            command,
            ..CommandHead::default()
        };
        return Ok((head, body));
    }
    parse_options(command, flags, body)
}

/// [`parse`] for a head with a deadline, trace context or metadata.
fn parse_options(
    command: u32,
    flags: u8,
    mut body: Bytes,
) -> Result<(CommandHead, Bytes), FrameError> {
    if flags & !(DEADLINE | TRACE | USER) != 0 {
        return Err(FrameError::Malformed("COMMAND has unknown flag bits"));
    }
    let mut head = CommandHead {
        command,
        ..CommandHead::default()
    };
    let mut extras = Extras::default();
    let mut src = &body[5..];
    if flags & DEADLINE != 0 {
        if src.len() < 4 {
            return Err(BAD);
        }
        head.deadline = Some(Duration::from_millis(src.get_u32().into()));
    }
    if flags & TRACE != 0 {
        let n = *src.first().ok_or(BAD)? as usize;
        if src.len() < 1 + n {
            return Err(BAD);
        }
        let t = std::str::from_utf8(&src[1..1 + n]).map_err(|_| BAD)?;
        extras.traceparent = Some(t.to_owned());
        src.advance(1 + n);
    }
    if flags & USER != 0 {
        extras.metadata = take_metadata(&mut src).ok_or(BAD)?;
    }
    if flags & (TRACE | USER) != 0 {
        head.extras = Some(Box::new(extras));
    }
    let consumed = body.len() - src.len();
    body.advance(consumed);
    Ok((head, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frame `put_small` writes for `payload` into a slice of `room`
    /// bytes, and the one the buffered path appends.
    fn both_ways(
        room: usize,
        deadline: Option<Duration>,
        payload: &[u8],
    ) -> (Option<Vec<u8>>, Vec<u8>) {
        let mut slice = vec![0u8; room];
        let small = put_small(&mut slice, 9, 42, deadline, |dst| {
            Ok::<_, ()>(dst.get_mut(..payload.len()).map(|d| {
                d.copy_from_slice(payload);
                payload.len()
            }))
        })
        .unwrap()
        .map(|len| slice[..len].to_vec());
        let mut buf = BytesMut::new();
        let start = frame::begin(&mut buf, Kind::Command, 9);
        put_head(&mut buf, 42, deadline, None, None).unwrap();
        buf.extend_from_slice(payload);
        frame::finish(&mut buf, start);
        (small, buf.to_vec())
    }

    #[test]
    fn a_small_command_written_into_a_slice_is_the_same_frame() {
        for deadline in [
            None,
            Some(Duration::from_millis(1500)),
            Some(Duration::ZERO),
        ] {
            let (small, buffered) = both_ways(46, deadline, b"payload");
            assert_eq!(small.as_deref(), Some(&buffered[..]), "{deadline:?}");
        }
        // Too little room for the payload, or for the head itself.
        assert_eq!(both_ways(20, None, b"payload").0, None);
        assert_eq!(
            both_ways(24, Some(Duration::from_secs(1)), b"").0,
            Some(both_ways(24, Some(Duration::from_secs(1)), b"").1)
        );
        assert_eq!(both_ways(21, Some(Duration::from_secs(1)), b"").0, None);
        assert_eq!(both_ways(5, None, b"").0, None);
    }

    #[test]
    fn plain_head_is_five_bytes() {
        let mut buf = BytesMut::new();
        put_head(&mut buf, 42, None, None, None).unwrap();
        buf.extend_from_slice(b"payload");
        assert_eq!(buf.len(), 5 + 7);
        let (head, payload) = parse(buf.freeze()).unwrap();
        assert_eq!(head.command, 42);
        assert!(head.deadline.is_none() && head.extras.is_none());
        assert_eq!(&payload[..], b"payload");
    }

    #[test]
    fn full_head_round_trips_and_truncation_fails() {
        let md: Metadata = [("k", "v")].into_iter().collect();
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let mut buf = BytesMut::new();
        put_head(
            &mut buf,
            7,
            Some(Duration::from_millis(1500)),
            Some(tp),
            Some(&md),
        )
        .unwrap();
        let head_len = buf.len();
        buf.extend_from_slice(b"xy");
        let (head, payload) = parse(buf.clone().freeze()).unwrap();
        assert_eq!(head.deadline, Some(Duration::from_millis(1500)));
        assert_eq!(traceparent(&head.extras), Some(tp));
        assert_eq!(metadata(&head.extras), &md);
        assert_eq!(&payload[..], b"xy");
        for cut in 0..head_len {
            assert!(
                parse(buf.clone().split_to(cut).freeze()).is_err(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn unknown_flags_are_rejected() {
        let body = Bytes::from_static(&[0, 0, 0, 1, 0x80]);
        assert!(parse(body).is_err());
    }
}
