//! The queue from command tasks to their connection's writer.
//!
//! A command in a task of its own sends its frames through a channel,
//! whose bytes count against the connection's [`Backlog`]: a command (or
//! stream) that finds it full waits before producing more. A
//! command its connection polls inline (see `Connection::start`) runs on
//! the driver's own thread, inside the driver's poll: its frames are
//! encoded straight into a buffer on the side ([`Outbox::poll_collected`]), which
//! the driver appends to its write buffer at the end of the batch, with no
//! channel, no wake-up, no lookup and no frame of their own.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::mpsc;

use crate::conn::backlog::Backlog;
use crate::conn::frame_buf::FrameBuf;

/// One call of a connection: its request id, and the number the
/// connection gave it. A client may use an id again once it has cancelled
/// the call that had it, so frames are routed by both: nothing a cancelled
/// call still sends reaches the call that took its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallRef {
    pub(crate) id: u64,
    pub(crate) seq: u64,
}

/// A message for the connection driver from a command task.
pub(crate) enum Out {
    /// Frames for `call`, holding `results` streamed results; `last`
    /// ends the call.
    Frame {
        call: CallRef,
        last: bool,
        results: u32,
        frame: FrameBuf,
    },
    /// The command consumed `n` argument items: grant the client more.
    ArgCredit { call: CallRef, n: u32 },
}

/// A command task's way to the writer, with the client's frame limit.
/// Cloned per call: one reference count.
#[derive(Clone)]
pub(crate) struct Outbox(Arc<Shared>);

struct Shared {
    tx: mpsc::UnboundedSender<Out>,
    /// Which connection this is, to tell its inline commands from others'.
    conn: u64,
    /// The largest frame the client accepts.
    client_max_frame: usize,
    /// Bytes in the channel, not yet taken by the driver.
    backlog: Backlog,
}

/// Connection numbers for [`Outbox::conn`]; 0 means none.
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// What one command sent while its connection's driver polled it inline,
/// besides its frames (which stay in the collection until the driver
/// takes them with [`Collecting::flush`]). Frames of any other call
/// (a `Call` handed from one command to another, say) go through the
/// channel as usual.
#[derive(Default)]
pub(crate) struct Sent {
    /// Whether the call's last frame is among its frames.
    pub(crate) ended: bool,
    /// How many streamed results they hold.
    pub(crate) results: u32,
    /// Argument credit granted meanwhile.
    pub(crate) credits: Vec<Out>,
    /// Where its frames start in the collection.
    start: usize,
    /// The bytes in the collection now, its frames included.
    pub(crate) held: usize,
}

/// The collection on this thread: frames of the connection `conn` (0:
/// none) sent by its call `call` (its `seq`; 0: none) while its driver
/// polls the call's command inline. The driver opens it once per batch of
/// frames it reads ([`Outbox::poll_collected`]), names the call before each poll
/// and takes the frames at the end, so a command answered at once costs
/// two looks at this thread-local and no copy of its own.
struct Inline {
    conn: u64,
    call: u64,
    frames: BytesMut,
    ended: bool,
    results: u32,
    credits: Vec<Out>,
}

/// A collection that held more than this gives its buffer back when it
/// closes, instead of keeping it for the thread's next batch.
const KEEP_AT_MOST: usize = 256 * 1024;

thread_local! {
    static INLINE: RefCell<Inline> = RefCell::new(Inline {
        conn: 0,
        call: 0,
        frames: BytesMut::new(),
        ended: false,
        results: 0,
        credits: Vec::new(),
    });
}

/// Runs `f` on this thread's collection if it is `conn`'s.
fn with_collection<R>(conn: u64, f: impl FnOnce(&mut Inline) -> R) -> Option<R> {
    INLINE
        .try_with(|inline| {
            let mut inline = inline.try_borrow_mut().ok()?;
            (inline.conn == conn).then(|| f(&mut inline))
        })
        .ok()
        .flatten()
}

