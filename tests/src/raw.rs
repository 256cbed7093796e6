//! Speaking the wire protocol by hand, byte by byte (`docs/PROTOCOL.md`),
//! to send what a well-behaved client never would.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use cmdstream::ServiceInfo;

use crate::calc::INFO;

/// Frame kinds.
pub mod kind {
    #![allow(missing_docs)]
    pub const COMMAND: u8 = 0x01;
    pub const RESULT: u8 = 0x02;
    pub const RESULT_LAST: u8 = 0x03;
    pub const ERROR: u8 = 0x04;
    pub const CANCEL: u8 = 0x05;
    pub const ITEM: u8 = 0x06;
    pub const END: u8 = 0x07;
    pub const CREDIT: u8 = 0x08;
    pub const PING: u8 = 0x09;
    pub const PONG: u8 = 0x0A;
    pub const GO_AWAY: u8 = 0x0B;
}

/// A whole frame.
pub fn frame(kind: u8, id: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + body.len());
    out.extend_from_slice(&((9 + body.len()) as u32).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A COMMAND frame without metadata.
pub fn command(id: u64, command: u32, payload: &[u8]) -> Vec<u8> {
    let mut body = command.to_be_bytes().to_vec();
    body.push(0);
    body.extend_from_slice(payload);
    frame(kind::COMMAND, id, &body)
}

/// How long a test waits for any one thing on the network before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Awaits `fut` for at most [`WAIT`] and panics naming `what` otherwise, so
/// that a bug shows as a failing test, never as a hung one.
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: nothing happened within {WAIT:?}"),
    }
}

/// `value` encoded with the default codec.
pub fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    cmdstream::Codec::encode(&cmdstream::codec::Bincode, value, &mut out).unwrap();
    out.to_vec()
}

/// A COMMAND for `sleep(millis)` (command id 6) encoded with the default
/// codec.
pub fn sleep(id: u64, millis: u64) -> Vec<u8> {
    command(id, 6, &encode(&(millis,)))
}

/// A COMMAND for `add(a, b)` encoded with the default codec.
pub fn add(id: u64, a: i64, b: i64) -> Vec<u8> {
    let mut payload = bytes::BytesMut::new();
    cmdstream::Codec::encode(&cmdstream::codec::Bincode, &(a, b), &mut payload).unwrap();
    command(id, 1, &payload)
}

/// A COMMAND frame calling `blob(len)` (command 9).
pub fn blob(id: u64, len: usize) -> Vec<u8> {
    command(id, 9, &encode(&(len,)))
}

/// A frame as read back.
#[derive(Debug, PartialEq, Eq)]
pub struct RawFrame {
    /// Its kind byte.
    pub kind: u8,
    /// Its request id.
    pub id: u64,
    /// Its body.
    pub body: Vec<u8>,
}

impl RawFrame {
    /// The code of an ERROR frame.
    pub fn error_code(&self) -> u16 {
        assert_eq!(self.kind, kind::ERROR, "{self:?}");
        u16::from_be_bytes([self.body[0], self.body[1]])
    }

    /// The body of a RESULT_LAST, decoded as a `T`.
    pub fn result<T: serde::de::DeserializeOwned>(&self) -> T {
        assert_eq!(self.kind, kind::RESULT_LAST, "{self:?}");
        cmdstream::Codec::decode(&cmdstream::codec::Bincode, &self.body).unwrap()
    }

    /// The result of an `add`, decoded.
    pub fn i64_result(&self) -> i64 {
        assert_eq!(self.kind, kind::RESULT_LAST, "{self:?}");
        cmdstream::Codec::decode(&cmdstream::codec::Bincode, &self.body).unwrap()
    }
}

/// A connection driven by hand.
pub struct RawConn {
    /// The socket.
    pub stream: TcpStream,
}

