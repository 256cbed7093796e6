//! A reconnecting client: it rides through lost connections and graceful
//! restarts, waits (within deadlines) during an outage, sends again only
//! what the rules allow, backs off between dials without ever looping
//! busily, and gives up on a server it can never use. On paused time over
//! a scripted in-memory connector, so that backoff is exact and costs no
//! real time; and once over real TCP with a server that dies and comes
//! back on the same port.

use std::time::Duration;

use cmdstream::{Backoff, CallOptions, Client, ConnectionState, Error, Reconnect, Server};
use cmdstream_tests::calc::INFO;
use cmdstream_tests::scripted::{Scripted, Step};
use cmdstream_tests::{Calc, CalcClient, CalcServer, Probe};
use futures_util::StreamExt;

/// Far longer than anything here takes; on paused time it costs nothing.
const BOUND: Duration = Duration::from_secs(3_600);

async fn bounded<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(BOUND, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} never happened"))
}

fn calc_server() -> (Server<CalcServer>, Probe) {
    let probe = Probe::default();
    let server = Server::builder().build(CalcServer::new(Calc::new(probe.clone())));
    (server, probe)
}

/// A reconnecting client over `connector`.
async fn client(connector: &Scripted, policy: Reconnect) -> Result<CalcClient, Error> {
    let client = Client::builder()
        .connector(connector.clone())
        .keepalive(None)
        .reconnect(policy)
        .connect("scripted:1", &INFO)
        .await?;
    Ok(CalcClient::new(client))
}

