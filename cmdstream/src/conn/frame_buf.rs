//! An encoded frame on its way to a connection's writer.
//!
//! Most frames of a unary call are a few dozen bytes. Encoding them into a
//! buffer of their own costs an allocation per frame on each side; instead
//! they are encoded into a scratch buffer kept per thread and carried
//! inline, by value, through the queue to the writer.

use std::cell::RefCell;

use bytes::BytesMut;

/// Frames up to this many bytes travel inline: a unary COMMAND with small
/// arguments (two `i64`s take at most 36 bytes, 40 with a timeout), in a
/// `FrameBuf` of 48 bytes.
const INLINE: usize = 46;

pub(crate) enum FrameBuf {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(BytesMut),
}

/// The most room a scratch keeps after a large frame took its memory.
const KEEP: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::with_capacity(4096));
}

impl FrameBuf {
    /// The largest frame that travels inline.
    pub(crate) const INLINE: usize = INLINE;

    /// Runs `encode` on an empty buffer and keeps what it wrote. Nothing is
    /// kept when it fails.
    pub(crate) fn encode<E>(
        encode: impl FnOnce(&mut BytesMut) -> Result<(), E>,
    ) -> Result<FrameBuf, E> {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                encode(&mut buf)?;
                Ok(FrameBuf::from_scratch(&mut buf))
            }
            // Only if an encoder re-entered this function: use a buffer of
            // its own.
            Err(_) => {
                let mut buf = BytesMut::new();
                encode(&mut buf)?;
                Ok(FrameBuf::Heap(buf))
            }
        })
    }

    /// A frame small enough to travel inline, written straight into it by
    /// `write` (its length, or `None` when it does not fit: then there is
    /// no frame, and the caller goes through [`encode`](Self::encode)).
    #[inline]
    pub(crate) fn inline<E>(
        write: impl FnOnce(&mut [u8]) -> Result<Option<usize>, E>,
    ) -> Result<Option<FrameBuf>, E> {
        let mut bytes = [0; INLINE];
        Ok(write(&mut bytes)?.map(|len| FrameBuf::Inline {
            len: len as u8,
            bytes,
        }))
    }

    #[inline]
    fn from_scratch(buf: &mut BytesMut) -> FrameBuf {
        if buf.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..buf.len()].copy_from_slice(buf);
            FrameBuf::Inline {
                len: buf.len() as u8,
                bytes,
            }
        } else {
            // The frame takes the scratch's memory along; the scratch grows
            // anew when it next needs room.
            let frame = buf.split();
            if buf.capacity() > KEEP {
                // What is left shares the frame's allocation and would keep
                // it alive for as long as the thread lives.
                *buf = BytesMut::new();
            }
            FrameBuf::Heap(frame)
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            FrameBuf::Inline { len, bytes } => &bytes[..*len as usize],
            FrameBuf::Heap(buf) => buf,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }
}

impl From<BytesMut> for FrameBuf {
    fn from(buf: BytesMut) -> Self {
        FrameBuf::Heap(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    #[test]
    fn small_frames_are_inline_and_large_ones_are_not() {
        let small = FrameBuf::encode::<()>(|b| {
            b.put_slice(&[1; 10]);
            Ok(())
        })
        .unwrap();
        assert!(matches!(small, FrameBuf::Inline { len: 10, .. }));
        assert_eq!(small.as_slice(), &[1; 10]);
        let large = FrameBuf::encode::<()>(|b| {
            b.put_slice(&[2; 1000]);
            Ok(())
        })
        .unwrap();
        assert!(matches!(large, FrameBuf::Heap(_)));
        assert_eq!(large.as_slice(), &[2; 1000][..]);
        // The scratch is empty again for the next frame.
        let again = FrameBuf::encode::<()>(|b| {
            assert!(b.is_empty());
            b.put_u8(3);
            Ok(())
        })
        .unwrap();
        assert_eq!(again.as_slice(), &[3]);
    }

    #[test]
    fn a_large_frame_leaves_no_room_behind_that_would_keep_its_memory() {
        // Written piece by piece, as an encoder does: the buffer doubles
        // past what the frame needs.
        let large = FrameBuf::encode::<()>(|b| {
            for _ in 0..150 {
                b.extend_from_slice(&[5; 4096]);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(large.len(), 150 * 4096);
        let kept = SCRATCH.with(|s| s.borrow().capacity());
        assert!(kept <= KEEP, "the scratch kept {kept} bytes of room");
    }

    #[test]
    fn a_failed_encode_keeps_nothing() {
        let err = FrameBuf::encode(|b| {
            b.put_slice(b"partial");
            Err("nope")
        });
        assert!(err.is_err());
        let next = FrameBuf::encode::<()>(|b| {
            b.put_u8(9);
            Ok(())
        })
        .unwrap();
        assert_eq!(next.as_slice(), &[9]);
    }

    #[test]
    fn a_reentrant_encode_falls_back_to_its_own_buffer() {
        let outer = FrameBuf::encode::<()>(|b| {
            let inner = FrameBuf::encode::<()>(|b| {
                b.put_u8(7);
                Ok(())
            })
            .unwrap();
            assert!(matches!(inner, FrameBuf::Heap(_)));
            b.put_slice(inner.as_slice());
            Ok(())
        })
        .unwrap();
        assert_eq!(outer.as_slice(), &[7]);
    }
}
