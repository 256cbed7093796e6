//! Per-call options: timeout, trace context and metadata.

use std::sync::Arc;
use std::time::Duration;

use crate::metadata::Metadata;

/// Options that travel with every call made through a client handle.
///
/// Set them on a handle with [`Client::with_options`](crate::Client::with_options)
/// (or the generated client's equivalent); the handle is cheap to clone, so a
/// per-call variation costs one clone.
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
    pub(crate) timeout: Option<Duration>,
    pub(crate) traceparent: Option<Arc<str>>,
    pub(crate) metadata: Option<Arc<Metadata>>,
}

impl CallOptions {
    /// No timeout, no trace context, no metadata.
    pub fn new() -> Self {
        CallOptions::default()
    }

    /// The longest a call may take. It is sent to the server as the call's
    /// deadline, so the server stops the command when it expires; the
    /// caller gets [`Error::Timeout`](crate::Error::Timeout). The default is
    /// no timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Removes the timeout.
    pub fn no_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// The timeout, if one is set.
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout
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

    /// Replaces all metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = Some(Arc::new(metadata));
        self
    }
}
