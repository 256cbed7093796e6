//! The circuit breaker: its settings, and its state machine per endpoint
//! (closed, open, half-open), fed each unary call's outcome. The clock is
//! passed in, so the machine is tested without waiting.
//!
//! Calls read one atomic to be admitted while the circuit is closed, and
//! record their outcome with an atomic or two; in the ratio mode each
//! outcome is counted into its window under a lock that only the calls to
//! this endpoint share.

use crate::telemetry::metrics;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;

/// When a client stops sending to an endpoint that keeps failing, and how
/// it tries again: set with
/// [`ClientBuilder::circuit_breaker`](crate::ClientBuilder::circuit_breaker).
/// Off unless set.
///
/// The breaker of an endpoint *opens* after `consecutive_failures` unary
/// calls in a row failed (by default 5), or, with
/// [`failure_ratio`](Self::failure_ratio), once that share of the calls in
/// a sliding window failed. While open, calls to it fail at once with
/// [`Error::CircuitOpen`] (a group skips it instead). After `open_for` it
/// turns *half-open*: `probes` calls go through; if they all succeed it
/// closes, and if one fails it opens again. Probes that never report (their
/// caller gave up) are replaced by fresh ones after another `open_for`.
///
/// Failures are what says the endpoint is in trouble: a lost connection,
/// a timeout, a refusal (`Unavailable`), a protocol, TLS or I/O error. An
/// application error the command returned is a success (it is a value);
/// a command that failed on the server (`Remote`: it panicked, say) counts
/// only with [`count_remote`](Self::count_remote). Unary and
/// client-streaming calls are counted; server streams are refused while
/// the circuit is open, and not counted.
///
/// # Examples
///
/// ```no_run
/// # async fn f(info: &'static cmdstream::ServiceInfo) -> Result<(), cmdstream::Error> {
/// use std::time::Duration;
/// use cmdstream::{CircuitBreaker, Client};
///
/// let client = Client::builder()
///     .circuit_breaker(
///         CircuitBreaker::new()
///             .failure_ratio(0.5, Duration::from_secs(10), 20)
///             .open_for(Duration::from_secs(5)),
///     )
///     .connect("127.0.0.1:7000", info)
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    trip: Trip,
    open_for: Duration,
    probes: u32,
    count_remote: bool,
}

#[derive(Debug, Clone, Copy)]
enum Trip {
    Consecutive(u32),
    Ratio {
        ratio: f64,
        window: Duration,
        min_calls: u32,
    },
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker {
            trip: Trip::Consecutive(5),
            open_for: Duration::from_secs(10),
            probes: 1,
            count_remote: false,
        }
    }
}

impl CircuitBreaker {
    /// Opens after 5 failures in a row, for 10 s, then lets 1 probe
    /// through; `Remote` errors are not failures.
    pub fn new() -> Self {
        CircuitBreaker::default()
    }

    /// Opens after `n` unary calls in a row failed (at least 1).
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.trip = Trip::Consecutive(n.max(1));
        self
    }

    /// Opens once at least `ratio` (0 to 1) of the calls of the last
    /// `window` failed, counting only when the window holds at least
    /// `min_calls` calls.
    pub fn failure_ratio(mut self, ratio: f64, window: Duration, min_calls: u32) -> Self {
        let ratio = if ratio.is_nan() {
            1.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        self.trip = Trip::Ratio {
            ratio,
            window: window.max(Duration::from_millis(10)),
            min_calls: min_calls.max(1),
        };
        self
    }

    /// How long the circuit stays open before probes go through (10 s by
    /// default).
    pub fn open_for(mut self, open_for: Duration) -> Self {
        self.open_for = open_for;
        self
    }

    /// How many calls go through while half-open, all of which must
    /// succeed for the circuit to close (1 by default, at least 1).
    pub fn probes(mut self, probes: u32) -> Self {
        self.probes = probes.max(1);
        self
    }

    /// Whether a command that failed on the server ([`Error::Remote`])
    /// counts as a failure (by default it does not).
    pub fn count_remote(mut self, yes: bool) -> Self {
        self.count_remote = yes;
        self
    }
}

/// A breaker's state, as [`Client::breaker`](crate::Client::breaker) and
/// [`MemberState`](crate::MemberState) show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail at once (or, in a group, go to other members); probes
    /// go through after `retry_in`.
    Open {
        /// When the breaker lets probes through.
        retry_in: Duration,
    },
    /// Probes go through; their outcome closes or opens the circuit.
    HalfOpen,
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// Buckets a ratio window is cut into.
const BUCKETS: usize = 10;

/// The outcome of a call, for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Failure,
    /// Not the endpoint's doing: neither (a codec error, metadata refused,
    /// the breaker itself).
    Neither,
}

