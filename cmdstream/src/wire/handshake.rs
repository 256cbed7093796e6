//! The handshake (`docs/PROTOCOL.md`, §1): the server's hello, the client's
//! hello and the server's ack. Each function reads with a bounded body size;
//! timeouts are applied by the callers.

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::compat::{command_diffs, put_table, take_table, CommandSig};
use super::PROTOCOL_VERSION;
use crate::error::Error;
use crate::metadata::{put_str16, take_str16, Metadata};

const SERVER_MAGIC: &[u8; 4] = b"CMDS";
const CLIENT_MAGIC: &[u8; 4] = b"CMDC";
/// The largest hello body either side reads.
const MAX_BODY: usize = 64 * 1024;

/// Why a server refuses a connection before the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Refusal {
    TooManyConnections = 1,
    ShuttingDown = 2,
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

fn incompatible(
    what: &str,
    client: impl std::fmt::Display,
    server: impl std::fmt::Display,
) -> String {
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
        diffs.push(incompatible(
            "protocol version",
            client_version,
            PROTOCOL_VERSION,
        ));
    }
    if client.service != server.service {
        diffs.push(incompatible(
            "service name",
            &client.service,
            &server.service,
        ));
    }
    if client.codec != server.codec {
        diffs.push(incompatible("codec", &client.codec, &server.codec));
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

fn malformed(what: &str) -> Error {
    Error::protocol(format!("malformed handshake: {what}"))
}

async fn read_body<R: AsyncRead + Unpin>(io: &mut R) -> Result<BytesMut, Error> {
    let len = io.read_u32().await? as usize;
    if len > MAX_BODY {
        return Err(malformed("hello body above 64 KiB"));
    }
    let mut body = BytesMut::zeroed(len);
    io.read_exact(&mut body).await?;
    Ok(body)
}

async fn read_magic<R: AsyncRead + Unpin>(io: &mut R, magic: &[u8; 4]) -> Result<u16, Error> {
    let mut head = [0u8; 6];
    io.read_exact(&mut head).await?;
    if &head[..4] != magic {
        return Err(Error::Incompatible(
            format!(
                "the peer is not a cmdstream {} (expected magic {:?}, got {:02x?})",
                if magic == SERVER_MAGIC {
                    "server"
                } else {
                    "client"
                },
                String::from_utf8_lossy(magic),
                &head[..4]
            )
            .into(),
        ));
    }
    Ok(u16::from_be_bytes([head[4], head[5]]))
}

/// Server side: tells the client it is refused, then returns.
pub(crate) async fn refuse<W: AsyncWrite + Unpin>(
    io: &mut W,
    why: Refusal,
    reason: &str,
) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(11 + reason.len());
    buf.put_slice(SERVER_MAGIC);
    buf.put_u16(PROTOCOL_VERSION);
    buf.put_u8(why as u8);
    buf.put_u32(reason.len() as u32);
    buf.put_slice(reason.as_bytes());
    io.write_all(&buf).await?;
    io.flush().await
}

/// Server side: sends the hello, reads the client's, and acks it. Returns
/// the client's hello when the two sides are compatible.
pub(crate) async fn accept<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    ours: &ServerHello,
) -> Result<ClientHello, Error> {
    let mut buf = BytesMut::with_capacity(64 + ours.service.len());
    buf.put_slice(SERVER_MAGIC);
    buf.put_u16(PROTOCOL_VERSION);
    buf.put_u8(0);
    let len_at = buf.len();
    buf.put_u32(0);
    buf.put_u64(ours.fingerprint);
    buf.put_u32(ours.max_frame);
    buf.put_u32(ours.max_in_flight);
    buf.put_u32(ours.keepalive_ms);
    buf.put_u32(ours.stream_window);
    put_str16(&mut buf, &ours.service);
    put_str16(&mut buf, &ours.codec);
    put_table(&mut buf, &ours.commands);
    let body_len = (buf.len() - len_at - 4) as u32;
    buf[len_at..len_at + 4].copy_from_slice(&body_len.to_be_bytes());
    io.write_all(&buf).await?;
    io.flush().await?;

    let version = read_magic(io, CLIENT_MAGIC).await?;
    let body = read_body(io).await?;
    let theirs = parse_client_body(&body)?;
    let verdict = mismatch(version, &theirs, ours);
    let mut ack = BytesMut::new();
    ack.put_u8(verdict.is_some() as u8);
    put_str16(&mut ack, verdict.as_deref().unwrap_or(""));
    io.write_all(&ack).await?;
    io.flush().await?;
    match verdict {
        Some(why) => Err(Error::Incompatible(why.into())),
        None => Ok(theirs),
    }
}

