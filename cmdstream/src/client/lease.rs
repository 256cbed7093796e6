//! A connection lent to one call by a reconnecting client or a group,
//! with the group member's count of calls in flight held while it runs.

use std::borrow::Cow;
use std::sync::Arc;

use super::breaker::Breaker;
use super::connection::Connection;
use super::group::Load;

/// What a connection is lent for. A call is counted by the endpoint's
/// breaker, and may be its probe; a stream is only let through while the
/// breaker allows calls, and is not counted (its outcome comes item by
/// item, long after).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    Call,
    Stream,
}

impl Use {
    /// Lets this use through `breaker` now, or says when it may go.
    pub(crate) fn admit(
        self,
        breaker: &Breaker,
        now: tokio::time::Instant,
    ) -> Result<(), crate::Error> {
        match self {
            Use::Call => breaker.admit(now),
            Use::Stream => breaker.check(now),
        }
    }
}

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

    /// Tells the breaker, if there is one, how the call ended. A refusal
    /// by a server going away says nothing of the endpoint's health (a
    /// graceful restart): it is not counted.
    pub(crate) fn record(&self, result: &Result<bytes::Bytes, crate::Error>) {
        if let Some(breaker) = &self.breaker {
            if matches!(result, Err(crate::Error::Unavailable(_))) && !self.conn.is_open() {
                return;
            }
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
