//! A client that rides through server restarts: one supervisor task per
//! endpoint keeps a connection up (dialing again, with backoff, when it is
//! lost or the server goes away), and calls lease whichever connection is
//! up, waiting for one during an outage.
//!
//! The supervisor's lifecycle is in [`supervisor`]; the waits between its
//! dials in [`backoff`]; what calls share with it, and how they lease a
//! connection, here.

pub(crate) mod backoff;
mod supervisor;

pub(crate) use self::supervisor::First;

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use self::backoff::Backoff;
use super::breaker::Breaker;
use super::connection::Connection;
use super::dial::Dial;
use super::state::ConnectionState;
use crate::error::Error;
use crate::metadata::Metadata;

/// Fresh connection metadata for each dial (credentials, say).
type Refresh = Arc<dyn Fn() -> Metadata + Send + Sync>;

/// How a client reconnects: set with
/// [`ClientBuilder::reconnect`](crate::ClientBuilder::reconnect).
///
/// A reconnecting client keeps one connection up to its endpoint. When the
/// connection is lost, or the server says it is going away (a graceful
/// shutdown, a rolling restart, its idle timeout), the client dials again
/// — at once the first time, then waiting as its [`Backoff`] says — and
/// redoes the handshake on every dial. Calls made meanwhile wait for the
/// new connection, up to their deadline.
///
/// What is sent again, and what is not:
///
/// - a call that never reached the socket (still queued when the
///   connection was lost, or refused by a server going away) is sent on
///   the next connection, whatever the command: nothing of it ran;
/// - a call that had been sent when the connection was lost fails with
///   [`Error::ConnectionLost`] (`sent: true`), unless it is idempotent
///   (`#[command(idempotent)]`, or [`CallOptions::idempotent`](crate::CallOptions::idempotent)):
///   then it is sent once more, within its deadline;
/// - a stream is never resumed: one the connection was lost under fails
///   typed, and streams and client-streaming calls are not sent again.
///
/// A server that turns out incompatible (a redeploy with another command
/// set) or refuses the client's credentials ends the client: it is closed
/// with that error instead of dialing forever.
///
/// # Examples
///
/// ```no_run
/// # use cmdstream::{Client, ServiceInfo};
/// # async fn f(info: &'static ServiceInfo) -> Result<(), cmdstream::Error> {
/// use std::time::Duration;
/// use cmdstream::{Backoff, Reconnect};
///
/// let client = Client::builder()
///     .reconnect(
///         Reconnect::new()
///             .backoff(Backoff::new(Duration::from_millis(200), Duration::from_secs(30)))
///             .max_outage(Duration::from_secs(600)),
///     )
///     .connect("127.0.0.1:7000", info)
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Reconnect {
    pub(crate) backoff: Backoff,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) max_outage: Option<Duration>,
    pub(crate) max_wait: Duration,
    pub(crate) max_waiters: usize,
    pub(crate) lazy: bool,
    pub(crate) refresh: Option<Refresh>,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            backoff: Backoff::default(),
            max_attempts: None,
            max_outage: None,
            max_wait: Duration::from_secs(10),
            max_waiters: 1024,
            lazy: false,
            refresh: None,
        }
    }
}

impl fmt::Debug for Reconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconnect")
            .field("backoff", &self.backoff)
            .field("max_attempts", &self.max_attempts)
            .field("max_outage", &self.max_outage)
            .field("max_wait", &self.max_wait)
            .field("max_waiters", &self.max_waiters)
            .field("lazy", &self.lazy)
            .field("refresh", &self.refresh.is_some())
            .finish()
    }
}

impl Reconnect {
    /// The defaults: gRPC's backoff (see [`Backoff`]), dialing for as long
    /// as it takes, calls without a deadline waiting at most 10 s for a
    /// connection, at most 1024 of them at once.
    pub fn new() -> Self {
        Reconnect::default()
    }

    /// The waits between dials.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Gives up (the client closes with the last dial's error) after this
    /// many failed attempts in a row: dials that failed, and connections
    /// lost before they stayed up as long as the backoff's first wait.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// Gives up once the client has had no connection for this long.
    pub fn max_outage(mut self, outage: Duration) -> Self {
        self.max_outage = Some(outage);
        self
    }

