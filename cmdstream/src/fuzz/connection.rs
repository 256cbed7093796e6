//! A whole connection driven by a script: a server connection fed the
//! bytes of a client, and a client connection fed the bytes of a server,
//! each as the input says, in pieces, with pauses between them. On a
//! runtime with paused time, so that timers (deadlines, keepalive, a
//! command that sleeps) cost nothing, and a connection that would hang
//! shows as a failed check instead.
//!
//! A script is a flags byte, then pieces: a length byte `n` and `n` bytes
//! to send (the last piece takes what is left), or a zero length for a
//! pause of 100 ms.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use futures_core::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, WriteHalf};
use tokio_util::codec::Decoder;

use crate::codec::Codec;
use crate::server::Dispatch;
use crate::server::{Call, Server};
use crate::service::{fingerprint, CommandInfo, CommandKind, ServiceInfo};
use crate::wire::compat::CommandSig;
use crate::wire::frame::{FrameDecoder, Kind};
use crate::wire::hello::{
    decode_server_head, ClientHello, ServerHello, ACK_HEAD, CLIENT_HEAD, SERVER_HEAD,
};
use crate::{Client, Metadata};

/// The frame limit of both sides.
const MAX_FRAME: usize = 64 * 1024;
/// Far longer than anything a connection should take; free on paused time.
const BOUND: Duration = Duration::from_secs(24 * 3600);

const fn command(id: u32, name: &'static str, kind: CommandKind) -> CommandInfo {
    CommandInfo::new(id, name, kind, fingerprint(name.as_bytes()))
}

/// The service both harnesses speak: a command of every shape, one that
/// waits, one that fails.
static INFO: ServiceInfo = ServiceInfo::new(
    "Fuzz",
    fingerprint(b"Fuzz v1"),
    &[
        command(1, "add", CommandKind::Unary),
        command(2, "count", CommandKind::ServerStream),
        command(3, "sum", CommandKind::ClientStream),
        command(4, "echo", CommandKind::Bidi),
        command(5, "sleep", CommandKind::Unary),
        command(6, "fail", CommandKind::Unary),
    ],
);

/// A stream of an iterator's items.
struct Iter<I>(I);

impl<I: Iterator + Unpin> Stream for Iter<I> {
    type Item = I::Item;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<I::Item>> {
        Poll::Ready(self.0.next())
    }
}

struct Service;

impl Dispatch for Service {
    const INFO: &'static ServiceInfo = &INFO;

    async fn dispatch<C: Codec>(self: Arc<Self>, mut call: Call<C>) {
        match call.command().id {
            1 => match call.args::<(i64, i64)>() {
                Ok((a, b)) => call.reply(&a.wrapping_add(b)),
                Err(e) => call.reject_args(e),
            },
            2 => match call.args::<(u32,)>() {
                Ok((n,)) => call.reply_stream(Iter(0..n.min(64))).await,
                Err(e) => call.reject_args(e),
            },
            3 => {
                let mut items = call.arg_stream::<i64>();
                let mut sum = 0i64;
                while let Some(n) =
                    std::future::poll_fn(|cx| Pin::new(&mut items).poll_next(cx)).await
                {
                    sum = sum.wrapping_add(n);
                }
                call.reply(&sum);
            }
            4 => {
                let items = call.arg_stream::<u32>();
                call.reply_stream(items).await;
            }
            5 => match call.args::<(u32,)>() {
                Ok((ms,)) => {
                    tokio::time::sleep(Duration::from_millis(ms.min(60_000).into())).await;
                    call.reply(&ms);
                }
                Err(e) => call.reject_args(e),
            },
            // Not a panic: the fuzzer's panic hook aborts on any panic,
            // caught or not (the tests cover handlers that panic).
            _ => call.fail(crate::ErrorCode::Application, "failed on purpose"),
        }
    }
}

/// A script read from fuzz input.
struct Script<'a> {
    flags: u8,
    pieces: Vec<Piece<'a>>,
}

enum Piece<'a> {
    Send(&'a [u8]),
    Pause,
}

