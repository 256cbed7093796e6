//! What every handle of a group shares: the members' snapshot and its
//! generation, the signal of changes, and how a call is given a member
//! from the snapshot (the slow path) or waits for one.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::info;

use super::balance::{self, Members};
use super::member::Member;
use super::{Group, MemberState};
use crate::client::breaker::{Breaker, BreakerState, CircuitBreaker};
use crate::client::dial::Dial;
use crate::client::lease::{Lease, Use};
use crate::client::reconnect::{self, First, Reconnect};
use crate::client::state::ConnectionState;
use crate::error::Error;
use crate::transport::Endpoint;

/// The members, as of one change of the group.
#[derive(Clone)]
pub(super) struct Snapshot {
    pub(super) generation: u64,
    pub(super) members: Arc<[Arc<Member>]>,
}

/// What every handle of a group shares.
pub(crate) struct Shared {
    pub(super) snapshot: RwLock<Snapshot>,
    /// The snapshot's generation: a handle whose view is older reads the
    /// snapshot again.
    pub(super) generation: AtomicU64,
    /// Told of every change: a member's state, or the membership.
    pub(super) changed: Arc<Notify>,
    /// Calls waiting for a member.
    pub(super) waiters: AtomicUsize,
    /// The round-robin position of calls that read the snapshot.
    pub(super) cursor: AtomicUsize,
    pub(super) closed: OnceLock<Error>,
    /// A dial of one member, its endpoint replaced.
    pub(super) dial: Dial,
    pub(super) policy: Reconnect,
    pub(super) group: Group,
    pub(super) breaker: Option<CircuitBreaker>,
}

impl Shared {
    pub(super) fn new(
        dial: Dial,
        policy: Reconnect,
        group: Group,
        breaker: Option<CircuitBreaker>,
    ) -> Self {
        Shared {
            snapshot: RwLock::new(Snapshot {
                generation: 0,
                members: Arc::new([]),
            }),
            generation: AtomicU64::new(0),
            changed: Arc::new(Notify::new()),
            waiters: AtomicUsize::new(0),
            cursor: AtomicUsize::new(0),
            closed: OnceLock::new(),
            dial,
            policy,
            group,
            breaker,
        }
    }

    pub(super) fn dial_to(&self, endpoint: &Endpoint) -> Dial {
        Dial {
            endpoint: endpoint.clone(),
            ..self.dial.clone()
        }
    }

    /// A breaker for `endpoint`'s members to share, if the client has one.
    pub(super) fn breaker_for(&self, endpoint: &Endpoint) -> Option<Arc<Breaker>> {
        let config = self.breaker.clone()?;
        Some(Arc::new(Breaker::new(config, endpoint.to_string())))
    }

    /// A member for `endpoint`, its supervisor started from `first`.
    pub(super) fn member(
        &self,
        endpoint: Endpoint,
        dial: Dial,
        first: First,
        breaker: Option<Arc<Breaker>>,
    ) -> Arc<Member> {
        let policy = Reconnect {
            lazy: true,
            ..self.policy.clone()
        };
        let signal = Some(self.changed.clone());
        let handle = reconnect::spawn(dial, policy, first, signal, breaker);
        Arc::new(Member::new(endpoint, handle))
    }

    /// A new endpoint from the feed: its members dial at once.
    pub(super) fn insert(&self, endpoint: Endpoint) {
        if self.closed.get().is_some() {
            return;
        }
        let known = self
            .snapshot()
            .members
            .iter()
            .any(|m| m.endpoint == endpoint);
        if known {
            return;
        }
        info!(%endpoint, "group: endpoint added");
        let breaker = self.breaker_for(&endpoint);
        let added: Vec<_> = (0..self.group.per_endpoint)
            .map(|_| {
                let dial = self.dial_to(&endpoint);
                self.member(endpoint.clone(), dial, First::Dial, breaker.clone())
            })
            .collect();
        self.change(|members| members.extend(added));
    }

