//! Shared fixtures for the end-to-end tests: a `Calc` service written by
//! hand against the runtime's traits (the code `#[cmdstream::receiver]`
//! generates), a second service for incompatible peers, servers on
//! loopback and in-memory pipes, and raw-byte helpers for speaking the wire
//! protocol badly on purpose.

pub mod calc;
pub mod other;
pub mod pki;
pub mod raw;
pub mod scripted;

use std::net::SocketAddr;
use std::time::Duration;

use cmdstream::{Client, Server, ServerBuilder};
use tokio::net::TcpListener;

pub use calc::{Calc, CalcClient, CalcServer, DivError, Probe};

/// A running server on `127.0.0.1:0`.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A handle for shutting it down.
    pub server: Server<CalcServer>,
    /// What the receiver has observed.
    pub probe: Probe,
    /// The serve task.
    pub task: tokio::task::JoinHandle<cmdstream::Result<()>>,
}

/// Starts a `Calc` server with the given settings on a loopback port.
pub async fn serve_with(builder: ServerBuilder) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let probe = Probe::default();
    let server = builder.build(CalcServer::new(Calc::new(probe.clone())));
    let task = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    Running {
        addr,
        server,
        probe,
        task,
    }
}

/// Starts a `Calc` server with the default settings.
pub async fn serve() -> Running {
    serve_with(Server::builder()).await
}

/// Connects a client with the default settings.
pub async fn connect(addr: SocketAddr) -> CalcClient {
    CalcClient::new(Client::connect(addr, &calc::INFO).await.unwrap())
}

/// Waits until `cond` holds, checking every millisecond, for at most 5 s
/// of wall-clock time; panics with `what` otherwise. For conditions that are
/// reached by another task, not for timing assertions.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