/// An open collection (see [`Outbox::poll_collected`]); closes it when
/// dropped, dropping whatever frames were not taken.
pub(crate) struct Collecting {
    /// The connection it is for.
    conn: u64,
    /// How many calls have frames in it, for the write policy.
    answers: usize,
}

impl Collecting {
    /// How many calls have frames in the collection.
    pub(crate) fn answers(&self) -> usize {
        self.answers
    }

    /// Appends the frames collected so far to `out`.
    pub(crate) fn flush(&mut self, out: &mut BytesMut) {
        with_collection(self.conn, |inline| take_frames(inline, out));
        self.answers = 0;
    }

    /// Appends the frames collected to `out` and closes the collection.
    pub(crate) fn finish(self, out: &mut BytesMut) {
        with_collection(self.conn, |inline| {
            take_frames(inline, out);
            close(inline);
        });
        // Closed already.
        std::mem::forget(self);
    }
}

fn take_frames(inline: &mut Inline, out: &mut BytesMut) {
    if !inline.frames.is_empty() {
        out.extend_from_slice(&inline.frames);
        inline.frames.clear();
    }
}

fn close(inline: &mut Inline) {
    inline.conn = 0;
    inline.call = 0;
    if inline.frames.capacity() > KEEP_AT_MOST {
        inline.frames = BytesMut::new();
    } else {
        inline.frames.clear();
    }
    inline.credits.clear();
}

impl Drop for Collecting {
    fn drop(&mut self) {
        with_collection(self.conn, close);
    }
}

impl Outbox {
    /// A new connection's outbox and the receiving end for its driver. At
    /// most `backlog` bytes wait in the channel before senders that can
    /// wait do (see [`room`](Self::room)).
    pub(crate) fn new(
        client_max_frame: usize,
        backlog: usize,
    ) -> (Outbox, mpsc::UnboundedReceiver<Out>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        let shared = Shared {
            tx,
            conn,
            client_max_frame,
            backlog: Backlog::new(backlog),
        };
        (Outbox(Arc::new(shared)), rx)
    }

    /// The largest frame the client accepts.
    pub(crate) fn client_max_frame(&self) -> usize {
        self.0.client_max_frame
    }

    /// The bytes waiting in the channel.
    pub(crate) fn backlog(&self) -> &Backlog {
        &self.0.backlog
    }

    /// Waits until the channel has room for more: at once unless a client
    /// that does not read has let answers pile up.
    pub(crate) async fn room(&self) {
        self.0.backlog.room().await;
    }

    /// Runs `poll` (the driver polling the command of `call`) with what
    /// that call sends meanwhile collected on this thread; says what it
    /// sent. The collection opens at the first such poll of a batch, into
    /// `collecting`, and stays open until that is finished or dropped.
    ///
    /// A collection of another connection already open here (a command
    /// that drives a connection of its own) stays as it is, and nothing is
    /// collected for this one: its commands' frames take the channel.
    #[inline]
    pub(crate) fn poll_collected<R>(
        &self,
        collecting: &mut Option<Collecting>,
        call: CallRef,
        poll: impl FnOnce() -> R,
    ) -> (R, Sent) {
        let conn = self.0.conn;
        let start = INLINE
            .try_with(|inline| {
                let mut inline = inline.try_borrow_mut().ok()?;
                if collecting.is_none() && inline.conn == 0 {
                    inline.conn = conn;
                    *collecting = Some(Collecting { conn, answers: 0 });
                }
                if inline.conn != conn {
                    return None;
                }
                inline.call = call.seq;
                inline.ended = false;
                inline.results = 0;
                Some(inline.frames.len())
            })
            .ok()
            .flatten();
        let polled = poll();
        let Some(start) = start else {
            return (polled, Sent::default());
        };
        let sent = with_collection(conn, |inline| {
            inline.call = 0;
            if inline.frames.len() > start {
                if let Some(collecting) = collecting {
                    collecting.answers += 1;
                }
            }
            Sent {
                ended: inline.ended,
                results: inline.results,
                credits: if inline.credits.is_empty() {
                    Vec::new()
                } else {
                    std::mem::take(&mut inline.credits)
                },
                start,
                held: inline.frames.len(),
            }
        });
        (polled, sent.unwrap_or_default())
    }

