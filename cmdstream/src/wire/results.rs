//! Runs of RESULT frames: a stream's results as a read brought them.
//!
//! A server streaming small results sends a long row of RESULT frames of
//! one call, and one read brings thousands of them. Cut one by one, each
//! would cost its own share of the read buffer (an atomic count taken and
//! dropped again), a lookup of its call and a slot in a queue. Cut as one
//! run, they cost that once, and the stream's consumer walks the frames
//! where they lie.

use bytes::{Bytes, BytesMut};

use super::frame::{Frame, FrameDecoder, FrameError, Head, Kind, HEADER_SIZE, LEN_SIZE};

/// What the client takes from its read buffer at a time.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// One frame.
    Frame(Frame),
    /// Consecutive RESULT frames of one call.
    Results(Results),
}

/// Consecutive whole RESULT frames of one call, heads included, with a
/// cursor over their bodies.
#[derive(Debug)]
pub(crate) struct Results {
    id: u64,
    count: u32,
    frames: Bytes,
    /// Where the next frame starts.
    pos: usize,
}

impl Results {
    /// The call the results are for.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// How many results there are in all.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// Bytes of all the frames, heads included.
    pub(crate) fn size(&self) -> usize {
        self.frames.len()
    }

    /// Moves the frames into an allocation of their own, so that they no
    /// longer keep alive the buffer they were cut from.
    pub(crate) fn detach(&mut self) {
        self.frames = Bytes::copy_from_slice(&self.frames);
    }

    /// The frames, to tell where they live.
    #[cfg(test)]
    pub(crate) fn frames(&self) -> &Bytes {
        &self.frames
    }

    /// The body of the next result, until there are none left.
    pub(crate) fn next_body(&mut self) -> Option<&[u8]> {
        let (len, rest) = self
            .frames
            .get(self.pos..)?
            .split_first_chunk::<LEN_SIZE>()?;
        let len = u32::from_be_bytes(*len) as usize;
        let body = rest.get(HEADER_SIZE..len)?;
        self.pos += LEN_SIZE + len;
        Some(body)
    }
}

impl FrameDecoder {
    /// The next frame in `src`, or, if it is a RESULT, the run of RESULT
    /// frames of the same call that starts with it and goes on as far as
    /// whole frames go.
    #[inline]
    pub(crate) fn decode_incoming(
        &mut self,
        src: &mut BytesMut,
    ) -> Result<Option<Incoming>, FrameError> {
        let Some(first) = self.whole_head(src)? else {
            return Ok(None);
        };
        if first.kind != Kind::Result {
            return Ok(Some(Incoming::Frame(first.cut(src))));
        }
        Ok(Some(Incoming::Results(self.run(first, src))))
    }

