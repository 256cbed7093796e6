//! The queue from command tasks to their connection's writer.

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
    pub(crate) tx: mpsc::UnboundedSender<Out>,
    /// The largest frame the client accepts.
    pub(crate) client_max_frame: usize,
}

impl Outbox {
    pub(crate) fn send(&self, out: Out) {
        // The driver is gone only when the connection is: nobody to tell.
        let _ = self.tx.send(out);
    }
}
