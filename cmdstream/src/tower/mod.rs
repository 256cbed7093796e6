//! tower on both sides (cargo feature `tower`): a generated client as a
//! [`Service`](tower_service::Service) of its commands, so that tower's
//! timeout, retry, rate limit, concurrency limit and load shedding stack on
//! it; and tower layers around a server's dispatch.
//!
//! Neither side pays for what it does not use: a client is wrapped only
//! when you wrap it, and a server without [`Layered`] dispatches as it
//! always does (commands that complete at once are still polled inline).
//!
//! # Examples
//!
//! ```no_run
//! # #[cmdstream::receiver] trait Calc { async fn add(&self, a: i64, b: i64) -> i64; }
//! # async fn f(client: CalcClient) -> Result<(), cmdstream::Error> {
//! use cmdstream::tower::ClientService;
//! use tower_service::Service;
//!
//! let mut service = ClientService::new(client);
//! std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
//! let reply = service.call(CalcCommand::Add { a: 2, b: 3 }).await?;
//! assert!(matches!(reply, CalcReply::Add(5)));
//! # Ok(()) }
//! ```

mod client;
mod server;

pub use self::client::ClientService;
pub use self::server::{Dispatcher, Incoming, Layered};

/// The error type tower's middleware works with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