    /// Drops the frames the call of `sent` sent in its poll (its command
    /// panicked).
    pub(crate) fn discard(&self, collecting: &mut Option<Collecting>, sent: &Sent) {
        with_collection(self.0.conn, |inline| inline.frames.truncate(sent.start));
        if sent.held > sent.start {
            if let Some(collecting) = collecting {
                collecting.answers = collecting.answers.saturating_sub(1);
            }
        }
    }

    /// Runs `f` with `value` on the collection if this connection's driver
    /// is polling `call` inline on this thread; otherwise gives `value`
    /// back.
    fn inline<T, R>(
        &self,
        call: CallRef,
        value: T,
        f: impl FnOnce(&mut Inline, T) -> R,
    ) -> Result<R, T> {
        let mut value = Some(value);
        let done = with_collection(self.0.conn, |inline| {
            if inline.call != call.seq {
                return None;
            }
            Some(f(inline, value.take()?))
        })
        .flatten();
        match (done, value) {
            (Some(r), _) => Ok(r),
            (None, Some(value)) => Err(value),
            (None, None) => unreachable!("`value` is taken only by a call that returns"),
        }
    }

    /// Queues what `encode` appends: whole frames of `call`, the last one
    /// of the call if `last`. Polled inline, they are encoded straight into
    /// the collection; otherwise into a frame of their own for the channel.
    /// `encode` must leave the buffer as it was when it fails.
    #[inline]
    pub(crate) fn send_frames<E>(
        &self,
        call: CallRef,
        last: bool,
        encode: impl FnOnce(&mut BytesMut) -> Result<(), E>,
    ) -> Result<(), E> {
        let collected = self.inline(call, encode, |c, encode| {
            let result = encode(&mut Rewind::new(&mut c.frames));
            c.ended |= last && result.is_ok();
            result
        });
        match collected {
            Ok(result) => result,
            Err(encode) => {
                let frame = FrameBuf::encode(encode)?;
                self.send(Out::Frame {
                    call,
                    last,
                    results: 0,
                    frame,
                });
                Ok(())
            }
        }
    }

    pub(crate) fn send(&self, out: Out) {
        let call = match out {
            Out::Frame { call, .. } | Out::ArgCredit { call, .. } => call,
        };
        let collected = self.inline(call, out, |c, out| match out {
            Out::Frame {
                last,
                results,
                frame,
                ..
            } => {
                c.frames.extend_from_slice(frame.as_slice());
                c.ended |= last;
                c.results += results;
            }
            credit @ Out::ArgCredit { .. } => c.credits.push(credit),
        });
        if let Err(out) = collected {
            if let Out::Frame { frame, .. } = &out {
                self.0.backlog.charge(frame.len());
            }
            // The driver is gone only when the connection is: nobody to tell.
            let _ = self.0.tx.send(out);
        }
    }
}

/// A buffer frames are appended to that drops a half-written frame if the
/// encoder unwinds (a `Serialize` impl that panics, inside a command that
/// catches the panic): the rest of the collection still goes out.
struct Rewind<'a> {
    buf: &'a mut BytesMut,
    start: usize,
}

impl<'a> Rewind<'a> {
    fn new(buf: &'a mut BytesMut) -> Self {
        let start = buf.len();
        Rewind { buf, start }
    }
}

impl std::ops::Deref for Rewind<'_> {
    type Target = BytesMut;

    fn deref(&self) -> &BytesMut {
        self.buf
    }
}

impl std::ops::DerefMut for Rewind<'_> {
    fn deref_mut(&mut self) -> &mut BytesMut {
        self.buf
    }
}

