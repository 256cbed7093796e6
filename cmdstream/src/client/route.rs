//! Where a client handle's calls go: one connection, a reconnecting
//! client's current one, or a member of a group; and the connection a call
//! is lent.

use std::borrow::Cow;
use std::sync::Arc;

use tokio::time::Instant;

use super::breaker::BreakerState;
use super::connection::Connection;
use super::group;
use super::lease::{Lease, Use};
use super::reconnect;
use super::state::ConnectionState;
use super::watch::StateWatch;
use crate::error::Error;

/// Where a handle's calls go. An enum, not a trait object: the backends are
/// a closed set, and a `dyn` one would box a future per call.
#[derive(Clone)]
pub(crate) enum Route {
    /// One connection, for the handle's whole life.
    Direct(Arc<Connection>),
    /// Whichever connection a reconnecting client has up.
    Reconnecting(reconnect::Attached),
    /// A member of a group of connections.
    Group(group::Attached),
}

impl Route {
    pub(crate) fn state(&self) -> ConnectionState {
        match self {
            Route::Direct(conn) => conn.state(),
            Route::Reconnecting(attached) => attached.handle.shared.state(),
            Route::Group(attached) => attached.handle.shared.state(),
        }
    }

    pub(crate) fn watch(&self) -> StateWatch {
        match self {
            Route::Direct(conn) => StateWatch::direct(conn),
            Route::Reconnecting(attached) => StateWatch::supervised(attached.handle.shared.watch()),
            Route::Group(attached) => StateWatch::group(&attached.handle.shared),
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Route::Direct(conn) => conn.close().await,
            Route::Reconnecting(attached) => attached.handle.close().await,
            Route::Group(attached) => attached.handle.close().await,
        }
    }

    /// A connection for a call now, if one is up: without waiting, and
    /// for the direct and fast paths without a lock.
    pub(crate) fn pick(&self, use_: Use) -> Option<Lease<'_>> {
        match self {
            Route::Direct(conn) => Some(Lease::conn(Cow::Borrowed(conn))),
            Route::Reconnecting(attached) => {
                let breaker = attached.handle.breaker.as_ref();
                // A breaker that is not closed has the slow path decide.
                if breaker.is_some_and(|b| !b.is_closed()) {
                    return None;
                }
                Some(Lease {
                    breaker: breaker.map(Cow::Borrowed),
                    ..Lease::conn(attached.current()?)
                })
            }
            Route::Group(attached) => attached.pick(use_),
        }
    }

    /// A connection for a call, waiting for one up to `deadline` (or the
    /// policy's `max_wait`) when none is up.
    ///
    /// # Errors
    ///
    /// [`Error::CircuitOpen`] at once while the breaker is open,
    /// [`Error::Timeout`] at the deadline, [`Error::Unavailable`] when the
    /// wait is too long or too many calls wait, the client's final error
    /// once it has closed.
    pub(crate) async fn lease(
        &self,
        deadline: Option<Instant>,
        use_: Use,
    ) -> Result<Lease<'_>, Error> {
        match self {
            Route::Direct(conn) => Ok(Lease::conn(Cow::Borrowed(conn))),
            Route::Reconnecting(attached) => {
                let breaker = attached.handle.breaker.as_ref();
                if let Some(breaker) = breaker {
                    use_.admit(breaker, Instant::now())?;
                }
                let conn = attached.handle.shared.lease(deadline).await?;
                Ok(Lease {
                    breaker: breaker.map(Cow::Borrowed),
                    ..Lease::conn(Cow::Owned(conn))
                })
            }
            Route::Group(attached) => attached.handle.shared.lease(deadline, use_).await,
        }
    }

    /// The circuit breaker's state, for a reconnecting client that has
    /// one.
    pub(crate) fn breaker(&self) -> Option<BreakerState> {
        match self {
            Route::Reconnecting(attached) => attached
                .handle
                .breaker
                .as_ref()
                .map(|b| b.state(Instant::now())),
            _ => None,
        }
    }
}
