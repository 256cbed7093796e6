//! A second service, with another command set than `Calc`: a server that
//! was redeployed with something else, for the tests of clients that must
//! refuse it.

use cmdstream::Server;

/// Another service.
#[cmdstream::receiver]
pub trait Other {
    /// Answers 1.
    async fn ping(&self) -> u8;
}

/// Its receiver.
pub struct OtherImpl;

impl Other for OtherImpl {
    async fn ping(&self) -> u8 {
        1
    }
}

/// A server of [`Other`].
pub fn other_server() -> Server<OtherServer<OtherImpl>> {
    Server::builder().build(OtherServer::new(OtherImpl))
}
