//! What a connection's driver and its handles both read: the settled
//! limits, and what happened to the connection.

use super::state::ConnectionState;
use std::sync::{Arc, OnceLock};

use tokio::sync::Notify;

use super::settle::Settled;
use crate::conn::backlog::Backlog;
use crate::error::Error;

/// How many bytes of streamed arguments may wait to be written before the
/// argument pumps wait: a server that does not read must not make the
/// client buffer without bound.
const ARGS_BACKLOG: usize = 1 << 20;

pub(crate) struct Shared {
    pub(crate) settled: Settled,
    /// Bytes of streamed arguments queued and not yet written.
    pub(crate) args_backlog: Backlog,
    /// Why the connection closed, once it has.
    pub(crate) closed: OnceLock<Arc<str>>,
    /// Woken once `closed` or `going_away` is set.
    pub(crate) closed_signal: Notify,
    /// The server's go-away reason, once it sent one.
    pub(crate) going_away: OnceLock<Arc<str>>,
    /// The other side, as logs and spans name it.
    pub(crate) peer: Arc<str>,
}

impl Shared {
    pub(crate) fn new(settled: Settled, peer: Arc<str>) -> Self {
        Shared {
            peer,
            settled,
            args_backlog: Backlog::new(ARGS_BACKLOG),
            closed: OnceLock::new(),
            closed_signal: Notify::new(),
            going_away: OnceLock::new(),
        }
    }

    /// Whether new calls may be sent: neither closed nor going away.
    /// Closed, draining after the server's go-away, or open, as far as
    /// the driver has said.
    pub(crate) fn state(&self) -> ConnectionState {
        if let Some(why) = self.closed.get() {
            return ConnectionState::Closed(why.clone());
        }
        if let Some(reason) = self.going_away.get() {
            return ConnectionState::Draining(reason.clone());
        }
        ConnectionState::Open
    }

    pub(crate) fn is_open(&self) -> bool {
        self.closed.get().is_none() && self.going_away.get().is_none()
    }

    /// Records the server's go-away, and wakes whoever waits for the
    /// connection to close or go away.
    pub(crate) fn go_away(&self, reason: Arc<str>) {
        let _ = self.going_away.set(reason);
        self.closed_signal.notify_waiters();
    }

    /// Waits until the connection has closed or the server said it is
    /// going away.
    pub(crate) async fn wait_not_open(&self) {
        loop {
            let notified = self.closed_signal.notified();
            if !self.is_open() {
                return;
            }
            notified.await;
        }
    }

    /// The error for a call that was never sent: `Unavailable` after the
    /// server's go-away (nothing ran, retrying elsewhere is safe), else
    /// `ConnectionLost` (not sent) with the reason the connection closed.
    pub(crate) fn unsent(&self) -> Error {
        if let Some(reason) = self.going_away.get() {
            return Error::unavailable(format!(
                "the server is going away ({reason}) and this connection takes no new calls; connect again, or build the client with reconnect"
            ));
        }
        let reason = self.closed.get().cloned();
        Error::ConnectionLost {
            reason: reason.unwrap_or_else(|| "the connection closed".into()),
            sent: false,
        }
    }

    /// Records why the connection closed, and wakes whoever waits for it.
    pub(crate) fn close(&self, reason: Arc<str>) {
        let _ = self.closed.set(reason);
        self.args_backlog.close();
        self.closed_signal.notify_waiters();
    }

    /// Waits until the connection has closed.
    pub(crate) async fn wait_closed(&self) {
        loop {
            let notified = self.closed_signal.notified();
            if self.closed.get().is_some() {
                return;
            }
            notified.await;
        }
    }
}
