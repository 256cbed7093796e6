//! One member of a group: a reconnecting connection to one endpoint, and
//! the count of calls it has in flight.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use crate::client::reconnect;
use crate::transport::Endpoint;

/// One connection of a group, kept up by its own supervisor.
pub(crate) struct Member {
    pub(crate) endpoint: Endpoint,
    pub(crate) handle: reconnect::Handle,
    /// Calls (and streams) in flight on it, for the balancer.
    in_flight: AtomicU32,
    /// Removed from the group: takes no new calls while its own finish.
    draining: AtomicBool,
}

impl Member {
    pub(crate) fn new(endpoint: Endpoint, handle: reconnect::Handle) -> Self {
        Member {
            endpoint,
            handle,
            in_flight: AtomicU32::new(0),
            draining: AtomicBool::new(false),
        }
    }

    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Counts a call in flight until the guard is dropped.
    pub(crate) fn load(self: &Arc<Self>) -> Load<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Load::Borrowed(self)
    }

    /// As [`load`](Self::load), the guard holding the member.
    pub(crate) fn load_owned(self: &Arc<Self>) -> Load<'static> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Load::Owned(self.clone())
    }
}

/// A call counted in its member's calls in flight, for as long as it
/// lives: borrowed for a unary call, owned for a stream.
pub(crate) enum Load<'a> {
    Borrowed(&'a Arc<Member>),
    Owned(Arc<Member>),
}

impl Load<'_> {
    /// The same count, the guard holding the member itself.
    pub(crate) fn into_owned(self) -> Load<'static> {
        match &self {
            Load::Borrowed(m) => {
                let member = Arc::clone(m);
                // The count moves to the new guard as it is; a borrow
                // holds nothing to release.
                std::mem::forget(self);
                Load::Owned(member)
            }
            // Counted once more here, once less as `self` drops.
            Load::Owned(m) => m.load_owned(),
        }
    }
}

impl Drop for Load<'_> {
    fn drop(&mut self) {
        let member: &Member = match self {
            Load::Borrowed(m) => m,
            Load::Owned(m) => m,
        };
        member.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
