//! What cmdstream shows of itself: a span for every call on both sides
//! (when a subscriber wants them), the outcome each call ended with, the
//! W3C trace context carried across the wire (feature `otel`), and the
//! metrics (feature `metrics`).
//!
//! None of it costs the plain call path anything measurable: a call is
//! observed only when a subscriber listens at DEBUG for its side, or a
//! feature that always observes is on, and an observed call takes a path
//! of its own, boxed, off the plain one.

pub(crate) mod call;
pub(crate) mod metrics;
#[cfg(feature = "otel")]
pub(crate) mod otel;
pub(crate) mod outcome;
#[cfg(any(feature = "otel", test))]
pub(crate) mod trace_context;

pub(crate) use self::call::CallTrace;
pub(crate) use self::outcome::Outcome;
