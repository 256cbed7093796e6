use bytes::{BufMut, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Codec, CodecError};

/// The default codec: compact binary `bincode` 2 with varint integers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

const NAME: &str = "bincode";

/// Decoding never claims more bytes than a frame can hold, so a forged
/// length prefix cannot make the decoder reserve gigabytes.
const LIMIT: usize = 1 << 30;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LIMIT>()
}

impl Codec for Bincode {
    const NAME: &'static str = NAME;

    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dst: &mut BytesMut,
    ) -> Result<(), CodecError> {
        let start = dst.len();
        let result = bincode::serde::encode_into_std_write(value, &mut dst.writer(), config());
        result.map(drop).map_err(|e| {
            dst.truncate(start);
            CodecError::encode(NAME, e)
        })
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