/// Waits until the client's state matches.
async fn until_state(client: &CalcClient, what: &str, f: impl Fn(&ConnectionState) -> bool) {
    let mut states = client.inner().watch_state();
    bounded(what, async {
        while let Some(state) = states.changed().await {
            if f(&state) {
                return;
            }
        }
        panic!("{what}: the client closed first");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn dials_back_off_by_the_policy_with_bounded_jitter() {
    let (server, _) = calc_server();
    let connector = Scripted::new((0..6).map(|_| Step::Refuse), Step::serve(&server));
    let client = client(&connector, Reconnect::new().lazy(true))
        .await
        .unwrap();
    // A call made at once waits through the outage: six refused dials
    // take 1 + 1.6 + 2.56 + 4.1 + 6.6 + 10.5 s, ±20 % each.
    let sum = bounded(
        "the call",
        client
            .with_options(CallOptions::new().timeout(Duration::from_secs(60)))
            .add(2, 3),
    )
    .await;
    assert_eq!(sum.unwrap(), 5);

    let dials = connector.dials();
    assert_eq!(dials.len(), 7, "six refused dials, then one that connected");
    let gaps: Vec<f64> = dials
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    for (n, gap) in gaps.iter().enumerate() {
        let base = 1.6f64.powi(n as i32);
        assert!(
            (base * 0.8 - 1e-3..=base * 1.2 + 1e-3).contains(gap),
            "wait {n} was {gap:.3} s, expected {base:.3} s ± 20 %: {gaps:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_server_that_never_comes_back_is_dialed_a_bounded_number_of_times() {
    let connector = Scripted::new([], Step::Refuse);
    let policy = Reconnect::new().lazy(true).backoff(Backoff::new(
        Duration::from_millis(100),
        Duration::from_secs(5),
    ));
    let client = client(&connector, policy).await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    // 100 ms growing × 1.6 to 5 s: about 17 dials in a minute, and never
    // more than one per 80 ms.
    let dials = connector.dials().len();
    assert!((12..=25).contains(&dials), "{dials} dials in 60 s");
    assert!(matches!(
        client.inner().state(),
        ConnectionState::Reconnecting { .. }
    ));
    // A call without a deadline waits at most `max_wait` (10 s).
    let err = bounded("the waiting call", client.add(1, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(
        err.to_string().contains("no connection within 10s"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lost_connection_fails_calls_in_flight_and_the_next_one_carries_new_calls() {
    let (server, probe) = calc_server();
    let connector = Scripted::new([], Step::serve(&server));
    let client = client(&connector, Reconnect::new()).await.unwrap();
    assert_eq!(client.add(1, 2).await.unwrap(), 3);

    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.sleep(5_000).await }
    });
    cmdstream_tests::eventually("the sleep started", || Probe::get(&probe.started) == 1).await;
    connector.cut();
    let lost = bounded("the call in flight", in_flight).await.unwrap();
    assert!(
        matches!(lost, Err(Error::ConnectionLost { sent: true, .. })),
        "{lost:?}"
    );
    // Not sent again: `sleep` is not idempotent.
    assert_eq!(client.add(2, 2).await.unwrap(), 4);
    assert_eq!(Probe::get(&probe.started), 1);
    assert_eq!(connector.dials().len(), 2, "one redial, at once");
}

#[tokio::test(start_paused = true)]
async fn an_idempotent_call_lost_in_flight_runs_at_most_twice_and_succeeds() {
    let (server, probe) = calc_server();
    let connector = Scripted::new([], Step::serve(&server));
    let client = client(&connector, Reconnect::new()).await.unwrap();
    let idempotent = client.with_options(CallOptions::new().idempotent(true));
    let call = tokio::spawn(async move { idempotent.sleep(1_000).await });
    cmdstream_tests::eventually("the sleep started", || Probe::get(&probe.started) == 1).await;
    connector.cut();
    assert_eq!(bounded("the call", call).await.unwrap().unwrap(), 1_000);
    assert_eq!(Probe::get(&probe.started), 2);
    assert_eq!(Probe::get(&probe.finished), 1);

    // Lost twice: sent once more only.
    let idempotent = client.with_options(CallOptions::new().idempotent(true));
    let call = tokio::spawn(async move { idempotent.sleep(1_000).await });
    cmdstream_tests::eventually("the sleep started", || Probe::get(&probe.started) == 3).await;
    connector.cut();
    cmdstream_tests::eventually("the sleep started again", || {
        Probe::get(&probe.started) == 4
    })
    .await;
    connector.cut();
    let lost = bounded("the call", call).await.unwrap();
    assert!(
        matches!(lost, Err(Error::ConnectionLost { sent: true, .. })),
        "{lost:?}"
    );
    assert_eq!(Probe::get(&probe.started), 4);
}

#[tokio::test(start_paused = true)]
async fn calls_made_during_an_outage_wait_for_the_connection_within_their_deadline() {
    let (server, _) = calc_server();
    let connector = Scripted::new([], Step::serve(&server));
    let client = client(&connector, Reconnect::new()).await.unwrap();
    // The server goes; it comes back after three refused dials (about
    // 1 + 1.6 + 2.6 s after the first redial).
    connector.set(
        [Step::Refuse, Step::Refuse, Step::Refuse],
        Step::serve(&server),
    );
    connector.cut();
    until_state(&client, "the outage", |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;

    let patient = client.with_options(CallOptions::new().timeout(Duration::from_secs(30)));
    let hasty = client.with_options(CallOptions::new().timeout(Duration::from_secs(1)));
    let (ok, late) = tokio::join!(patient.add(20, 22), hasty.add(1, 1));
    assert_eq!(ok.unwrap(), 42);
    assert!(matches!(late, Err(Error::Timeout)), "{late:?}");
    assert!(client.inner().state().is_open());
}

#[tokio::test(start_paused = true)]
async fn waiting_calls_are_bounded() {
    let connector = Scripted::new([], Step::Refuse);
    let client = client(&connector, Reconnect::new().lazy(true).max_waiters(2))
        .await
        .unwrap();
    let waiting: Vec<_> = (0..2)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.add(i, i).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let err = client.add(1, 1).await.unwrap_err();
    assert!(err.to_string().contains("already wait"), "{err}");
    for w in waiting {
        assert!(matches!(w.await.unwrap(), Err(Error::Unavailable(_))));
    }
}

#[tokio::test(start_paused = true)]
async fn a_graceful_restart_costs_callers_nothing() {
    let (old, old_probe) = calc_server();
    let (new, new_probe) = calc_server();
    let connector = Scripted::new([Step::serve(&old)], Step::serve(&new));
    let client = client(&connector, Reconnect::new()).await.unwrap();

    // Callers keep calling, some with calls in flight across the restart.
    let callers: Vec<_> = (0..8)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                for n in 0..50u64 {
                    assert_eq!(client.sleep(n % 5 + i).await.unwrap(), n % 5 + i);
                }
            })
        })
        .collect();
    cmdstream_tests::eventually("calls ran on the old server", || {
        Probe::get(&old_probe.finished) >= 20
    })
    .await;
    old.shutdown().await;
    for caller in callers {
        bounded("a caller", caller).await.unwrap();
    }
    assert_eq!(
        Probe::get(&old_probe.finished) + Probe::get(&new_probe.finished),
        400,
        "every call ran exactly once"
    );
    assert!(Probe::get(&new_probe.finished) > 0);
    assert_eq!(connector.dials().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_server_that_is_now_incompatible_closes_the_client_with_that_error() {
    let (server, _) = calc_server();
    let other = cmdstream_tests::other::other_server();
    let connector = Scripted::new([Step::serve(&server)], Step::serve(&other));
    let client = client(&connector, Reconnect::new()).await.unwrap();
    assert_eq!(client.add(1, 1).await.unwrap(), 2);
    connector.cut();
    until_state(&client, "closed", |s| {
        matches!(s, ConnectionState::Closed(_))
    })
    .await;
    let err = client.add(1, 1).await.unwrap_err();
    assert!(matches!(err, Error::Incompatible(_)), "{err:?}");
    assert_eq!(connector.dials().len(), 2, "no dial after the verdict");
}

#[tokio::test(start_paused = true)]
async fn the_first_connect_fails_fast_unless_lazy() {
    let connector = Scripted::new([], Step::Refuse);
    let err = client(&connector, Reconnect::new()).await.unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
    assert_eq!(connector.dials().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_state_watch_reports_each_transition() {
    let (server, _) = calc_server();
    let connector = Scripted::new([], Step::serve(&server));
    let client = client(&connector, Reconnect::new()).await.unwrap();
    let mut states = client.inner().watch_state();
    assert_eq!(states.changed().await, Some(ConnectionState::Open));

    // Up long enough to count as stable: the loss is redialed at once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    connector.set([Step::Hang], Step::serve(&server));
    connector.cut();
    let mut seen = Vec::new();
    while let Some(state) = bounded("a change", states.changed()).await {
        let open = state.is_open();
        seen.push(state);
        if open {
            break;
        }
    }
    let attempts: Vec<Option<u32>> = seen
        .iter()
        .map(|s| match s {
            ConnectionState::Reconnecting { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    // Lost: the first dial, at once; it times out: backing off before the
    // second, which succeeds: open. (A watch shows
    // the latest state: the slow dial is what lets this reader see the
    // first.)
    assert_eq!(attempts, [Some(1), Some(2), None], "{seen:?}");
    let why = |s: &ConnectionState| match s {
        ConnectionState::Reconnecting {
            last_error: Some(why),
            ..
        } => why.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(why(&seen[0]).contains("closed the connection"), "{seen:?}");
    assert!(why(&seen[1]).contains("within"), "{seen:?}");

    client.inner().close().await;
    assert!(matches!(
        states.changed().await,
        Some(ConnectionState::Draining(_)) | Some(ConnectionState::Closed(_))
    ));
    let last = client.inner().state();
    assert!(matches!(last, ConnectionState::Closed(_)), "{last}");
    let dials = connector.dials().len();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(connector.dials().len(), dials, "dials after close");
}

#[tokio::test(start_paused = true)]
async fn a_stream_opened_during_an_outage_starts_once_connected_and_is_not_resumed() {
    let (server, _) = calc_server();
    let connector = Scripted::new([Step::Refuse], Step::serve(&server));
    let client = client(&connector, Reconnect::new().lazy(true))
        .await
        .unwrap();
    let items: Vec<u32> = bounded(
        "the stream",
        client.countdown(3).unwrap().map(|r| r.unwrap()).collect(),
    )
    .await;
    assert_eq!(items, [3, 2, 1, 0]);

    // Cut under a stream: it fails typed, not resumed.
    let mut stream = client.countdown(u32::MAX).unwrap();
    assert!(stream.next().await.unwrap().is_ok());
    connector.cut();
    let end = bounded("the stream's end", async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    })
    .await;
    assert!(
        matches!(end, Some(Err(Error::ConnectionLost { .. }))),
        "{end:?}"
    );
}

#[test]
fn a_client_rides_through_a_server_that_dies_and_comes_back_on_the_same_port() {
    // The server runs on a runtime of its own, so that shutting that
    // runtime down kills it as a crash would: every socket closed at once.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let start_server = |listener: std::net::TcpListener| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.spawn(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let server = Server::builder().build(CalcServer::new(Calc::new(Probe::default())));
            let _ = server.serve(listener).await;
        });
        runtime
    };
    let first = start_server(std_listener);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let policy = Reconnect::new().backoff(Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(200),
        ));
        let client = Client::builder()
            .reconnect(policy)
            .connect(addr, &INFO)
            .await
            .unwrap();
        let client = CalcClient::new(client);
        assert_eq!(client.add(1, 2).await.unwrap(), 3);

        first.shutdown_background();
        until_state(&client, "the loss", |s| !s.is_open()).await;
        // Back on the same port.
        let listener = loop {
            match std::net::TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        let second = start_server(listener);
        let patient = client.with_options(CallOptions::new().timeout(Duration::from_secs(10)));
        assert_eq!(patient.add(20, 22).await.unwrap(), 42);
        client.inner().close().await;
        second.shutdown_background();
    });
}

#[tokio::test(start_paused = true)]
async fn credentials_are_fresh_for_each_dial_and_a_refusal_closes_the_client() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    // The server takes tokens 1 and 2; the client's third is refused.
    let server = Server::builder()
        .authenticate(|conn| {
            let token = conn.metadata().get("token").map(str::to_owned);
            async move {
                match token.as_deref() {
                    Some("1" | "2") => Ok(cmdstream::Principal::new(())),
                    _ => Err(cmdstream::AuthError::unauthenticated("token expired")),
                }
            }
        })
        .build(CalcServer::new(Calc::new(Probe::default())));
    let connector = Scripted::new([], Step::serve(&server));
    let issued = Arc::new(AtomicU32::new(0));
    let policy = Reconnect::new().connection_metadata({
        let issued = issued.clone();
        move || {
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            [("token", n.to_string())].into_iter().collect()
        }
    });
    let client = client(&connector, policy).await.unwrap();
    assert_eq!(client.add(1, 1).await.unwrap(), 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    connector.cut();
    let patient = client.with_options(CallOptions::new().timeout(Duration::from_secs(60)));
    assert_eq!(patient.add(2, 2).await.unwrap(), 4, "token 2 was accepted");
    tokio::time::sleep(Duration::from_secs(2)).await;
    connector.cut();
    until_state(&client, "closed", |s| {
        matches!(s, ConnectionState::Closed(_))
    })
    .await;
    let err = client.add(3, 3).await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated(_)), "{err:?}");
    assert_eq!(issued.load(Ordering::SeqCst), 3);
    assert_eq!(connector.dials().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_policy_gives_up_after_its_attempts_with_the_last_error() {
    let (server, _) = calc_server();
    let connector = Scripted::new([], Step::serve(&server));
    let client = client(&connector, Reconnect::new().max_attempts(3))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    connector.set([], Step::Refuse);
    connector.cut();
    until_state(&client, "closed", |s| {
        matches!(s, ConnectionState::Closed(_))
    })
    .await;
    let err = client.add(1, 1).await.unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
    // The first dial, then three that failed.
    assert_eq!(connector.dials().len(), 4);
    assert!(client.inner().is_closed());
}

#[tokio::test(start_paused = true)]
async fn the_servers_idle_timeout_is_invisible_to_a_reconnecting_client() {
    let server = Server::builder()
        .idle_timeout(Some(Duration::from_secs(30)))
        .build(CalcServer::new(Calc::new(Probe::default())));
    let connector = Scripted::new([], Step::serve(&server));
    let client = client(&connector, Reconnect::new()).await.unwrap();
    assert_eq!(client.add(1, 2).await.unwrap(), 3);
    // Idle past the timeout (a connection counts as idle after a whole
    // period without a command, so two periods), three times: each time
    // the server says it is going away and the client dials again; no
    // call sees it.
    for round in 1..=3u32 {
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(
            client.add(round.into(), 1).await.unwrap(),
            i64::from(round) + 1
        );
    }
    assert_eq!(
        connector.dials().len(),
        4,
        "each idle timeout ends a connection: {:?}",
        connector.dials()
    );
}

#[tokio::test(start_paused = true)]
async fn handles_made_before_and_after_a_reconnect_all_reach_the_new_connection() {
    let (server, _) = calc_server();
    let connector = Scripted::new([], Step::serve(&server));
    let client = client(&connector, Reconnect::new()).await.unwrap();
    let before = client.clone();
    let with_options = client.with_options(CallOptions::new().timeout(Duration::from_secs(60)));
    assert_eq!(before.add(1, 1).await.unwrap(), 2);

    connector.cut();
    until_state(&client, "the loss", |s| !s.is_open()).await;
    until_state(&client, "the new connection", |s| s.is_open()).await;
    let after = client.clone();
    for (name, handle) in [
        ("before", &before),
        ("options", &with_options),
        ("after", &after),
    ] {
        for i in 0..3 {
            assert_eq!(handle.add(i, 1).await.unwrap(), i + 1, "{name}");
        }
    }
    assert_eq!(connector.dials().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn connections_that_never_stay_up_count_against_the_attempts() {
    // Every connection is sent away almost at once (a tiny idle timeout).
    let server = Server::builder()
        .idle_timeout(Some(Duration::from_millis(5)))
        .build(CalcServer::new(Calc::new(Probe::default())));
    let connector = Scripted::new([], Step::serve(&server));
    let client = client(&connector, Reconnect::new().max_attempts(3))
        .await
        .unwrap();
    until_state(&client, "closed", |s| {
        matches!(s, ConnectionState::Closed(_))
    })
    .await;
    assert_eq!(connector.dials().len(), 3, "{:?}", connector.dials());
}

#[tokio::test(start_paused = true)]
async fn an_idempotent_call_that_may_have_run_is_never_reported_as_not_run() {
    let (server, probe) = calc_server();
    // The first connection serves; every dial after it is refused.
    let connector = Scripted::new([Step::serve(&server)], Step::Refuse);
    let client = client(&connector, Reconnect::new().max_attempts(2))
        .await
        .unwrap();
    let idempotent = client.with_options(CallOptions::new().idempotent(true));
    let call = tokio::spawn(async move { idempotent.sleep(60_000).await });
    cmdstream_tests::eventually("the call runs", || Probe::get(&probe.started) == 1).await;
    connector.cut();
    let err = bounded("the call", call).await.unwrap().unwrap_err();
    assert!(
        matches!(err, Error::ConnectionLost { sent: true, .. }),
        "it may have run: {err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_state_watch_does_not_keep_a_dropped_client_connected() {
    let (server, _) = calc_server();
    let connector = Scripted::new([], Step::serve(&server));
    let client = Client::builder()
        .connector(connector.clone())
        .keepalive(None)
        .connect("scripted:1", &INFO)
        .await
        .unwrap();
    let mut states = client.watch_state();
    assert_eq!(states.changed().await, Some(ConnectionState::Open));
    drop(client);
    let mut last = None;
    while let Some(state) = bounded("the close", states.changed()).await {
        last = Some(state);
    }
    assert!(matches!(last, Some(ConnectionState::Closed(_))), "{last:?}");
    cmdstream_tests::eventually("the server saw it go", || server.connections() == 0).await;
}
