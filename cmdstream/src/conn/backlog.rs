//! How many bytes other tasks have queued for a connection's writer, and
//! a way for them to wait until there is room for more.
//!
//! A connection's driver stops taking frames into its write buffer while a
//! peer does not read, but the tasks that produce those frames (a command
//! answering, a stream, a client's argument pump) run on their own. Each
//! charges what it queues here and, before producing more, waits while the
//! total is at the limit; the driver releases what it takes (or writes).
//! Memory then stays within the limit plus one frame per producer that
//! found room at the same moment, instead of growing with whatever a peer
//! that never reads can make the others produce.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Debug)]
pub(crate) struct Backlog {
    queued: AtomicUsize,
    limit: usize,
    /// Set when the connection is gone: nobody waits any more.
    closed: AtomicBool,
    room: Notify,
}

impl Backlog {
    pub(crate) fn new(limit: usize) -> Self {
        Backlog {
            queued: AtomicUsize::new(0),
            limit,
            closed: AtomicBool::new(false),
            room: Notify::new(),
        }
    }

    /// `bytes` were queued for the writer.
    pub(crate) fn charge(&self, bytes: usize) {
        self.queued.fetch_add(bytes, Ordering::SeqCst);
    }

    /// `bytes` charged earlier left the queue; wakes the waiting producers
    /// if that made room.
    pub(crate) fn release(&self, bytes: usize) {
        let before = self.queued.fetch_sub(bytes, Ordering::SeqCst);
        debug_assert!(
            before >= bytes,
            "released {bytes} of {before} bytes charged"
        );
        if before >= self.limit && before - bytes < self.limit {
            self.room.notify_waiters();
        }
    }

    /// Bytes queued now.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Whether a producer may queue more now.
    pub(crate) fn has_room(&self) -> bool {
        self.queued() < self.limit || self.closed.load(Ordering::SeqCst)
    }

    /// Waits until a producer may queue more: at once while there is room
    /// (one atomic load), and at once for good after [`close`](Self::close).
    pub(crate) async fn room(&self) {
        loop {
            if self.has_room() {
                return;
            }
            // Registered before the second look, so that a release between
            // the look and the wait is not missed.
            let mut notified = pin!(self.room.notified());
            notified.as_mut().enable();
            if self.has_room() {
                return;
            }
            notified.await;
        }
    }

    /// The connection is gone: every waiter, now and later, goes on (and
    /// finds nobody to send to).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn producers_wait_at_the_limit_until_the_writer_takes_frames() {
        let backlog = Arc::new(Backlog::new(100));
        backlog.charge(60);
        backlog.room().await; // room: 60 < 100
        backlog.charge(60);
        assert!(!backlog.has_room());
        let waiter = tokio::spawn({
            let backlog = backlog.clone();
            async move { backlog.room().await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished(), "a producer went on at the limit");
        backlog.release(10); // 110: still at the limit
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished());
        backlog.release(20); // 90: room
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("the producer was not woken")
            .unwrap();
        assert_eq!(backlog.queued(), 90);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_releases_every_waiter() {
        let backlog = Arc::new(Backlog::new(1));
        backlog.charge(5);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let backlog = backlog.clone();
                tokio::spawn(async move { backlog.room().await })
            })
            .collect();
        tokio::task::yield_now().await;
        backlog.close();
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(1), w)
                .await
                .expect("a waiter stayed")
                .unwrap();
        }
        backlog.room().await;
    }
}