fn str16(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends the command table of `Calc` (`docs/PROTOCOL.md`, §1.4). With a
/// `fingerprint` other than `Calc`'s, every command's signature is altered
/// too, so the table describes a different definition of every command.
pub fn command_table(out: &mut Vec<u8>, fingerprint: u64) {
    command_table_of(out, &INFO, fingerprint);
}

fn command_table_of(out: &mut Vec<u8>, info: &ServiceInfo, fingerprint: u64) {
    let skew = fingerprint ^ info.fingerprint;
    out.extend_from_slice(&(info.commands.len() as u16).to_be_bytes());
    for c in info.commands {
        out.extend_from_slice(&c.id.to_be_bytes());
        out.extend_from_slice(&(c.signature ^ skew).to_be_bytes());
        str16(out, c.name);
    }
}

/// The whole client hello for `Calc` with the default codec; correct when
/// `fingerprint` is `Calc`'s (see [`command_table`] otherwise).
pub fn client_hello(fingerprint: u64) -> Vec<u8> {
    client_hello_with(fingerprint, 16 << 20, 32)
}

/// The whole, correct client hello for the service `info` with the default
/// codec.
pub fn client_hello_for(info: &ServiceInfo) -> Vec<u8> {
    hello_of(info, info.fingerprint, 16 << 20, 32)
}

/// The whole client hello for `Calc` with the default codec, announcing
/// `max_frame` and `stream_window` as given, however absurd.
pub fn client_hello_with(fingerprint: u64, max_frame: u32, stream_window: u32) -> Vec<u8> {
    hello_of(&INFO, fingerprint, max_frame, stream_window)
}

fn hello_of(info: &ServiceInfo, fingerprint: u64, max_frame: u32, stream_window: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&fingerprint.to_be_bytes());
    body.extend_from_slice(&max_frame.to_be_bytes());
    body.extend_from_slice(&stream_window.to_be_bytes());
    str16(&mut body, info.name);
    str16(&mut body, "bincode");
    command_table_of(&mut body, info, fingerprint);
    body.extend_from_slice(&0u16.to_be_bytes());
    let mut out = b"CMDC".to_vec();
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// A whole server hello accepting the connection, for a fake `Calc` server
/// with the default codec: no keepalive pings and a stream window of 32.
pub fn server_hello(fingerprint: u64, max_frame: u32, max_in_flight: u32) -> Vec<u8> {
    server_hello_with(fingerprint, max_frame, max_in_flight, 0, 32)
}

/// A whole server hello accepting the connection, for a fake `Calc` server
/// with the default codec, announcing every setting given.
pub fn server_hello_with(
    fingerprint: u64,
    max_frame: u32,
    max_in_flight: u32,
    keepalive_ms: u32,
    stream_window: u32,
) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&fingerprint.to_be_bytes());
    body.extend_from_slice(&max_frame.to_be_bytes());
    body.extend_from_slice(&max_in_flight.to_be_bytes());
    body.extend_from_slice(&keepalive_ms.to_be_bytes());
    body.extend_from_slice(&stream_window.to_be_bytes());
    str16(&mut body, INFO.name);
    str16(&mut body, "bincode");
    command_table(&mut body, fingerprint);
    let mut out = b"CMDS".to_vec();
    out.extend_from_slice(&1u16.to_be_bytes());
    out.push(0);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

impl RawConn {
    /// Reads the server's ack of a client hello; returns its status byte and
    /// its reason.
    pub async fn read_ack(&mut self) -> (u8, String) {
        within("the server's ack", async {
            let mut head = [0u8; 3];
            self.stream.read_exact(&mut head).await.unwrap();
            let mut reason = vec![0; u16::from_be_bytes([head[1], head[2]]) as usize];
            self.stream.read_exact(&mut reason).await.unwrap();
            (head[0], String::from_utf8(reason).unwrap())
        })
        .await
    }

