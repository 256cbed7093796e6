//! The metrics (feature `metrics`), through the `metrics` facade: the
//! application installs a recorder (Prometheus, OpenTelemetry, …) and
//! cmdstream reports to it. Without the feature every function here is
//! empty and compiles away.
//!
//! Names follow OpenTelemetry's conventions: dot-separated, units apart
//! (seconds, bytes), the RPC durations as its semantic conventions name
//! them. A Prometheus exporter turns the dots into underscores.

// Without the feature only the empty functions are used.
#![cfg_attr(not(feature = "metrics"), allow(dead_code, unreachable_pub))]

use std::time::Duration;

use super::outcome::Outcome;
use crate::side::Side;

/// `rpc.client.call.duration`: seconds from a client call's start to its
/// outcome; labels `rpc.method`, `outcome`.
pub const CLIENT_CALL_DURATION: &str = "rpc.client.call.duration";
/// `rpc.server.call.duration`: seconds from a command's arrival to its
/// answer; labels `rpc.method`, `outcome`.
pub const SERVER_CALL_DURATION: &str = "rpc.server.call.duration";
/// Calls a client started; label `rpc.method`.
pub const CLIENT_CALLS_STARTED: &str = "cmdstream.client.calls.started";
/// Calls a client saw end; labels `rpc.method`, `outcome`.
pub const CLIENT_CALLS_FINISHED: &str = "cmdstream.client.calls.finished";
/// A client's calls started and not yet ended; label `rpc.method`.
pub const CLIENT_CALLS_ACTIVE: &str = "cmdstream.client.calls.active";
/// Commands a server admitted; label `rpc.method`.
pub const SERVER_CALLS_STARTED: &str = "cmdstream.server.calls.started";
/// Commands a server answered (or stopped); labels `rpc.method`,
/// `outcome`.
pub const SERVER_CALLS_FINISHED: &str = "cmdstream.server.calls.finished";
/// A server's commands admitted and not yet answered; label
/// `rpc.method`.
pub const SERVER_CALLS_ACTIVE: &str = "cmdstream.server.calls.active";
/// Connections open now (past the handshake); label `side`.
pub const CONNECTIONS_OPEN: &str = "cmdstream.connections.open";
/// Connections opened (past the handshake); label `side`.
pub const CONNECTIONS_OPENED: &str = "cmdstream.connections.opened";
/// Bytes read from connections; label `side`.
pub const BYTES_READ: &str = "cmdstream.io.read";
/// Bytes written to connections; label `side`.
pub const BYTES_WRITTEN: &str = "cmdstream.io.written";
/// Frames per write to the socket (how well writes coalesce); label
/// `side`.
pub const FRAMES_PER_WRITE: &str = "cmdstream.io.frames_per_write";
/// Connections given up because the peer fell silent; label `side`.
pub const KEEPALIVE_FAILURES: &str = "cmdstream.keepalive.failures";
/// Connections a reconnecting client (or a group's member) made again
/// after losing one; label `server.address`.
pub const RECONNECTS: &str = "cmdstream.client.reconnects";
/// A circuit breaker's state: 0 closed, 1 half-open, 2 open; label
/// `server.address`.
pub const BREAKER_STATE: &str = "cmdstream.client.breaker.state";
/// The connections reconnecting clients and groups keep up (one per
/// reconnecting client, one per group member), by their supervisor's
/// state: `connecting`, `up`, `draining`, `backing_off`, `closed`; label
/// `state`.
pub const RECONNECTING_CONNECTIONS: &str = "cmdstream.client.reconnecting.connections";

/// Every metric's name.
pub const ALL: [&str; 17] = [
    CLIENT_CALL_DURATION,
    SERVER_CALL_DURATION,
    CLIENT_CALLS_STARTED,
    CLIENT_CALLS_FINISHED,
    CLIENT_CALLS_ACTIVE,
    SERVER_CALLS_STARTED,
    SERVER_CALLS_FINISHED,
    SERVER_CALLS_ACTIVE,
    CONNECTIONS_OPEN,
    CONNECTIONS_OPENED,
    BYTES_READ,
    BYTES_WRITTEN,
    FRAMES_PER_WRITE,
    KEEPALIVE_FAILURES,
    RECONNECTS,
    BREAKER_STATE,
    RECONNECTING_CONNECTIONS,
];

/// Registers every metric's unit and description with the installed
/// recorder, so an exporter can show them (Prometheus's `# HELP` and
/// unit suffixes). Call it once, after installing the recorder.
#[cfg(feature = "metrics")]
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_histogram!(
        CLIENT_CALL_DURATION,
        Unit::Seconds,
        "Duration of client calls"
    );
    describe_histogram!(
        SERVER_CALL_DURATION,
        Unit::Seconds,
        "Duration of server commands"
    );
    describe_counter!(CLIENT_CALLS_STARTED, Unit::Count, "Client calls started");
    describe_counter!(
        CLIENT_CALLS_FINISHED,
        Unit::Count,
        "Client calls ended, by outcome"
    );
    describe_gauge!(CLIENT_CALLS_ACTIVE, Unit::Count, "Client calls in flight");
    describe_counter!(SERVER_CALLS_STARTED, Unit::Count, "Commands admitted");
    describe_counter!(
        SERVER_CALLS_FINISHED,
        Unit::Count,
        "Commands ended, by outcome"
    );
    describe_gauge!(SERVER_CALLS_ACTIVE, Unit::Count, "Commands running");
    describe_gauge!(CONNECTIONS_OPEN, Unit::Count, "Connections open");
    describe_counter!(CONNECTIONS_OPENED, Unit::Count, "Connections opened");
    describe_counter!(BYTES_READ, Unit::Bytes, "Bytes read from connections");
    describe_counter!(BYTES_WRITTEN, Unit::Bytes, "Bytes written to connections");
    describe_histogram!(FRAMES_PER_WRITE, Unit::Count, "Frames per socket write");
    describe_counter!(
        KEEPALIVE_FAILURES,
        Unit::Count,
        "Connections lost to silence"
    );
    describe_counter!(
        RECONNECTS,
        Unit::Count,
        "Reconnections after a lost connection"
    );
    describe_gauge!(
        BREAKER_STATE,
        "Circuit state: 0 closed, 1 half-open, 2 open"
    );
    describe_gauge!(
        RECONNECTING_CONNECTIONS,
        Unit::Count,
        "Reconnecting connections and group members by state"
    );
}

