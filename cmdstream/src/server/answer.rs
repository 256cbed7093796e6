//! An answer frame for the client: a result encoded within the client's
//! frame limit, or, when it cannot go, the error frame that says why.
//! Shared by a [`Call`](super::call::Call) and a unary command answered
//! without one (`unary.rs`).

use bytes::BytesMut;
use serde::Serialize;
use tracing::debug;

use crate::codec::{Codec, CodecError};
use crate::error::ErrorCode;
use crate::telemetry::Outcome;
use crate::wire::frame::{self, Kind};

/// Appends one frame of `kind` for request `id` holding `value`, if the
/// client takes frames that large (`max`): its size, length prefix
/// included. On failure `dst` is left as it was.
#[inline]
pub(crate) fn encode_frame<C: Codec, R: Serialize + ?Sized>(
    codec: &C,
    dst: &mut BytesMut,
    kind: Kind,
    id: u64,
    value: &R,
    max: usize,
) -> Result<usize, Unsendable> {
    let start = frame::begin(dst, kind, id);
    if let Err(e) = codec.encode(value, dst) {
        dst.truncate(start);
        return Err(Unsendable::Encode(e));
    }
    let len = frame::finish(dst, start);
    if len > max {
        dst.truncate(start);
        return Err(Unsendable::TooLarge { size: len, max });
    }
    Ok(len + frame::LEN_SIZE)
}

/// Why a result cannot go to the client.
pub(crate) enum Unsendable {
    /// The codec could not encode it.
    Encode(CodecError),
    /// Its frame is larger than the client accepts.
    TooLarge { size: usize, max: usize },
}

impl Unsendable {
    /// How the call ends for telemetry.
    pub(crate) fn outcome(&self) -> Outcome {
        match self {
            Unsendable::Encode(_) => Outcome::of_code(ErrorCode::Internal),
            Unsendable::TooLarge { .. } => Outcome::Error(ErrorCode::FrameTooLarge.as_str()),
        }
    }

    /// Appends the frame that tells the client of request `id` why (frames
    /// of at most `max` bytes).
    pub(crate) fn put(&self, dst: &mut BytesMut, id: u64, max: usize) {
        match self {
            Unsendable::Encode(e) => {
                let message = format!("the server could not encode the result: {e}");
                debug!(code = ?ErrorCode::Internal, message, "answering with an error");
                frame::put_error(dst, id, ErrorCode::Internal, &message, max);
            }
            Unsendable::TooLarge { size, max: theirs } => {
                debug!(size, max = theirs, "result too large for the client");
                frame::put_too_large(dst, id, *size, *theirs);
            }
        }
    }
}
