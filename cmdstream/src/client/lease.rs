//! A connection lent to one call by a reconnecting client or a group,
//! with the group member's count of calls in flight held while it runs.

use std::borrow::Cow;
use std::sync::Arc;

use super::breaker::Breaker;
use super::connection::Connection;
use super::group::Load;

/// A connection lent to one call.
pub(crate) struct Lease<'a> {
    pub(crate) conn: Cow<'a, Arc<Connection>>,
    /// For a group's member, the call counted in its calls in flight.
    pub(crate) load: Option<Load<'a>>,
    /// The endpoint's circuit breaker, told the call's outcome.
    pub(crate) breaker: Option<Cow<'a, Arc<Breaker>>>,
}

impl<'a> Lease<'a> {
    /// A connection with nothing else to hold.
    pub(crate) fn conn(conn: Cow<'a, Arc<Connection>>) -> Self {
        Lease {
            conn,
            load: None,
            breaker: None,
        }
    }

    /// Tells the breaker, if there is one, how the call ended.
    pub(crate) fn record(&self, result: &Result<bytes::Bytes, crate::Error>) {
        if let Some(breaker) = &self.breaker {
            breaker.record_result(result);
        }
    }

    /// The same lease for a stream, which outlives the call that opened
    /// it: it holds what it borrowed, and no breaker (streams are not
    /// counted).
    pub(crate) fn into_owned(self) -> Lease<'static> {
        Lease {
            conn: Cow::Owned(self.conn.into_owned()),
            load: self.load.map(Load::into_owned),
            breaker: None,
        }
    }
}
