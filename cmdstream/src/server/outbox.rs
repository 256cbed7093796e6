//! The queue from command tasks to their connection's writer.
//!
//! A command in a task of its own sends its frames through a channel. A
//! command its connection polls inline (see `Connection::start`) runs on
//! the driver's own thread, inside the driver's poll: what it sends is
//! collected on the side ([`collect_inline`]) and the driver takes it
//! straight after, with no channel, no wake-up and no lookup.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::conn::frame_buf::FrameBuf;

/// A message for the connection driver from a command task.
pub(crate) enum Out {
    /// A frame for call `id`; `last` ends the call.
    Frame {
        id: u64,
        last: bool,
        frame: FrameBuf,
    },
    /// The command consumed `n` argument items: grant the client more.
    ArgCredit { id: u64, n: u32 },
}

/// A command task's way to the writer, with the client's frame limit.
#[derive(Clone)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Out>,
    /// Which connection this is, to tell its inline commands from others'.
    conn: u64,
    /// The largest frame the client accepts.
    pub(crate) client_max_frame: usize,
}

/// Connection numbers for [`Outbox::conn`]; 0 means none.
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// What the commands of connection `conn` sent while the driver polled
/// them inline on this thread.
struct Inline {
    conn: u64,
    outs: Vec<Out>,
}

thread_local! {
    static INLINE: RefCell<Inline> = const {
        RefCell::new(Inline {
            conn: 0,
            outs: Vec::new(),
        })
    };
}

impl Outbox {
    /// A new connection's outbox and the receiving end for its driver.
    pub(crate) fn new(client_max_frame: usize) -> (Outbox, mpsc::UnboundedReceiver<Out>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        (
            Outbox {
                tx,
                conn,
                client_max_frame,
            },
            rx,
        )
    }

    pub(crate) fn send(&self, out: Out) {
        let mut out = Some(out);
        let _ = INLINE.try_with(|inline| {
            if let Ok(mut inline) = inline.try_borrow_mut() {
                if inline.conn == self.conn {
                    inline.outs.extend(out.take());
                }
            }
        });
        if let Some(out) = out {
            // The driver is gone only when the connection is: nobody to tell.
            let _ = self.tx.send(out);
        }
    }
}

/// Runs `poll` (the driver polling one of its commands) and appends to
/// `outs` whatever the commands of `outbox`'s connection sent meanwhile,
/// in order.
pub(crate) fn collect_inline<R>(
    outbox: &Outbox,
    outs: &mut Vec<Out>,
    poll: impl FnOnce() -> R,
) -> R {
    /// Closes the collection even if `poll` unwinds.
    struct Close<'a>(&'a mut Vec<Out>);
    impl Drop for Close<'_> {
        fn drop(&mut self) {
            let _ = INLINE.try_with(|inline| {
                let mut inline = inline.borrow_mut();
                inline.conn = 0;
                self.0.append(&mut inline.outs);
            });
        }
    }

    INLINE.with(|inline| {
        let mut inline = inline.borrow_mut();
        debug_assert_eq!(inline.conn, 0, "inline polls do not nest");
        inline.conn = outbox.conn;
    });
    let _close = Close(outs);
    poll()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credit(id: u64) -> Out {
        Out::ArgCredit { id, n: 1 }
    }

    fn ids(outs: &[Out]) -> Vec<u64> {
        outs.iter()
            .map(|o| match o {
                Out::Frame { id, .. } | Out::ArgCredit { id, .. } => *id,
            })
            .collect()
    }

    #[test]
    fn only_the_polling_connection_collects_inline() {
        let (ours, mut our_rx) = Outbox::new(1024);
        let (theirs, mut their_rx) = Outbox::new(1024);
        let mut outs = Vec::new();
        collect_inline(&ours, &mut outs, || {
            ours.send(credit(1));
            theirs.send(credit(2));
            ours.clone().send(credit(3));
        });
        assert_eq!(ids(&outs), [1, 3], "ours, in order, collected");
        assert!(our_rx.try_recv().is_err(), "nothing of ours went through the channel");
        assert_eq!(ids(&[their_rx.try_recv().unwrap()]), [2]);

        // Outside an inline poll, everything goes through the channel.
        ours.send(credit(4));
        assert_eq!(ids(&[our_rx.try_recv().unwrap()]), [4]);
    }

    #[test]
    fn a_panic_in_the_poll_still_closes_the_collection() {
        let (ours, mut rx) = Outbox::new(1024);
        let mut outs = Vec::new();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            collect_inline(&ours, &mut outs, || {
                ours.send(credit(1));
                panic!("the command panicked");
            })
        }));
        assert!(result.is_err());
        assert_eq!(ids(&outs), [1]);
        ours.send(credit(2));
        assert_eq!(ids(&[rx.try_recv().unwrap()]), [2]);
    }
}
