use bytes::{BufMut, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Codec, CodecError};

/// `postcard`: a compact, stable binary format. Enabled by the `postcard`
/// feature.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

const NAME: &str = "postcard";

impl Codec for Postcard {
    const NAME: &'static str = NAME;

    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dst: &mut BytesMut,
    ) -> Result<(), CodecError> {
        let start = dst.len();
        postcard::to_io(value, dst.writer()).map(drop).map_err(|e| {
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
        match postcard::to_slice(value, dst) {
            Ok(written) => Ok(Some(written.len())),
            Err(postcard::Error::SerializeBufferFull) => Ok(None),
            Err(e) => Err(CodecError::encode(NAME, e)),
        }
    }

    fn decode<T: DeserializeOwned>(&self, src: &[u8]) -> Result<T, CodecError> {
        let (value, rest) =
            postcard::take_from_bytes(src).map_err(|e| CodecError::decode(NAME, e))?;
        if !rest.is_empty() {
            return Err(CodecError::decode(
                NAME,
                format_args!("{} trailing bytes after the value", rest.len()),
            ));
        }
        Ok(value)
    }
}
