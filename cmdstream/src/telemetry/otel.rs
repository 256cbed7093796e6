//! OpenTelemetry across the wire (feature `otel`): the client writes its
//! call span's context into the call's trace-context slot as a W3C
//! `traceparent`; the server makes that the parent of its command span.
//! The spans themselves are tracing's, turned into OpenTelemetry's by
//! `tracing-opentelemetry`'s layer, which the application installs.

use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry::Context;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::trace_context::TraceParent;

/// The `traceparent` naming `span` as the parent, when `span` belongs to
/// a valid OpenTelemetry trace.
pub(crate) fn traceparent(span: &Span) -> Option<String> {
    let context = span.context();
    let otel_span = context.span();
    let sc = otel_span.span_context();
    if !sc.is_valid() {
        return None;
    }
    let parent = TraceParent {
        trace_id: u128::from_be_bytes(sc.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(sc.span_id().to_bytes()),
        flags: sc.trace_flags().to_u8(),
    };
    Some(parent.format())
}

/// Makes the span a `traceparent` names the parent of `span`. A header
/// that does not parse is ignored: the command span starts a trace.
pub(crate) fn adopt(span: &Span, traceparent: &str) {
    let Some(parent) = TraceParent::parse(traceparent) else {
        return;
    };
    let remote = SpanContext::new(
        parent.trace_id.into(),
        parent.span_id.into(),
        TraceFlags::new(parent.flags),
        true,
        TraceState::default(),
    );
    // Fails only when no OpenTelemetry layer listens: nothing to link.
    let _ = span.set_parent(Context::new().with_remote_span_context(remote));
}