    /// Reads a client's hello (when playing the server); returns the
    /// fingerprint it announces.
    pub async fn read_client_hello(&mut self) -> u64 {
        within("the client's hello", async {
            let mut head = [0u8; 10];
            self.stream.read_exact(&mut head).await.unwrap();
            assert_eq!(&head[..4], b"CMDC");
            let len = u32::from_be_bytes([head[6], head[7], head[8], head[9]]) as usize;
            let mut body = vec![0; len];
            self.stream.read_exact(&mut body).await.unwrap();
            u64::from_be_bytes(body[..8].try_into().unwrap())
        })
        .await
    }

    /// Plays a correct `Calc` server's side of the handshake: sends the
    /// hello, reads the client's and acks it.
    pub async fn accept_handshake(&mut self) {
        self.send(&server_hello(INFO.fingerprint, 16 << 20, 1024))
            .await;
        assert_eq!(self.read_client_hello().await, INFO.fingerprint);
        self.send(&[0, 0, 0]).await;
    }

    /// Connects without a handshake.
    pub async fn open(addr: SocketAddr) -> Self {
        RawConn {
            stream: TcpStream::connect(addr).await.unwrap(),
        }
    }

    /// Connects and completes the handshake correctly.
    pub async fn connect(addr: SocketAddr) -> Self {
        RawConn::connect_with(addr, &client_hello(INFO.fingerprint)).await
    }

    /// Connects and completes the handshake with `hello`, which the server
    /// must accept.
    pub async fn connect_with(addr: SocketAddr, hello: &[u8]) -> Self {
        let mut conn = RawConn::open(addr).await;
        let status = conn.read_server_hello().await;
        assert_eq!(status, 0, "server refused");
        conn.send(hello).await;
        let mut ack = [0u8; 3];
        conn.stream.read_exact(&mut ack).await.unwrap();
        assert_eq!(ack, [0, 0, 0], "server did not accept the hello");
        conn
    }

    /// Reads the server's hello; returns its status byte.
    pub async fn read_server_hello(&mut self) -> u8 {
        let mut head = [0u8; 11];
        self.stream.read_exact(&mut head).await.unwrap();
        assert_eq!(&head[..4], b"CMDS");
        let len = u32::from_be_bytes([head[7], head[8], head[9], head[10]]) as usize;
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body).await.unwrap();
        head[6]
    }

    /// Writes bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads one frame; `None` when the server closed the connection.
    pub async fn read_frame(&mut self) -> Option<RawFrame> {
        let fut = async {
            let mut len = [0u8; 4];
            if self.stream.read_exact(&mut len).await.is_err() {
                return None;
            }
            let len = u32::from_be_bytes(len) as usize;
            let mut rest = vec![0; len];
            self.stream.read_exact(&mut rest).await.ok()?;
            let id = u64::from_be_bytes(rest[1..9].try_into().unwrap());
            Some(RawFrame {
                kind: rest[0],
                id,
                body: rest[9..].to_vec(),
            })
        };
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("no frame and no close within 10 s")
    }

    /// Reads frames until one that is not a PING arrives.
    pub async fn read_non_ping(&mut self) -> Option<RawFrame> {
        loop {
            match self.read_frame().await {
                Some(f) if f.kind == kind::PING => continue,
                other => return other,
            }
        }
    }

    /// Asserts the server closes the connection (after any frames it sends
    /// first, which are returned).
    pub async fn expect_closed(&mut self) -> Vec<RawFrame> {
        let mut frames = Vec::new();
        while let Some(f) = self.read_frame().await {
            frames.push(f);
        }
        frames
    }
}

/// A COMMAND frame with the deadline flag (bit 0) set and no other: the
/// body is the command id, the flags byte `1`, the deadline in milliseconds
/// (`u32`, counted from when the server reads the frame) and the payload
/// (`docs/PROTOCOL.md`, §2.1).
pub fn command_with_deadline(id: u64, command: u32, deadline_ms: u32, payload: &[u8]) -> Vec<u8> {
    let mut body = command.to_be_bytes().to_vec();
    body.push(1);
    body.extend_from_slice(&deadline_ms.to_be_bytes());
    body.extend_from_slice(payload);
    frame(kind::COMMAND, id, &body)
}