fn side(side: Side) -> &'static str {
    match side {
        Side::Client => "client",
        Side::Server => "server",
    }
}

/// A call (client) or command (server) began.
#[inline]
pub(crate) fn call_started(at: Side, method: &'static str) {
    #[cfg(feature = "metrics")]
    {
        let (started, active) = match at {
            Side::Client => (CLIENT_CALLS_STARTED, CLIENT_CALLS_ACTIVE),
            Side::Server => (SERVER_CALLS_STARTED, SERVER_CALLS_ACTIVE),
        };
        metrics::counter!(started, "rpc.method" => method).increment(1);
        metrics::gauge!(active, "rpc.method" => method).increment(1.0);
    }
    let _ = (at, method);
}

/// A call (client) or command (server) ended with `outcome` after
/// `elapsed`.
#[inline]
pub(crate) fn call_finished(at: Side, method: &'static str, outcome: Outcome, elapsed: Duration) {
    #[cfg(feature = "metrics")]
    {
        let (finished, active, duration) = match at {
            Side::Client => (
                CLIENT_CALLS_FINISHED,
                CLIENT_CALLS_ACTIVE,
                CLIENT_CALL_DURATION,
            ),
            Side::Server => (
                SERVER_CALLS_FINISHED,
                SERVER_CALLS_ACTIVE,
                SERVER_CALL_DURATION,
            ),
        };
        let outcome = outcome.label();
        metrics::counter!(finished, "rpc.method" => method, "outcome" => outcome).increment(1);
        metrics::histogram!(duration, "rpc.method" => method, "outcome" => outcome)
            .record(elapsed.as_secs_f64());
        metrics::gauge!(active, "rpc.method" => method).decrement(1.0);
    }
    let _ = (at, method, outcome, elapsed);
}

/// An open connection, counted in [`CONNECTIONS_OPEN`] while it lives.
#[derive(Debug)]
pub(crate) struct OpenConnection {
    #[cfg(feature = "metrics")]
    side: Side,
}

impl OpenConnection {
    pub(crate) fn new(at: Side) -> Self {
        #[cfg(feature = "metrics")]
        {
            metrics::counter!(CONNECTIONS_OPENED, "side" => side(at)).increment(1);
            metrics::gauge!(CONNECTIONS_OPEN, "side" => side(at)).increment(1.0);
            OpenConnection { side: at }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = at;
            OpenConnection {}
        }
    }
}

#[cfg(feature = "metrics")]
impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS_OPEN, "side" => side(self.side)).decrement(1.0);
    }
}

/// `bytes` read from a connection.
#[inline]
pub(crate) fn read(at: Side, bytes: usize) {
    #[cfg(feature = "metrics")]
    metrics::counter!(BYTES_READ, "side" => side(at)).increment(bytes as u64);
    let _ = (at, bytes);
}

/// `bytes` written to a connection; `frames`, when a write completed, is
/// how many frames it carried.
#[inline]
pub(crate) fn written(at: Side, bytes: u64, frames: Option<usize>) {
    #[cfg(feature = "metrics")]
    {
        if bytes > 0 {
            metrics::counter!(BYTES_WRITTEN, "side" => side(at)).increment(bytes);
        }
        if let Some(frames) = frames {
            metrics::histogram!(FRAMES_PER_WRITE, "side" => side(at)).record(frames as f64);
        }
    }
    let _ = (at, bytes, frames);
}

/// A connection was given up: the peer stayed silent.
pub(crate) fn keepalive_failed(at: Side) {
    #[cfg(feature = "metrics")]
    metrics::counter!(KEEPALIVE_FAILURES, "side" => side(at)).increment(1);
    let _ = at;
}

/// A reconnecting client is connected again to `endpoint`.
pub(crate) fn reconnected(endpoint: &dyn std::fmt::Display) {
    #[cfg(feature = "metrics")]
    metrics::counter!(RECONNECTS, "server.address" => endpoint.to_string()).increment(1);
    let _ = endpoint;
}

/// The breaker of `endpoint` is now in `state` (0 closed, 1 half-open,
/// 2 open).
pub(crate) fn breaker(endpoint: &str, state: u8) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(BREAKER_STATE, "server.address" => endpoint.to_owned()).set(f64::from(state));
    let _ = (endpoint, state);
}

/// A reconnecting connection's supervisor left state `from` (if it had
/// one) for `to` (if it goes on); nothing when they are the same.
pub(crate) fn reconnecting(from: Option<&'static str>, to: Option<&'static str>) {
    #[cfg(feature = "metrics")]
    if from != to {
        if let Some(from) = from {
            metrics::gauge!(RECONNECTING_CONNECTIONS, "state" => from).decrement(1.0);
        }
        if let Some(to) = to {
            metrics::gauge!(RECONNECTING_CONNECTIONS, "state" => to).increment(1.0);
        }
    }
    let _ = (from, to);
}