    /// An endpoint gone from the feed: its members take no new calls, and
    /// close once their calls in flight are done.
    pub(super) fn remove(&self, endpoint: &Endpoint) {
        let mut gone = Vec::new();
        self.change(|members| {
            members.retain(|m| {
                let keep = m.endpoint != *endpoint;
                if !keep {
                    // Before the new generation is seen: a handle with the
                    // old view must not pick it either.
                    m.drain();
                    gone.push(m.clone());
                }
                keep
            })
        });
        if gone.is_empty() {
            return;
        }
        info!(%endpoint, "group: endpoint removed; draining it");
        for member in gone {
            tokio::spawn(async move { member.handle.close().await });
        }
    }

    /// Replaces the members by what `edit` makes of them, as a new
    /// generation, and tells whoever waits.
    /// Nothing changes once the group is closed: `close` sets `closed`
    /// before it reads the members to close, and this looks under the
    /// snapshot's lock, so a member added meanwhile is either closed with
    /// the rest or never added (and stops as it is dropped).
    pub(super) fn change(&self, edit: impl FnOnce(&mut Vec<Arc<Member>>)) {
        {
            let mut snapshot = self
                .snapshot
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if self.closed.get().is_some() {
                return;
            }
            let mut members = snapshot.members.to_vec();
            edit(&mut members);
            snapshot.members = members.into();
            snapshot.generation += 1;
            self.generation
                .store(snapshot.generation, Ordering::Release);
        }
        self.changed.notify_waiters();
    }

