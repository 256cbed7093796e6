//! Speaking the wire protocol by hand, byte by byte (`docs/PROTOCOL.md`),
//! to send what a well-behaved client never would.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// A COMMAND for `add(a, b)` encoded with the default codec.
pub fn add(id: u64, a: i64, b: i64) -> Vec<u8> {
    let mut payload = bytes::BytesMut::new();
    cmdstream::Codec::encode(&cmdstream::codec::Bincode, &(a, b), &mut payload).unwrap();
    command(id, 1, &payload)
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

/// The body of a correct client hello for `Calc` with the default codec.
pub fn client_hello(fingerprint: u64) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&fingerprint.to_be_bytes());
    body.extend_from_slice(&(16u32 << 20).to_be_bytes());
    body.extend_from_slice(&32u32.to_be_bytes());
    str16(&mut body, INFO.name);
    str16(&mut body, "bincode");
    body.extend_from_slice(&0u16.to_be_bytes());
    let mut out = b"CMDC".to_vec();
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

impl RawConn {
    /// Connects without a handshake.
    pub async fn open(addr: SocketAddr) -> Self {
        RawConn {
            stream: TcpStream::connect(addr).await.unwrap(),
        }
    }

    /// Connects and completes the handshake correctly.
    pub async fn connect(addr: SocketAddr) -> Self {
        let mut conn = RawConn::open(addr).await;
        let status = conn.read_server_hello().await;
        assert_eq!(status, 0, "server refused");
        conn.send(&client_hello(INFO.fingerprint)).await;
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
