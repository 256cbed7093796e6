//! What a client's connection can still do.

use std::fmt;
use std::sync::Arc;

/// The state of a client's connection, from [`Client::state`](crate::Client::state).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Calls are sent.
    Open,
    /// The server said it is going away (a graceful shutdown, or its idle
    /// timeout), or the client is [closing](crate::Client::close): calls in
    /// flight finish, new calls fail at once, with
    /// [`Error::Unavailable`](crate::Error::Unavailable) after a go-away
    /// and [`Error::ConnectionLost`](crate::Error::ConnectionLost) (not
    /// sent) while closing. Nothing of theirs ran. Carries the reason.
    Draining(Arc<str>),
    /// A [reconnecting](crate::Reconnect) client has no connection and is
    /// making one: dialing, or waiting before it dials again. New calls
    /// wait for it (up to their deadline). `attempt` numbers the dial of
    /// this outage under way or waited for; `last_error` says why the last
    /// one failed, or why the connection before was lost.
    Reconnecting {
        /// The dial of this outage under way or waited for: 1 for the
        /// first.
        attempt: u32,
        /// Why the last dial failed or the last connection ended.
        last_error: Option<Arc<str>>,
    },
    /// The connection is gone: new calls fail at once with
    /// [`Error::ConnectionLost`](crate::Error::ConnectionLost), or with
    /// `Unavailable` if the server had gone away first. Carries why.
    Closed(Arc<str>),
}

impl ConnectionState {
    /// Whether new calls are sent.
    pub fn is_open(&self) -> bool {
        matches!(self, ConnectionState::Open)
    }
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionState::Open => f.write_str("open"),
            ConnectionState::Draining(why) => write!(f, "draining: {why}"),
            ConnectionState::Reconnecting {
                attempt,
                last_error: Some(why),
            } => write!(f, "reconnecting (attempt {attempt}; last: {why})"),
            ConnectionState::Reconnecting { attempt, .. } => {
                write!(f, "reconnecting (attempt {attempt})")
            }
            ConnectionState::Closed(why) => write!(f, "closed: {why}"),
        }
    }
}
