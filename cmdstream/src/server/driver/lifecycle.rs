//! A connection's life: serving, with an idle timer; then, once the server
//! shuts down or the connection has been idle too long, draining: the
//! client is told to go away, new commands are refused, and the connection
//! closes when its calls are done and the client has closed its side (or,
//! at most [`LINGER`] after the calls are done, without it), or at the end
//! of the grace period.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};
use tracing::debug;

use super::Driver;
use crate::codec::Codec;
use crate::conn::gated::Gated;
use crate::server::dispatch::Dispatch;
use crate::wire::frame;

/// How long a drained connection waits for its client to close: a command
/// the client sent before it read the go-away is still read, and refused
/// (so the client knows it never ran), instead of lost with the socket.
pub(super) const LINGER: Duration = Duration::from_secs(1);

/// Where a connection is in its life.
pub(super) enum State {
    /// Serving, with the idle timer if the server has an idle timeout.
    Serving(Option<IdleTimer>),
    /// Sent away: the end of the grace period, and once its calls are done,
    /// the end of the wait for the client to close.
    Draining {
        grace: Pin<Box<Sleep>>,
        linger: Option<Pin<Box<Sleep>>>,
    },
}

/// Fires when a connection has had no command in flight, and has received
/// none, for a whole timeout.
pub(super) struct IdleTimer {
    sleep: Gated<Pin<Box<Sleep>>>,
    timeout: Duration,
    /// Commands received by the last look.
    commands_seen: u64,
}

impl State {
    pub(super) fn new(idle_timeout: Option<Duration>) -> Self {
        State::Serving(idle_timeout.map(|timeout| IdleTimer {
            sleep: Gated::new(Box::pin(tokio::time::sleep(timeout))),
            timeout,
            commands_seen: 0,
        }))
    }
}

impl<IO, D, C> Driver<IO, D, C>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    D: Dispatch,
    C: Codec,
{
    /// Whether the connection is draining: new commands are refused.
    pub(super) fn is_draining(&self) -> bool {
        matches!(self.state, State::Draining { .. })
    }

    /// Sends the client away when the server shuts down or the connection
    /// has been idle too long. `true` if it did (or re-armed a timer): look
    /// again next time round.
    pub(super) fn poll_lifecycle(&mut self, cx: &mut Context<'_>) -> bool {
        let State::Serving(idle) = &mut self.state else {
            return false;
        };
        if self.shutdown.poll(cx).is_ready() {
            self.go_away("the server is shutting down");
            return true;
        }
        let Some(timer) = idle else {
            return false;
        };
        if timer.sleep.poll(cx).is_pending() {
            return false;
        }
        if self.running.is_empty() && self.commands_seen == timer.commands_seen {
            self.go_away("the connection was idle");
            return true;
        }
        timer.commands_seen = self.commands_seen;
        timer
            .sleep
            .get_mut()
            .as_mut()
            .reset(Instant::now() + timer.timeout);
        true
    }

    /// For a draining connection, whether it is done: its calls have
    /// finished and been written and it has waited [`LINGER`] for the
    /// client to close (the client closing ends it sooner, as a read), or
    /// the grace period is over (what still runs is stopped then, and what
    /// a client that stopped reading never took is dropped).
    pub(super) fn poll_drained(&mut self, cx: &mut Context<'_>) -> bool {
        let State::Draining { grace, linger } = &mut self.state else {
            return false;
        };
        if grace.as_mut().poll(cx).is_ready() {
            debug!(running = self.running.len(), "grace period over; closing");
            for (_, r) in self.running.drain() {
                r.stop();
            }
            return true;
        }
        if !self.running.is_empty() || self.link.queued() != 0 {
            *linger = None;
            return false;
        }
        linger
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(LINGER)))
            .as_mut()
            .poll(cx)
            .is_ready()
    }

    /// Tells the client to send nothing new and starts the grace period.
    fn go_away(&mut self, reason: &str) {
        debug!(reason, running = self.running.len(), "going away");
        frame::put_go_away(self.link.out(), reason, self.peer.max_frame);
        let grace = Box::pin(tokio::time::sleep(self.config.shutdown_grace));
        self.state = State::Draining {
            grace,
            linger: None,
        };
    }
}