    pub(super) fn snapshot(&self) -> Snapshot {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A member up now, read from the snapshot (the slow path: a lock, and
    /// a reference count per member looked at).
    fn pick_now(&self, use_: Use) -> Option<Lease<'static>> {
        let snapshot = self.snapshot();
        let now = Instant::now();
        let view = Current(&snapshot.members, now);
        let i = balance::pick(self.group.balance, &view, &self.cursor, crate::rand::below)?;
        let member = &snapshot.members[i];
        let conn = member.handle.shared.current()?;
        let breaker = member.handle.breaker.clone();
        if let Some(breaker) = &breaker {
            // Another call may have taken the last probe meanwhile.
            use_.admit(breaker, now).ok()?;
        }
        Some(Lease {
            conn: Cow::Owned(conn),
            load: Some(member.load_owned()),
            breaker: breaker.map(Cow::Owned),
        })
    }

    /// When every member with a connection up has its circuit open: the
    /// error for the one that probes soonest. Calls fail at once then,
    /// rather than wait.
    fn circuit_open(&self) -> Option<Error> {
        let now = Instant::now();
        let snapshot = self.snapshot();
        let mut soonest: Option<Error> = None;
        let up = snapshot
            .members
            .iter()
            .filter(|m| !m.is_draining() && m.handle.shared.current().is_some());
        for member in up {
            let breaker = member.handle.breaker.as_ref()?;
            if breaker.allows(now) {
                return None;
            }
            let retry_in = match breaker.state(now) {
                BreakerState::Open { retry_in } => retry_in,
                _ => std::time::Duration::ZERO,
            };
            let sooner = match &soonest {
                Some(Error::CircuitOpen { retry_in: r, .. }) => retry_in < *r,
                _ => true,
            };
            if sooner {
                soonest = Some(Error::CircuitOpen {
                    endpoint: breaker.endpoint().clone(),
                    retry_in,
                });
            }
        }
        soonest
    }

    /// A member up now or the next one, waiting at most until `deadline`
    /// (the call's) or, without one, the policy's `max_wait`.
    ///
    /// # Errors
    ///
    /// As a reconnecting client's wait: [`Error::Timeout`] at the
    /// deadline, [`Error::Unavailable`] after `max_wait` or when too many
    /// calls wait, the group's final error once it is closed.
    pub(crate) async fn lease(
        &self,
        deadline: Option<Instant>,
        use_: Use,
    ) -> Result<Lease<'static>, Error> {
        if let Some(lease) = self.pick_now(use_) {
            return Ok(lease);
        }
        if let Some(open) = self.circuit_open() {
            return Err(open);
        }
        let before = self.waiters.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiters);
        if before >= self.policy.max_waiters {
            return Err(Error::unavailable(format!(
                "{before} calls already wait for a member of the group ({})",
                self.state()
            )));
        }
        let limit = deadline.unwrap_or_else(|| Instant::now() + self.policy.max_wait);
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so that no change is missed.
            changed.as_mut().enable();
            if let Some(lease) = self.pick_now(use_) {
                return Ok(lease);
            }
            if let Some(e) = self.closed.get().cloned().or_else(|| self.all_closed()) {
                return Err(e);
            }
            // A member that came back with its circuit still open: fail at
            // once, as while it was up.
            if let Some(open) = self.circuit_open() {
                return Err(open);
            }
            if tokio::time::timeout_at(limit, changed).await.is_err() {
                return Err(match deadline {
                    Some(_) => Error::Timeout,
                    None => Error::unavailable(format!(
                        "no member of the group up within {:?} ({})",
                        self.policy.max_wait,
                        self.state()
                    )),
                });
            }
        }
    }

    /// When every member has closed for good (all incompatible, say), the
    /// first one's error: waiting cannot help.
    fn all_closed(&self) -> Option<Error> {
        let snapshot = self.snapshot();
        let mut errors = snapshot.members.iter().map(|m| m.handle.shared.closed());
        let first = errors.next()??.clone();
        errors.all(|e| e.is_some()).then_some(first)
    }

    /// The group's state: open while any member is, closed once the group
    /// is (or every member is), else reconnecting as the member nearest to
    /// a connection.
    pub(crate) fn state(&self) -> ConnectionState {
        if let Some(e) = self.closed.get().cloned().or_else(|| self.all_closed()) {
            return ConnectionState::Closed(match e {
                Error::ConnectionLost { reason, .. } => reason,
                other => other.to_string().into(),
            });
        }
        let snapshot = self.snapshot();
        let states: Vec<_> = snapshot
            .members
            .iter()
            .map(|m| m.handle.shared.state())
            .collect();
        if states.iter().any(ConnectionState::is_open) {
            return ConnectionState::Open;
        }
        states
            .into_iter()
            .filter(|s| matches!(s, ConnectionState::Reconnecting { .. }))
            .min_by_key(|s| match s {
                ConnectionState::Reconnecting { attempt, .. } => *attempt,
                _ => u32::MAX,
            })
            .unwrap_or_else(|| ConnectionState::Reconnecting {
                attempt: 0,
                last_error: Some(if snapshot.members.is_empty() {
                    "the group has no endpoints yet".into()
                } else {
                    "no member of the group can be used".into()
                }),
            })
    }

    /// Each member as it is now.
    pub(crate) fn members(&self) -> Vec<MemberState> {
        self.snapshot()
            .members
            .iter()
            .map(|m| MemberState {
                endpoint: m.endpoint.clone(),
                state: m.handle.shared.state(),
                in_flight: m.in_flight(),
                breaker: m.handle.breaker.as_ref().map(|b| b.state(Instant::now())),
            })
            .collect()
    }

    /// What is told of each change of a member or of the membership.
    pub(crate) fn changed_signal(&self) -> Arc<Notify> {
        self.changed.clone()
    }
}

/// One call counted among those waiting for a member.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The members as the snapshot has them, ready when their supervisor has
/// a connection up and their breaker lets calls through (at `.1`).
struct Current<'a>(&'a [Arc<Member>], Instant);

impl Members for Current<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn ready(&self, i: usize) -> bool {
        let member = &self.0[i];
        !member.is_draining()
            && member
                .handle
                .breaker
                .as_ref()
                .is_none_or(|b| b.allows(self.1))
            && member.handle.shared.current().is_some()
    }

    fn load(&self, i: usize) -> u32 {
        self.0[i].in_flight()
    }
}
