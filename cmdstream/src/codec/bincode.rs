use bincode::enc::write::Writer;
use bincode::error::EncodeError;
use bytes::BytesMut;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Codec, CodecError};

/// The default codec: compact binary `bincode` 2 with varint integers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

const NAME: &str = "bincode";

/// The most a decode may claim, in bytes read plus what bincode's own
/// `String` and byte-buffer decoding reserve from declared lengths before
/// reading them. It is above any frame this runtime accepts by default
/// (16 MiB), so a legal value always fits; it bounds, but does not
/// eliminate, what a forged `String` length in a small frame can make the
/// decoder reserve (byte strings of generated code are checked against the
/// input instead; see `byte_string.rs`).
const LIMIT: usize = 1 << 30;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// Appends to a `BytesMut`. Serde hands bincode one element at a time, so
/// a `Vec<u8>` arrives as one single-byte write per element: going through
/// `std::io::Write` made each of them a `memcpy` call of unknown length,
/// while this impl inlines into a capacity check and a store.
struct Append<'a>(&'a mut BytesMut);

impl Writer for Append<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        if let [byte] = bytes {
            // `extend_from_slice` inlines (`put_u8` does not, across
            // crates); a constant length of 1 makes the copy a store.
            self.0.extend_from_slice(&[*byte]);
        } else {
            self.0.extend_from_slice(bytes);
        }
        Ok(())
    }
}

impl Codec for Bincode {
    const NAME: &'static str = NAME;

    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dst: &mut BytesMut,
    ) -> Result<(), CodecError> {
        let start = dst.len();
        let result = bincode::serde::encode_into_writer(value, Append(dst), config());
        result.map(drop).map_err(|e| {
            dst.truncate(start);
            CodecError::encode(NAME, e)
        })
    }

    #[inline]
    fn encode_to_slice<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dst: &mut [u8],
    ) -> Result<Option<usize>, CodecError> {
        match bincode::serde::encode_into_slice(value, dst, config()) {
            Ok(len) => Ok(Some(len)),
            // The slice ran out.
            Err(EncodeError::UnexpectedEnd) => Ok(None),
            Err(e) => Err(CodecError::encode(NAME, e)),
        }
    }

    fn decode<T: DeserializeOwned>(&self, src: &[u8]) -> Result<T, CodecError> {
        let (value, read) = bincode::serde::decode_from_slice(src, config())
            .map_err(|e| CodecError::decode(NAME, e))?;
        if read != src.len() {
            return Err(CodecError::decode(
                NAME,
                format_args!("{} trailing bytes after the value", src.len() - read),
            ));
        }
        Ok(value)
    }
}
