//! The circuit breaker end to end, on paused time: it opens after the
//! failures it is set for, fails calls at once while open without sending
//! them, probes after its pause and closes on success (or opens again on
//! failure), does not count a command that failed on the server unless
//! told to, and in a group skips the member whose circuit is open.

use std::time::Duration;

use cmdstream::{
    Balance, BreakerState, CallOptions, CircuitBreaker, Client, Endpoint, Error, Group, Server,
};
use cmdstream_tests::calc::INFO;
use cmdstream_tests::scripted::{ByEndpoint, Scripted, Step};
use cmdstream_tests::{Calc, CalcClient, CalcServer, Probe};

fn calc_server() -> (Server<CalcServer>, Probe) {
    let probe = Probe::default();
    let server = Server::builder().build(CalcServer::new(Calc::new(probe.clone())));
    (server, probe)
}

async fn client(connector: &Scripted, breaker: CircuitBreaker) -> CalcClient {
    let client = Client::builder()
        .connector(connector.clone())
        .keepalive(None)
        .circuit_breaker(breaker)
        .connect("scripted:1", &INFO)
        .await
        .unwrap();
    CalcClient::new(client)
}

#[tokio::test(start_paused = true)]
async fn it_opens_fails_fast_probes_and_closes() {
    let (server, probe) = calc_server();
    let connector = Scripted::new([], Step::serve(&server));
    let breaker = CircuitBreaker::new()
        .consecutive_failures(3)
        .open_for(Duration::from_secs(5));
    let client = client(&connector, breaker).await;
    assert_eq!(client.inner().breaker(), Some(BreakerState::Closed));
    let hasty = client.with_options(CallOptions::new().timeout(Duration::from_millis(100)));

    for _ in 0..3 {
        assert!(matches!(hasty.sleep(60_000).await, Err(Error::Timeout)));
    }
    assert_eq!(Probe::get(&probe.started), 3);
    // Open: refused at once, nothing sent.
    match client.add(1, 1).await {
        Err(Error::CircuitOpen { endpoint, retry_in }) => {
            assert_eq!(&*endpoint, "scripted:1");
            assert!(retry_in <= Duration::from_secs(5), "{retry_in:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client.inner().breaker(),
        Some(BreakerState::Open { .. })
    ));
    let stream = client.countdown(3).unwrap();
    let first = futures_util::StreamExt::collect::<Vec<_>>(stream).await;
    assert!(
        matches!(first[..], [Err(Error::CircuitOpen { .. })]),
        "{first:?}"
    );
    assert_eq!(Probe::get(&probe.started), 3);

    // After the pause, a probe goes through and its success closes it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(client.add(2, 3).await.unwrap(), 5);
    assert_eq!(client.inner().breaker(), Some(BreakerState::Closed));
    assert_eq!(client.add(4, 4).await.unwrap(), 8);

    // A failed probe opens it again.
    for _ in 0..3 {
        assert!(matches!(hasty.sleep(60_000).await, Err(Error::Timeout)));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(matches!(hasty.sleep(60_000).await, Err(Error::Timeout)));
    assert!(matches!(
        client.add(1, 1).await,
        Err(Error::CircuitOpen { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_command_that_fails_on_the_server_counts_only_when_told_to() {
    let (server, _) = calc_server();
    let connector = Scripted::new([], Step::serve(&server));
    let lenient = client(&connector, CircuitBreaker::new().consecutive_failures(2)).await;
    for _ in 0..5 {
        assert!(matches!(lenient.boom().await, Err(Error::Remote(_))));
    }
    assert_eq!(lenient.inner().breaker(), Some(BreakerState::Closed));

    let strict = client(
        &connector,
        CircuitBreaker::new()
            .consecutive_failures(2)
            .count_remote(true),
    )
    .await;
    for _ in 0..2 {
        assert!(matches!(strict.boom().await, Err(Error::Remote(_))));
    }
    assert!(matches!(
        strict.boom().await,
        Err(Error::CircuitOpen { .. })
    ));
}

/// A service one of whose servers never answers.
#[cmdstream::receiver]
pub trait Work {
    /// Which server did it.
    async fn work(&self) -> u32;
}

struct Healthy(u32);

impl Work for Healthy {
    async fn work(&self) -> u32 {
        self.0
    }
}

#[tokio::test(start_paused = true)]
async fn a_group_skips_the_member_whose_circuit_is_open_and_probes_it_later() {
    let broken = Server::builder().build(WorkServer::new(Hangs));
    let healthy = Server::builder().build(WorkServer::new(Healthy(1)));
    let endpoints = [Endpoint::host("broken", 1), Endpoint::host("healthy", 1)];
    let connector = ByEndpoint::new([
        (
            endpoints[0].clone(),
            Scripted::new([], Step::serve(&broken)),
        ),
        (
            endpoints[1].clone(),
            Scripted::new([], Step::serve(&healthy)),
        ),
    ]);
    let client = Client::builder()
        .connector(connector)
        .keepalive(None)
        .timeout(Duration::from_millis(100))
        .circuit_breaker(
            CircuitBreaker::new()
                .consecutive_failures(2)
                .open_for(Duration::from_secs(30)),
        )
        .connect_group(
            Group::new().balance(Balance::RoundRobin),
            endpoints,
            WorkClient::INFO,
        )
        .await
        .unwrap();
    let client = WorkClient::from(client);

    // Round-robin: every other call goes to the broken server, until its
    // circuit opens after two timeouts.
    let mut timeouts = 0;
    for _ in 0..4 {
        match client.work().await {
            Ok(1) => {}
            Err(Error::Timeout) => timeouts += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(timeouts, 2);
    let breakers: Vec<_> = client
        .client()
        .members()
        .iter()
        .map(|m| m.breaker)
        .collect();
    assert!(
        matches!(
            breakers[..],
            [Some(BreakerState::Open { .. }), Some(BreakerState::Closed)]
        ),
        "{breakers:?}"
    );
    // Now every call goes to the healthy one.
    for _ in 0..20 {
        assert_eq!(client.work().await.unwrap(), 1);
    }
    // After the pause, one call probes the broken server; it fails, and the
    // circuit opens again, while the healthy one takes the rest.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let mut timeouts = 0;
    for _ in 0..20 {
        match client.work().await {
            Ok(1) => {}
            Err(Error::Timeout) => timeouts += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(timeouts, 1, "one probe");
    assert!(matches!(
        client.client().members()[0].breaker,
        Some(BreakerState::Open { .. })
    ));
}

struct Hangs;

impl Work for Hangs {
    async fn work(&self) -> u32 {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_refusal_by_a_server_going_away_does_not_open_the_circuit() {
    let (old, _) = calc_server();
    let (new, new_probe) = calc_server();
    let connector = Scripted::new([Step::serve(&old)], Step::serve(&new));
    // One call in flight at a time, and the most sensitive breaker.
    let client = Client::builder()
        .connector(connector.clone())
        .keepalive(None)
        .max_in_flight(1)
        .circuit_breaker(CircuitBreaker::new().consecutive_failures(1))
        .connect("scripted:1", &INFO)
        .await
        .unwrap();
    let client = CalcClient::new(client);
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.sleep(100).await }
    });
    tokio::task::yield_now().await;
    // Queued behind the first: when the old server goes away, it is
    // refused unsent, which says nothing of the endpoint's health.
    let second = tokio::spawn({
        let client = client.clone();
        async move { client.sleep(1).await }
    });
    tokio::task::yield_now().await;
    old.shutdown().await;
    assert_eq!(first.await.unwrap().unwrap(), 100);
    assert_eq!(
        second.await.unwrap().unwrap(),
        1,
        "sent again, not refused by the breaker"
    );
    assert_eq!(Probe::get(&new_probe.finished), 1);
    assert_eq!(client.inner().breaker(), Some(BreakerState::Closed));
}

#[tokio::test(start_paused = true)]
async fn a_stream_does_not_take_the_probe() {
    let (server, probe) = calc_server();
    let connector = Scripted::new([], Step::serve(&server));
    let breaker = CircuitBreaker::new()
        .consecutive_failures(1)
        .open_for(Duration::from_secs(5));
    let client = client(&connector, breaker).await;
    let hasty = client.with_options(CallOptions::new().timeout(Duration::from_millis(100)));
    assert!(matches!(hasty.sleep(60_000).await, Err(Error::Timeout)));
    tokio::time::sleep(Duration::from_secs(5)).await;
    // A stream first: it goes, but the unary call after it is the probe.
    let items = futures_util::StreamExt::collect::<Vec<_>>(client.countdown(2).unwrap()).await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(client.add(1, 2).await.unwrap(), 3);
    assert_eq!(client.inner().breaker(), Some(BreakerState::Closed));
    assert_eq!(Probe::get(&probe.started), 1);
}