    /// The run of RESULT frames of one call that starts with `first`.
    fn run(&self, first: Head, src: &mut BytesMut) -> Results {
        let mut end = first.size;
        let mut count = 1u32;
        // The run goes on while the next frame is a whole RESULT of the same
        // call: its kind and id are compared as the bytes of the head, which
        // is all a row of thousands of results needs checked per frame. A
        // frame that does not continue the run, valid or not, ends it; the
        // next call decodes it (and reports it if it is bad) after the run's
        // results have gone their way.
        while count < u32::MAX {
            let Some(&[l0, l1, l2, l3, kind, i0, i1, i2, i3, i4, i5, i6, i7]) =
                src.get(end..end + LEN_SIZE + HEADER_SIZE)
            else {
                break;
            };
            let len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
            if kind != Kind::Result as u8
                || u64::from_be_bytes([i0, i1, i2, i3, i4, i5, i6, i7]) != first.id
                || len < HEADER_SIZE
                || len > self.max_frame()
                || src.len() - end < LEN_SIZE + len
            {
                break;
            }
            end += LEN_SIZE + len;
            count += 1;
        }
        Results {
            id: first.id,
            count,
            frames: src.split_to(end).freeze(),
            pos: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::{put, put_empty};
    use super::*;

    fn results(incoming: Option<Incoming>) -> Results {
        match incoming {
            Some(Incoming::Results(r)) => r,
            other => panic!("expected results, got {other:?}"),
        }
    }

    fn bodies(mut r: Results) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(body) = r.next_body() {
            out.push(body.to_vec());
        }
        out
    }

    #[test]
    fn a_run_ends_at_another_call_another_kind_or_a_partial_frame() {
        let mut buf = BytesMut::new();
        put(&mut buf, Kind::Result, 1, b"a");
        put(&mut buf, Kind::Result, 1, b"");
        put(&mut buf, Kind::Result, 1, b"ccc");
        put(&mut buf, Kind::Result, 2, b"x");
        put(&mut buf, Kind::Result, 1, b"d");
        put_empty(&mut buf, Kind::End, 1);
        put(&mut buf, Kind::Result, 1, b"e");
        put(&mut buf, Kind::Result, 1, b"f");
        buf.truncate(buf.len() - 1);
        let mut dec = FrameDecoder::new(64);

        let r = results(dec.decode_incoming(&mut buf).unwrap());
        assert_eq!((r.id(), r.count()), (1, 3));
        assert_eq!(bodies(r), [&b"a"[..], b"", b"ccc"]);
        let r = results(dec.decode_incoming(&mut buf).unwrap());
        assert_eq!((r.id(), r.count(), bodies(r)), (2, 1, vec![b"x".to_vec()]));
        let r = results(dec.decode_incoming(&mut buf).unwrap());
        assert_eq!((r.id(), r.count()), (1, 1));
        match dec.decode_incoming(&mut buf).unwrap() {
            Some(Incoming::Frame(f)) => assert_eq!((f.kind, f.id), (Kind::End, 1)),
            other => panic!("expected END, got {other:?}"),
        }
        let r = results(dec.decode_incoming(&mut buf).unwrap());
        assert_eq!(bodies(r), [b"e"]);
        assert!(dec.decode_incoming(&mut buf).unwrap().is_none());
        assert_eq!(buf.len(), 13, "the partial frame stays");
    }

    #[test]
    fn a_too_short_frame_with_the_runs_head_ends_it_and_is_an_error_next() {
        let mut buf = BytesMut::new();
        put(&mut buf, Kind::Result, 1, b"a");
        // A length of 2 cannot hold the kind and id that follow it.
        buf.extend_from_slice(&2u32.to_be_bytes());
        buf.extend_from_slice(&[Kind::Result as u8]);
        buf.extend_from_slice(&1u64.to_be_bytes());
        let mut dec = FrameDecoder::new(64);
        let r = results(dec.decode_incoming(&mut buf).unwrap());
        assert_eq!(bodies(r), [b"a"]);
        let err = dec.decode_incoming(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooSmall(2)), "{err:?}");
    }

    #[test]
    fn a_whole_frame_over_the_limit_with_the_runs_head_ends_it_and_is_an_error_next() {
        let mut buf = BytesMut::new();
        put(&mut buf, Kind::Result, 1, b"a");
        // Its length prefix counts 9 + 60 = 69, over the limit of 64.
        put(&mut buf, Kind::Result, 1, &[0; 60]);
        let mut dec = FrameDecoder::new(64);
        let r = results(dec.decode_incoming(&mut buf).unwrap());
        assert_eq!(bodies(r), [b"a"]);
        let err = dec.decode_incoming(&mut buf).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { size: 69, max: 64 }),
            "{err:?}"
        );
    }

    #[test]
    fn a_bad_frame_after_a_run_ends_it_and_is_an_error_next() {
        let mut buf = BytesMut::new();
        put(&mut buf, Kind::Result, 1, b"a");
        put(&mut buf, Kind::Result, 1, b"b");
        buf.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        let mut dec = FrameDecoder::new(64);
        let r = results(dec.decode_incoming(&mut buf).unwrap());
        assert_eq!(bodies(r), [b"a", b"b"]);
        let err = dec.decode_incoming(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }));
    }
}
