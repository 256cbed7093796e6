//! Cancellation and deadlines: a caller that stops waiting, a per-call
//! timeout or a deadline that expires on the server stops the command there,
//! and leaves the other calls on the connection alone.

use std::time::Duration;

use cmdstream::{CallOptions, Error, Server};
use cmdstream_tests::raw::{self, RawConn};
use cmdstream_tests::{connect, eventually, serve, serve_with, Probe};

/// Bounds a wait on the network so that a bug fails the test instead of
/// hanging it.
async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within 10 s"))
}

#[tokio::test]
async fn dropping_a_unary_call_stops_the_command_on_the_server() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let probe = srv.probe.clone();

    let mut call = Box::pin(client.sleep(60_000));
    tokio::select! {
        r = &mut call => panic!("a one-minute sleep returned early: {r:?}"),
        () = eventually("the sleep started on the server", || Probe::get(&probe.started) == 1) => {}
    }
    drop(call);

    eventually("the server dropped the cancelled sleep", || {
        Probe::get(&probe.dropped) == 1
    })
    .await;
    assert_eq!(Probe::get(&probe.finished), 0);
    // The connection is still good for other calls.
    assert_eq!(client.add(2, 2).await.unwrap(), 4);
}

#[tokio::test]
async fn a_call_abandoned_by_an_outer_timeout_is_cancelled_on_the_server() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let probe = srv.probe.clone();

    let outcome = tokio::time::timeout(Duration::from_millis(300), client.sleep(60_000)).await;
    assert!(outcome.is_err(), "a one-minute sleep returned early");

    eventually("the server dropped the abandoned sleep", || {
        Probe::get(&probe.dropped) == 1
    })
    .await;
    assert_eq!(Probe::get(&probe.finished), 0);
}

#[tokio::test]
async fn a_per_call_timeout_fails_with_timeout_and_stops_the_command() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let probe = srv.probe.clone();

    let hasty = client.with_options(CallOptions::new().timeout(Duration::from_millis(200)));
    let err = within("the timed-out call", hasty.sleep(60_000))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");

    eventually("the server dropped the timed-out sleep", || {
        Probe::get(&probe.dropped) == 1
    })
    .await;
    assert_eq!(Probe::get(&probe.started), 1);
    assert_eq!(Probe::get(&probe.finished), 0);
    // The timeout belongs to that handle only.
    assert_eq!(client.sleep(1).await.unwrap(), 1);
}

#[tokio::test]
async fn the_server_enforces_a_deadline_by_itself() {
    let srv = serve().await;
    let probe = srv.probe.clone();
    let mut conn = RawConn::connect(srv.addr).await;

    // sleep(60 s) with a 50 ms deadline, sent by a client that never cancels.
    let sleep = raw::command_with_deadline(7, 6, 50, &raw::encode(&(60_000u64,)));
    conn.send(&sleep).await;

    let answer = conn.read_non_ping().await.expect("the server closed");
    assert_eq!(answer.id, 7, "{answer:?}");
    assert_eq!(answer.error_code(), 3, "{answer:?}");
    eventually("the server dropped the expired sleep", || {
        Probe::get(&probe.dropped) == 1
    })
    .await;
    assert_eq!(Probe::get(&probe.finished), 0);

    // The connection lives on.
    conn.send(&raw::add(8, 20, 22)).await;
    let sum = conn.read_non_ping().await.expect("the server closed");
    assert_eq!((sum.id, sum.i64_result()), (8, 42));
}

