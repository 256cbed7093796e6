//! A future its driver may look at on every turn but that is polled only
//! when that can change something: the first time, after it was changed,
//! and after it woke its waker.
//!
//! A connection driver wakes for every frame and every new call, and its
//! timers (keepalive, idle timeout) and the shutdown signal almost never
//! have news then. Polling a tokio `Sleep` or `Notified` costs around a
//! hundred instructions, most of a sequential call's worth of timers; the
//! gate's look costs an atomic load and a waker comparison. The inner
//! future is polled with a waker of the gate's own, which notes that it
//! was woken and passes the wake on to the task.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// `F`, polled only when it may have progressed (see the module's docs).
pub(crate) struct Gated<F> {
    inner: F,
    /// Whether `inner` said Pending to the gate's waker and has neither
    /// been changed nor woken it since: polling it again would say the same.
    waiting: bool,
    gate: Arc<Gate>,
    /// `gate` as a waker, made once.
    waker: Waker,
    /// The task waker `gate` passes wakes on to, as last registered.
    task: Option<Waker>,
}

/// What the gate's waker shares with the future.
#[derive(Default)]
struct Gate {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = &*task {
            task.wake_by_ref();
        }
    }
}

impl<F: Future + Unpin> Gated<F> {
    pub(crate) fn new(inner: F) -> Self {
        let gate = Arc::new(Gate::default());
        Gated {
            inner,
            waiting: false,
            waker: Waker::from(gate.clone()),
            gate,
            task: None,
        }
    }

    /// The future, to change: it is polled on the next turn.
    pub(crate) fn get_mut(&mut self) -> &mut F {
        self.waiting = false;
        &mut self.inner
    }

    /// Polls the future if it may have progressed since it last said
    /// Pending; otherwise says Pending at once. Either way, `cx`'s task is
    /// woken when it does progress.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<F::Output> {
        if !self.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            let task = cx.waker().clone();
            *self
                .gate
                .task
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(task.clone());
            self.task = Some(task);
        }
        // Cleared before the poll, so a wake during or after it is seen.
        if self.gate.woken.load(Ordering::Relaxed) && self.gate.woken.swap(false, Ordering::Acquire)
        {
            self.waiting = false;
        }
        if self.waiting {
            return Poll::Pending;
        }
        let polled = Pin::new(&mut self.inner).poll(&mut Context::from_waker(&self.waker));
        self.waiting = polled.is_pending();
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Pending until `ready`, counting its polls and keeping the last
    /// waker it was given.
    #[derive(Default)]
    struct Probe {
        polls: usize,
        ready: bool,
        waker: Option<Waker>,
    }

    impl Future for Probe {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls += 1;
            self.waker = Some(cx.waker().clone());
            if self.ready {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    /// A task waker counting its wakes.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn poll(gated: &mut Gated<Probe>, task: &Arc<Count>) -> Poll<()> {
        let waker = Waker::from(task.clone());
        gated.poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn polled_again_only_when_woken_or_changed() {
        let task = Arc::new(Count::default());
        let mut gated = Gated::new(Probe::default());
        assert!(poll(&mut gated, &task).is_pending());
        assert!(poll(&mut gated, &task).is_pending());
        assert_eq!(gated.inner.polls, 1, "not woken: not polled again");

        gated.inner.ready = true;
        gated.inner.waker.take().unwrap().wake();
        assert_eq!(
            task.0.load(Ordering::Relaxed),
            1,
            "the wake reached the task"
        );
        assert!(poll(&mut gated, &task).is_ready());
        assert_eq!(gated.inner.polls, 2);

        gated.get_mut().ready = false;
        assert!(poll(&mut gated, &task).is_pending());
        assert_eq!(gated.inner.polls, 3, "changed: polled");
        assert!(poll(&mut gated, &task).is_pending());
        assert_eq!(gated.inner.polls, 3);
    }

    #[test]
    fn a_wake_goes_to_the_task_that_polled_last() {
        let (first, second) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let mut gated = Gated::new(Probe::default());
        assert!(poll(&mut gated, &first).is_pending());
        assert!(poll(&mut gated, &second).is_pending());
        gated.inner.waker.take().unwrap().wake();
        assert_eq!(first.0.load(Ordering::Relaxed), 0);
        assert_eq!(second.0.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_gated_sleep_fires() {
        let mut sleep = Gated::new(Box::pin(tokio::time::sleep(
            std::time::Duration::from_secs(5),
        )));
        let start = tokio::time::Instant::now();
        std::future::poll_fn(|cx| sleep.poll(cx)).await;
        assert_eq!(start.elapsed(), std::time::Duration::from_secs(5));
        sleep
            .get_mut()
            .as_mut()
            .reset(start + std::time::Duration::from_secs(8));
        std::future::poll_fn(|cx| sleep.poll(cx)).await;
        assert_eq!(start.elapsed(), std::time::Duration::from_secs(8));
    }
}
