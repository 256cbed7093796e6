//! The task that keeps a reconnecting client's connection up, as an
//! explicit state machine: connecting, up, draining (after the server's
//! go-away), backing off, closed.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::Supervised;
use crate::client::connection::Connection;
use crate::client::dial::Dial;
use crate::client::state::ConnectionState;
use crate::error::{Error, TlsErrorKind};
use crate::rand::Rng;
use crate::telemetry::metrics;

/// Where the supervisor is.
enum State {
    /// Dialing, after `failures` failed dials in a row; `last` says why
    /// the last one failed, or why the connection before ended.
    Connecting {
        failures: u32,
        last: Option<Arc<str>>,
    },
    /// A connection is up and takes calls; `failures` counts the failed
    /// dials and short-lived connections in a row before it, which go on
    /// counting if it does not stay up either.
    Up {
        conn: Arc<Connection>,
        since: Instant,
        failures: u32,
    },
    /// The server said it is going away: its calls in flight finish on
    /// it, new calls wait for the replacement, which is dialed at once
    /// (after a backoff, if the connection did not stay up: a server that
    /// sends every client away at once is not dialed in a tight loop).
    Draining {
        old: Arc<Connection>,
        stable: bool,
        failures: u32,
    },
    /// Waiting before the next dial.
    BackingOff {
        failures: u32,
        until: Instant,
        last: Arc<str>,
    },
    /// Done: every handle is gone, `close` was called, the policy gave
    /// up, or the server can never be used (incompatible, refused us).
    Closed(Error),
}

impl State {
    /// The state's name, as the metrics label it.
    fn name(&self) -> &'static str {
        match self {
            State::Connecting { .. } => "connecting",
            State::Up { .. } => "up",
            State::Draining { .. } => "draining",
            State::BackingOff { .. } => "backing_off",
            State::Closed(_) => "closed",
        }
    }
}

/// How a supervisor starts: with the connection the first dial made, after
/// a first dial that failed, or with a first dial of its own (lazy).
pub(crate) enum First {
    Up(Arc<Connection>),
    Failed(Error),
    Dial,
}

