//! Whether a client and a server built from two versions of one service
//! can talk: the command table each hello carries, and the rule that
//! compares them (`docs/PROTOCOL.md`, §1.4).

use std::collections::HashMap;

use bytes::{Buf, BufMut, BytesMut};

use crate::command::CommandInfo;
use crate::metadata::{put_str16, take_str16};

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
pub(crate) fn put_table(dst: &mut BytesMut, table: &[CommandSig]) {
    let n = table.len().min(u16::MAX as usize);
    dst.put_u16(n as u16);
    for c in &table[..n] {
        dst.put_u32(c.id);
        dst.put_u64(c.signature);
        put_str16(dst, &c.name);
    }
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
        put_table(&mut buf, &table);
        let mut src = &buf[..];
        assert_eq!(take_table(&mut src), Some(table));
        assert!(src.is_empty());
        for cut in 0..buf.len() {
            let mut src = &buf[..cut];
            assert_eq!(take_table(&mut src), None, "cut at {cut}");
        }
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
