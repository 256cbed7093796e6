//! The handshake's messages as bytes (`docs/PROTOCOL.md`, §1): the two
//! hellos, the refusal and the ack, encoded and decoded without any I/O,
//! every length checked against the one bound both sides keep.
//! `handshake.rs` moves them over a connection.

use bytes::{BufMut, BytesMut};

use super::compat::{put_table, take_table, CommandSig};
use super::primitives::{
    put_metadata, put_str16, take_metadata, take_str16, take_u32, take_u64, truncate, MAX_STR16,
};
use super::PROTOCOL_VERSION;
use crate::error::{Error, TlsError, TlsErrorKind};
use crate::metadata::Metadata;

pub(crate) const SERVER_MAGIC: [u8; 4] = *b"CMDS";
pub(crate) const CLIENT_MAGIC: [u8; 4] = *b"CMDC";
/// The largest hello body either side sends or reads.
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// Bytes of a server hello before its body: magic, version, status, length.
pub(crate) const SERVER_HEAD: usize = 11;
/// Bytes of a client hello before its body: magic, version, length.
pub(crate) const CLIENT_HEAD: usize = 10;
/// The first bytes of a client hello, magic and version, which a client
/// sends as soon as it connects (see `handshake::connect`).
pub(crate) const CLIENT_PREAMBLE: usize = 6;
/// Bytes of an ack before its reason: status and the reason's length.
pub(crate) const ACK_HEAD: usize = 3;

/// Why a server refuses a connection before the handshake (the status of
/// its hello).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Refusal {
    TooManyConnections = 1,
    ShuttingDown = 2,
    /// The server speaks TLS and the client did not.
    TlsRequired = 3,
}

/// The status of an ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum AckStatus {
    Ok = 0,
    Incompatible = 1,
    Unauthenticated = 2,
    PermissionDenied = 3,
}

/// What the server announces about itself.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ServerHello {
    pub(crate) fingerprint: u64,
    pub(crate) max_frame: u32,
    pub(crate) max_in_flight: u32,
    pub(crate) keepalive_ms: u32,
    pub(crate) stream_window: u32,
    pub(crate) service: String,
    pub(crate) codec: String,
    pub(crate) commands: Vec<CommandSig>,
    /// The most unspent credit the server keeps per result stream; absent
    /// from the hellos of servers before it was added.
    pub(crate) max_result_window: Option<u32>,
}

/// What the client announces about itself.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClientHello {
    pub(crate) fingerprint: u64,
    pub(crate) max_frame: u32,
    pub(crate) stream_window: u32,
    pub(crate) service: String,
    pub(crate) codec: String,
    pub(crate) commands: Vec<CommandSig>,
    pub(crate) metadata: Metadata,
}

/// The head of a server's hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerHead {
    pub(crate) version: u16,
    /// `0`: accepted; otherwise a [`Refusal`], and the body is its reason.
    pub(crate) status: u8,
    /// The body's length, at most [`MAX_BODY`].
    pub(crate) len: usize,
}

/// The head of a client's hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientHead {
    pub(crate) version: u16,
    /// The body's length, at most [`MAX_BODY`].
    pub(crate) len: usize,
}

fn malformed(what: &str) -> Error {
    Error::protocol(format!("malformed handshake: {what}"))
}

fn check_magic(expected: [u8; 4], got: &[u8], peer: &str) -> Result<(), Error> {
    if got == expected {
        return Ok(());
    }
    // A TLS record (handshake or alert, TLS 1.0 to 1.3) where a plaintext
    // hello should be: the peer speaks TLS.
    if let [0x15 | 0x16, 0x03, 0x00..=0x04, ..] = got {
        return Err(Error::Tls(TlsError::new(
            TlsErrorKind::TlsRequired,
            format!("the {peer} answered with TLS"),
        )));
    }
    Err(Error::Incompatible(
        format!(
            "the peer is not a cmdstream {peer} (expected magic {:?}, got {got:02x?})",
            String::from_utf8_lossy(&expected),
        )
        .into(),
    ))
}

fn check_len(len: u32) -> Result<usize, Error> {
    let len = len as usize;
    if len > MAX_BODY {
        return Err(malformed("hello body above 64 KiB"));
    }
    Ok(len)
}

/// Reads the head of a server's hello.
///
/// # Errors
///
/// `Incompatible` when the peer is not a cmdstream server, `Protocol` when
/// the body it announces is too large.
pub(crate) fn decode_server_head(head: &[u8; SERVER_HEAD]) -> Result<ServerHead, Error> {
    check_magic(SERVER_MAGIC, &head[..4], "server")?;
    Ok(ServerHead {
        version: u16::from_be_bytes([head[4], head[5]]),
        status: head[6],
        len: check_len(u32::from_be_bytes([head[7], head[8], head[9], head[10]]))?,
    })
}