/// One endpoint's breaker.
pub(crate) struct Breaker {
    config: CircuitBreaker,
    endpoint: std::sync::Arc<str>,
    state: AtomicU8,
    /// Failures in a row (consecutive mode).
    failures: AtomicU32,
    /// When it opened, in nanoseconds since `base`.
    opened_at: AtomicU64,
    /// Probes admitted, and probes that succeeded, while half-open.
    probes_admitted: AtomicU32,
    probes_passed: AtomicU32,
    /// The ratio mode's window.
    window: Mutex<Window>,
    base: Instant,
}

/// The ratio mode's sliding window, as buckets of calls and failures.
#[derive(Default)]
struct Window {
    buckets: [(u64, u32, u32); BUCKETS],
}

impl Breaker {
    pub(crate) fn new(config: CircuitBreaker, endpoint: impl Into<std::sync::Arc<str>>) -> Self {
        Breaker {
            config,
            endpoint: endpoint.into(),
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            opened_at: AtomicU64::new(0),
            probes_admitted: AtomicU32::new(0),
            probes_passed: AtomicU32::new(0),
            window: Mutex::new(Window::default()),
            base: Instant::now(),
        }
    }

    /// What an error means for the breaker.
    pub(crate) fn outcome(&self, result: &Result<bytes::Bytes, Error>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(
                Error::Timeout
                | Error::ConnectionLost { .. }
                | Error::Unavailable(_)
                | Error::Protocol(_)
                | Error::Tls(_)
                | Error::Io(_),
            ) => Outcome::Failure,
            Err(Error::Remote(_)) if self.config.count_remote => Outcome::Failure,
            Err(Error::Remote(_)) => Outcome::Success,
            Err(_) => Outcome::Neither,
        }
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The endpoint, as errors name it.
    pub(crate) fn endpoint(&self) -> &std::sync::Arc<str> {
        &self.endpoint
    }

    fn retry_in(&self, now: Instant) -> Duration {
        let open_until = Duration::from_nanos(self.opened_at.load(Ordering::Acquire))
            .saturating_add(self.config.open_for);
        open_until.saturating_sub(now.saturating_duration_since(self.base))
    }