    /// How long a call without a deadline waits for a connection during an
    /// outage before it fails with [`Error::Unavailable`]. A call with a
    /// deadline waits up to its deadline. The default is 10 s.
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// How many calls may wait for a connection at once; beyond them a
    /// call fails at once with [`Error::Unavailable`]. The default is 1024.
    pub fn max_waiters(mut self, waiters: usize) -> Self {
        self.max_waiters = waiters.max(1);
        self
    }

    /// Whether `connect` returns at once, before the first connection is
    /// made (calls wait for it as in an outage), instead of returning the
    /// first dial's error. Off by default.
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Called before every dial for the handshake's connection metadata
    /// (fresh credentials, say), in place of
    /// [`ClientBuilder::connection_metadata`](crate::ClientBuilder::connection_metadata).
    pub fn connection_metadata(
        mut self,
        refresh: impl Fn() -> Metadata + Send + Sync + 'static,
    ) -> Self {
        self.refresh = Some(Arc::new(refresh));
        self
    }
}

/// What a reconnecting client's handles and its supervisor share.
pub(crate) struct Supervised {
    /// The connection calls go to, while one is up.
    current: RwLock<Option<Arc<Connection>>>,
    /// What the client can do now; changes wake waiting calls.
    state: watch::Sender<ConnectionState>,
    /// Why the client closed for good, once it has.
    closed: OnceLock<Error>,
    /// Calls waiting for a connection.
    waiters: AtomicUsize,
    pub(crate) policy: Reconnect,
    /// Told of every change, besides `state`'s watchers: a group's.
    signal: Option<Arc<Notify>>,
}

/// What a client handle holds: the shared state, and a guard that stops
/// the supervisor once the last handle is gone.
pub(crate) struct Handle {
    pub(crate) shared: Arc<Supervised>,
    /// The endpoint's circuit breaker, if the client has one.
    pub(crate) breaker: Option<Arc<Breaker>>,
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

impl Handle {
    /// Stops dialing, closes the connection gracefully (calls in flight
    /// finish) and returns once the client is closed.
    pub(crate) async fn close(&self) {
        self.stop.cancel();
        let mut state = self.shared.state.subscribe();
        let _ = state
            .wait_for(|s| matches!(s, ConnectionState::Closed(_)))
            .await;
    }
}

/// What one client handle holds of a reconnecting client: the supervisor's
/// handle, and the connection that was up when this handle was made.
///
/// Calls go to that connection as long as it stays open — two atomic loads
/// a call, no lock and no reference count shared with other callers —
/// and to the supervisor's current one after it is lost. A clone looks up
/// the current connection afresh.
pub(crate) struct Attached {
    pub(crate) handle: Arc<Handle>,
    seen: Option<Arc<Connection>>,
}

impl Attached {
    pub(crate) fn new(handle: Arc<Handle>) -> Self {
        let seen = handle.shared.current();
        Attached { handle, seen }
    }

    /// The connection up now, if one is and takes new calls.
    pub(crate) fn current(&self) -> Option<Cow<'_, Arc<Connection>>> {
        match &self.seen {
            Some(seen) if seen.is_open() => Some(Cow::Borrowed(seen)),
            _ => self.handle.shared.current().map(Cow::Owned),
        }
    }
}

impl Clone for Attached {
    fn clone(&self) -> Self {
        Attached::new(self.handle.clone())
    }
}

/// Starts a reconnecting client: dials once (unless `lazy`), and hands the
/// connection to a new supervisor task.
///
/// # Errors
///
/// The first dial's, unless the policy is lazy.
pub(crate) async fn start(
    dial: Dial,
    policy: Reconnect,
    breaker: Option<Arc<Breaker>>,
) -> Result<Handle, Error> {
    let first = if policy.lazy {
        First::Dial
    } else {
        First::Up(Arc::new(first_dial(&dial, &policy).await?))
    };
    Ok(spawn(dial, policy, first, None, breaker))
}

