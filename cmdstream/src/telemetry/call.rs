//! One call as telemetry sees it, on either side: its span, when it
//! began, the bytes it moved, and what is reported when it ends (a DEBUG
//! event in the span, the span's outcome fields, the metrics). A call is
//! observed only when [`observing`] says so.

use std::borrow::Cow;

use tracing::field::Empty;
use tracing::{Level, Span};

use super::metrics;
use super::outcome::Outcome;
use crate::service::CommandInfo;
use crate::side::Side;
use crate::transport::PeerAddr;
use crate::wire::frame;

/// Whether calls on `side` are observed: a subscriber listens to that
/// side's spans, or a feature that always observes (`metrics`, `otel`)
/// is on. Checked once per call; without a subscriber and without those
/// features it is a load and a compare.
#[inline]
pub(crate) fn observing(side: Side) -> bool {
    if cfg!(any(feature = "metrics", feature = "otel")) {
        return true;
    }
    spans_wanted(side)
}

/// Whether a subscriber wants `side`'s call spans.
#[inline]
pub(crate) fn spans_wanted(side: Side) -> bool {
    match side {
        Side::Client => tracing::enabled!(target: "cmdstream::client", Level::DEBUG),
        Side::Server => tracing::enabled!(target: "cmdstream::server", Level::DEBUG),
    }
}

/// Records on a call's `span` the request id its send was given, where
/// it went and its command frame's size.
pub(crate) fn sent(span: &Span, peer: &str, request_id: u64, bytes: usize) {
    if span.is_disabled() {
        return;
    }
    span.record("cmdstream.request_id", request_id);
    span.record("cmdstream.bytes_out", bytes);
    match split_host_port(peer) {
        Some((host, port)) => {
            span.record("server.address", host);
            span.record("server.port", port);
        }
        None => {
            span.record("server.address", peer);
        }
    }
}

/// The trace context an observed call sends: what its options set, else
/// (feature `otel`) its `span`'s, or its caller's when the call's span is
/// not recorded, if that belongs to an OpenTelemetry trace.
pub(crate) fn traceparent<'a>(set: Option<&'a str>, span: &Span) -> Option<Cow<'a, str>> {
    if let Some(set) = set {
        return Some(Cow::Borrowed(set));
    }
    #[cfg(feature = "otel")]
    {
        let from = if span.is_disabled() {
            Span::current()
        } else {
            span.clone()
        };
        super::otel::traceparent(&from).map(Cow::Owned)
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = span;
        None
    }
}

/// `host` and `port` of `"host:port"` or `"[v6]:port"`.
fn split_host_port(endpoint: &str) -> Option<(&str, u16)> {
    let (host, port) = endpoint.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port))
}

/// One observed call.
#[derive(Debug)]
pub(crate) struct CallTrace {
    span: Span,
    started: std::time::Instant,
    command: &'static CommandInfo,
    side: Side,
    bytes_in: u64,
    bytes_out: u64,
    finished: bool,
}

impl CallTrace {
    /// A client's call of `command` begins, in the current span.
    pub(crate) fn client(command: &'static CommandInfo, codec: &'static str) -> Self {
        let span = tracing::debug_span!(
            target: "cmdstream::client",
            "cmdstream.call",
            otel.name = command.path,
            otel.kind = "client",
            otel.status_code = Empty,
            rpc.system.name = "cmdstream",
            rpc.method = command.path,
            rpc.response.status_code = Empty,
            error.type = Empty,
            server.address = Empty,
            server.port = Empty,
            cmdstream.command_id = command.id,
            cmdstream.request_id = Empty,
            cmdstream.codec = codec,
            cmdstream.bytes_out = Empty,
            cmdstream.bytes_in = Empty,
            cmdstream.outcome = Empty,
            cmdstream.duration_us = Empty,
        );
        CallTrace::begin(span, command, Side::Client, 0)
    }

    /// [`client`](Self::client), boxed, when client calls are
    /// [observed](observing).
    #[inline]
    pub(crate) fn client_if_observed(
        command: &'static CommandInfo,
        codec: &'static str,
    ) -> Option<Box<Self>> {
        observing(Side::Client).then(|| Box::new(CallTrace::client(command, codec)))
    }

