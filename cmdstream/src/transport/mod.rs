//! Where bytes come from and go to: the endpoints a client dials, the
//! connectors that dial them, the listeners a server accepts from, and who
//! the peer is. Below both the client and the server, and knows neither.

mod connect;
mod endpoint;
mod listen;
mod peer;
#[cfg(feature = "tls")]
pub(crate) mod tls;

pub(crate) use self::connect::Dialer;
#[cfg(unix)]
pub use self::connect::Unix;
pub use self::connect::{Connector, Tcp};
pub use self::endpoint::{Endpoint, IntoEndpoint};
pub use self::listen::Listener;
pub use self::peer::PeerAddr;
