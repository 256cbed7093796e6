//! A client over a group of connections: several per endpoint, to several
//! endpoints, each kept up by its own reconnect supervisor, with every call
//! given to one member by a balancing strategy. Endpoints can come and go
//! at run time through a discovery feed.
//!
//! The strategies are in [`balance`], a member and its count of calls in
//! flight in [`member`], the feeds in [`discover`], what every handle
//! shares (and the slow path of a call) in [`shared`], each handle's own
//! view (and the fast path) in [`view`]; here, the settings, connecting,
//! following a feed, and closing.

mod balance;
mod discover;
mod member;
mod shared;
mod view;

use std::pin::Pin;
use std::sync::Arc;

use futures_core::Stream;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use self::balance::Balance;
pub use self::discover::{dns, Change, Dns};
pub(crate) use self::member::Load;
pub(crate) use self::shared::Shared;
pub(crate) use self::view::Attached;

use super::breaker::{BreakerState, CircuitBreaker};
use super::dial::Dial;
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
    let shared = Arc::new(Shared::new(dial, policy, group, breaker));
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