    /// Whether calls go through without a second look: the fast path's
    /// one atomic load.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLOSED
    }

    /// Records the outcome of `result` now.
    pub(crate) fn record_result(&self, result: &Result<bytes::Bytes, Error>) {
        let outcome = self.outcome(result);
        if outcome != Outcome::Neither {
            self.record(outcome, Instant::now());
        }
    }

    /// Whether a call would be let through now, without taking a probe's
    /// place (for a group choosing a member).
    pub(crate) fn allows(&self, now: Instant) -> bool {
        match self.state.load(Ordering::Acquire) {
            CLOSED => true,
            OPEN => self.retry_in(now).is_zero(),
            _ => {
                self.probes_admitted.load(Ordering::Relaxed) < self.config.probes
                    || self.retry_in(now).is_zero()
            }
        }
    }

    /// Whether a stream may go now, without taking a probe's place.
    ///
    /// # Errors
    ///
    /// [`Error::CircuitOpen`] when no call would be let through.
    pub(crate) fn check(&self, now: Instant) -> Result<(), Error> {
        if self.allows(now) {
            Ok(())
        } else {
            Err(self.open_error(self.retry_in(now)))
        }
    }

    /// Lets a call through, or says when it may go.
    ///
    /// # Errors
    ///
    /// [`Error::CircuitOpen`] while open, and while half-open once the
    /// probes are under way.
    pub(crate) fn admit(&self, now: Instant) -> Result<(), Error> {
        match self.state.load(Ordering::Acquire) {
            CLOSED => Ok(()),
            OPEN => {
                let retry_in = self.retry_in(now);
                if !retry_in.is_zero() {
                    return Err(self.open_error(retry_in));
                }
                // Open long enough: half-open, and this call probes. One
                // caller makes the transition; the others race for probes.
                if self
                    .state
                    .compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.opened_at.store(self.nanos(now), Ordering::Release);
                    self.probes_admitted.store(0, Ordering::Relaxed);
                    self.probes_passed.store(0, Ordering::Relaxed);
                    tracing::info!(endpoint = %self.endpoint, "circuit half-open: probing");
                    metrics::breaker(&self.endpoint, 1);
                }
                self.admit_probe(now)
            }
            _ => self.admit_probe(now),
        }
    }

    fn admit_probe(&self, now: Instant) -> Result<(), Error> {
        let admitted = self.probes_admitted.fetch_add(1, Ordering::AcqRel);
        if admitted < self.config.probes {
            return Ok(());
        }
        // Probes that never report (cancelled by their caller, timed out
        // waiting for a connection, or ending in an outcome that says
        // nothing) must not hold the circuit half-open for good: after
        // another `open_for`, fresh probes go.
        let retry_in = self.retry_in(now);
        if retry_in.is_zero() {
            self.opened_at.store(self.nanos(now), Ordering::Release);
            self.probes_admitted.store(1, Ordering::Relaxed);
            self.probes_passed.store(0, Ordering::Relaxed);
            return Ok(());
        }
        Err(self.open_error(retry_in))
    }

    fn open_error(&self, retry_in: Duration) -> Error {
        Error::CircuitOpen {
            endpoint: self.endpoint.clone(),
            retry_in,
        }
    }

    /// Records a call's outcome.
    pub(crate) fn record(&self, outcome: Outcome, now: Instant) {
        match (self.state.load(Ordering::Acquire), outcome) {
            (_, Outcome::Neither) => {}
            (CLOSED, Outcome::Success) => {
                if let Trip::Ratio { window, .. } = self.config.trip {
                    self.count(now, window, false);
                } else if self.failures.load(Ordering::Relaxed) != 0 {
                    self.failures.store(0, Ordering::Relaxed);
                }
            }
            (CLOSED, Outcome::Failure) => {
                let trips = match self.config.trip {
                    Trip::Consecutive(n) => self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= n,
                    Trip::Ratio {
                        ratio,
                        window,
                        min_calls,
                    } => {
                        let (calls, failures) = self.count(now, window, true);
                        calls >= min_calls && f64::from(failures) >= ratio * f64::from(calls)
                    }
                };
                if trips {
                    self.open(CLOSED, now);
                }
            }
            (HALF_OPEN, Outcome::Success) => {
                let passed = self.probes_passed.fetch_add(1, Ordering::AcqRel) + 1;
                if passed >= self.config.probes
                    && self
                        .state
                        .compare_exchange(HALF_OPEN, CLOSED, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    tracing::info!(endpoint = %self.endpoint, "circuit closed: the probes succeeded");
                    metrics::breaker(&self.endpoint, 0);
                    self.failures.store(0, Ordering::Relaxed);
                    *self.window.lock().unwrap_or_else(PoisonError::into_inner) = Window::default();
                }
            }
            (HALF_OPEN, Outcome::Failure) => self.open(HALF_OPEN, now),
            // Open: an outcome of a call let through before it opened.
            _ => {}
        }
    }

    fn open(&self, from: u8, now: Instant) {
        self.opened_at.store(self.nanos(now), Ordering::Release);
        if self
            .state
            .compare_exchange(from, OPEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::warn!(endpoint = %self.endpoint, "circuit open: calls to the endpoint fail at once until it probes");
            metrics::breaker(&self.endpoint, 2);
        }
    }

    /// Counts a call in the ratio window; returns the window's calls and
    /// failures.
    fn count(&self, now: Instant, window: Duration, failed: bool) -> (u32, u32) {
        let width = (window.as_nanos() / BUCKETS as u128).max(1);
        let tick = (now.saturating_duration_since(self.base).as_nanos() / width) as u64;
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut w.buckets[(tick % BUCKETS as u64) as usize];
        if slot.0 != tick {
            *slot = (tick, 0, 0);
        }
        slot.1 += 1;
        slot.2 += u32::from(failed);
        let live = w
            .buckets
            .iter()
            .filter(|b| tick.saturating_sub(b.0) < BUCKETS as u64);
        live.fold((0, 0), |(c, f), b| (c + b.1, f + b.2))
    }

    /// The state now.
    pub(crate) fn state(&self, now: Instant) -> BreakerState {
        match self.state.load(Ordering::Acquire) {
            CLOSED => BreakerState::Closed,
            OPEN => BreakerState::Open {
                retry_in: self.retry_in(now),
            },
            _ => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: Outcome = Outcome::Success;
    const FAIL: Outcome = Outcome::Failure;

    fn at(b: &Breaker, ms: u64) -> Instant {
        b.base + Duration::from_millis(ms)
    }

    #[test]
    fn it_opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let b = Breaker::new(CircuitBreaker::new().consecutive_failures(3), "a:1");
        for _ in 0..2 {
            b.record(FAIL, at(&b, 0));
        }
        b.record(OK, at(&b, 0));
        for _ in 0..2 {
            b.record(FAIL, at(&b, 0));
        }
        assert_eq!(b.state(at(&b, 0)), BreakerState::Closed);
        assert!(b.admit(at(&b, 0)).is_ok());
        b.record(FAIL, at(&b, 0));
        assert_eq!(
            b.state(at(&b, 1_000)),
            BreakerState::Open {
                retry_in: Duration::from_secs(9)
            }
        );
        match b.admit(at(&b, 1_000)) {
            Err(Error::CircuitOpen { endpoint, retry_in }) => {
                assert_eq!(&*endpoint, "a:1");
                assert_eq!(retry_in, Duration::from_secs(9));
            }
            other => panic!("{other:?}"),
        }
        assert!(!b.allows(at(&b, 9_999)));
        assert!(b.allows(at(&b, 10_000)));
    }

    #[test]
    fn half_open_lets_its_probes_through_and_their_outcome_decides() {
        let config = CircuitBreaker::new()
            .consecutive_failures(1)
            .open_for(Duration::from_secs(1))
            .probes(2);
        let b = Breaker::new(config, "a:1");
        b.record(FAIL, at(&b, 0));
        assert!(b.admit(at(&b, 500)).is_err());
        // Two probes, then no more until they report.
        assert!(b.admit(at(&b, 1_000)).is_ok());
        assert_eq!(b.state(at(&b, 1_000)), BreakerState::HalfOpen);
        assert!(b.admit(at(&b, 1_000)).is_ok());
        assert!(b.admit(at(&b, 1_000)).is_err());
        assert!(!b.allows(at(&b, 1_000)));
        b.record(OK, at(&b, 1_100));
        assert_eq!(b.state(at(&b, 1_100)), BreakerState::HalfOpen);
        b.record(OK, at(&b, 1_200));
        assert_eq!(b.state(at(&b, 1_200)), BreakerState::Closed);

        // A failing probe opens it again, for a whole `open_for` from then.
        b.record(FAIL, at(&b, 2_000));
        assert!(b.admit(at(&b, 3_000)).is_ok());
        b.record(FAIL, at(&b, 3_100));
        assert_eq!(
            b.state(at(&b, 3_600)),
            BreakerState::Open {
                retry_in: Duration::from_millis(500)
            }
        );
    }

    #[test]
    fn probes_that_never_report_do_not_hold_it_half_open() {
        let config = CircuitBreaker::new()
            .consecutive_failures(1)
            .open_for(Duration::from_secs(1));
        let b = Breaker::new(config, "a:1");
        b.record(FAIL, at(&b, 0));
        // The probe goes, and its caller gives up before it reports.
        assert!(b.admit(at(&b, 1_000)).is_ok());
        assert!(b.admit(at(&b, 1_500)).is_err());
        assert!(!b.allows(at(&b, 1_500)));
        // Another pause on, a fresh probe goes, and its success closes it.
        assert!(b.allows(at(&b, 2_000)));
        assert!(b.admit(at(&b, 2_000)).is_ok());
        b.record(OK, at(&b, 2_100));
        assert_eq!(b.state(at(&b, 2_100)), BreakerState::Closed);
    }

    #[test]
    fn the_ratio_mode_needs_enough_calls_and_forgets_old_ones() {
        let config = CircuitBreaker::new().failure_ratio(0.5, Duration::from_secs(10), 10);
        let b = Breaker::new(config, "a:1");
        // Nine failures: too few calls to judge.
        for _ in 0..9 {
            b.record(FAIL, at(&b, 0));
        }
        assert_eq!(b.state(at(&b, 0)), BreakerState::Closed);
        // Eleven seconds on, they have left the window.
        for _ in 0..6 {
            b.record(OK, at(&b, 11_000));
        }
        for _ in 0..4 {
            b.record(FAIL, at(&b, 11_000));
        }
        assert_eq!(b.state(at(&b, 11_000)), BreakerState::Closed, "4 of 10");
        b.record(FAIL, at(&b, 11_500));
        b.record(FAIL, at(&b, 11_500));
        assert!(
            matches!(b.state(at(&b, 11_500)), BreakerState::Open { .. }),
            "6 of 12"
        );
    }

    #[test]
    fn outcomes_count_what_says_the_endpoint_is_in_trouble() {
        let b = Breaker::new(CircuitBreaker::new(), "a:1");
        let remote = Error::Remote(crate::error::RemoteError {
            code: crate::error::ErrorCode::Internal,
            message: "panicked".into(),
        });
        assert_eq!(b.outcome(&Ok(bytes::Bytes::new())), OK);
        assert_eq!(b.outcome(&Err(Error::Timeout)), FAIL);
        assert_eq!(b.outcome(&Err(Error::connection_lost("x"))), FAIL);
        assert_eq!(b.outcome(&Err(Error::unavailable("x"))), FAIL);
        assert_eq!(b.outcome(&Err(remote.clone())), OK);
        assert_eq!(
            b.outcome(&Err(Error::InvalidMetadata("x".into()))),
            Outcome::Neither
        );
        let counting = Breaker::new(CircuitBreaker::new().count_remote(true), "a:1");
        assert_eq!(counting.outcome(&Err(remote)), FAIL);
    }
}