/// Reads the head of a client's hello.
///
/// # Errors
///
/// As [`decode_server_head`].
pub(crate) fn decode_client_head(head: &[u8; CLIENT_HEAD]) -> Result<ClientHead, Error> {
    check_magic(CLIENT_MAGIC, &head[..4], "client")?;
    Ok(ClientHead {
        version: u16::from_be_bytes([head[4], head[5]]),
        len: check_len(u32::from_be_bytes([head[6], head[7], head[8], head[9]]))?,
    })
}

/// Writes the body's length into the 4 bytes at `len_at`, once the body
/// (everything after them) is appended.
///
/// # Errors
///
/// `FrameTooLarge` when the body is over [`MAX_BODY`]; `dst` is cut back
/// to `start` then.
fn finish_body(dst: &mut BytesMut, start: usize, len_at: usize) -> Result<(), Error> {
    let len = dst.len() - len_at - 4;
    if len > MAX_BODY {
        dst.truncate(start);
        return Err(Error::FrameTooLarge {
            size: len,
            max: MAX_BODY,
        });
    }
    dst[len_at..len_at + 4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Appends what both hellos carry after their numbers: the service's
/// name, the codec's name and the command table.
fn put_names(
    dst: &mut BytesMut,
    service: &str,
    codec: &str,
    commands: &[CommandSig],
) -> Result<(), Error> {
    put_name(dst, service)?;
    put_name(dst, codec)?;
    put_table(dst, commands)
}

/// Reads what [`put_names`] appends; `peer` names the side in errors.
fn take_names(src: &mut &[u8], peer: &str) -> Result<(String, String, Vec<CommandSig>), Error> {
    let service = take_str16(src).ok_or_else(|| malformed(&format!("{peer} service name")))?;
    let codec = take_str16(src).ok_or_else(|| malformed(&format!("{peer} codec name")))?;
    let commands = take_table(src).ok_or_else(|| malformed(&format!("{peer} command table")))?;
    Ok((service, codec, commands))
}

/// Appends `s` as a `str16`, or fails: a hello never carries a cut name.
fn put_name(dst: &mut BytesMut, s: &str) -> Result<(), Error> {
    if s.len() > MAX_STR16 {
        return Err(Error::FrameTooLarge {
            size: s.len(),
            max: MAX_STR16,
        });
    }
    put_str16(dst, s);
    Ok(())
}

impl ServerHello {
    /// The result window a client that wants `wanted` grants this server:
    /// no more than the server keeps unspent.
    pub(crate) fn result_window(&self, wanted: u32) -> u32 {
        wanted.min(self.max_result_window.unwrap_or(u32::MAX))
    }

    /// Appends the whole hello, head included, accepting the connection.
    ///
    /// # Errors
    ///
    /// `FrameTooLarge` when the body would be over [`MAX_BODY`] (a command
    /// table too large to announce); nothing is appended then.
    pub(crate) fn encode(&self, dst: &mut BytesMut) -> Result<(), Error> {
        let start = dst.len();
        dst.put_slice(&SERVER_MAGIC);
        dst.put_u16(PROTOCOL_VERSION);
        dst.put_u8(0);
        let len_at = dst.len();
        dst.put_u32(0);
        dst.put_u64(self.fingerprint);
        dst.put_u32(self.max_frame);
        dst.put_u32(self.max_in_flight);
        dst.put_u32(self.keepalive_ms);
        dst.put_u32(self.stream_window);
        if let Err(e) = put_names(dst, &self.service, &self.codec, &self.commands) {
            dst.truncate(start);
            return Err(e);
        }
        if let Some(max) = self.max_result_window {
            dst.put_u32(max);
        }
        finish_body(dst, start, len_at)
    }

    /// Reads an accepting server's hello body. Bytes after the fields
    /// this version knows are ignored, for later versions to add fields.
    ///
    /// # Errors
    ///
    /// `Protocol` when the body is cut short or a field is not valid.
    pub(crate) fn decode_body(body: &[u8]) -> Result<ServerHello, Error> {
        let mut src = body;
        let too_short = || malformed("server hello too short");
        let fingerprint = take_u64(&mut src).ok_or_else(too_short)?;
        let max_frame = take_u32(&mut src).ok_or_else(too_short)?;
        let max_in_flight = take_u32(&mut src).ok_or_else(too_short)?;
        let keepalive_ms = take_u32(&mut src).ok_or_else(too_short)?;
        let stream_window = take_u32(&mut src).ok_or_else(too_short)?;
        let (service, codec, commands) = take_names(&mut src, "server")?;
        // Added after the table; a body that ends before it is an older
        // server's.
        let max_result_window = take_u32(&mut src);
        if stream_window == 0 || max_in_flight == 0 || max_result_window == Some(0) {
            return Err(malformed(
                "server stream window, result window or in-flight limit is 0",
            ));
        }
        Ok(ServerHello {
            fingerprint,
            max_frame,
            max_in_flight,
            keepalive_ms,
            stream_window,
            service,
            codec,
            commands,
            max_result_window,
        })
    }
}

impl ClientHello {
    /// Appends the whole hello, head included.
    ///
    /// # Errors
    ///
    /// `FrameTooLarge` when the body would be over [`MAX_BODY`] (too much
    /// connection metadata, say), `InvalidMetadata` when the metadata
    /// cannot be sent at all; nothing is appended then.
    pub(crate) fn encode(&self, dst: &mut BytesMut) -> Result<(), Error> {
        self.metadata.fits_wire()?;
        let start = dst.len();
        dst.put_slice(&CLIENT_MAGIC);
        dst.put_u16(PROTOCOL_VERSION);
        let len_at = dst.len();
        dst.put_u32(0);
        dst.put_u64(self.fingerprint);
        dst.put_u32(self.max_frame);
        dst.put_u32(self.stream_window);
        if let Err(e) = put_names(dst, &self.service, &self.codec, &self.commands) {
            dst.truncate(start);
            return Err(e);
        }
        put_metadata(dst, &self.metadata);
        finish_body(dst, start, len_at)
    }

    /// Reads a client's hello body. Bytes after the fields this version
    /// knows are ignored.
    ///
    /// # Errors
    ///
    /// `Protocol` when the body is cut short or a field is not valid.
    pub(crate) fn decode_body(body: &[u8]) -> Result<ClientHello, Error> {
        let mut src = body;
        let too_short = || malformed("client hello too short");
        let fingerprint = take_u64(&mut src).ok_or_else(too_short)?;
        let max_frame = take_u32(&mut src).ok_or_else(too_short)?;
        let stream_window = take_u32(&mut src).ok_or_else(too_short)?;
        let (service, codec, commands) = take_names(&mut src, "client")?;
        let metadata = take_metadata(&mut src).ok_or_else(|| malformed("client metadata"))?;
        if stream_window == 0 {
            return Err(malformed("client stream window is 0"));
        }
        Ok(ClientHello {
            fingerprint,
            max_frame,
            stream_window,
            service,
            codec,
            commands,
            metadata,
        })
    }
}

/// Appends a server hello that refuses the connection, with `reason` (cut
/// to [`MAX_BODY`]) as its body.
pub(crate) fn encode_refusal(dst: &mut BytesMut, why: Refusal, reason: &str) {
    let reason = truncate(reason, MAX_BODY);
    dst.put_slice(&SERVER_MAGIC);
    dst.put_u16(PROTOCOL_VERSION);
    dst.put_u8(why as u8);
    dst.put_u32(reason.len() as u32);
    dst.put_slice(reason.as_bytes());
}

/// What a refusing server's status means, for the client's error.
pub(crate) fn refusal_text(status: u8) -> &'static str {
    match status {
        1 => "too many connections",
        2 => "shutting down",
        3 => "TLS required",
        _ => "refused",
    }
}

/// Appends an ack; `reason` (cut to 65 535 bytes) says why when the status
/// is not [`AckStatus::Ok`].
pub(crate) fn encode_ack(dst: &mut BytesMut, status: AckStatus, reason: &str) {
    dst.put_u8(status as u8);
    put_str16(dst, reason);
}

/// Reads the head of an ack: its status and the length of its reason.
pub(crate) fn decode_ack_head(head: [u8; ACK_HEAD]) -> (u8, usize) {
    (head[0], u16::from_be_bytes([head[1], head[2]]) as usize)
}

/// Hellos of a small `Calc` service, for tests and fuzz seeds.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod tests_support {
    use super::*;

    pub(crate) fn server_hello() -> ServerHello {
        ServerHello {
            fingerprint: 0xabc,
            max_frame: 1 << 20,
            max_in_flight: 64,
            keepalive_ms: 0,
            stream_window: 8,
            service: "Calc".into(),
            codec: "bincode".into(),
            commands: vec![CommandSig {
                id: 1,
                signature: 0x11,
                name: "add".into(),
            }],
            max_result_window: Some(32),
        }
    }

    pub(crate) fn client_hello() -> ClientHello {
        ClientHello {
            fingerprint: 0xabc,
            max_frame: 1 << 20,
            stream_window: 16,
            service: "Calc".into(),
            codec: "bincode".into(),
            commands: vec![CommandSig {
                id: 1,
                signature: 0x11,
                name: "add".into(),
            }],
            metadata: [("who", "test")].into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::{client_hello, server_hello};
    use super::*;

    #[test]
    fn server_hello_round_trips_and_every_cut_fails() {
        let mut buf = BytesMut::new();
        server_hello().encode(&mut buf).unwrap();
        let head = decode_server_head(buf[..SERVER_HEAD].try_into().unwrap()).unwrap();
        assert_eq!(head.status, 0);
        assert_eq!(head.len, buf.len() - SERVER_HEAD);
        let body = &buf[SERVER_HEAD..];
        assert_eq!(ServerHello::decode_body(body).unwrap(), server_hello());
        // An older server's hello ends with its command table.
        let older = &body[..body.len() - 4];
        let decoded = ServerHello::decode_body(older).unwrap();
        assert_eq!(decoded.max_result_window, None);
        for cut in 0..older.len() {
            assert!(ServerHello::decode_body(&body[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn client_hello_round_trips_and_every_cut_fails() {
        let mut buf = BytesMut::new();
        client_hello().encode(&mut buf).unwrap();
        let head = decode_client_head(buf[..CLIENT_HEAD].try_into().unwrap()).unwrap();
        assert_eq!(head.len, buf.len() - CLIENT_HEAD);
        let body = &buf[CLIENT_HEAD..];
        assert_eq!(ClientHello::decode_body(body).unwrap(), client_hello());
        for cut in 0..body.len() {
            assert!(ClientHello::decode_body(&body[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn neither_side_sends_a_hello_above_the_bound() {
        // 5,000 commands do not fit in 64 KiB: the server's own hello is
        // refused before it is sent, as the client's always was.
        let mut big = server_hello();
        big.commands = (0..5_000)
            .map(|id| CommandSig {
                id,
                signature: 0,
                name: "a_command_name".into(),
            })
            .collect();
        let mut buf = BytesMut::from(&b"kept"[..]);
        let err = big.encode(&mut buf).unwrap_err();
        assert!(
            matches!(err, Error::FrameTooLarge { max: MAX_BODY, .. }),
            "{err}"
        );
        assert_eq!(&buf[..], b"kept", "nothing of it is left behind");

        // Metadata within its own limit, with a command table, over the
        // hello's.
        let mut chatty = client_hello();
        chatty.metadata.insert("pad", "x".repeat(60_000));
        chatty.metadata.fits_wire().unwrap();
        chatty.commands = big.commands[..1_000].to_vec();
        let err = chatty.encode(&mut buf).unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { .. }), "{err}");
        assert_eq!(&buf[..], b"kept");
    }

    #[test]
    fn heads_check_the_magic_and_the_length_before_anything_is_read() {
        let err = decode_server_head(b"HTTP/1.1 40").unwrap_err();
        assert!(matches!(err, Error::Incompatible(_)), "{err}");
        let mut head = [0u8; SERVER_HEAD];
        head[..4].copy_from_slice(&SERVER_MAGIC);
        head[7..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode_server_head(&head), Err(Error::Protocol(_))));
        let mut head = [0u8; CLIENT_HEAD];
        head[..4].copy_from_slice(&CLIENT_MAGIC);
        head[6..].copy_from_slice(&(MAX_BODY as u32 + 1).to_be_bytes());
        assert!(matches!(decode_client_head(&head), Err(Error::Protocol(_))));
    }

    #[test]
    fn zero_windows_and_in_flight_limits_are_malformed() {
        let mut buf = BytesMut::new();
        let mut hello = client_hello();
        hello.stream_window = 0;
        hello.encode(&mut buf).unwrap();
        assert!(ClientHello::decode_body(&buf[CLIENT_HEAD..]).is_err());
        let mut buf = BytesMut::new();
        let mut hello = server_hello();
        hello.max_in_flight = 0;
        hello.encode(&mut buf).unwrap();
        assert!(ServerHello::decode_body(&buf[SERVER_HEAD..]).is_err());
    }

    #[test]
    fn a_refusal_carries_its_reason_and_an_ack_its_verdict() {
        let mut buf = BytesMut::new();
        encode_refusal(&mut buf, Refusal::ShuttingDown, "bye");
        let head = decode_server_head(buf[..SERVER_HEAD].try_into().unwrap()).unwrap();
        assert_eq!((head.status, head.len), (2, 3));
        assert_eq!(&buf[SERVER_HEAD..], b"bye");
        let mut buf = BytesMut::new();
        encode_ack(&mut buf, AckStatus::Incompatible, "no");
        assert_eq!(decode_ack_head(buf[..3].try_into().unwrap()), (1, 2));
        assert_eq!(&buf[3..], b"no");
    }
}