impl<'a> Script<'a> {
    fn parse(data: &'a [u8]) -> Script<'a> {
        let Some((&flags, mut rest)) = data.split_first() else {
            return Script {
                flags: 0,
                pieces: Vec::new(),
            };
        };
        let mut pieces = Vec::new();
        while let Some((&n, tail)) = rest.split_first() {
            if n == 0 {
                pieces.push(Piece::Pause);
                rest = tail;
                continue;
            }
            let n = (n as usize).min(tail.len());
            pieces.push(Piece::Send(&tail[..n]));
            rest = &tail[n..];
        }
        Script { flags, pieces }
    }

    /// Sends the pieces, then closes the sending side. A peer that stops
    /// reading makes the sending wait; that wait ends (paused time moves on
    /// when nothing else can happen) and the rest is dropped.
    async fn feed(&self, mut to: WriteHalf<DuplexStream>) {
        let send = async {
            for piece in &self.pieces {
                match piece {
                    Piece::Send(bytes) => {
                        if to.write_all(bytes).await.is_err() {
                            return;
                        }
                    }
                    Piece::Pause => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(600), send).await;
        let _ = to.shutdown().await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
}

fn client_hello() -> Vec<u8> {
    let hello = ClientHello {
        fingerprint: INFO.fingerprint,
        max_frame: MAX_FRAME as u32,
        stream_window: 4,
        service: INFO.name.into(),
        codec: crate::codec::Bincode::NAME.into(),
        commands: CommandSig::table(INFO.commands),
        metadata: Metadata::new(),
    };
    let mut out = BytesMut::new();
    hello.encode(&mut out).expect("the hello fits");
    out.to_vec()
}

fn server_hello(keepalive_ms: u32) -> Vec<u8> {
    let hello = ServerHello {
        fingerprint: INFO.fingerprint,
        max_frame: MAX_FRAME as u32,
        max_in_flight: 8,
        keepalive_ms,
        stream_window: 4,
        service: INFO.name.into(),
        codec: crate::codec::Bincode::NAME.into(),
        commands: CommandSig::table(INFO.commands),
        max_result_window: Some(16),
    };
    let mut out = BytesMut::new();
    hello.encode(&mut out).expect("the hello fits");
    out.to_vec()
}

async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(BOUND, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} never ended"))
}

/// Serves one connection whose client sends what the script says (after a
/// valid hello, unless flag bit 0 is set) and checks that the connection
/// ends once the client closes, and that everything the server sent is a
/// well-formed hello, ack and frames within the limit.
///
/// Flag bit 1 runs every command in a task of its own.
pub fn server_connection(data: &[u8]) {
    check_server_output(&serve_script(data));
}

/// Runs a server connection on `data`'s script; returns what it sent.
fn serve_script(data: &[u8]) -> Vec<u8> {
    let script = Script::parse(data);
    runtime().block_on(async {
        let server = Server::builder()
            .max_frame_size(MAX_FRAME)
            .max_in_flight(8)
            .stream_window(4)
            .max_result_window(16)
            .max_output_buffer(16 * 1024)
            .handshake_timeout(Duration::from_secs(5))
            .keepalive(Some(Duration::from_secs(5)))
            .run_ready_commands_inline(script.flags & 2 == 0)
            .build(Service);
        let (peer, io) = tokio::io::duplex(4096);
        let serving = tokio::spawn(async move { server.serve_connection(io, None).await });
        let (mut from_server, mut to_server) = tokio::io::split(peer);
        let reading = tokio::spawn(async move {
            let mut out = Vec::new();
            let _ = from_server.read_to_end(&mut out).await;
            out
        });
        if script.flags & 1 == 0 {
            let _ = to_server.write_all(&client_hello()).await;
        }
        script.feed(to_server).await;
        let _ = bounded("the server connection", serving).await;
        bounded("the server's output", reading).await.unwrap()
    })
}

/// What a server sends: its hello, then (if it accepted a hello) an ack,
/// then frames of the kinds a server sends, none above the limit. Returns
/// the frames.
fn check_server_output(out: &[u8]) -> Vec<crate::wire::frame::Frame> {
    let head = out
        .first_chunk::<SERVER_HEAD>()
        .expect("the server's hello");
    let head = decode_server_head(head).expect("a valid server hello");
    let mut rest = &out[SERVER_HEAD..];
    assert!(rest.len() >= head.len, "the hello is whole");
    if head.status != 0 {
        assert_eq!(rest.len(), head.len, "nothing follows a refusal");
        return Vec::new();
    }
    rest = &rest[head.len..];
    let Some(ack) = rest.first_chunk::<ACK_HEAD>() else {
        return Vec::new();
    };
    let reason = u16::from_be_bytes([ack[1], ack[2]]) as usize;
    rest = &rest[ACK_HEAD..];
    assert!(rest.len() >= reason, "the ack is whole");
    if ack[0] != 0 {
        assert_eq!(rest.len(), reason, "nothing follows a refusing ack");
        return Vec::new();
    }
    let mut buf = BytesMut::from(&rest[reason..]);
    let mut dec = FrameDecoder::new(MAX_FRAME);
    let mut frames = Vec::new();
    loop {
        match dec.decode(&mut buf) {
            Ok(Some(f)) => {
                match f.kind {
                    Kind::Result | Kind::ResultLast | Kind::End | Kind::Credit => {
                        assert_ne!(f.id, 0, "{f:?}");
                    }
                    Kind::Error => {
                        assert_ne!(f.id, 0, "{f:?}");
                        f.error().expect("a well-formed error");
                    }
                    Kind::Ping | Kind::Pong => {
                        assert_eq!(f.id, 0, "{f:?}");
                        f.ping_payload().expect("a well-formed ping");
                    }
                    Kind::GoAway => assert_eq!(f.id, 0, "{f:?}"),
                    Kind::Command | Kind::Cancel | Kind::Item => {
                        panic!("the server sent a client's frame: {f:?}")
                    }
                }
                frames.push(f);
            }
            // A connection that ends may stop in the middle of a write:
            // a partial last frame is what the client would then see.
            Ok(None) => break,
            Err(e) => panic!("the server sent a bad frame: {e}"),
        }
    }
    frames
}

/// Makes a call of each shape on a client whose server (after a valid
/// hello and ack) sends what the script says, and checks that every call
/// ends, typed, and the client's driver neither panics nor hangs.
///
/// Flag bit 0 turns the client's keepalive on; bit 1 lets the server
/// announce a keepalive of its own.
pub fn client_connection(data: &[u8]) {
    call_with_script(data);
}

/// Runs the calls of [`client_connection`] against `data`'s script;
/// returns the unary call's value, if it succeeded.
fn call_with_script(data: &[u8]) -> Option<i64> {
    let script = Script::parse(data);
    runtime().block_on(async {
        let (io, peer) = tokio::io::duplex(4096);
        let (mut from_client, mut to_client) = tokio::io::split(peer);
        let keepalive_ms = if script.flags & 2 != 0 { 2_000 } else { 0 };
        let fake = async move {
            to_client
                .write_all(&server_hello(keepalive_ms))
                .await
                .ok()?;
            let mut head = [0u8; CLIENT_HEAD];
            from_client.read_exact(&mut head).await.ok()?;
            let len = u32::from_be_bytes([head[6], head[7], head[8], head[9]]) as usize;
            let mut body = vec![0; len];
            from_client.read_exact(&mut body).await.ok()?;
            to_client.write_all(&[0, 0, 0]).await.ok()?;
            Some((from_client, to_client))
        };
        let connecting = Client::builder()
            .max_frame_size(MAX_FRAME)
            .keepalive((script.flags & 1 != 0).then(|| Duration::from_secs(3)))
            .timeout(Duration::from_secs(30))
            .connect_io(io, &INFO, "fuzz");
        let (client, fake) = tokio::join!(connecting, fake);
        let (Ok(client), Some((mut from_client, to_client))) = (client, fake) else {
            panic!("the handshake with the fake server failed");
        };
        let draining = tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = from_client.read_to_end(&mut sink).await;
        });
        let calls = calls(client);
        let feeding = script.feed(to_client);
        let (added, ()) = bounded("the calls", async { tokio::join!(calls, feeding) }).await;
        let _ = bounded("the client's side of the pipe", draining).await;
        added
    })
}

/// One call of each shape; each must end, with its value or a typed error.
/// Returns whether the unary call succeeded, with its value.
async fn calls(client: Client) -> Option<i64> {
    let add = client.unary::<_, i64>(&INFO.commands[0], &(2i64, 3i64));
    let count = async {
        if let Ok(mut results) = client.server_stream::<_, u32>(&INFO.commands[1], &(3u32,)) {
            while let Some(r) =
                std::future::poll_fn(|cx| Pin::new(&mut results).poll_next(cx)).await
            {
                if r.is_err() {
                    break;
                }
            }
        }
    };
    let sum = client.client_stream::<_, _, _, i64>(&INFO.commands[2], &(), Iter(1..4i64));
    let echo = async {
        if let Ok(mut results) = client.bidi::<_, _, _, u32>(&INFO.commands[3], &(), Iter(1..4u32))
        {
            while let Some(r) =
                std::future::poll_fn(|cx| Pin::new(&mut results).poll_next(cx)).await
            {
                if r.is_err() {
                    break;
                }
            }
        }
    };
    let (add, ..) = tokio::join!(add, count, sum, echo);
    add.ok()
}

#[cfg(test)]
pub(super) fn script() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;

