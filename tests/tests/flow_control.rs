//! Flow control: a slow consumer holds at most a window of items and never
//! stalls the other calls on its connection; many streams share one
//! connection without mixing up their items.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cmdstream::{Client, Server};
use cmdstream_tests::{connect, eventually, serve, serve_with, CalcClient, Probe};
use futures_util::{stream, StreamExt};

/// Bounds a wait on the network so that a bug fails the test instead of
/// hanging it.
async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within 10 s"))
}

/// Lets the server run ahead for a while, so that a missing bound on what
/// it produces would show.
async fn let_the_server_run() {
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(2)).await;
        tokio::task::yield_now().await;
    }
}

/// Both sides' default stream window.
const WINDOW: usize = cmdstream::DEFAULT_STREAM_WINDOW as usize;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_does_not_stall_other_calls_and_holds_one_window() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let probe = srv.probe.clone();

    let mut stalled = client.countdown(100_000).unwrap();
    for expected in [100_000, 99_999] {
        let got = within("a streamed result", stalled.next()).await;
        assert_eq!(got.unwrap().unwrap(), expected);
    }
    // The server fills the default window and then waits for credit.
    eventually("the server filled the window", || {
        Probe::get(&probe.produced) >= WINDOW
    })
    .await;
    let_the_server_run().await;
    let ahead = Probe::get(&probe.produced);
    assert!(
        ahead <= WINDOW + 2,
        "{ahead} items produced for a window of {WINDOW}"
    );

    // Other calls on the same connection go through.
    assert_eq!(within("an add", client.add(40, 2)).await.unwrap(), 42);
    let second: Vec<u32> = within(
        "a second stream",
        client
            .countdown(1_000)
            .unwrap()
            .map(|r| r.unwrap())
            .collect(),
    )
    .await;
    assert_eq!(second, (0..=1_000).rev().collect::<Vec<_>>());

    // The second stream produced exactly its 1001 items; the stalled one
    // did not move.
    let_the_server_run().await;
    let stalled_total = Probe::get(&probe.produced) - 1_001;
    assert!(
        stalled_total <= WINDOW + 2,
        "{stalled_total} items produced for a stalled stream with a window of {WINDOW}"
    );

    // The stalled stream resumes where it left off.
    let next = within("a streamed result", stalled.next()).await;
    assert_eq!(next.unwrap().unwrap(), 99_998);
}

