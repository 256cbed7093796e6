use bytes::{BufMut, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Codec, CodecError};

/// JSON via `serde_json`: readable on the wire, larger and slower than
/// [`Bincode`](super::Bincode). Enabled by the `json` feature.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

const NAME: &str = "json";

impl Codec for Json {
    const NAME: &'static str = NAME;

    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dst: &mut BytesMut,
    ) -> Result<(), CodecError> {
        let start = dst.len();
        serde_json::to_writer(dst.writer(), value).map_err(|e| {
            dst.truncate(start);
            CodecError::encode(NAME, e)
        })
    }

    fn decode<T: DeserializeOwned>(&self, src: &[u8]) -> Result<T, CodecError> {
        serde_json::from_slice(src).map_err(|e| CodecError::decode(NAME, e))
    }
}
