//! What a client's calls learn when its connection goes, and closing a
//! client on purpose: a call that was written is reported as sent (it may
//! have run), one that never left the client as not sent (retrying it is
//! safe), and `close` lets the calls in flight finish.

use std::time::Duration;

use cmdstream::{Client, ConnectionState, Error};
use cmdstream_tests::calc::INFO;
use cmdstream_tests::raw::{self, kind, pipe};
use cmdstream_tests::{connect, serve, CalcClient, Probe};
use tokio::io::AsyncWriteExt;

const BOUND: Duration = Duration::from_secs(3_600);

async fn bounded<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(BOUND, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} never happened"))
}

#[tokio::test(start_paused = true)]
async fn a_lost_call_says_whether_it_was_sent() {
    // A fake server that allows one call in flight: the second call waits
    // in the client, unwritten, until the server goes.
    let (ours, mut theirs) = tokio::io::duplex(1 << 16);
    let fake = tokio::spawn(async move {
        theirs
            .write_all(&raw::server_hello_with(
                INFO.fingerprint,
                16 << 20,
                1,
                0,
                32,
            ))
            .await
            .unwrap();
        let mut head = [0u8; 10];
        tokio::io::AsyncReadExt::read_exact(&mut theirs, &mut head)
            .await
            .unwrap();
        let len = u32::from_be_bytes([head[6], head[7], head[8], head[9]]) as usize;
        let mut body = vec![0; len];
        tokio::io::AsyncReadExt::read_exact(&mut theirs, &mut body)
            .await
            .unwrap();
        theirs.write_all(&[0, 0, 0]).await.unwrap();
        // The first call arrives; then the server vanishes.
        let first = pipe::read_frame(&mut theirs).await.expect("a COMMAND");
        assert_eq!(first.kind, kind::COMMAND);
        drop(theirs);
    });
    let client = pipe::calc_client(ours).await;
    let (first, second) = tokio::join!(client.sleep(100), async {
        tokio::task::yield_now().await;
        client.sleep(100).await
    });
    bounded("the fake server", fake).await.unwrap();
    match first {
        Err(Error::ConnectionLost { sent: true, .. }) => {}
        other => panic!("the written call: expected ConnectionLost, sent, got {other:?}"),
    }
    match second {
        Err(Error::ConnectionLost { sent: false, .. }) => {}
        other => panic!("the queued call: expected ConnectionLost, not sent, got {other:?}"),
    }
    let err = client.add(1, 1).await.unwrap_err();
    assert!(
        matches!(err, Error::ConnectionLost { sent: false, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("never sent"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_lets_calls_in_flight_finish_and_refuses_new_ones() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.sleep(200).await }
    });
    cmdstream_tests::eventually("the sleep started", || Probe::get(&srv.probe.started) == 1).await;
    let closing = tokio::spawn({
        let client = client.clone();
        async move { client.inner().close().await }
    });
    cmdstream_tests::eventually("the client stops taking calls", || {
        !client.inner().state().is_open()
    })
    .await;
    assert!(
        matches!(client.inner().state(), ConnectionState::Draining(_)),
        "{}",
        client.inner().state()
    );
    let refused = client.add(1, 1).await.unwrap_err();
    assert!(
        matches!(refused, Error::ConnectionLost { sent: false, .. }),
        "{refused:?}"
    );
    assert_eq!(
        bounded("the call in flight", in_flight)
            .await
            .unwrap()
            .unwrap(),
        200
    );
    bounded("close", closing).await.unwrap();
    assert!(matches!(client.inner().state(), ConnectionState::Closed(_)));
    cmdstream_tests::eventually("the server sees the client go", || {
        srv.server.connections() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_fails_calls_still_waiting_for_a_slot_at_once() {
    // One call in flight at most: the second waits in the client for the
    // first to finish, unsent. Closing fails it then and there, instead of
    // after the call in flight.
    let srv = serve().await;
    let client = CalcClient::new(
        Client::builder()
            .max_in_flight(1)
            .connect(srv.addr, &INFO)
            .await
            .unwrap(),
    );
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.sleep(5_000).await }
    });
    cmdstream_tests::eventually("the sleep started", || Probe::get(&srv.probe.started) == 1).await;
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.add(1, 1).await }
    });
    // Let the second call reach the connection and wait there.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished());

    let closing = tokio::spawn({
        let client = client.clone();
        async move { client.inner().close().await }
    });
    let refused = bounded("the waiting call", waiting).await.unwrap();
    assert!(
        matches!(refused, Err(Error::ConnectionLost { sent: false, .. })),
        "{refused:?}"
    );
    assert_eq!(
        Probe::get(&srv.probe.finished),
        0,
        "it waited for the call in flight"
    );
    assert!(!closing.is_finished());
    in_flight.abort();
}
