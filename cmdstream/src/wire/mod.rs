//! The wire protocol: frames and the handshake, as `docs/PROTOCOL.md`
//! describes them byte by byte.

pub(crate) mod command;
pub(crate) mod compat;
pub(crate) mod frame;
pub(crate) mod handshake;
pub(crate) mod hello;
pub(crate) mod primitives;
pub(crate) mod results;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;
