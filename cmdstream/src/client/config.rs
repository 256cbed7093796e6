//! A client's settings, with their defaults; changed through
//! [`ClientBuilder`](super::ClientBuilder).

use std::time::Duration;

use super::options::CallOptions;
use crate::metadata::Metadata;

/// Client settings. Every field has a documented default; change them
/// through [`ClientBuilder`].
#[derive(Debug, Clone)]
pub(crate) struct ClientConfig {
    pub(crate) max_frame_size: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) stream_window: u32,
    /// Whether result windows may grow past `stream_window` for small
    /// items; off once a window is set explicitly.
    pub(crate) grow_window: bool,
    pub(crate) keepalive_interval: Option<Duration>,
    pub(crate) connect_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) metadata: Metadata,
    pub(crate) options: CallOptions,
    /// The timeout of calls that neither their options nor their command
    /// give one.
    pub(crate) default_timeout: Option<Duration>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            max_frame_size: crate::DEFAULT_MAX_FRAME_SIZE,
            max_in_flight: 1024,
            stream_window: crate::DEFAULT_STREAM_WINDOW,
            grow_window: true,
            keepalive_interval: Some(Duration::from_secs(10)),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            metadata: Metadata::new(),
            options: CallOptions::new(),
            default_timeout: None,
        }
    }
}