/// The most a default window grows to, as `ClientBuilder::stream_window`
/// documents.
const GROWN_WINDOW: usize = 8192;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_small_items_grows_its_window_within_the_cap() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let probe = srv.probe.clone();

    let mut stream = client.countdown(100_000).unwrap();
    for expected in (99_001..=100_000).rev() {
        let got = within("a streamed result", stream.next()).await;
        assert_eq!(got.unwrap().unwrap(), expected);
    }
    // Consuming small items granted more than the initial window...
    eventually("the server ran past the initial window", || {
        Probe::get(&probe.produced) > 1_000 + WINDOW
    })
    .await;
    // ...but never more than the cap.
    let_the_server_run().await;
    let ahead = Probe::get(&probe.produced) - 1_000;
    assert!(
        ahead <= GROWN_WINDOW + 2,
        "{ahead} items produced ahead for a window capped at {GROWN_WINDOW}"
    );
    let next = within("a streamed result", stream.next()).await;
    assert_eq!(next.unwrap().unwrap(), 99_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_window_bounds_what_the_server_sends_ahead() {
    // The server's own window is for argument streams; results are bounded
    // by the window the client grants.
    let srv = serve_with(Server::builder().stream_window(1_000)).await;
    let client = CalcClient::new(
        Client::builder()
            .stream_window(4)
            .connect(srv.addr, &cmdstream_tests::calc::INFO)
            .await
            .unwrap(),
    );
    let probe = srv.probe.clone();

    let mut stalled = client.countdown(100_000).unwrap();
    assert_eq!(
        within("a streamed result", stalled.next())
            .await
            .unwrap()
            .unwrap(),
        100_000
    );
    eventually("the server filled the window", || {
        Probe::get(&probe.produced) >= 4
    })
    .await;
    let_the_server_run().await;
    assert_eq!(within("an add", client.add(1, 2)).await.unwrap(), 3);
    let ahead = Probe::get(&probe.produced);
    assert!(ahead <= 4 + 2, "{ahead} items produced for a window of 4");

    // Reading on returns credit, and every item arrives in order.
    let rest: Vec<u32> = within(
        "the rest of the stream",
        stalled.take(500).map(|r| r.unwrap()).collect(),
    )
    .await;
    assert_eq!(rest, (99_500..100_000).rev().collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidi_call_read_slowly_does_not_stall_other_calls() {
    let srv = serve().await;
    let client = connect(srv.addr).await;

    // An endless input, counting what the client pulled from it.
    let pulled = Arc::new(AtomicUsize::new(0));
    let lines = stream::iter(0u64..).map({
        let pulled = pulled.clone();
        move |i| {
            pulled.fetch_add(1, Ordering::SeqCst);
            format!("line {i}")
        }
    });
    let mut out = client.echo(lines).unwrap();
    assert_eq!(
        within("an echoed line", out.next()).await.unwrap().unwrap(),
        "LINE 0"
    );

    // Nobody reads the echo: the server stops taking lines once the result
    // window is full, and the client stops sending once the argument window
    // is. Neither holds up another call.
    eventually("the client filled the windows", || {
        pulled.load(Ordering::SeqCst) >= WINDOW
    })
    .await;
    for i in 0..10 {
        assert_eq!(within("an add", client.add(i, i)).await.unwrap(), 2 * i);
    }
    let_the_server_run().await;
    let in_flight = pulled.load(Ordering::SeqCst);
    assert!(
        // The argument window, the result window, one credit batch, slack.
        in_flight <= 2 * WINDOW + WINDOW / 4 + 4,
        "{in_flight} lines pulled from the input while nobody read the echo"
    );

    // Reading resumes in order.
    for i in 1..200 {
        let got = within("an echoed line", out.next()).await;
        assert_eq!(got.unwrap().unwrap(), format!("LINE {i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stream_waiting_on_its_input_does_not_stall_other_calls() {
    let srv = serve().await;
    let client = connect(srv.addr).await;

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let nums = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|n| (n, rx)) });
    let total = tokio::spawn({
        let client = client.clone();
        async move { client.total(nums).await }
    });
    for n in 1..=10 {
        tx.send(n).unwrap();
    }
    for i in 0..10 {
        assert_eq!(within("an add", client.add(i, 1)).await.unwrap(), i + 1);
    }
    for n in 11..=100 {
        tx.send(n).unwrap();
    }
    drop(tx);
    assert_eq!(within("the total", total).await.unwrap().unwrap(), 5_050);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_streams_on_one_connection_each_get_their_whole_sequence() {
    let srv = serve().await;
    let client = connect(srv.addr).await;

    let mut tasks = Vec::new();
    for t in 0..16u32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let from = 2_000 + t;
            let items: Vec<u32> = client
                .countdown(from)
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
                .await;
            assert_eq!(items, (0..=from).rev().collect::<Vec<_>>(), "stream {t}");
        }));
    }
    for t in tasks {
        within("a stream", t).await.unwrap();
    }
    assert_eq!(srv.server.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_client_streams_on_one_connection_each_sum_their_own_items() {
    let srv = serve().await;
    let client = connect(srv.addr).await;

    let mut tasks = Vec::new();
    for t in 0..16i64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let nums = stream::iter((1..=500).map(move |n| n * (t + 1)));
            let total = client.total(nums).await.unwrap();
            assert_eq!(total, 125_250 * (t + 1), "stream {t}");
        }));
    }
    for t in tasks {
        within("a client stream", t).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_window_beyond_the_servers_limit_neither_stalls_nor_overruns_it() {
    // The client returns credit per quarter window, 5000 results: more
    // than the server keeps unspent. It keeps to the limit the server
    // announces, so the stream flows, and the server stays within it.
    let srv = serve_with(Server::builder().max_result_window(1_024)).await;
    let client = CalcClient::new(
        Client::builder()
            .stream_window(20_000)
            .connect(srv.addr, &cmdstream_tests::calc::INFO)
            .await
            .unwrap(),
    );
    let probe = srv.probe.clone();

    let mut stream = client.countdown(50_000).unwrap();
    let first = within("a streamed result", stream.next()).await;
    assert_eq!(first.unwrap().unwrap(), 50_000);
    eventually("the server filled its window", || {
        Probe::get(&probe.produced) >= 1_024
    })
    .await;
    let_the_server_run().await;
    let ahead = Probe::get(&probe.produced);
    assert!(ahead <= 1_024 + 2, "{ahead} produced for a limit of 1024");

    let mut expected = 49_999;
    while let Some(item) = within("the rest of the stream", stream.next()).await {
        assert_eq!(item.unwrap(), expected);
        expected = expected.wrapping_sub(1);
    }
    assert_eq!(expected, u32::MAX, "the stream ended early");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_window_beyond_what_the_client_uses_at_once_does_not_stall() {
    // The server returns credit per quarter of its window, 25 000 items;
    // the client uses at most 8192 at once and the rest as it goes.
    let srv = serve_with(Server::builder().stream_window(100_000)).await;
    let client = connect(srv.addr).await;
    let nums = stream::iter(1..=60_000i64);
    let total = within("a long client stream", client.total(nums)).await;
    assert_eq!(total.unwrap(), 60_000 * 60_001 / 2);
}
