//! The ping schedule and dead-peer detection (`docs/PROTOCOL.md`, §3.2).
//!
//! Every interval the driver asks: did anything arrive since last time? If
//! not, it pings; if a whole further interval passes with nothing at all,
//! the peer is declared dead.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// What the driver must do when the keepalive timer fires.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Nothing arrived for an interval: send a PING.
    SendPing,
    /// Nothing arrived for an interval after the ping: the peer is gone.
    Dead,
}

pub(crate) struct Keepalive {
    timer: Option<(Duration, Pin<Box<Sleep>>)>,
    heard: bool,
    pinged: bool,
}

impl Keepalive {
    /// `None` or a zero interval turns keepalive off.
    pub(crate) fn new(interval: Option<Duration>) -> Self {
        let timer = interval
            .filter(|d| !d.is_zero())
            .map(|d| (d, Box::pin(tokio::time::sleep(d))));
        Keepalive {
            timer,
            heard: false,
            pinged: false,
        }
    }

    /// The interval, if keepalive is on.
    pub(crate) fn interval(&self) -> Option<Duration> {
        self.timer.as_ref().map(|(d, _)| *d)
    }

    /// Records that a frame arrived: the peer is alive.
    pub(crate) fn heard(&mut self) {
        self.heard = true;
    }

    /// Ready when the driver has to act; re-arms itself.
    pub(crate) fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Tick> {
        let Some((interval, sleep)) = self.timer.as_mut() else {
            return Poll::Pending;
        };
        loop {
            ready!(sleep.as_mut().poll(cx));
            sleep.as_mut().reset(Instant::now() + *interval);
            if std::mem::take(&mut self.heard) {
                self.pinged = false;
                continue;
            }
            if self.pinged {
                return Poll::Ready(Tick::Dead);
            }
            self.pinged = true;
            return Poll::Ready(Tick::SendPing);
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
        assert_eq!(poll_fn(|cx| k.poll_tick(cx)).await, Tick::Dead);
        assert_eq!(start.elapsed(), Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn any_frame_keeps_the_peer_alive() {
        let mut k = Keepalive::new(Some(Duration::from_secs(10)));
        let start = Instant::now();
        assert_eq!(poll_fn(|cx| k.poll_tick(cx)).await, Tick::SendPing);
        k.heard(); // the pong (or anything else) arrived
                   // The next tick sees it, so the one after pings again instead of
                   // declaring the peer dead.
        assert_eq!(poll_fn(|cx| k.poll_tick(cx)).await, Tick::SendPing);
        assert_eq!(start.elapsed(), Duration::from_secs(30));
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
