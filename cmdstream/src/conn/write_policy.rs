//! When to write: coalescing that survives tokio's LIFO slot.
//!
//! A driver is woken whenever a caller queues a frame. On tokio's
//! multi-thread runtime the woken driver goes into the worker's LIFO slot and
//! runs right after that one caller, before the other callers that are
//! already runnable and about to queue their own frames. Draining the queue
//! then finds one frame, and the connection pays one `write` per call.
//!
//! The policy counts how many frames the driver should expect soon (callers
//! it just woke with results on the client; commands still running on the
//! server). When fewer than that are queued, the driver yields once: it
//! wakes itself and returns, which puts it at the back of the run queue, so
//! the others queue their frames first. One write then carries them all. A
//! lone caller never waits: with nothing more expected it writes at once.

#[derive(Debug, Default)]
pub(crate) struct WritePolicy {
    queued: usize,
    yielded: bool,
}

impl WritePolicy {
    /// Frames put in the write buffer since the last write.
    pub(crate) fn frames(&self) -> usize {
        self.queued
    }

    /// `frames` frames were put in the write buffer.
    pub(crate) fn queued(&mut self, frames: usize) {
        self.queued += frames;
    }

    /// Whether to yield once before writing, given how many frames are
    /// expected to be queued soon.
    pub(crate) fn should_yield(&mut self, expected: usize) -> bool {
        if self.yielded || self.queued >= expected {
            return false;
        }
        self.yielded = true;
        true
    }

    /// The buffer went to the socket: start counting afresh.
    pub(crate) fn wrote(&mut self) {
        self.queued = 0;
        self.yielded = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yields_once_when_more_frames_are_expected() {
        let mut p = WritePolicy::default();
        p.queued(1);
        assert!(p.should_yield(100));
        assert!(!p.should_yield(100), "only once per write");
        p.wrote();
        p.queued(1);
        assert!(!p.should_yield(1), "a lone caller is written at once");
        assert!(!p.should_yield(0));
    }
}
