//! Whether a client and a server can talk: the command table each hello
//! carries, the rule that compares two versions of one service
//! (`docs/PROTOCOL.md`, §1.4), and the limits a hello must announce for the
//! other side to work with it.

use std::collections::HashMap;

use bytes::{Buf, BufMut, BytesMut};

use super::frame::MIN_FRAME_LIMIT;
use super::hello::{ClientHello, ServerHello};
use super::primitives::{put_str16, take_str16, MAX_STR16};
use super::PROTOCOL_VERSION;
use crate::error::Error;
use crate::service::CommandInfo;

/// One command as a hello announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandSig {
    pub(crate) id: u32,
    pub(crate) signature: u64,
    pub(crate) name: String,
}

impl CommandSig {
    pub(crate) fn table(commands: &[CommandInfo]) -> Vec<CommandSig> {
        commands
            .iter()
            .map(|c| CommandSig {
                id: c.id,
                signature: c.signature,
                name: c.name.to_owned(),
            })
            .collect()
    }
}

/// Appends a command table: `u16` count, then id, signature and name each.
///
/// # Errors
///
/// `FrameTooLarge` when the table has more than 65 535 commands or a name
/// over 65 535 bytes: it cannot be announced whole.
pub(crate) fn put_table(dst: &mut BytesMut, table: &[CommandSig]) -> Result<(), Error> {
    let too_large = |size| Error::FrameTooLarge {
        size,
        max: MAX_STR16,
    };
    if table.len() > MAX_STR16 {
        return Err(too_large(table.len()));
    }
    dst.put_u16(table.len() as u16);
    for c in table {
        if c.name.len() > MAX_STR16 {
            return Err(too_large(c.name.len()));
        }
        dst.put_u32(c.id);
        dst.put_u64(c.signature);
        put_str16(dst, &c.name);
    }
    Ok(())
}

/// Reads a command table from the front of `src`.
pub(crate) fn take_table(src: &mut &[u8]) -> Option<Vec<CommandSig>> {
    if src.len() < 2 {
        return None;
    }
    let n = src.get_u16() as usize;
    let mut table = Vec::with_capacity(n.min(src.len() / 14));
    for _ in 0..n {
        if src.len() < 12 {
            return None;
        }
        let id = src.get_u32();
        let signature = src.get_u64();
        let name = take_str16(src)?;
        table.push(CommandSig {
            id,
            signature,
            name,
        });
    }
    Some(table)
}

/// The differences that make a client's commands unusable on a server:
/// a command the client has and the server lacks (removed, or the server is
/// older), or one whose signature changed. Commands only the server has are
/// fine: adding a command never breaks an older client.
pub(crate) fn command_diffs(client: &[CommandSig], server: &[CommandSig]) -> Vec<String> {
    let by_id: HashMap<u32, &CommandSig> = server.iter().map(|c| (c.id, c)).collect();
    let mut diffs = Vec::new();
    for c in client {
        match by_id.get(&c.id) {
            None => diffs.push(format!(
                "the server has no command `{}` (id {}): it was removed, or the server is older than the client",
                c.name, c.id
            )),
            Some(s) if s.signature != c.signature => diffs.push(format!(
                "command `{}` (id {}) changed: client signature {:#018x}, server `{}` {:#018x}",
                c.name, c.id, c.signature, s.name, s.signature
            )),
            Some(_) => {}
        }
    }
    diffs
}

fn differs(what: &str, client: impl std::fmt::Display, server: impl std::fmt::Display) -> String {
    format!("{what} differs: client has {client}, server has {server}")
}

/// Names every difference between the two sides, or `None` if they match.
pub(crate) fn mismatch(
    client_version: u16,
    client: &ClientHello,
    server: &ServerHello,
) -> Option<String> {
    let mut diffs = Vec::new();
    if client_version != PROTOCOL_VERSION {
        diffs.push(differs(
            "protocol version",
            client_version,
            PROTOCOL_VERSION,
        ));
    }
    if client.service != server.service {
        diffs.push(differs("service name", &client.service, &server.service));
    }
    if client.codec != server.codec {
        diffs.push(differs("codec", &client.codec, &server.codec));
    }
    if client.fingerprint != server.fingerprint {
        let commands = command_diffs(&client.commands, &server.commands);
        if !commands.is_empty() {
            diffs.extend(commands);
            diffs.push(format!(
                "command-set fingerprints: client {:#018x}, server {:#018x} (build both from the same service definition, or deploy servers first)",
                client.fingerprint, server.fingerprint
            ));
        }
    }
    (!diffs.is_empty()).then(|| diffs.join("; "))
}

/// Why the limits a peer announced cannot work, if they cannot: the other
/// side must be able to send it its answers, errors and control frames.
pub(crate) fn unusable_limits(peer: &str, max_frame: u32) -> Option<String> {
    ((max_frame as usize) < MIN_FRAME_LIMIT).then(|| {
        format!(
            "the {peer} accepts frames of at most {max_frame} bytes, below the protocol's minimum of {MIN_FRAME_LIMIT}"
        )
    })
}

/// The protocol version a server announced, if this client cannot speak it.
pub(crate) fn version_mismatch(server_version: u16) -> Option<String> {
    (server_version != PROTOCOL_VERSION)
        .then(|| differs("protocol version", PROTOCOL_VERSION, server_version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(id: u32, signature: u64, name: &str) -> CommandSig {
        CommandSig {
            id,
            signature,
            name: name.into(),
        }
    }

    #[test]
    fn table_round_trips_and_truncation_fails() {
        let table = vec![sig(1, 0xaa, "add"), sig(7, 0xbb, "countdown")];
        let mut buf = BytesMut::new();
        put_table(&mut buf, &table).unwrap();
        let mut src = &buf[..];
        assert_eq!(take_table(&mut src), Some(table));
        assert!(src.is_empty());
        for cut in 0..buf.len() {
            let mut src = &buf[..cut];
            assert_eq!(take_table(&mut src), None, "cut at {cut}");
        }
    }

    #[test]
    fn a_table_too_large_to_announce_is_an_error() {
        let table: Vec<_> = (0..=MAX_STR16 as u32).map(|i| sig(i, 0, "c")).collect();
        assert!(put_table(&mut BytesMut::new(), &table).is_err());
        let long = [sig(1, 0, &"n".repeat(MAX_STR16 + 1))];
        assert!(put_table(&mut BytesMut::new(), &long).is_err());
    }

    #[test]
    fn limits_below_the_minimum_are_named() {
        assert!(unusable_limits("client", MIN_FRAME_LIMIT as u32).is_none());
        let why = unusable_limits("client", 100).unwrap();
        assert!(why.contains("at most 100 bytes"), "{why}");
    }

    #[test]
    fn additions_on_the_server_are_compatible() {
        let client = [sig(1, 0xaa, "add")];
        let server = [sig(1, 0xaa, "add"), sig(2, 0xcc, "sub")];
        assert!(command_diffs(&client, &server).is_empty());
    }

    #[test]
    fn removals_and_changes_are_named() {
        let client = [sig(1, 0xaa, "add"), sig(2, 0xcc, "sub")];
        let server = [sig(1, 0xab, "add")];
        let diffs = command_diffs(&client, &server);
        assert_eq!(diffs.len(), 2);
        assert!(diffs[0].contains("`add` (id 1) changed"), "{}", diffs[0]);
        assert!(diffs[1].contains("no command `sub` (id 2)"), "{}", diffs[1]);
    }
}