fn parse_client_body(body: &[u8]) -> Result<ClientHello, Error> {
    let mut src = body;
    if src.len() < 16 {
        return Err(malformed("client hello too short"));
    }
    let fingerprint = src.get_u64();
    let max_frame = src.get_u32();
    let stream_window = src.get_u32();
    let service = take_str16(&mut src).ok_or_else(|| malformed("client service name"))?;
    let codec = take_str16(&mut src).ok_or_else(|| malformed("client codec name"))?;
    let commands = take_table(&mut src).ok_or_else(|| malformed("client command table"))?;
    let metadata = Metadata::take(&mut src).ok_or_else(|| malformed("client metadata"))?;
    if stream_window == 0 {
        return Err(malformed("client stream window is 0"));
    }
    Ok(ClientHello {
        commands,
        fingerprint,
        max_frame,
        stream_window,
        service,
        codec,
        metadata,
    })
}

fn parse_server_body(body: &[u8]) -> Result<ServerHello, Error> {
    let mut src = body;
    if src.len() < 24 {
        return Err(malformed("server hello too short"));
    }
    let fingerprint = src.get_u64();
    let max_frame = src.get_u32();
    let max_in_flight = src.get_u32();
    let keepalive_ms = src.get_u32();
    let stream_window = src.get_u32();
    let service = take_str16(&mut src).ok_or_else(|| malformed("server service name"))?;
    let codec = take_str16(&mut src).ok_or_else(|| malformed("server codec name"))?;
    let commands = take_table(&mut src).ok_or_else(|| malformed("server command table"))?;
    if stream_window == 0 || max_in_flight == 0 {
        return Err(malformed("server stream window or in-flight limit is 0"));
    }
    Ok(ServerHello {
        commands,
        fingerprint,
        max_frame,
        max_in_flight,
        keepalive_ms,
        stream_window,
        service,
        codec,
    })
}