    /// A server's command begins: request `id` from `peer`, its body
    /// frame `bytes_in` long, sent under `traceparent` when the client gave
    /// one.
    /// Its span is a root, or (feature `otel`) the child of the client's
    /// span the `traceparent` names.
    pub(crate) fn server(
        command: &'static CommandInfo,
        id: u64,
        connection: u64,
        peer: &PeerAddr,
        codec: &'static str,
        bytes_in: usize,
        traceparent: Option<&str>,
    ) -> Self {
        let span = if spans_wanted(Side::Server) {
            let (address, port, transport) = peer_fields(peer);
            tracing::debug_span!(
            target: "cmdstream::server",
            parent: None,
            "cmdstream.command",
            otel.name = command.path,
            otel.kind = "server",
            otel.status_code = Empty,
            rpc.system.name = "cmdstream",
            rpc.method = command.path,
            rpc.response.status_code = Empty,
            error.type = Empty,
            network.peer.address = %address,
            network.peer.port = port,
            network.transport = transport,
            cmdstream.command_id = command.id,
            cmdstream.request_id = id,
            cmdstream.connection = connection,
            cmdstream.codec = codec,
            cmdstream.bytes_in = bytes_in,
            cmdstream.bytes_out = Empty,
            cmdstream.outcome = Empty,
            cmdstream.duration_us = Empty,
            )
        } else {
            Span::none()
        };
        #[cfg(feature = "otel")]
        if let Some(traceparent) = traceparent {
            super::otel::adopt(&span, traceparent);
        }
        let _ = traceparent;
        CallTrace::begin(span, command, Side::Server, bytes_in as u64)
    }

    fn begin(span: Span, command: &'static CommandInfo, side: Side, bytes_in: u64) -> Self {
        metrics::call_started(side, command.path);
        CallTrace {
            span,
            started: std::time::Instant::now(),
            command,
            side,
            bytes_in,
            bytes_out: 0,
            finished: false,
        }
    }

    /// The call's span: disabled when no subscriber wants it.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// `items` frames with `bodies` bytes of bodies in all arrived for the
    /// call (a result, a batch of streamed items): counted whole, as the
    /// sender counts them.
    #[inline]
    pub(crate) fn received_items(&mut self, items: usize, bodies: usize) {
        self.bytes_in += (items * (frame::LEN_SIZE + frame::HEADER_SIZE) + bodies) as u64;
    }

    /// The bytes of the frames received for the call so far.
    #[cfg(test)]
    pub(crate) fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// A unary or client-streaming call's send ended with `result`: its
    /// size and outcome reported.
    pub(crate) fn ended(&mut self, result: &Result<bytes::Bytes, crate::Error>) {
        if let Ok(bytes) = result {
            self.received_items(1, bytes.len());
        }
        self.finish(Outcome::of(result));
    }

    /// `bytes` more left for the call (a result, a batch of items).
    #[inline]
    pub(crate) fn sent(&mut self, bytes: usize) {
        self.bytes_out += bytes as u64;
    }

    /// The call ended with `outcome`: recorded on its span, reported in a
    /// DEBUG event, counted in the metrics. Only the first report counts.
    pub(crate) fn finish(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        metrics::call_finished(self.side, self.command.path, outcome, elapsed);
        let span = &self.span;
        if span.is_disabled() {
            return;
        }
        let duration_us = elapsed.as_micros() as u64;
        span.record("cmdstream.outcome", outcome.label());
        span.record("rpc.response.status_code", outcome.status());
        span.record("cmdstream.duration_us", duration_us);
        match self.side {
            Side::Client => span.record("cmdstream.bytes_in", self.bytes_in),
            Side::Server => span.record("cmdstream.bytes_out", self.bytes_out),
        };
        if outcome != Outcome::Ok {
            span.record("error.type", outcome.label());
            span.record("otel.status_code", "ERROR");
        }
        let outcome = outcome.label();
        match self.side {
            Side::Client => tracing::debug!(
                target: "cmdstream::client",
                parent: span,
                outcome,
                duration_us,
                "call finished"
            ),
            Side::Server => tracing::debug!(
                target: "cmdstream::server",
                parent: span,
                outcome,
                duration_us,
                "command finished"
            ),
        }
    }
}

impl Drop for CallTrace {
    /// A call dropped before it ended was cancelled: its caller stopped
    /// waiting (client), or the command was stopped (server).
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled);
    }
}

/// The `network.*` fields of a server span for `peer`.
fn peer_fields(peer: &PeerAddr) -> (String, Option<u16>, &'static str) {
    match peer {
        PeerAddr::Tcp(addr) => (addr.ip().to_string(), Some(addr.port()), "tcp"),
        #[cfg(unix)]
        PeerAddr::Unix(path) => (
            path.as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            None,
            "unix",
        ),
        PeerAddr::Other(name) => (name.to_string(), None, "other"),
        PeerAddr::Unknown => (String::new(), None, "unknown"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_split_into_host_and_port() {
        assert_eq!(split_host_port("127.0.0.1:80"), Some(("127.0.0.1", 80)));
        assert_eq!(split_host_port("[::1]:4000"), Some(("::1", 4000)));
        assert_eq!(split_host_port("db.internal:5"), Some(("db.internal", 5)));
        assert_eq!(split_host_port("/run/app.sock"), None);
    }
}
