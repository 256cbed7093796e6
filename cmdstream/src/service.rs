//! What a service is made of: its commands, their ids, shapes and
//! signatures. Both sides share these descriptions; they name nothing of
//! either side (the server runs them through
//! [`Dispatch`](crate::Dispatch)).
//!
//! `#[cmdstream::receiver]` generates all of this from a trait; it can also
//! be written by hand, as below.

use std::time::Duration;

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
///
/// Built with [`CommandInfo::new`] (in `const` context too); fields may be
/// added in later versions, so it cannot be built as a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommandInfo {
    /// The id on the wire: stable across versions, never reused.
    pub id: u32,
    /// The name, for logs and traces.
    pub name: &'static str,
    /// The fully qualified name, `Service/command`, as spans and metrics
    /// name the call (OpenTelemetry's `rpc.method`). The name alone unless
    /// set with [`with_path`](Self::with_path); generated code sets it.
    pub path: &'static str,
    /// What flows each way.
    pub kind: CommandKind,
    /// The timeout of calls whose options set none.
    pub timeout: Option<Duration>,
    /// Whether running it twice does no harm, so that a reconnecting
    /// client may send a call again that a lost connection may or may not
    /// have delivered (`#[command(idempotent)]`; see
    /// [`Reconnect`](crate::Reconnect)).
    pub idempotent: bool,
    /// A hash of the command's wire name, shape, argument and result types.
    /// Client and server compare it per command, so a changed command is
    /// refused at connect time while an added one is not.
    pub signature: u64,
}

impl CommandInfo {
    /// A command with no default timeout.
    pub const fn new(id: u32, name: &'static str, kind: CommandKind, signature: u64) -> Self {
        CommandInfo {
            id,
            name,
            path: name,
            kind,
            timeout: None,
            idempotent: false,
            signature,
        }
    }

    /// The same command, marked idempotent.
    pub const fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// The same command named `path` in spans and metrics, written
    /// `Service/command`.
    pub const fn with_path(mut self, path: &'static str) -> Self {
        self.path = path;
        self
    }

    /// The same command with a default timeout for its calls.
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// A whole service: its name, its commands and the fingerprint that client
/// and server compare in the handshake.
///
/// Built with [`ServiceInfo::new`]; fields may be added in later versions.
///
/// # Examples
///
/// ```
/// use cmdstream::{fingerprint, CommandInfo, CommandKind, ServiceInfo};
///
/// static CALC: ServiceInfo = ServiceInfo::new(
///     "Calc",
///     fingerprint(b"Calc v1: 1 add(i64,i64)->i64"),
///     &[CommandInfo::new(1, "add", CommandKind::Unary, fingerprint(b"add(i64,i64)->i64"))],
/// );
/// assert_eq!(CALC.command(1).unwrap().name, "add");
/// ```
#[derive(Debug)]
#[non_exhaustive]
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
    /// A service of these commands.
    pub const fn new(
        name: &'static str,
        fingerprint: u64,
        commands: &'static [CommandInfo],
    ) -> Self {
        ServiceInfo {
            name,
            fingerprint,
            commands,
        }
    }

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
