//! # cmdstream
//!
//! The Distributed Command Pattern for Rust: commands as values, sent over
//! one multiplexed connection per client, with results streamed back.
//!
//! A service is a set of commands ([`ServiceInfo`]). The server runs each
//! incoming command in a task of its own through the service's
//! [`Dispatch`] implementation; the [`Client`] is a cheap, cloneable handle
//! over one connection that any number of tasks can call at once. Calls are
//! unary, server-streaming, client-streaming or bidirectional, each stream
//! under credit-based flow control. The wire protocol is specified byte by
//! byte in `docs/PROTOCOL.md`.
//!
//! Most users never implement [`Dispatch`] by hand: `#[cmdstream::receiver]`
//! generates it, together with a typed client, from a plain trait.

mod client;
pub mod codec;
mod command;
mod conn;
mod error;
mod metadata;
mod server;
mod wire;

pub use client::{CallOptions, Client, ClientBuilder, ResultStream};
pub use codec::Codec;
pub use command::{fingerprint, CommandInfo, CommandKind, Dispatch, ServiceInfo};
pub use error::{Error, ErrorCode, RemoteError, Result};
pub use futures_core::Stream;
pub use metadata::Metadata;
pub use server::{ArgStream, Call, CallContext, ConnectionInfo, Listener, Server, ServerBuilder};
pub use wire::PROTOCOL_VERSION;

/// The default limit on a frame's size, for both sides: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 * 1024 * 1024;

pub use cmdstream_macros::receiver;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

/// What generated code refers to. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use core::clone::Clone;
    pub use core::convert::{From, Infallible as Never};
    pub use core::fmt;
    pub use core::future::Future;
    pub use core::marker::{PhantomData, Send, Sync};
    pub use core::option::Option;
    pub use core::result::Result;
    pub use serde;
    pub use std::sync::Arc;
    pub use std::time::Duration;
    pub use tokio::net::ToSocketAddrs;

    /// Compiles only for types that can cross the wire.
    pub fn assert_wire_type<T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static>() {}
}
