//! A client over a group of connections: several per endpoint, to several
//! endpoints, each kept up by its own reconnect supervisor, with every call
//! given to one member by a balancing strategy. Endpoints can come and go
//! at run time through a discovery feed.
//!
//! The strategies are in [`balance`], a member and its count of calls in
//! flight in [`member`], the feeds in [`discover`]; here, what handles
//! share and how a call is given a member.

mod balance;
mod discover;
mod member;

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use futures_core::Stream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::info;

pub use self::balance::Balance;
pub use self::discover::{dns, Change, Dns};
pub(crate) use self::member::Load;

use self::balance::Members;
use self::member::Member;
use super::breaker::{Breaker, BreakerState, CircuitBreaker};
use super::connection::Connection;
use super::dial::Dial;
use super::lease::{Lease, Use};
use super::reconnect::{self, First, Reconnect};
use super::state::ConnectionState;
use crate::error::Error;
use crate::transport::Endpoint;

/// The most connections a group keeps to one endpoint.
const MAX_PER_ENDPOINT: usize = 64;

/// How a group of connections is made: how many connections to each
/// endpoint, and how calls are spread over them. Given to
/// [`ClientBuilder::connect_group`](crate::ClientBuilder::connect_group) or
/// [`ClientBuilder::connect_discovered`](crate::ClientBuilder::connect_discovered).
///
/// Every connection of a group reconnects, by the builder's
/// [`reconnect`](crate::ClientBuilder::reconnect) policy (the default one
/// if none is set). A member that is down or reconnecting is never picked;
/// when no member is up, calls wait as a reconnecting client's do.
///
/// # Examples
///
/// ```no_run
/// # async fn f(info: &'static cmdstream::ServiceInfo) -> Result<(), cmdstream::Error> {
/// use cmdstream::{Balance, Client, Group};
///
/// let client = Client::builder()
///     .connect_group(
///         Group::new().connections_per_endpoint(2).balance(Balance::LeastInFlight),
///         ["10.0.0.1:7000", "10.0.0.2:7000"],
///         info,
///     )
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Group {
    per_endpoint: usize,
    balance: Balance,
}

impl Default for Group {
    fn default() -> Self {
        Group {
            per_endpoint: 1,
            balance: Balance::default(),
        }
    }
}

impl Group {
    /// One connection per endpoint, power of two choices.
    pub fn new() -> Self {
        Group::default()
    }

    /// How many connections to keep to each endpoint (1 to 64; 1 by
    /// default). Several connections to one server spread its work over
    /// more of the server's tasks and sockets.
    pub fn connections_per_endpoint(mut self, n: usize) -> Self {
        self.per_endpoint = n.clamp(1, MAX_PER_ENDPOINT);
        self
    }

    /// How calls are spread over the members (by default
    /// [`Balance::PowerOfTwoChoices`]).
    pub fn balance(mut self, balance: Balance) -> Self {
        self.balance = balance;
        self
    }
}

/// What a member of a group looks like now, from
/// [`Client::members`](crate::Client::members).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MemberState {
    /// The endpoint it connects to.
    pub endpoint: Endpoint,
    /// Its connection's state.
    pub state: ConnectionState,
    /// Its calls and streams in flight.
    pub in_flight: u32,
    /// Its endpoint's circuit breaker, if the client has one.
    pub breaker: Option<BreakerState>,
}

/// A feed of endpoint changes.
pub(crate) type Feed = Pin<Box<dyn Stream<Item = Change> + Send>>;

/// The members, as of one change of the group.
#[derive(Clone)]
struct Snapshot {
    generation: u64,
    members: Arc<[Arc<Member>]>,
}

/// What every handle of a group shares.
pub(crate) struct Shared {
    snapshot: RwLock<Snapshot>,
    /// The snapshot's generation: a handle whose view is older reads the
    /// snapshot again.
    generation: AtomicU64,
    /// Told of every change: a member's state, or the membership.
    changed: Arc<Notify>,
    /// Calls waiting for a member.
    waiters: AtomicUsize,
    /// The round-robin position of calls that read the snapshot.
    cursor: AtomicUsize,
    closed: OnceLock<Error>,
    /// A dial of one member, its endpoint replaced.
    dial: Dial,
    policy: Reconnect,
    group: Group,
    breaker: Option<CircuitBreaker>,
}