/// The first dial of a supervisor, with fresh connection metadata.
pub(crate) async fn first_dial(dial: &Dial, policy: &Reconnect) -> Result<Connection, Error> {
    match &policy.refresh {
        Some(refresh) => {
            let mut dial = dial.clone();
            dial.config.metadata = refresh();
            dial.connect().await
        }
        None => dial.connect().await,
    }
}

/// Starts a supervisor task from `first`; `signal`, if given, is told of
/// every change of its state (a group's members share one).
pub(crate) fn spawn(
    dial: Dial,
    policy: Reconnect,
    first: First,
    signal: Option<Arc<Notify>>,
    breaker: Option<Arc<Breaker>>,
) -> Handle {
    let initial = match &first {
        First::Up(_) => ConnectionState::Open,
        First::Failed(_) | First::Dial => ConnectionState::Reconnecting {
            attempt: 1,
            last_error: None,
        },
    };
    // Published at once, not when the task first runs: a handle made now
    // sees the connection and takes its fast path.
    let current = match &first {
        First::Up(conn) => Some(conn.clone()),
        First::Failed(_) | First::Dial => None,
    };
    let shared = Arc::new(Supervised {
        current: RwLock::new(current),
        state: watch::channel(initial).0,
        closed: OnceLock::new(),
        waiters: AtomicUsize::new(0),
        policy,
        signal,
    });
    let stop = CancellationToken::new();
    tokio::spawn(supervisor::run(shared.clone(), dial, first, stop.clone()));
    Handle {
        shared,
        breaker,
        _stop_on_drop: stop.clone().drop_guard(),
        stop,
    }
}

impl Supervised {
    /// The connection up now, if one is and takes new calls.
    pub(crate) fn current(&self) -> Option<Arc<Connection>> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        current.as_ref().filter(|c| c.is_open()).cloned()
    }

    fn publish(&self, conn: Option<Arc<Connection>>, state: ConnectionState) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = conn;
        self.state.send_replace(state);
        if let Some(signal) = &self.signal {
            signal.notify_waiters();
        }
    }

    /// Why the client closed for good, once it has.
    pub(crate) fn closed(&self) -> Option<&Error> {
        self.closed.get()
    }

    /// What the client can do now.
    pub(crate) fn state(&self) -> ConnectionState {
        self.state.borrow().clone()
    }

    /// A watch of the client's state.
    pub(crate) fn watch(&self) -> watch::Receiver<ConnectionState> {
        self.state.subscribe()
    }

    /// The connection up now, or the next one, waiting at most until
    /// `deadline` (the call's) or, without one, the policy's `max_wait`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] at the call's deadline; [`Error::Unavailable`]
    /// after `max_wait`, or at once when too many calls wait already; the
    /// client's final error once it has closed.
    pub(crate) async fn lease(&self, deadline: Option<Instant>) -> Result<Arc<Connection>, Error> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        self.wait_for_connection(deadline).await
    }

    async fn wait_for_connection(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Arc<Connection>, Error> {
        let _waiting = Waiting::enter(self)?;
        let limit = deadline.unwrap_or_else(|| Instant::now() + self.policy.max_wait);
        // Subscribed before looking, so that no change is missed between.
        let mut changes = self.state.subscribe();
        loop {
            if let Some(conn) = self.current() {
                return Ok(conn);
            }
            if let Some(e) = self.closed.get() {
                return Err(e.clone());
            }
            match tokio::time::timeout_at(limit, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(self.final_error()),
                Err(_) if deadline.is_some() => return Err(Error::Timeout),
                Err(_) => {
                    return Err(Error::unavailable(format!(
                        "no connection within {:?} ({})",
                        self.policy.max_wait,
                        self.state()
                    )))
                }
            }
        }
    }

    fn final_error(&self) -> Error {
        self.closed
            .get()
            .cloned()
            .unwrap_or_else(|| Error::connection_lost("the client was closed"))
    }
}

/// One call counted among those waiting for a connection.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(shared: &'a Supervised) -> Result<Self, Error> {
        let before = shared.waiters.fetch_add(1, Ordering::Relaxed);
        let waiting = Waiting(&shared.waiters);
        if before >= shared.policy.max_waiters {
            return Err(Error::unavailable(format!(
                "{before} calls already wait for a connection ({})",
                shared.state()
            )));
        }
        Ok(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