#[tokio::test]
async fn a_deadline_that_is_not_reached_lets_the_command_finish() {
    let srv = serve().await;
    let probe = srv.probe.clone();
    let mut conn = RawConn::connect(srv.addr).await;

    let sleep = raw::command_with_deadline(3, 6, 60_000, &raw::encode(&(5u64,)));
    conn.send(&sleep).await;

    let answer = conn.read_non_ping().await.expect("the server closed");
    assert_eq!(answer.id, 3, "{answer:?}");
    assert_eq!(answer.result::<u64>(), 5);
    assert_eq!(Probe::get(&probe.finished), 1);
    assert_eq!(Probe::get(&probe.dropped), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_result_stream_cancels_it_on_the_server() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let probe = srv.probe.clone();

    let mut items = client.countdown(1_000_000).unwrap();
    for expected in (1_000_000 - 4..=1_000_000).rev() {
        let got = within("a streamed result", items.next()).await;
        assert_eq!(got.unwrap().unwrap(), expected);
    }
    drop(items);

    // The CANCEL goes out before this call's COMMAND, and the server handles
    // frames in order: once this answer is back, the stream was stopped.
    assert_eq!(client.add(1, 1).await.unwrap(), 2);
    let after_cancel = Probe::get(&probe.produced);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(client.add(1, 1).await.unwrap(), 2);
    }
    let produced = Probe::get(&probe.produced);
    assert!(
        produced < 1_000,
        "the server kept producing after the cancel: {produced} items"
    );
    assert!(
        produced <= after_cancel + 1,
        "the server kept producing after the cancel: {after_cancel} then {produced} items"
    );
}

#[tokio::test]
async fn dropping_a_bidi_stream_cancels_it_on_the_server() {
    // One call at a time: the add below only runs once the server has let
    // go of the echo.
    let srv = serve_with(Server::builder().max_in_flight(1)).await;
    let client = connect(srv.addr).await;

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let lines = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (line, rx))
    });
    let mut out = client.echo(lines).unwrap();
    tx.send("first".into()).unwrap();
    assert_eq!(
        within("an echoed line", out.next()).await.unwrap().unwrap(),
        "FIRST"
    );
    drop(out);

    // The pump stops with the call: its input is dropped, so the sender
    // sees the channel close.
    eventually("the argument stream was dropped", || tx.is_closed()).await;
    assert_eq!(within("an add", client.add(3, 4)).await.unwrap(), 7);
}

#[tokio::test]
async fn a_cancelled_stream_frees_its_place_on_the_server() {
    // With one call in flight allowed, the server answers the add only if
    // the cancelled stream no longer counts (it would refuse it with
    // "too many calls in flight" otherwise).
    let srv = serve_with(Server::builder().max_in_flight(1)).await;
    let client = connect(srv.addr).await;
    for round in 0..3u32 {
        let mut items = client.countdown(1_000_000).unwrap();
        let first = within("a streamed result", items.next()).await;
        assert_eq!(first.unwrap().unwrap(), 1_000_000, "round {round}");
        drop(items);
        let sum = within("an add", client.add(1, 2)).await;
        assert_eq!(sum.unwrap(), 3, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_calls_do_not_disturb_the_others_on_the_connection() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let probe = srv.probe.clone();

    // Several ways of giving up, all on the one connection.
    let hasty = client.with_options(CallOptions::new().timeout(Duration::from_millis(50)));
    let mut dropped_early = Vec::new();
    for _ in 0..4 {
        dropped_early.push(Box::pin(client.sleep(60_000)));
    }
    for call in &mut dropped_early {
        // Poll each once so that its COMMAND is queued.
        let _ = tokio::time::timeout(Duration::from_millis(1), call).await;
    }
    eventually("the sleeps started", || Probe::get(&probe.started) == 4).await;
    drop(dropped_early);
    for _ in 0..4 {
        let err = within("a timed-out call", hasty.sleep(60_000))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout), "{err:?}");
    }
    for _ in 0..4 {
        let mut s = client.countdown(100_000).unwrap();
        within("a streamed result", s.next())
            .await
            .unwrap()
            .unwrap();
    }
    eventually("every cancelled sleep was dropped", || {
        Probe::get(&probe.dropped) == 8
    })
    .await;

    // A burst of concurrent calls each get their own answer.
    let mut tasks = Vec::new();
    for t in 0..32i64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20i64 {
                let (a, b) = (t * 1_000 + i, -3 * i);
                assert_eq!(client.add(a, b).await.unwrap(), a + b, "task {t} call {i}");
            }
        }));
    }
    for t in tasks {
        within("a burst of calls", t).await.unwrap();
    }
    assert_eq!(Probe::get(&probe.finished), 0);
}