/// Runs the supervisor until the client is closed.
pub(super) async fn run(
    shared: Arc<Supervised>,
    mut dial: Dial,
    first: First,
    stop: CancellationToken,
) {
    let mut jitter = Rng::from_entropy();
    // When the client last had no connection, for `max_outage`.
    let mut outage_since = Instant::now();
    let mut state = match first {
        First::Up(conn) => State::Up {
            conn,
            since: Instant::now(),
            failures: 0,
        },
        First::Failed(e) if is_final(&e) => State::Closed(e),
        First::Failed(e) => back_off(&shared, &mut jitter, 1, why(&e)),
        First::Dial => State::Connecting {
            failures: 0,
            last: None,
        },
    };
    // The state last counted in the metrics.
    let mut counted = None;
    loop {
        metrics::reconnecting(counted, Some(state.name()));
        counted = Some(state.name());
        state = match state {
            State::Up {
                conn,
                since,
                failures,
            } => {
                shared.publish(Some(conn.clone()), ConnectionState::Open);
                tokio::select! {
                    () = stop.cancelled() => {
                        shared.publish(None, closing());
                        conn.close().await;
                        State::Closed(Error::connection_lost("the client was closed"))
                    }
                    () = conn.shared.wait_not_open() => {
                        // A connection that stayed up a while is a fresh
                        // start: dial again at once. One that ended straight
                        // away counts as one more failure in a row.
                        let stable = since.elapsed() >= shared.policy.backoff.delay(1, 0.0);
                        if stable {
                            outage_since = Instant::now();
                        }
                        if conn.shared.going_away.get().is_some() {
                            State::Draining { old: conn, stable, failures }
                        } else {
                            let error = conn.lost_reason();
                            warn!(reason = %why(&error), "connection lost; reconnecting");
                            if stable {
                                State::Connecting { failures: 0, last: Some(why(&error)) }
                            } else {
                                failed(&shared, &mut jitter, failures, outage_since, error)
                            }
                        }
                    }
                }
            }
            State::Draining {
                old,
                stable,
                failures,
            } => {
                let reason = old.shared.going_away.get().cloned().unwrap_or_default();
                info!(%reason, "the server is going away; dialing its replacement");
                drop(old);
                let last = format!("the server went away: {reason}");
                if stable {
                    State::Connecting {
                        failures: 0,
                        last: Some(last.into()),
                    }
                } else {
                    let error = Error::unavailable(last);
                    failed(&shared, &mut jitter, failures, outage_since, error)
                }
            }
            State::Connecting { failures, last } => {
                shared.publish(
                    None,
                    ConnectionState::Reconnecting {
                        attempt: failures + 1,
                        last_error: last.clone(),
                    },
                );
                if let Some(refresh) = &shared.policy.refresh {
                    dial.config.metadata = refresh();
                }
                tokio::select! {
                    () = stop.cancelled() => {
                        State::Closed(Error::connection_lost("the client was closed"))
                    }
                    made = dial.connect() => match made {
                        Ok(conn) => {
                            if last.is_some() {
                                info!(dials = failures + 1, "reconnected");
                                metrics::reconnected(&dial.endpoint);
                            }
                            State::Up { conn: Arc::new(conn), since: Instant::now(), failures }
                        }
                        Err(e) if is_final(&e) => {
                            error!(error = %e, "the server cannot be used; the client closes");
                            State::Closed(e)
                        }
                        Err(e) => failed(&shared, &mut jitter, failures, outage_since, e),
                    }
                }
            }
            State::BackingOff {
                failures,
                until,
                last,
            } => {
                info!(error = %last, failures, wait = ?until.saturating_duration_since(Instant::now()), "dial failed; backing off");
                shared.publish(
                    None,
                    ConnectionState::Reconnecting {
                        attempt: failures + 1,
                        last_error: Some(last.clone()),
                    },
                );
                tokio::select! {
                    () = stop.cancelled() => {
                        State::Closed(Error::connection_lost("the client was closed"))
                    }
                    () = tokio::time::sleep_until(until) => {
                        State::Connecting { failures, last: Some(last) }
                    }
                }
            }
            State::Closed(error) => {
                let _ = shared.closed.set(error.clone());
                shared.publish(None, ConnectionState::Closed(why(&error)));
                metrics::reconnecting(counted, None);
                return;
            }
        };
    }
}

/// The state after one more failure (a dial, or a connection that did not
/// stay up) on top of `failures` in a row, ending in `error`: backing off,
/// or closed if the policy's attempts or outage are used up.
fn failed(
    shared: &Supervised,
    jitter: &mut Rng,
    failures: u32,
    outage_since: Instant,
    error: Error,
) -> State {
    let failures = failures + 1;
    let out_of_attempts = shared
        .policy
        .max_attempts
        .is_some_and(|max| failures >= max);
    let out_of_time = shared
        .policy
        .max_outage
        .is_some_and(|max| outage_since.elapsed() >= max);
    if out_of_attempts || out_of_time {
        error!(error = %error, failures, "giving up reconnecting; the client closes");
        State::Closed(error)
    } else {
        back_off(shared, jitter, failures, why(&error))
    }
}

/// The state after `failures` failed dials, the last with `last`.
fn back_off(shared: &Supervised, jitter: &mut Rng, failures: u32, last: Arc<str>) -> State {
    let wait = shared.policy.backoff.delay(failures, jitter.unit());
    State::BackingOff {
        failures,
        until: Instant::now() + wait,
        last,
    }
}

/// Why a dial failed, a connection ended or the client closed, as the
/// state shows it: a lost connection's reason alone (what the error says
/// about calls is for calls).
fn why(error: &Error) -> Arc<str> {
    match error {
        Error::ConnectionLost { reason, .. } => reason.clone(),
        other => other.to_string().into(),
    }
}

fn closing() -> ConnectionState {
    ConnectionState::Draining("the client is closing".into())
}

/// Whether a dial's error means the server can never be used as this
/// client is configured, so that dialing again is pointless.
fn is_final(error: &Error) -> bool {
    match error {
        Error::Incompatible(_)
        | Error::Unauthenticated(_)
        | Error::PermissionDenied(_)
        | Error::InvalidMetadata(_) => true,
        Error::Tls(e) => e.kind() == TlsErrorKind::Config,
        _ => false,
    }
}
