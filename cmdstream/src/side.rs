//! Which end of a connection something happens at: the client or the
//! server. A leaf, for the drivers' shared code and for telemetry.

/// Which end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

impl Side {
    /// The other end, as error messages name it.
    pub(crate) fn peer(self) -> &'static str {
        match self {
            Side::Client => "server",
            Side::Server => "client",
        }
    }
}
