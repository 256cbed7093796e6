//! Byte strings for the generated code: a `Vec<u8>` argument or result
//! goes through serde as one byte string instead of one element at a time.
//!
//! Serde's own impls treat `Vec<u8>` as a sequence, so every codec sees a
//! thousand calls for a kilobyte. `#[cmdstream::receiver]` wraps such
//! values in [`ByteSlice`] (to send) and [`ByteBuf`] (to receive), which
//! use `serialize_bytes` and `deserialize_bytes`. In bincode, postcard and
//! JSON a byte string and a sequence of `u8` are the same bytes, so peers
//! that do not wrap still understand them. Other formats (MessagePack,
//! CBOR) tell the two apart: with such a codec of your own, both sides must
//! come from the same generated code.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Sends borrowed bytes as one byte string.
#[derive(Debug, Clone, Copy)]
pub struct ByteSlice<'a>(pub &'a [u8]);

impl Serialize for ByteSlice<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Receives one byte string (or, from formats without one, a sequence of
/// `u8`) into a `Vec<u8>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ByteBuf(pub Vec<u8>);

impl Serialize for ByteBuf {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `deserialize_bytes`, not `deserialize_byte_buf`: decoding from a
        // slice, bincode and postcard then check the length against the
        // bytes actually there and lend them, and the visitor copies once.
        // bincode's `byte_buf` path allocates the declared length first,
        // so a forged length in a tiny frame would reserve up to its limit.
        deserializer.deserialize_bytes(ByteBufVisitor).map(ByteBuf)
    }
}

struct ByteBufVisitor;

/// The most a sequence's length hint may make the visitor reserve up
/// front: the hint comes from the peer.
const MAX_PREALLOC: usize = 64 * 1024;

impl<'de> Visitor<'de> for ByteBufVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        Ok(v.as_bytes().to_vec())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Vec<u8>, E> {
        Ok(v.into_bytes())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_PREALLOC));
        while let Some(byte) = seq.next_element()? {
            out.push(byte);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::codec::{Bincode, Codec};

    /// A byte string and serde's default `Vec<u8>` are the same bytes, both
    /// ways, so wrapped and unwrapped peers understand each other.
    fn same_bytes<C: Codec>(codec: C) {
        for data in [
            vec![],
            vec![0u8, 1, 255],
            (0..=255u8).cycle().take(1000).collect(),
        ] {
            let mut wrapped = BytesMut::new();
            codec
                .encode(&(7i64, ByteSlice(&data)), &mut wrapped)
                .unwrap();
            let mut plain = BytesMut::new();
            codec.encode(&(7i64, &data), &mut plain).unwrap();
            assert_eq!(wrapped, plain, "{}", C::NAME);

            let (n, back): (i64, ByteBuf) = codec.decode(&plain).unwrap();
            assert_eq!((n, back.0), (7, data.clone()));
            let back: (i64, Vec<u8>) = codec.decode(&wrapped).unwrap();
            assert_eq!(back, (7, data));
        }
    }

    #[test]
    fn bincode_byte_strings_are_sequences() {
        same_bytes(Bincode);
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_byte_strings_are_sequences() {
        same_bytes(crate::codec::Json);
    }

    #[cfg(feature = "postcard")]
    #[test]
    fn postcard_byte_strings_are_sequences() {
        same_bytes(crate::codec::Postcard);
    }

    #[test]
    fn a_forged_length_fails_against_the_bytes_that_are_there() {
        // Lengths of 2^29 (under bincode's limit) and 2^40 (over it), with
        // no bytes behind them: decoding fails, reading the length against
        // the input rather than allocating it.
        for forged in [1u64 << 29, 1u64 << 40] {
            let mut buf = BytesMut::new();
            Bincode.encode(&forged, &mut buf).unwrap();
            let error = Bincode.decode::<ByteBuf>(&buf).unwrap_err().to_string();
            assert!(!error.is_empty());
        }
        #[cfg(feature = "postcard")]
        {
            let mut buf = BytesMut::new();
            crate::codec::Postcard
                .encode(&(1u64 << 29), &mut buf)
                .unwrap();
            assert!(crate::codec::Postcard.decode::<ByteBuf>(&buf).is_err());
        }
    }
}