impl Drop for Rewind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.buf.truncate(self.start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The call with request id `id`, numbered `id` too.
    fn call(id: u64) -> CallRef {
        CallRef { id, seq: id }
    }

    fn credit(id: u64) -> Out {
        Out::ArgCredit {
            call: call(id),
            n: 1,
        }
    }

    fn id_of(out: &Out) -> u64 {
        match out {
            Out::Frame { call, .. } | Out::ArgCredit { call, .. } => call.id,
        }
    }

    /// Polls `poll` as the driver polls `call`'s command inline, in a
    /// collection of its own: the frames collected, and what else it sent.
    fn collect_one(outbox: &Outbox, call: CallRef, poll: impl FnOnce()) -> (BytesMut, Sent) {
        let mut collecting = None;
        let ((), sent) = outbox.poll_collected(&mut collecting, call, poll);
        let mut frames = BytesMut::new();
        if let Some(collecting) = collecting {
            collecting.finish(&mut frames);
        }
        (frames, sent)
    }

    fn frame(outbox: &Outbox, id: u64, byte: u8, last: bool) {
        outbox
            .send_frames(call(id), last, |buf| {
                buf.extend_from_slice(&[byte]);
                Ok::<_, ()>(())
            })
            .unwrap();
    }

    #[test]
    fn only_the_polled_call_of_the_polling_connection_collects_inline() {
        let (ours, mut our_rx) = Outbox::new(1024, 1 << 20);
        let (theirs, mut their_rx) = Outbox::new(1024, 1 << 20);
        let (frames, sent) = collect_one(&ours, call(1), || {
            frame(&ours, 1, b'a', false);
            ours.send(credit(1));
            // The same call id on another connection, and another call of
            // this connection (its `Call` handed to the polled command):
            // both through their channels.
            frame(&theirs, 1, b'x', true);
            frame(&ours, 5, b'y', true);
            ours.send(credit(5));
            ours.clone().send(Out::Frame {
                call: call(1),
                last: false,
                results: 0,
                frame: FrameBuf::encode(|buf| {
                    buf.extend_from_slice(b"b");
                    Ok::<_, ()>(())
                })
                .unwrap(),
            });
            frame(&ours, 1, b'c', true);
        });
        assert_eq!(&frames[..], b"abc", "call 1's, in order");
        assert!(sent.ended);
        assert_eq!(sent.credits.iter().map(id_of).collect::<Vec<_>>(), [1]);
        assert_eq!(id_of(&their_rx.try_recv().unwrap()), 1);
        assert_eq!(id_of(&our_rx.try_recv().unwrap()), 5);
        assert_eq!(id_of(&our_rx.try_recv().unwrap()), 5);
        assert!(our_rx.try_recv().is_err());

        // Outside an inline poll, everything goes through the channel.
        frame(&ours, 1, b'd', true);
        assert_eq!(id_of(&our_rx.try_recv().unwrap()), 1);

        // The next collection starts empty.
        let (frames, sent) = collect_one(&ours, call(2), || ());
        assert!(frames.is_empty() && !sent.ended);
    }

    #[test]
    fn frames_in_the_channel_count_against_the_backlog_and_inline_ones_do_not() {
        let (ours, _rx) = Outbox::new(1024, 1 << 20);
        collect_one(&ours, call(1), || {
            frame(&ours, 1, b'a', false);
        });
        assert_eq!(ours.backlog().queued(), 0);
        frame(&ours, 1, b'b', false);
        frame(&ours, 2, b'c', true);
        assert_eq!(ours.backlog().queued(), 2);
    }

    #[test]
    fn a_reused_request_id_is_another_call() {
        let (ours, mut rx) = Outbox::new(1024, 1 << 20);
        let old = CallRef { id: 51, seq: 1 };
        let new = CallRef { id: 51, seq: 2 };
        let (frames, _) = collect_one(&ours, new, || {
            // The cancelled call's last words, while the new one is polled.
            ours.send_frames(old, true, |buf| {
                buf.extend_from_slice(b"old");
                Ok::<_, ()>(())
            })
            .unwrap();
            ours.send_frames(new, true, |buf| {
                buf.extend_from_slice(b"new");
                Ok::<_, ()>(())
            })
            .unwrap();
        });
        assert_eq!(&frames[..], b"new");
        match rx.try_recv().unwrap() {
            Out::Frame { call, .. } => assert_eq!(call, old),
            Out::ArgCredit { .. } => panic!("expected the old call's frame"),
        }
    }

    #[test]
    fn an_encoder_that_unwinds_leaves_no_half_frame() {
        let (ours, _rx) = Outbox::new(1024, 1 << 20);
        let (frames, _) = collect_one(&ours, call(1), || {
            frame(&ours, 1, b'a', false);
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = ours.send_frames(call(1), true, |buf| {
                    buf.extend_from_slice(b"half");
                    panic!("a Serialize impl panicked");
                    #[allow(unreachable_code)]
                    Ok::<_, ()>(())
                });
            }));
            assert!(caught.is_err());
            frame(&ours, 1, b'b', true);
        });
        assert_eq!(&frames[..], b"ab");
    }

    #[test]
    fn a_failed_encode_leaves_nothing_and_does_not_end_the_call() {
        let (ours, _rx) = Outbox::new(1024, 1 << 20);
        let (frames, sent) = collect_one(&ours, call(1), || {
            let failed = ours.send_frames(call(1), true, |_| Err::<(), _>("no"));
            assert_eq!(failed, Err("no"));
        });
        assert!(frames.is_empty() && !sent.ended);
    }

    #[test]
    fn a_panic_in_the_poll_still_closes_the_collection() {
        let (ours, mut rx) = Outbox::new(1024, 1 << 20);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut collecting = None;
            ours.poll_collected(&mut collecting, call(1), || {
                ours.send(credit(1));
                panic!("the command panicked");
            })
        }));
        assert!(result.is_err());
        ours.send(credit(1));
        assert_eq!(id_of(&rx.try_recv().unwrap()), 1, "through the channel");
        let (frames, _) = collect_one(&ours, call(2), || frame(&ours, 2, b'a', true));
        assert_eq!(&frames[..], b"a", "a new collection opens");
    }

    #[test]
    fn a_batch_collects_each_call_in_turn_and_a_panicked_one_is_dropped() {
        let (ours, mut rx) = Outbox::new(1024, 1 << 20);
        let mut open = None;
        let ((), first) = ours.poll_collected(&mut open, call(1), || frame(&ours, 1, b'a', true));
        let ((), second) = ours.poll_collected(&mut open, call(2), || {
            frame(&ours, 2, b'b', false);
            ours.send(credit(2));
        });
        // Between polls, nothing is collected: not even the last call's.
        frame(&ours, 2, b'x', false);
        let ((), third) = ours.poll_collected(&mut open, call(3), || frame(&ours, 3, b'c', false));
        ours.discard(&mut open, &third);
        let mut collecting = open.take().expect("opened by the first poll");
        assert_eq!(collecting.answers(), 2, "calls 1 and 2");
        let mut frames = BytesMut::new();
        collecting.flush(&mut frames);
        assert_eq!(&frames[..], b"ab");
        let mut open = Some(collecting);
        let ((), fourth) = ours.poll_collected(&mut open, call(4), || frame(&ours, 4, b'd', true));
        open.unwrap().finish(&mut frames);
        assert_eq!(&frames[..], b"abd", "flushed, then finished");
        assert!(fourth.ended);
        assert!(first.ended && !second.ended && !third.ended);
        assert_eq!(second.credits.iter().map(id_of).collect::<Vec<_>>(), [2]);
        assert!(first.credits.is_empty());
        assert_eq!(id_of(&rx.try_recv().unwrap()), 2);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_collection_opened_inside_another_collects_nothing() {
        let (outer, _outer_rx) = Outbox::new(1024, 1 << 20);
        let (inner, mut inner_rx) = Outbox::new(1024, 1 << 20);
        let (frames, sent) = collect_one(&outer, call(1), || {
            // A command that drives a connection of its own.
            let (frames, sent) = collect_one(&inner, call(1), || frame(&inner, 1, b'i', true));
            assert!(frames.is_empty() && !sent.ended);
            frame(&outer, 1, b'o', true);
        });
        assert_eq!(&frames[..], b"o");
        assert!(sent.ended);
        assert_eq!(id_of(&inner_rx.try_recv().unwrap()), 1);
    }
}
