//! Per-call options: timeout, trace context and metadata, and how options
//! set in several places combine.

use std::sync::Arc;
use std::time::Duration;

use crate::metadata::Metadata;

/// Options that travel with every call made through a client handle.
///
/// Set them on a handle with [`Client::with_options`](crate::Client::with_options)
/// (or the generated client's equivalent); the handle is cheap to clone, so a
/// per-call variation costs one clone.
///
/// # Precedence
///
/// Options are layered, never silently replaced. A handle's options are
/// the client's defaults ([`ClientBuilder::call_options`](crate::ClientBuilder::call_options))
/// with each [`with_options`](crate::Client::with_options) layered on top:
/// a timeout or trace context set in a layer replaces the one below, and a
/// metadata key set in a layer replaces that key's entries below, other
/// keys kept. For the timeout the order is, most specific first:
///
/// 1. a timeout set through `with_options` (or [`no_timeout`](Self::no_timeout));
/// 2. the command's own default, `#[command(timeout = "...")]`;
/// 3. the client's default, from [`ClientBuilder::timeout`](crate::ClientBuilder::timeout)
///    or a timeout in [`ClientBuilder::call_options`](crate::ClientBuilder::call_options)
///    (the two are the same setting).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let opts = cmdstream::CallOptions::new()
///     .timeout(Duration::from_millis(250))
///     .metadata("tenant", "acme");
/// assert_eq!(opts.get_timeout(), Some(Duration::from_millis(250)));
/// ```
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// `None`: not set here; `Some(None)`: no timeout.
    pub(crate) timeout: Option<Option<Duration>>,
    pub(crate) traceparent: Option<Arc<str>>,
    pub(crate) metadata: Option<Arc<Metadata>>,
    /// `None`: as the command says (`#[command(idempotent)]`).
    pub(crate) idempotent: Option<bool>,
}

impl CallOptions {
    /// No timeout, no trace context, no metadata set.
    pub fn new() -> Self {
        CallOptions::default()
    }

    /// The longest a call may take. It is sent to the server as the call's
    /// deadline, so the server stops the command when it expires; the
    /// caller gets [`Error::Timeout`](crate::Error::Timeout). The default is
    /// to inherit (see [Precedence](Self#precedence)); with nothing to
    /// inherit, no timeout. A unary call with a timeout allocates its
    /// timer (one allocation more than an untimed call), so that the
    /// future of an untimed one stays small.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(Some(timeout));
        self
    }

    /// No timeout at all, whatever the command or the client's default
    /// says.
    pub fn no_timeout(mut self) -> Self {
        self.timeout = Some(None);
        self
    }

    /// The timeout set here, if one is.
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout.flatten()
    }

    /// A W3C `traceparent` to propagate to the server (at most 255 bytes;
    /// longer values are not sent).
    pub fn traceparent(mut self, traceparent: impl Into<Arc<str>>) -> Self {
        self.traceparent = Some(traceparent.into());
        self
    }

    /// Adds a metadata entry. An entry the wire cannot carry (a key or
    /// value over 65 535 bytes) is kept, and fails each call made with
    /// these options with [`Error::InvalidMetadata`](crate::Error::InvalidMetadata).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        Arc::make_mut(self.metadata.get_or_insert_with(Default::default)).insert(key, value);
        self
    }

    /// Replaces all metadata set here.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = Some(Arc::new(metadata));
        self
    }

    /// Whether running these calls twice does no harm, whatever the
    /// command says: a [reconnecting](crate::Reconnect) client sends such a
    /// call once more on a new connection when the old one was lost after
    /// the call went out (within the call's deadline). By default, as the
    /// command is marked (`#[command(idempotent)]`).
    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = Some(yes);
        self
    }

    /// `over` layered on top of these options (see [Precedence](Self#precedence)).
    pub(crate) fn layered(&self, over: CallOptions) -> CallOptions {
        let metadata = match (&self.metadata, over.metadata) {
            (base, None) => base.clone(),
            (None, over) => over,
            (Some(base), Some(over)) => {
                let kept = base.iter().filter(|(k, _)| over.get(k).is_none());
                let mut merged: Metadata = kept.collect();
                for (k, v) in over.iter() {
                    merged.insert(k, v);
                }
                Some(Arc::new(merged))
            }
        };
        CallOptions {
            timeout: over.timeout.or(self.timeout),
            traceparent: over.traceparent.or_else(|| self.traceparent.clone()),
            metadata,
            idempotent: over.idempotent.or(self.idempotent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_replace_what_they_set_and_keep_the_rest() {
        let base = CallOptions::new()
            .timeout(Duration::from_secs(1))
            .traceparent("base")
            .metadata("token", "abc")
            .metadata("tenant", "acme");
        let over = CallOptions::new()
            .metadata("tenant", "other")
            .metadata("trace", "1");
        let both = base.layered(over);
        assert_eq!(both.get_timeout(), Some(Duration::from_secs(1)));
        assert_eq!(both.traceparent.as_deref(), Some("base"));
        let md = both.metadata.unwrap();
        assert_eq!(md.get("token"), Some("abc"));
        assert_eq!(md.get("tenant"), Some("other"));
        assert_eq!(md.get("trace"), Some("1"));
        assert_eq!(md.len(), 3);

        let none = base.layered(CallOptions::new().no_timeout());
        assert_eq!(none.timeout, Some(None), "no_timeout is set, not unset");
        let unset = CallOptions::new().layered(CallOptions::new());
        assert_eq!(unset.timeout, None);
    }
}
