//! The ping schedule and dead-peer detection (`docs/PROTOCOL.md`, §3.2).
//!
//! The driver notes when it last heard from the peer: bytes arrived, or a
//! socket that was full took bytes again, so the peer reads (a peer busy
//! reading a long stream may not get to a ping queued behind it for a
//! while). Once a whole interval has
//! passed since then it pings; once two have, the peer is declared dead.
//! Both are counted from that moment itself, so a peer is given up after
//! exactly two intervals of silence, whatever the timer's phase.

use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::gated::Gated;

/// What the driver must do when the keepalive timer fires.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Nothing arrived for an interval: send a PING.
    SendPing,
    /// Nothing arrived for two intervals, the ping notwithstanding: the
    /// peer is gone. Carries how long it was silent.
    Dead(Duration),
}

/// The longest keepalive interval: what a hello can announce (`u32`
/// milliseconds, about 49 days). Twice it still fits after any instant.
pub(crate) const MAX_INTERVAL: Duration = Duration::from_millis(u32::MAX as u64);

pub(crate) struct Keepalive {
    timer: Option<Timer>,
}

struct Timer {
    interval: Duration,
    sleep: Gated<Pin<Box<Sleep>>>,
    /// When bytes last arrived (or the connection started).
    heard: Instant,
    /// The silence the last ping was sent in, as the `heard` it started
    /// at: one ping per silence.
    pinged: Option<Instant>,
}

impl Keepalive {
    /// `None` or a zero interval turns keepalive off; an interval beyond
    /// [`MAX_INTERVAL`] is taken as that.
    pub(crate) fn new(interval: Option<Duration>) -> Self {
        let timer = interval.filter(|d| !d.is_zero()).map(|interval| Timer {
            interval: interval.min(MAX_INTERVAL),
            sleep: Gated::new(Box::pin(tokio::time::sleep(interval.min(MAX_INTERVAL)))),
            heard: Instant::now(),
            pinged: None,
        });
        Keepalive { timer }
    }

    /// The interval, if keepalive is on.
    pub(crate) fn interval(&self) -> Option<Duration> {
        self.timer.as_ref().map(|t| t.interval)
    }

    /// Records that the peer is alive: bytes arrived, or it read bytes we
    /// wrote. Called once per read or write, not per frame.
    pub(crate) fn heard(&mut self) {
        if let Some(t) = &mut self.timer {
            t.heard = Instant::now();
        }
    }

    /// Ready when the driver has to act; re-arms itself.
    pub(crate) fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Tick> {
        let Some(t) = self.timer.as_mut() else {
            return Poll::Pending;
        };
        loop {
            ready!(t.sleep.poll(cx));
            let silent = Instant::now().saturating_duration_since(t.heard);
            if silent < t.interval {
                // Heard from since the timer was set: wait for an interval
                // after that.
                t.sleep.get_mut().as_mut().reset(t.heard + t.interval);
                continue;
            }
            if silent >= t.interval * 2 {
                return Poll::Ready(Tick::Dead(silent));
            }
            t.sleep.get_mut().as_mut().reset(t.heard + t.interval * 2);
            if t.pinged != Some(t.heard) {
                t.pinged = Some(t.heard);
                return Poll::Ready(Tick::SendPing);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[tokio::test(start_paused = true)]
    async fn silent_peer_is_pinged_then_declared_dead() {
        let mut k = Keepalive::new(Some(Duration::from_secs(10)));
        let start = Instant::now();
        assert_eq!(poll_fn(|cx| k.poll_tick(cx)).await, Tick::SendPing);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert_eq!(
            poll_fn(|cx| k.poll_tick(cx)).await,
            Tick::Dead(Duration::from_secs(20))
        );
        assert_eq!(start.elapsed(), Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_is_given_up_two_intervals_after_it_was_last_heard() {
        // Heard just after the timer was set: counted from then, not from
        // the timer's next tick (which would allow almost three intervals).
        let mut k = Keepalive::new(Some(Duration::from_secs(10)));
        let start = Instant::now();
        tokio::time::sleep(Duration::from_millis(100)).await;
        k.heard();
        assert_eq!(poll_fn(|cx| k.poll_tick(cx)).await, Tick::SendPing);
        assert_eq!(start.elapsed(), Duration::from_millis(10_100));
        assert_eq!(
            poll_fn(|cx| k.poll_tick(cx)).await,
            Tick::Dead(Duration::from_secs(20))
        );
        assert_eq!(start.elapsed(), Duration::from_millis(20_100));
    }

    #[tokio::test(start_paused = true)]
    async fn anything_heard_after_the_ping_keeps_the_peer_alive() {
        let mut k = Keepalive::new(Some(Duration::from_secs(10)));
        let start = Instant::now();
        assert_eq!(poll_fn(|cx| k.poll_tick(cx)).await, Tick::SendPing);
        tokio::time::sleep(Duration::from_secs(5)).await;
        k.heard(); // the pong, at 15 s
                   // Pinged again an interval after the pong, dead two after it.
        assert_eq!(poll_fn(|cx| k.poll_tick(cx)).await, Tick::SendPing);
        assert_eq!(start.elapsed(), Duration::from_secs(25));
        assert!(matches!(poll_fn(|cx| k.poll_tick(cx)).await, Tick::Dead(_)));
        assert_eq!(start.elapsed(), Duration::from_secs(35));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_answers_at_once_is_pinged_every_interval() {
        let mut k = Keepalive::new(Some(Duration::from_secs(5)));
        let start = Instant::now();
        for round in 1..=4u64 {
            assert_eq!(poll_fn(|cx| k.poll_tick(cx)).await, Tick::SendPing);
            assert_eq!(start.elapsed(), Duration::from_secs(5 * round));
            k.heard(); // the pong, at once
        }
    }

    #[tokio::test(start_paused = true)]
    async fn off_never_fires() {
        let mut k = Keepalive::new(None);
        let fired =
            tokio::time::timeout(Duration::from_secs(3600), poll_fn(|cx| k.poll_tick(cx))).await;
        assert!(fired.is_err());
        assert_eq!(Keepalive::new(Some(Duration::ZERO)).interval(), None);
    }
}
