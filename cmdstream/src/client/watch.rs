//! [`StateWatch`]: a client's state now, and each change after it.

use std::sync::{Arc, Weak};

use tokio::sync::{watch, Notify};

use super::connection::Connection;
use super::group;
use super::shared::Shared;
use super::state::ConnectionState;

/// A client's [state](ConnectionState) now and each change after it, from
/// [`Client::watch_state`](crate::Client::watch_state).
///
/// # Examples
///
/// ```no_run
/// # async fn f(client: cmdstream::Client) {
/// let mut states = client.watch_state();
/// while let Some(state) = states.changed().await {
///     println!("the client is {state}");
/// }
/// # }
/// ```
pub struct StateWatch {
    inner: Watch,
    /// The last state handed out.
    seen: Option<ConnectionState>,
}

impl std::fmt::Debug for StateWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateWatch")
            .field("current", &self.current())
            .finish()
    }
}

/// What a watch holds: never the connections themselves, so that a watch
/// outliving the client's handles does not keep them open.
enum Watch {
    /// One connection: open, draining, closed (its shared state only).
    Direct(Arc<Shared>),
    /// A reconnecting client's supervisor publishes each change.
    Supervised(watch::Receiver<ConnectionState>),
    /// A group is told of each change of a member or of the membership.
    Group {
        group: Weak<group::Shared>,
        changed: Arc<Notify>,
    },
}

impl StateWatch {
    pub(crate) fn direct(conn: &Connection) -> Self {
        StateWatch {
            inner: Watch::Direct(conn.shared.clone()),
            seen: None,
        }
    }

    pub(crate) fn group(shared: &Arc<group::Shared>) -> Self {
        StateWatch {
            inner: Watch::Group {
                group: Arc::downgrade(shared),
                changed: shared.changed_signal(),
            },
            seen: None,
        }
    }

    pub(crate) fn supervised(states: watch::Receiver<ConnectionState>) -> Self {
        StateWatch {
            inner: Watch::Supervised(states),
            seen: None,
        }
    }

    /// The state now.
    pub fn current(&self) -> ConnectionState {
        match &self.inner {
            Watch::Direct(shared) => shared.state(),
            Watch::Supervised(states) => states.borrow().clone(),
            Watch::Group { group, .. } => group_state(group),
        }
    }

    /// The state, the first time; then waits until it differs from the one
    /// returned last, and returns it. `None` once the client is closed and
    /// that was returned: nothing changes after.
    pub async fn changed(&mut self) -> Option<ConnectionState> {
        if matches!(self.seen, Some(ConnectionState::Closed(_))) {
            return None;
        }
        let next = match &mut self.inner {
            Watch::Direct(shared) => loop {
                let notified = shared.closed_signal.notified();
                let now = shared.state();
                if self.seen.as_ref() != Some(&now) {
                    break now;
                }
                notified.await;
            },
            Watch::Supervised(states) => loop {
                let now = states.borrow_and_update().clone();
                if self.seen.as_ref() != Some(&now) {
                    break now;
                }
                if states.changed().await.is_err() {
                    // The supervisor is gone: its last state was final.
                    let last = states.borrow().clone();
                    if self.seen.as_ref() == Some(&last) {
                        return None;
                    }
                    break last;
                }
            },
            Watch::Group { group, changed } => loop {
                let changed = changed.notified();
                tokio::pin!(changed);
                // Registered before looking, so that no change is missed.
                changed.as_mut().enable();
                let now = group_state(group);
                if self.seen.as_ref() != Some(&now) {
                    break now;
                }
                changed.await;
            },
        };
        self.seen = Some(next.clone());
        Some(next)
    }
}

/// A group's state, or closed once it is gone.
fn group_state(group: &Weak<group::Shared>) -> ConnectionState {
    group.upgrade().map_or_else(
        || ConnectionState::Closed("the client was dropped".into()),
        |g| g.state(),
    )
}