/// What client handles hold: the shared state, and a guard that stops
/// the discovery feed (and with the last reference, every member) once
/// the last handle is gone.
pub(crate) struct Handle {
    pub(crate) shared: Arc<Shared>,
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

/// Connects a group: dials every member of `endpoints` at once, and
/// follows `feed` for changes.
///
/// # Errors
///
/// When every first dial failed (unless the policy is lazy): the first
/// one's error.
pub(crate) async fn connect(
    dial: Dial,
    policy: Reconnect,
    group: Group,
    breaker: Option<CircuitBreaker>,
    endpoints: Vec<Endpoint>,
    feed: Option<Feed>,
) -> Result<Handle, Error> {
    let shared = Arc::new(Shared {
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
    });
    let mut endpoints = endpoints;
    let mut seen = std::collections::HashSet::new();
    endpoints.retain(|e| seen.insert(e.clone()));
    let mut dials = Vec::new();
    for endpoint in &endpoints {
        let breaker = shared.breaker_for(endpoint);
        for _ in 0..shared.group.per_endpoint {
            let breaker = breaker.clone();
            let dial = shared.dial_to(endpoint);
            let policy = shared.policy.clone();
            dials.push((
                endpoint.clone(),
                tokio::spawn(async move {
                    let made = reconnect::first_dial(&dial, &policy).await;
                    (dial, made, breaker)
                }),
            ));
        }
    }
    let mut first_error = None;
    let mut members = Vec::with_capacity(dials.len());
    let mut up = 0;
    for (endpoint, dialing) in dials {
        let (dial, made, breaker) = dialing
            .await
            .map_err(|_| Error::connection_lost("a first dial's task failed"))?;
        let first = match made {
            Ok(conn) => {
                up += 1;
                First::Up(Arc::new(conn))
            }
            Err(e) => {
                first_error.get_or_insert_with(|| e.clone());
                First::Failed(e)
            }
        };
        members.push((endpoint, dial, first, breaker));
    }
    if up == 0 && !shared.policy.lazy {
        if let Some(e) = first_error {
            return Err(e);
        }
    }
    let added: Vec<_> = members
        .into_iter()
        .map(|(endpoint, dial, first, breaker)| shared.member(endpoint, dial, first, breaker))
        .collect();
    shared.change(|members| members.extend(added));
    let stop = CancellationToken::new();
    if let Some(feed) = feed {
        tokio::spawn(follow(shared.clone(), feed, stop.clone()));
    }
    Ok(Handle {
        shared,
        _stop_on_drop: stop.clone().drop_guard(),
        stop,
    })
}

/// Applies a discovery feed's changes until the group is closed or the
/// feed ends (the members it made stay).
async fn follow(shared: Arc<Shared>, mut feed: Feed, stop: CancellationToken) {
    loop {
        let next = std::future::poll_fn(|cx| feed.as_mut().poll_next(cx));
        let change = tokio::select! {
            () = stop.cancelled() => return,
            change = next => change,
        };
        match change {
            None => return,
            Some(Change::Insert(endpoint)) => shared.insert(endpoint),
            Some(Change::Remove(endpoint)) => shared.remove(&endpoint),
        }
    }
}

impl Shared {
    fn dial_to(&self, endpoint: &Endpoint) -> Dial {
        Dial {
            endpoint: endpoint.clone(),
            ..self.dial.clone()
        }
    }

    /// A breaker for `endpoint`'s members to share, if the client has one.
    fn breaker_for(&self, endpoint: &Endpoint) -> Option<Arc<Breaker>> {
        let config = self.breaker.clone()?;
        Some(Arc::new(Breaker::new(config, endpoint.to_string())))
    }

    /// A member for `endpoint`, its supervisor started from `first`.
    fn member(
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
    fn insert(&self, endpoint: Endpoint) {
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
    fn remove(&self, endpoint: &Endpoint) {
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
    fn change(&self, edit: impl FnOnce(&mut Vec<Arc<Member>>)) {
        {
            let mut snapshot = self
                .snapshot
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let mut members = snapshot.members.to_vec();
            edit(&mut members);
            snapshot.members = members.into();
            snapshot.generation += 1;
            self.generation
                .store(snapshot.generation, Ordering::Release);
        }
        self.changed.notify_waiters();
    }

    fn snapshot(&self) -> Snapshot {
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

impl Handle {
    /// Stops following the feed and closes every member gracefully (their
    /// calls in flight finish); returns once all are closed.
    pub(crate) async fn close(&self) {
        self.stop.cancel();
        let _ = self
            .shared
            .closed
            .set(Error::connection_lost("the client was closed"));
        let members = self.shared.snapshot().members;
        for member in members.iter() {
            member.drain();
        }
        for member in members.iter() {
            member.handle.close().await;
        }
        self.shared.changed.notify_waiters();
    }
}

impl Drop for Handle {
    /// The last client handle is gone: the group is closed for whoever
    /// still watches it; its members close as the last reference goes.
    fn drop(&mut self) {
        let _ = self
            .shared
            .closed
            .set(Error::connection_lost("the client was dropped"));
        self.shared.changed.notify_waiters();
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
