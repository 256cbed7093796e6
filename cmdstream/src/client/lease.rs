//! A connection lent to one call by a reconnecting client or a group,
//! with the group member's count of calls in flight held while it runs.

use std::borrow::Cow;
use std::sync::Arc;

use super::connection::Connection;
use super::group::Load;

/// A connection lent to one call.
pub(crate) struct Lease<'a> {
    pub(crate) conn: Cow<'a, Arc<Connection>>,
    /// For a group's member, the call counted in its calls in flight.
    pub(crate) load: Option<Load<'a>>,
}

impl Lease<'_> {
    /// The same lease, holding what it borrowed: for a stream, which
    /// outlives the call that opened it.
    pub(crate) fn into_owned(self) -> Lease<'static> {
        Lease {
            conn: Cow::Owned(self.conn.into_owned()),
            load: self.load.map(Load::into_owned),
        }
    }
}
