//! The driver's end of a result stream: the results of one read go to the
//! consumer together, as one message, instead of one message each.

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::Error;
use crate::wire::results::Results;

/// Results as the driver hands them over.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// One result: the body of a RESULT_LAST.
    One(Bytes),
    /// Consecutive RESULT frames, as read.
    Run(Results),
}

/// What a result stream receives from the driver.
pub(crate) enum Event {
    /// Results, in order; never empty.
    Items(Vec<Chunk>),
    /// The stream ended; nothing follows.
    End,
    /// The call failed; nothing follows.
    Failed(Error),
}

/// The consumer's end.
pub(crate) type Events = mpsc::UnboundedReceiver<Event>;

/// Gathers a stream's results until [`flush`](Self::flush).
pub(crate) struct StreamSink {
    tx: mpsc::UnboundedSender<Event>,
    batch: Vec<Chunk>,
}

impl StreamSink {
    pub(crate) fn new() -> (StreamSink, Events) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            StreamSink {
                tx,
                batch: Vec::new(),
            },
            rx,
        )
    }

    /// Adds results; `true` if they are the first since the last flush, so
    /// that the caller knows this stream needs one.
    pub(crate) fn push(&mut self, chunk: Chunk) -> bool {
        self.batch.push(chunk);
        self.batch.len() == 1
    }

    /// Hands the gathered results to the consumer.
    pub(crate) fn flush(&mut self) {
        if !self.batch.is_empty() {
            // The next batch is likely as long as this one: room for it at
            // once rather than a dozen reallocations on the way.
            let next = Vec::with_capacity(self.batch.len());
            let items = std::mem::replace(&mut self.batch, next);
            let _ = self.tx.send(Event::Items(items));
        }
    }

    /// Hands over what is gathered, then the end.
    pub(crate) fn end(mut self) {
        self.flush();
        let _ = self.tx.send(Event::End);
    }

    /// Hands over what is gathered, then the failure.
    pub(crate) fn fail(mut self, error: Error) {
        self.flush();
        let _ = self.tx.send(Event::Failed(error));
    }

    /// Whether the consumer is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(rx: &mut Events) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Ok(event) = rx.try_recv() {
            match event {
                Event::Items(v) => out.push(
                    v.iter()
                        .map(|c| match c {
                            Chunk::One(b) => b.len() as u8,
                            Chunk::Run(r) => panic!("unexpected {r:?}"),
                        })
                        .collect(),
                ),
                Event::End => out.push(b"end".to_vec()),
                Event::Failed(_) => out.push(b"failed".to_vec()),
            }
        }
        out
    }

    fn one(bytes: &'static [u8]) -> Chunk {
        Chunk::One(Bytes::from_static(bytes))
    }

    #[test]
    fn results_go_over_in_batches_then_the_end() {
        let (mut sink, mut rx) = StreamSink::new();
        assert!(sink.push(one(b"a")));
        assert!(!sink.push(one(b"bb")));
        sink.flush();
        sink.flush();
        assert!(sink.push(one(b"ccc")));
        sink.end();
        assert_eq!(items(&mut rx), [vec![1, 2], vec![3], b"end".to_vec()]);
    }

    #[test]
    fn a_failure_comes_after_what_was_gathered() {
        let (mut sink, mut rx) = StreamSink::new();
        sink.push(one(b"a"));
        sink.fail(Error::connection_lost("gone"));
        assert_eq!(items(&mut rx), [vec![1], b"failed".to_vec()]);
    }
}
