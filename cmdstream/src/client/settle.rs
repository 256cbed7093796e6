//! What a client and a server settle in their handshake: the limits the
//! client keeps to, each the smaller of its own and the server's, and the
//! server's announcements clamped to what the client accepts. A pure
//! function of the two sides' settings.

use std::time::Duration;

use super::config::ClientConfig;
use super::result_stream::MAX_GROWN_WINDOW;
use crate::wire::hello::ServerHello;

/// The most credit the client uses at once for one of its argument
/// streams, whatever the server grants: what the server's window or CREDIT
/// frames add beyond it is held back until items spend what is usable
/// (see `arg_credit`).
pub(crate) const MAX_ARG_WINDOW: u32 = 8192;

/// The shortest keepalive interval taken from a server's hello: a server
/// that announces less does not make the client ping it more often.
const MIN_SERVER_KEEPALIVE: Duration = Duration::from_secs(1);

/// The settled limits of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settled {
    /// Calls in flight at most: the smaller of ours and the server's.
    pub(crate) max_in_flight: usize,
    /// Initial credit the server grants each argument stream (usable up to
    /// [`MAX_ARG_WINDOW`] at once).
    pub(crate) server_window: u32,
    /// Initial credit we grant each result stream: ours, within the most
    /// the server keeps.
    pub(crate) our_window: u32,
    /// The most credit a result stream may grow to (see `ResultStream`),
    /// within the most the server keeps.
    pub(crate) max_window: u32,
    /// The largest frame the client sends: the server's limit, or the
    /// client's own if smaller.
    pub(crate) server_max_frame: usize,
    /// The keepalive interval: ours, or the server's if shorter (but not
    /// below [`MIN_SERVER_KEEPALIVE`]).
    pub(crate) keepalive: Option<Duration>,
}

/// The limits `config` and `server` settle on.
pub(crate) fn settle(config: &ClientConfig, server: &ServerHello) -> Settled {
    let keepalive = match (config.keepalive_interval, server.keepalive_ms) {
        (None, _) => None,
        (Some(ours), 0) => Some(ours),
        (Some(ours), theirs) => {
            let theirs = Duration::from_millis(theirs.into()).max(MIN_SERVER_KEEPALIVE);
            Some(ours.min(theirs))
        }
    };
    // A window beyond what the server keeps would wait for results the
    // server never sends ahead; the hello announced the same.
    let server_result_window = server.result_window(u32::MAX);
    Settled {
        max_in_flight: config
            .max_in_flight
            .min(server.max_in_flight as usize)
            .max(1),
        server_window: server.stream_window,
        our_window: server.result_window(config.stream_window),
        max_window: if config.grow_window {
            MAX_GROWN_WINDOW
                .max(config.stream_window)
                .min(server_result_window)
        } else {
            config.stream_window.min(server_result_window)
        },
        server_max_frame: (server.max_frame as usize).min(config.max_frame_size),
        keepalive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::hello::tests_support::server_hello;

    #[test]
    fn each_limit_is_the_smaller_side_and_the_servers_are_clamped() {
        let config = ClientConfig::default();
        let mut server = server_hello();
        server.max_in_flight = 64;
        server.stream_window = u32::MAX;
        server.max_frame = u32::MAX;
        server.keepalive_ms = 1;
        server.max_result_window = None;
        let settled = settle(&config, &server);
        assert_eq!(settled.max_in_flight, 64);
        assert_eq!(settled.server_max_frame, config.max_frame_size);
        assert_eq!(settled.keepalive, Some(MIN_SERVER_KEEPALIVE));
        assert_eq!(settled.max_window, MAX_GROWN_WINDOW);

        server.keepalive_ms = 0;
        let settled = settle(
            &ClientConfig {
                max_in_flight: 8,
                grow_window: false,
                keepalive_interval: None,
                ..ClientConfig::default()
            },
            &server,
        );
        assert_eq!(settled.max_in_flight, 8);
        assert_eq!(settled.max_window, settled.our_window);
        assert_eq!(settled.keepalive, None);
    }

    #[test]
    fn result_windows_stay_within_what_the_server_keeps() {
        let mut server = server_hello();
        server.max_result_window = Some(1_000);
        let grown = settle(&ClientConfig::default(), &server);
        assert_eq!(grown.max_window, 1_000);
        let fixed = settle(
            &ClientConfig {
                stream_window: 20_000,
                grow_window: false,
                ..ClientConfig::default()
            },
            &server,
        );
        assert_eq!((fixed.our_window, fixed.max_window), (1_000, 1_000));
        // An older server announces no limit.
        server.max_result_window = None;
        let older = settle(&ClientConfig::default(), &server);
        assert_eq!(older.max_window, MAX_GROWN_WINDOW);
    }
}