/// The protocol spoken by hand over any byte stream, such as one end of a
/// `tokio::io::duplex` pipe, for tests that run on paused time.
///
/// Nothing here has a timeout of its own: callers bound their waits (on
/// paused time a `tokio::time::timeout` costs no real time, and fires as soon
/// as nothing else can happen).
pub mod pipe {
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    use super::{client_hello, RawFrame};
    use crate::calc::INFO;

    /// The whole hello of a `Calc` server (default codec) that accepts the
    /// connection and announces `keepalive_ms` (`0`: it never pings) and
    /// `stream_window`; its frame and in-flight limits are the defaults.
    pub fn server_hello(keepalive_ms: u32, stream_window: u32) -> Vec<u8> {
        super::server_hello_with(
            INFO.fingerprint,
            16 << 20,
            1024,
            keepalive_ms,
            stream_window,
        )
    }

    /// Plays a `Calc` server's side of the handshake: sends
    /// [`server_hello`], reads the client's hello (checking its magic and
    /// fingerprint) and acks it.
    pub async fn accept<IO: AsyncRead + AsyncWrite + Unpin>(
        io: &mut IO,
        keepalive_ms: u32,
        stream_window: u32,
    ) {
        io.write_all(&server_hello(keepalive_ms, stream_window))
            .await
            .unwrap();
        let mut head = [0u8; 10];
        io.read_exact(&mut head).await.unwrap();
        assert_eq!(&head[..4], b"CMDC", "not a client hello");
        let len = u32::from_be_bytes([head[6], head[7], head[8], head[9]]) as usize;
        let mut body = vec![0; len];
        io.read_exact(&mut body).await.unwrap();
        assert_eq!(body[..8], INFO.fingerprint.to_be_bytes(), "fingerprint");
        io.write_all(&[0, 0, 0]).await.unwrap();
    }

    /// Plays a correct client's side of the handshake: reads the server's
    /// hello (which must accept), sends [`client_hello`] and checks the ack.
    pub async fn connect<IO: AsyncRead + AsyncWrite + Unpin>(io: &mut IO) {
        connect_with(io, &client_hello(INFO.fingerprint)).await;
    }

    /// [`connect`], sending `hello` as the client's hello.
    pub async fn connect_with<IO: AsyncRead + AsyncWrite + Unpin>(io: &mut IO, hello: &[u8]) {
        let mut head = [0u8; 11];
        io.read_exact(&mut head).await.unwrap();
        assert_eq!(&head[..4], b"CMDS", "not a server hello");
        assert_eq!(head[6], 0, "the server refused the connection");
        let len = u32::from_be_bytes([head[7], head[8], head[9], head[10]]) as usize;
        let mut body = vec![0; len];
        io.read_exact(&mut body).await.unwrap();
        io.write_all(hello).await.unwrap();
        let mut ack = [0u8; 3];
        io.read_exact(&mut ack).await.unwrap();
        assert_eq!(ack, [0, 0, 0], "the server did not accept the hello");
    }

    /// A `Calc` client over `io`, whose other end plays the server; it
    /// sends no keepalive pings of its own.
    pub async fn calc_client<IO>(io: IO) -> crate::CalcClient
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let client = cmdstream::Client::builder()
            .keepalive(None)
            .connect_io(io, &INFO, "pipe")
            .await
            .unwrap();
        crate::CalcClient::new(client)
    }

    /// Reads one frame; `None` when the peer closed the stream.
    pub async fn read_frame<R: AsyncRead + Unpin>(io: &mut R) -> Option<RawFrame> {
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await.ok()?;
        let mut rest = vec![0; u32::from_be_bytes(len) as usize];
        io.read_exact(&mut rest).await.ok()?;
        Some(RawFrame {
            kind: rest[0],
            id: u64::from_be_bytes(rest[1..9].try_into().unwrap()),
            body: rest[9..].to_vec(),
        })
    }
}