    use crate::wire::frame::HEADER_SIZE;

    fn frame(kind: u8, id: u64, body: &[u8]) -> Vec<u8> {
        let mut out = ((HEADER_SIZE + body.len()) as u32).to_be_bytes().to_vec();
        out.push(kind);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    // Mostly frames either side might send, on a few ids, with payloads
    // that decode; now and then garbage, or a pause.
    let piece = prop_oneof![
        (1u32..8, 0u64..5, any::<u32>()).prop_map(|(cmd, id, arg)| {
            let mut body = cmd.to_be_bytes().to_vec();
            body.push(0);
            let mut payload = BytesMut::new();
            let _ = crate::codec::Bincode.encode(&(arg % 100, arg as i64), &mut payload);
            body.extend_from_slice(&payload[..payload.len().min(6)]);
            frame(1, id, &body)
        }),
        (2u8..12, 0u64..5, prop::collection::vec(any::<u8>(), 0..10))
            .prop_map(|(kind, id, body)| frame(kind, id, &body)),
        (0u64..5, any::<u32>()).prop_map(|(id, n)| frame(8, id, &(n % 64).to_be_bytes())),
        (0u64..5, any::<u8>()).prop_map(|(id, n)| frame(6, id, &[n % 100])),
        (0u64..5).prop_map(|id| frame(7, id, &[])),
        (0u64..5).prop_map(|id| frame(5, id, &[])),
        Just(frame(9, 0, &[1; 8])),
        prop::collection::vec(any::<u8>(), 1..20),
        Just(Vec::new()),
    ];
    (any::<u8>(), prop::collection::vec(piece, 0..24)).prop_map(|(flags, pieces)| {
        // Bit 0 of the flags would skip the server's hello: rarely.
        let mut out = vec![flags & !1 | u8::from(flags == 0xff)];
        for p in pieces {
            if p.is_empty() {
                out.push(0);
            }
            for chunk in p.chunks(255) {
                out.push(chunk.len() as u8);
                out.extend_from_slice(chunk);
            }
        }
        out
    })
}

/// Appends `bytes` to a script as pieces of at most 255 bytes.
fn piece(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.chunks(255) {
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
}

/// A whole frame, its body `head` followed by `value` encoded.
fn frame_of<T: serde::Serialize>(kind: Kind, id: u64, head: &[u8], value: Option<&T>) -> Vec<u8> {
    use crate::wire::frame;
    let mut out = BytesMut::new();
    let start = frame::begin(&mut out, kind, id);
    out.extend_from_slice(head);
    if let Some(value) = value {
        let _ = crate::codec::Bincode.encode(value, &mut out);
    }
    frame::finish(&mut out, start);
    out.to_vec()
}

/// A COMMAND for command `command` with `args`, no flags.
fn command_frame<T: serde::Serialize>(id: u64, command: u32, args: &T) -> Vec<u8> {
    let mut head = command.to_be_bytes().to_vec();
    head.push(0);
    frame_of(Kind::Command, id, &head, Some(args))
}

/// Scripts of a well-behaved client: a call of each shape, a cancel, a
/// ping, a pause; with commands inline and in tasks.
pub(super) fn server_seeds() -> Vec<Vec<u8>> {
    let none: Option<&()> = None;
    let calls = [
        command_frame(1, 1, &(2i64, 3i64)),
        command_frame(2, 2, &(5u32,)),
        frame_of(Kind::Credit, 2, &4u32.to_be_bytes(), none),
        command_frame(3, 3, &()),
        frame_of(Kind::Item, 3, &[], Some(&7i64)),
        frame_of(Kind::End, 3, &[], none),
        command_frame(4, 4, &()),
        frame_of(Kind::Item, 4, &[], Some(&9u32)),
        frame_of(Kind::End, 4, &[], none),
        command_frame(5, 5, &(50u32,)),
        frame_of(Kind::Cancel, 5, &[], none),
        command_frame(6, 6, &()),
        frame_of(Kind::Ping, 0, &[1; 8], none),
    ]
    .concat();
    let mut seeds = Vec::new();
    for flags in [0u8, 2] {
        let mut script = vec![flags];
        piece(&mut script, &calls);
        seeds.push(script.clone());
        // The same, one byte at a time with pauses, then a sleep outliving
        // the connection.
        let mut slow = vec![flags];
        for b in &calls[..40] {
            piece(&mut slow, &[*b]);
            slow.push(0);
        }
        piece(&mut slow, &calls[40..]);
        piece(&mut slow, &command_frame(9, 5, &(10_000u32,)));
        seeds.push(slow);
    }
    // A client that speaks from the first byte: its hello is in the script.
    let mut raw = vec![1];
    piece(&mut raw, &client_hello());
    piece(&mut raw, &command_frame(1, 1, &(1i64, 1i64)));
    seeds.push(raw);
    seeds
}

/// Scripts of a server answering the harness's calls (ids 1 to 4, in the
/// order they are made) well, late, or wrongly.
pub(super) fn client_seeds() -> Vec<Vec<u8>> {
    let none: Option<&()> = None;
    let answers = [
        frame_of(Kind::ResultLast, 1, &[], Some(&5i64)),
        frame_of(Kind::Result, 2, &[], Some(&0u32)),
        frame_of(Kind::Result, 2, &[], Some(&1u32)),
        frame_of(Kind::End, 2, &[], none),
        frame_of(Kind::Credit, 3, &8u32.to_be_bytes(), none),
        frame_of(Kind::ResultLast, 3, &[], Some(&6i64)),
        frame_of(Kind::Credit, 4, &8u32.to_be_bytes(), none),
        frame_of(Kind::Result, 4, &[], Some(&1u32)),
        frame_of(Kind::End, 4, &[], none),
        frame_of(Kind::Ping, 0, &[2; 8], none),
    ]
    .concat();
    let mut well = vec![0];
    piece(&mut well, &answers);
    // Five pauses first.
    let mut late = vec![3, 0, 0, 0, 0, 0];
    piece(&mut late, &answers);
    let mut wrong = vec![1];
    piece(
        &mut wrong,
        &frame_of(Kind::ResultLast, 2, &[], Some(&"text")),
    );
    let mut error = b"\0\x07".to_vec();
    error.extend_from_slice(b"it failed");
    piece(&mut wrong, &frame_of(Kind::Error, 1, &error, none));
    piece(&mut wrong, &frame_of(Kind::GoAway, 0, b"bye", none));
    vec![well, late, wrong]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame;

    #[test]
    fn the_server_harness_serves_what_its_script_sends() {
        let mut add = BytesMut::new();
        let start = frame::begin(&mut add, Kind::Command, 1);
        add.extend_from_slice(&[0, 0, 0, 1, 0]);
        crate::codec::Bincode
            .encode(&(2i64, 3i64), &mut add)
            .unwrap();
        frame::finish(&mut add, start);
        let mut script = vec![0];
        // The frame in two pieces, with a pause between them.
        piece(&mut script, &add[..7]);
        script.push(0);
        piece(&mut script, &add[7..]);
        let frames = check_server_output(&serve_script(&script));
        let answer = frames.iter().find(|f| f.id == 1).expect("an answer");
        assert_eq!(answer.kind, Kind::ResultLast);
        let sum: i64 = crate::codec::Bincode.decode(&answer.body).unwrap();
        assert_eq!(sum, 5);
    }

    #[test]
    fn the_client_harness_calls_through_its_script() {
        let mut answer = BytesMut::new();
        let start = frame::begin(&mut answer, Kind::ResultLast, 1);
        crate::codec::Bincode.encode(&5i64, &mut answer).unwrap();
        frame::finish(&mut answer, start);
        let mut script = vec![0];
        piece(&mut script, &answer);
        assert_eq!(call_with_script(&script), Some(5));
        // Without an answer the call still ends (when the server closes).
        assert_eq!(call_with_script(&[0]), None);
    }
}