/// Client side: reads the server's hello, checks it, sends ours and waits
/// for the ack. Returns the server's hello.
pub(crate) async fn connect<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    ours: &ClientHello,
) -> Result<ServerHello, Error> {
    let version = read_magic(io, SERVER_MAGIC).await?;
    let mut status = [0u8; 1];
    io.read_exact(&mut status).await?;
    let body = read_body(io).await?;
    match status[0] {
        0 => {}
        s => {
            let reason = String::from_utf8_lossy(&body);
            let what = match s {
                1 => "too many connections",
                2 => "shutting down",
                _ => "refused",
            };
            return Err(Error::unavailable(format!(
                "server refused the connection ({what}): {reason}"
            )));
        }
    }
    if version != PROTOCOL_VERSION {
        return Err(Error::Incompatible(
            incompatible("protocol version", PROTOCOL_VERSION, version).into(),
        ));
    }
    let theirs = parse_server_body(&body)?;
    if let Some(why) = mismatch(PROTOCOL_VERSION, ours, &theirs) {
        return Err(Error::Incompatible(why.into()));
    }

    let mut buf = BytesMut::with_capacity(64);
    buf.put_slice(CLIENT_MAGIC);
    buf.put_u16(PROTOCOL_VERSION);
    let len_at = buf.len();
    buf.put_u32(0);
    buf.put_u64(ours.fingerprint);
    buf.put_u32(ours.max_frame);
    buf.put_u32(ours.stream_window);
    put_str16(&mut buf, &ours.service);
    put_str16(&mut buf, &ours.codec);
    put_table(&mut buf, &ours.commands);
    ours.metadata.put(&mut buf);
    let body_len = buf.len() - len_at - 4;
    if body_len > MAX_BODY {
        return Err(Error::FrameTooLarge {
            size: body_len,
            max: MAX_BODY,
        });
    }
    buf[len_at..len_at + 4].copy_from_slice(&(body_len as u32).to_be_bytes());
    io.write_all(&buf).await?;
    io.flush().await?;

    let ok = io.read_u8().await?;
    let n = io.read_u16().await? as usize;
    let mut reason = vec![0; n];
    io.read_exact(&mut reason).await?;
    match ok {
        0 => Ok(theirs),
        _ => Err(Error::Incompatible(String::from_utf8_lossy(&reason).into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_hello() -> ServerHello {
        ServerHello {
            fingerprint: 0xabc,
            max_frame: 1 << 20,
            max_in_flight: 128,
            keepalive_ms: 10_000,
            stream_window: 32,
            service: "Calc".into(),
            codec: "bincode".into(),
            commands: vec![CommandSig {
                id: 1,
                signature: 0x11,
                name: "add".into(),
            }],
        }
    }

    fn client_hello() -> ClientHello {
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

    #[tokio::test]
    async fn compatible_peers_exchange_hellos() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move { accept(&mut s, &server_hello()).await });
        let got = connect(&mut c, &client_hello()).await.unwrap();
        assert_eq!(got, server_hello());
        assert_eq!(server.await.unwrap().unwrap(), client_hello());
    }

    #[tokio::test]
    async fn fingerprint_mismatch_names_both_sides() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        tokio::spawn(async move { accept(&mut s, &server_hello()).await });
        let mut ours = client_hello();
        ours.fingerprint = 0xdef;
        ours.commands[0].signature = 0x12;
        let err = connect(&mut c, &ours).await.unwrap_err().to_string();
        assert!(
            err.contains("0x0000000000000def") && err.contains("0x0000000000000abc"),
            "{err}"
        );
        assert!(err.contains("command `add` (id 1) changed"), "{err}");
    }

    #[tokio::test]
    async fn a_server_with_more_commands_accepts_an_older_client() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        let mut newer = server_hello();
        newer.fingerprint = 0xfff;
        newer.commands.push(CommandSig {
            id: 2,
            signature: 0x22,
            name: "sub".into(),
        });
        let server = tokio::spawn(async move { accept(&mut s, &newer).await });
        connect(&mut c, &client_hello()).await.unwrap();
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn server_rejects_a_client_that_lies_about_its_fingerprint() {
        // A client that skips its own check still gets refused by the server.
        let (mut c, mut s) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move { accept(&mut s, &server_hello()).await });
        let mut hello = [0u8; 128];
        let mut theirs = client_hello();
        theirs.codec = "json".into();
        // Read the server hello, then send a mismatching client hello by hand.
        let n = c.read(&mut hello).await.unwrap();
        assert!(n > 11);
        let mut buf = BytesMut::new();
        buf.put_slice(CLIENT_MAGIC);
        buf.put_u16(PROTOCOL_VERSION);
        buf.put_u32(0);
        buf.put_u64(theirs.fingerprint);
        buf.put_u32(theirs.max_frame);
        buf.put_u32(theirs.stream_window);
        put_str16(&mut buf, &theirs.service);
        put_str16(&mut buf, &theirs.codec);
        put_table(&mut buf, &theirs.commands);
        theirs.metadata.put(&mut buf);
        let len = (buf.len() - 10) as u32;
        buf[6..10].copy_from_slice(&len.to_be_bytes());
        c.write_all(&buf).await.unwrap();
        let err = server.await.unwrap().unwrap_err().to_string();
        assert!(
            err.contains("codec differs: client has json, server has bincode"),
            "{err}"
        );
        assert_eq!(c.read_u8().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn refusal_reaches_the_client_as_unavailable() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        refuse(&mut s, Refusal::TooManyConnections, "limit 1")
            .await
            .unwrap();
        let err = connect(&mut c, &client_hello()).await.unwrap_err();
        assert!(matches!(err, Error::Unavailable(_)), "{err}");
        assert!(err.to_string().contains("too many connections"), "{err}");
    }

    #[tokio::test]
    async fn garbage_instead_of_a_hello_is_incompatible() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .await
            .unwrap();
        let err = connect(&mut c, &client_hello()).await.unwrap_err();
        assert!(matches!(err, Error::Incompatible(_)), "{err}");
    }

    #[tokio::test]
    async fn oversized_hello_body_is_refused_without_allocating() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        let mut buf = BytesMut::new();
        buf.put_slice(SERVER_MAGIC);
        buf.put_u16(PROTOCOL_VERSION);
        buf.put_u8(0);
        buf.put_u32(u32::MAX);
        s.write_all(&buf).await.unwrap();
        let err = connect(&mut c, &client_hello()).await.unwrap_err();
        assert!(matches!(err, Error::Protocol(_)), "{err}");
    }
}
