#![allow(missing_docs)] // a test crate: the receiver trait here documents only what matters
//! Generated unary commands, which the server answers straight from their
//! frame when the receiver completes at once and through a `Call` in a
//! task of its own when it has to wait: both ways give each caller its own
//! answer, and a panic, a bad payload, a result too large or a deadline
//! gets the same typed error either way.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cmdstream::{Client, Dispatch, Error, ErrorCode, Server};
use cmdstream_tests::raw::{self, RawConn};
use futures_util::future::join_all;

#[cmdstream::receiver]
pub trait Shapes {
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Waits `millis` first (none: one yield), then answers as `add`.
    async fn add_later(&self, a: i64, b: i64, millis: u64) -> i64;
    async fn bytes(&self, len: usize) -> Vec<u8>;
    async fn text(&self, len: usize) -> String;
    async fn boom(&self, after_waiting: bool) -> u8;
    /// Waits `millis`, counting the waits dropped before they ended.
    async fn hold(&self, millis: u64) -> u64;
}

#[derive(Default)]
struct Impl {
    dropped_holds: Arc<AtomicUsize>,
}

impl Shapes for Impl {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    async fn add_later(&self, a: i64, b: i64, millis: u64) -> i64 {
        if millis == 0 {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_millis(millis)).await;
        }
        a + b
    }

    async fn bytes(&self, len: usize) -> Vec<u8> {
        vec![3; len]
    }

    async fn text(&self, len: usize) -> String {
        "x".repeat(len)
    }

    async fn boom(&self, after_waiting: bool) -> u8 {
        if after_waiting {
            tokio::task::yield_now().await;
        }
        panic!("boom on purpose");
    }

    async fn hold(&self, millis: u64) -> u64 {
        struct Counted(Arc<AtomicUsize>, bool);
        impl Drop for Counted {
            fn drop(&mut self) {
                if !self.1 {
                    self.0.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        let mut guard = Counted(self.dropped_holds.clone(), false);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        guard.1 = true;
        millis
    }
}

type Served = ShapesServer<Impl>;

async fn serve(receiver: Impl) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(ShapesServer::new(receiver));
    tokio::spawn(async move { server.serve(listener).await });
    addr
}

fn command(name: &str) -> &'static cmdstream::CommandInfo {
    <Served as Dispatch>::INFO
        .commands
        .iter()
        .find(|c| c.name == name)
        .unwrap()
}

#[tokio::test]
async fn commands_answered_at_once_and_commands_that_wait_each_reach_their_own_caller() {
    let client = ShapesClient::connect(serve(Impl::default()).await)
        .await
        .unwrap();
    let calls = (0..300i64).map(|i| {
        let client = client.clone();
        async move {
            let got = match i % 3 {
                0 => client.add(i, 1).await,
                1 => client.add_later(i, 1, 0).await,
                _ => client.add_later(i, 1, (i % 7) as u64).await,
            };
            (i, got.unwrap())
        }
    });
    for (i, got) in join_all(calls).await {
        assert_eq!(got, i + 1, "call {i}");
    }
    assert_eq!(client.bytes(5).await.unwrap(), vec![3; 5]);
    assert_eq!(client.text(3).await.unwrap(), "xxx");
}

#[tokio::test]
async fn a_panic_before_or_after_waiting_fails_that_call_and_the_connection_lives() {
    let client = ShapesClient::connect(serve(Impl::default()).await)
        .await
        .unwrap();
    for after_waiting in [false, true] {
        match client.boom(after_waiting).await.unwrap_err() {
            Error::Remote(e) => {
                assert_eq!(e.code, ErrorCode::Internal, "{after_waiting}");
                assert!(e.message.contains("panicked"), "{e}");
            }
            other => panic!("{after_waiting}: {other}"),
        }
        assert_eq!(client.add(2, 3).await.unwrap(), 5);
    }
}

#[tokio::test]
async fn arguments_that_do_not_decode_fail_that_call_and_the_connection_lives() {
    let addr = serve(Impl::default()).await;
    let client = Client::builder()
        .connect(addr, <Served as Dispatch>::INFO)
        .await
        .unwrap();
    let err = client
        .unary::<_, i64>(command("add"), &"not two numbers")
        .await
        .unwrap_err();
    match err {
        Error::Remote(e) => {
            assert_eq!(e.code, ErrorCode::BadPayload);
            assert!(e.message.contains("did not decode"), "{e}");
        }
        other => panic!("{other}"),
    }
    let sum: i64 = client.unary(command("add"), &(2i64, 3i64)).await.unwrap();
    assert_eq!(sum, 5);
}

#[tokio::test]
async fn a_result_too_large_for_the_client_fails_that_call_only() {
    let addr = serve(Impl::default()).await;
    let client = ShapesClient::from_client(
        Client::builder()
            .max_frame_size(1024)
            .connect(addr, <Served as Dispatch>::INFO)
            .await
            .unwrap(),
    );
    for err in [
        client.bytes(4096).await.unwrap_err(),
        client.text(4096).await.unwrap_err(),
    ] {
        assert!(
            matches!(err, Error::FrameTooLarge { size, max: 1024 } if size > 4096),
            "{err:?}"
        );
    }
    assert_eq!(client.bytes(100).await.unwrap(), vec![3; 100]);
}

// A client by hand, which never cancels: what ends the command is the
// server's own deadline.
#[tokio::test]
async fn a_command_that_waits_past_its_deadline_is_stopped_and_told_by_the_server() {
    let receiver = Impl::default();
    let dropped = receiver.dropped_holds.clone();
    let addr = serve(receiver).await;
    let hello = raw::client_hello_for(<Served as Dispatch>::INFO);
    let mut conn = raw::within("the handshake", RawConn::connect_with(addr, &hello)).await;
    let hold = command("hold").id;
    conn.send(&raw::command_with_deadline(
        1,
        hold,
        50,
        &raw::encode(&(60_000u64,)),
    ))
    .await;
    let answer = raw::within("the answer", conn.read_non_ping())
        .await
        .expect("the server closed the connection");
    assert_eq!(answer.id, 1);
    assert_eq!(
        answer.error_code(),
        ErrorCode::DeadlineExceeded.to_u16(),
        "{answer:?}"
    );
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the wait was dropped");
}

#[tokio::test]
async fn a_cancelled_command_that_waits_is_dropped_on_the_server() {
    let receiver = Impl::default();
    let dropped = receiver.dropped_holds.clone();
    let client = ShapesClient::connect(serve(receiver).await).await.unwrap();
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.hold(60_000).await }
    });
    // Until the server has it: the spawned call queues its command first,
    // and the next call's answer comes after the server has started it.
    tokio::task::yield_now().await;
    assert_eq!(client.add(1, 1).await.unwrap(), 2);
    call.abort();
    for _ in 0..500 {
        if dropped.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}
