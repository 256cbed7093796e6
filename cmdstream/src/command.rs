//! What a service is made of: its commands, their ids and shapes, and the
//! [`Dispatch`] trait that runs them on the server.
//!
//! `#[cmdstream::receiver]` generates all of this from a trait; it can also
//! be written by hand, as below.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::Codec;
use crate::server::Call;

/// The shape of a command: how many values flow each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    /// One argument value in, one result out.
    Unary,
    /// One argument value in, a stream of results out.
    ServerStream,
    /// Arguments plus a stream of items in, one result out.
    ClientStream,
    /// Arguments plus a stream of items in, a stream of results out.
    Bidi,
}

impl CommandKind {
    /// Whether the client sends a stream of items after the command.
    pub fn streams_arguments(self) -> bool {
        matches!(self, CommandKind::ClientStream | CommandKind::Bidi)
    }

    /// Whether the server answers with a stream of results.
    pub fn streams_results(self) -> bool {
        matches!(self, CommandKind::ServerStream | CommandKind::Bidi)
    }
}

/// One command of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandInfo {
    /// The id on the wire: stable across versions, never reused.
    pub id: u32,
    /// The name, for logs and traces.
    pub name: &'static str,
    /// What flows each way.
    pub kind: CommandKind,
    /// The timeout of calls whose options set none.
    pub timeout: Option<Duration>,
    /// A hash of the command's wire name, shape, argument and result types.
    /// Client and server compare it per command, so a changed command is
    /// refused at connect time while an added one is not.
    pub signature: u64,
}

/// A whole service: its name, its commands and the fingerprint that client
/// and server compare in the handshake.
///
/// # Examples
///
/// ```
/// use cmdstream::{CommandInfo, CommandKind, ServiceInfo};
///
/// static CALC: ServiceInfo = ServiceInfo {
///     name: "Calc",
///     fingerprint: cmdstream::fingerprint(b"Calc v1: 1 add(i64,i64)->i64"),
///     commands: &[CommandInfo {
///         id: 1,
///         name: "add",
///         kind: CommandKind::Unary,
///         timeout: None,
///         signature: cmdstream::fingerprint(b"add(i64,i64)->i64"),
///     }],
/// };
/// assert_eq!(CALC.command(1).unwrap().name, "add");
/// ```
#[derive(Debug)]
pub struct ServiceInfo {
    /// The service's name; client and server must agree on it.
    pub name: &'static str,
    /// A hash of the whole command set (names, ids, argument and result
    /// types). When client and server agree on it they are compatible at
    /// once; otherwise they compare command by command (see
    /// [`CommandInfo::signature`]).
    pub fingerprint: u64,
    /// Every command.
    pub commands: &'static [CommandInfo],
}

impl ServiceInfo {
    /// The command with this id.
    pub fn command(&self, id: u32) -> Option<&CommandInfo> {
        self.commands.iter().find(|c| c.id == id)
    }
}

/// A 64-bit FNV-1a hash, usable in `const` items: the fingerprint of a
/// hand-written service description.
pub const fn fingerprint(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// Runs the commands of one service on the server: the invoker of the
/// command pattern.
///
/// The server calls [`dispatch`](Dispatch::dispatch) once per incoming
/// command, in a task of its own, with the command id already checked
/// against [`INFO`](Dispatch::INFO). The implementation decodes the
/// arguments, runs the receiver and answers through the [`Call`]: exactly
/// one of [`Call::reply`], [`Call::reply_stream`] or [`Call::fail`]. A call
/// dropped without an answer (a panic, say) is reported to the client as an
/// internal error.
pub trait Dispatch: Send + Sync + 'static {
    /// The service this dispatches.
    const INFO: &'static ServiceInfo;

    /// Runs one command to completion.
    fn dispatch<C: Codec>(self: Arc<Self>, call: Call<C>) -> impl Future<Output = ()> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_fnv1a() {
        assert_eq!(fingerprint(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fingerprint(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fingerprint(b"add(i64)"), fingerprint(b"add(i32)"));
    }
}
