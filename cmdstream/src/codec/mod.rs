//! Payload codecs: how command arguments and results become bytes.
//!
//! A [`Codec`] turns any `serde` value into bytes and back. The default,
//! always available, is [`Bincode`]; [`Json`] and [`Postcard`] sit behind
//! the `json` and `postcard` cargo features. Client and server must use the same codec: the
//! codec's name is part of the handshake's fingerprint check.

use std::fmt;
use std::sync::Arc;

use bytes::BytesMut;
use serde::de::DeserializeOwned;
use serde::Serialize;

mod bincode;
mod byte_string;
#[cfg(feature = "json")]
mod json;
#[cfg(feature = "postcard")]
mod postcard;

pub use self::bincode::Bincode;
#[doc(hidden)]
pub use self::byte_string::{ByteBuf, ByteSlice};
#[cfg(feature = "json")]
pub use self::json::Json;
#[cfg(feature = "postcard")]
pub use self::postcard::Postcard;

/// The codec used when none is chosen.
pub type DefaultCodec = Bincode;

/// Encodes and decodes payloads with `serde`.
///
/// Implementations append to `dst` and must leave it as they found it when
/// they fail: the runtime encodes into a scratch buffer per frame, so a failed
/// encode never puts stray bytes on the wire.
///
/// # Examples
///
/// ```
/// use cmdstream::codec::{Bincode, Codec};
///
/// let mut buf = bytes::BytesMut::new();
/// Bincode.encode(&(2i64, 3i64), &mut buf).unwrap();
/// let back: (i64, i64) = Bincode.decode(&buf).unwrap();
/// assert_eq!(back, (2, 3));
/// ```
pub trait Codec: Clone + Send + Sync + 'static {
    /// A short name, compared in the handshake so that peers with different
    /// codecs refuse each other instead of misreading payloads.
    const NAME: &'static str;

    /// Appends the encoding of `value` to `dst`.
    ///
    /// # Errors
    ///
    /// Fails when `serde` cannot represent the value in this format.
    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dst: &mut BytesMut,
    ) -> Result<(), CodecError>;

    /// Writes the encoding of `value` at the start of `dst`, if it fits:
    /// the number of bytes written, or `None` when it does not (what
    /// follows them in `dst` is then unspecified). The client encodes the
    /// arguments of a small call this way, straight into the frame it
    /// queues, and with [`encode`](Self::encode) when this says `None`,
    /// which it always does unless a codec implements it.
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode).
    fn encode_to_slice<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dst: &mut [u8],
    ) -> Result<Option<usize>, CodecError> {
        let _ = (value, dst);
        Ok(None)
    }

    /// Decodes one value from the whole of `src`.
    ///
    /// # Errors
    ///
    /// Fails when the bytes are not a valid encoding of `T`.
    fn decode<T: DeserializeOwned>(&self, src: &[u8]) -> Result<T, CodecError>;
}

/// A payload that could not be encoded or decoded.
#[derive(Debug, Clone)]
pub struct CodecError {
    // Boxed, so that a decoded value's `Result` is small enough to come
    // back in registers: every result of every call passes through one.
    inner: Box<Failure>,
}

#[derive(Debug, Clone)]
struct Failure {
    direction: Direction,
    codec: &'static str,
    message: Arc<str>,
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    Encode,
    Decode,
}

impl CodecError {
    /// An encoding failure reported by the codec named `codec`.
    pub fn encode(codec: &'static str, message: impl fmt::Display) -> Self {
        CodecError::new(Direction::Encode, codec, message)
    }

    /// A decoding failure reported by the codec named `codec`.
    pub fn decode(codec: &'static str, message: impl fmt::Display) -> Self {
        CodecError::new(Direction::Decode, codec, message)
    }

    fn new(direction: Direction, codec: &'static str, message: impl fmt::Display) -> Self {
        let failure = Failure {
            direction,
            codec,
            message: message.to_string().into(),
        };
        CodecError {
            inner: Box::new(failure),
        }
    }

    /// Whether this error happened while decoding.
    pub fn is_decode(&self) -> bool {
        matches!(self.inner.direction, Direction::Decode)
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Failure {
            direction,
            codec,
            message,
        } = &*self.inner;
        let (verb, hint) = match direction {
            Direction::Encode => ("encode", "the value cannot be represented in this format"),
            Direction::Decode => (
                "decode",
                "the peer sent bytes of another type or codec; check both sides use the same definitions",
            ),
        };
        write!(
            f,
            "could not {verb} payload with {codec}: {message} ({hint})"
        )
    }
}

impl std::error::Error for CodecError {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        values: Vec<i64>,
        nested: Option<(u8, bool)>,
    }

    fn sample() -> Sample {
        Sample {
            name: "calc".into(),
            values: vec![1, -2, 3_000_000_000],
            nested: Some((7, true)),
        }
    }

    fn round_trip<C: Codec>(codec: C) {
        let mut buf = BytesMut::new();
        codec.encode(&sample(), &mut buf).unwrap();
        let back: Sample = codec.decode(&buf).unwrap();
        assert_eq!(back, sample());
        // Truncated input fails with a decode error, never a panic.
        let err = codec.decode::<Sample>(&buf[..buf.len() / 2]).unwrap_err();
        assert!(err.is_decode(), "{err}");
        // Garbage fails too.
        assert!(codec.decode::<Sample>(&[0xff; 7]).is_err());
        // Into a slice: the same bytes when they fit, `None` when they do
        // not (for a codec without such an encoder, always).
        let mut slice = [0u8; 256];
        if let Some(len) = codec.encode_to_slice(&sample(), &mut slice).unwrap() {
            assert_eq!(&slice[..len], &buf[..]);
        }
        let mut short = vec![0u8; buf.len() - 1];
        assert_eq!(codec.encode_to_slice(&sample(), &mut short).unwrap(), None);
    }

    #[test]
    fn the_binary_codecs_encode_into_a_slice() {
        let mut slice = [0u8; 64];
        assert!(Bincode
            .encode_to_slice(&sample(), &mut slice)
            .unwrap()
            .is_some());
        #[cfg(feature = "postcard")]
        assert!(Postcard
            .encode_to_slice(&sample(), &mut slice)
            .unwrap()
            .is_some());
    }

    #[test]
    fn bincode_round_trips() {
        round_trip(Bincode);
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_round_trips() {
        round_trip(Json);
    }

    #[cfg(feature = "postcard")]
    #[test]
    fn postcard_round_trips() {
        round_trip(Postcard);
    }

    #[test]
    fn bincode_rejects_trailing_bytes() {
        let mut buf = BytesMut::new();
        Bincode.encode(&5u32, &mut buf).unwrap();
        buf.extend_from_slice(&[1, 2]);
        assert!(Bincode.decode::<u32>(&buf).is_err());
    }

    #[test]
    fn bincode_huge_length_claim_fails_without_allocating() {
        // A varint length claiming u64::MAX bytes of string, then nothing.
        let bytes = [253u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(Bincode.decode::<String>(&bytes).is_err());
        assert!(Bincode.decode::<Vec<u64>>(&bytes).is_err());
    }
}
