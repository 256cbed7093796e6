//! What one client handle holds of a group: its own view of the members,
//! and the fast path of a call through it.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::time::Instant;

use super::balance::{self, Members};
use super::member::Member;
use super::Handle;
use crate::client::connection::Connection;
use crate::client::lease::{Lease, Use};

/// What one client handle holds of a group: the group, and its members as
/// of the handle's making with the connection each had up then.
///
/// Calls pick among those members while the group has not changed — one
/// atomic load to know — and send on the connection seen while it stays
/// open: no lock and no reference count a call beyond the member's count
/// of calls in flight. After a change, or when every seen connection is
/// gone, a call reads the group's snapshot instead. A clone looks afresh.
pub(crate) struct Attached {
    pub(crate) handle: Arc<Handle>,
    generation: u64,
    members: Arc<[Arc<Member>]>,
    seen: Box<[Option<Arc<Connection>>]>,
    cursor: AtomicUsize,
}

impl Attached {
    pub(crate) fn new(handle: Arc<Handle>) -> Self {
        let snapshot = handle.shared.snapshot();
        let seen = snapshot
            .members
            .iter()
            .map(|m| m.handle.shared.current())
            .collect();
        Attached {
            generation: snapshot.generation,
            members: snapshot.members,
            seen,
            cursor: AtomicUsize::new(handle.shared.cursor.fetch_add(1, Ordering::Relaxed)),
            handle,
        }
    }

    /// A member up now, for one call; `None` when the handle's view is out
    /// of date or has no member up (then [`Shared::lease`]).
    pub(crate) fn pick(&self, use_: Use) -> Option<Lease<'_>> {
        if self.handle.shared.generation.load(Ordering::Acquire) != self.generation {
            return None;
        }
        let i = balance::pick(
            self.handle.shared.group.balance,
            self,
            &self.cursor,
            crate::rand::below,
        )?;
        let member = &self.members[i];
        let conn = self.connection(i)?;
        if let Some(breaker) = member.handle.breaker.as_ref() {
            if !breaker.is_closed() {
                // A probe, or a race for the last one.
                use_.admit(breaker, Instant::now()).ok()?;
            }
        }
        Some(Lease {
            conn,
            load: Some(member.load()),
            breaker: member.handle.breaker.as_ref().map(Cow::Borrowed),
        })
    }

    /// Member `i`'s connection up now: the one this handle saw while it is
    /// open, else (it was lost, or came up after the handle was made) the
    /// member's current one, read under its lock.
    fn connection(&self, i: usize) -> Option<Cow<'_, Arc<Connection>>> {
        match &self.seen[i] {
            Some(seen) if seen.is_open() => Some(Cow::Borrowed(seen)),
            _ => self.members[i].handle.shared.current().map(Cow::Owned),
        }
    }

    fn seen_open(&self, i: usize) -> bool {
        match &self.seen[i] {
            Some(seen) if seen.is_open() => true,
            _ => self.members[i].handle.shared.current().is_some(),
        }
    }
}

impl Members for Attached {
    fn len(&self) -> usize {
        self.members.len()
    }

    fn ready(&self, i: usize) -> bool {
        let member = &self.members[i];
        !member.is_draining()
            && member
                .handle
                .breaker
                .as_ref()
                .is_none_or(|b| b.is_closed() || b.allows(Instant::now()))
            && self.seen_open(i)
    }

    fn load(&self, i: usize) -> u32 {
        self.members[i].in_flight()
    }
}

impl Clone for Attached {
    fn clone(&self) -> Self {
        Attached::new(self.handle.clone())
    }
}
