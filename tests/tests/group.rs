//! A client over a group of connections: calls spread by each strategy,
//! a member that dies is skipped (its calls in flight fail typed, or go to
//! another member if idempotent), endpoints come and go under load without
//! a failed call, calls wait while no member is up, and a group of servers
//! that can never be used closes typed. Over in-memory pipes with a script
//! per endpoint, on paused time; the DNS feed over real loopback TCP.

use std::time::Duration;

use cmdstream::{
    Balance, CallOptions, Change, Client, ConnectionState, Endpoint, Error, Group, Reconnect,
    Server,
};
use cmdstream_tests::calc::INFO;
use cmdstream_tests::scripted::{ByEndpoint, Scripted, Step};
use cmdstream_tests::{Calc, CalcClient, CalcServer, Probe};
use futures_util::StreamExt;

/// Far longer than anything here takes; on paused time it costs nothing.
const BOUND: Duration = Duration::from_secs(3_600);

async fn bounded<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(BOUND, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} never happened"))
}

/// One in-process server per endpoint, each with its own probe.
struct Servers {
    endpoints: Vec<Endpoint>,
    probes: Vec<Probe>,
    connector: ByEndpoint,
}

fn servers(n: usize) -> Servers {
    let mut endpoints = Vec::new();
    let mut probes = Vec::new();
    let mut scripts = Vec::new();
    for i in 0..n {
        let probe = Probe::default();
        let server = Server::builder().build(CalcServer::new(Calc::new(probe.clone())));
        let endpoint = Endpoint::host(format!("server-{i}"), 7000);
        scripts.push((endpoint.clone(), Scripted::new([], Step::serve(&server))));
        endpoints.push(endpoint);
        probes.push(probe);
    }
    Servers {
        endpoints,
        probes,
        connector: ByEndpoint::new(scripts),
    }
}

impl Servers {
    /// `sleep` calls each server has started.
    fn started(&self) -> Vec<usize> {
        self.probes.iter().map(|p| Probe::get(&p.started)).collect()
    }

    fn script(&self, i: usize) -> &Scripted {
        self.connector.get(&self.endpoints[i])
    }
}

async fn group_client(
    servers: &Servers,
    group: Group,
    policy: Reconnect,
) -> Result<CalcClient, Error> {
    let client = Client::builder()
        .connector(servers.connector.clone())
        .keepalive(None)
        .reconnect(policy)
        .connect_group(group, servers.endpoints.clone(), &INFO)
        .await?;
    Ok(CalcClient::new(client))
}

#[tokio::test(start_paused = true)]
async fn round_robin_spreads_calls_evenly_over_every_member() {
    let servers = servers(3);
    let group = Group::new()
        .connections_per_endpoint(2)
        .balance(Balance::RoundRobin);
    let client = group_client(&servers, group, Reconnect::new())
        .await
        .unwrap();
    assert_eq!(client.inner().members().len(), 6);
    for _ in 0..60 {
        assert_eq!(client.sleep(0).await.unwrap(), 0);
    }
    assert_eq!(servers.started(), [20, 20, 20]);
}

#[tokio::test(start_paused = true)]
async fn the_load_aware_strategies_send_new_calls_to_the_less_loaded_member() {
    for balance in [Balance::LeastInFlight, Balance::PowerOfTwoChoices] {
        let servers = servers(2);
        let client = group_client(&servers, Group::new().balance(balance), Reconnect::new())
            .await
            .unwrap();
        // Ten long calls, one after another: each goes where fewer run, so
        // they split five and five.
        let mut long = Vec::new();
        for _ in 0..10 {
            let client = client.clone();
            long.push(tokio::spawn(async move { client.sleep(60_000).await }));
            tokio::task::yield_now().await;
            let n = long.len();
            cmdstream_tests::eventually("the long call started", || {
                servers.started().iter().sum::<usize>() == n
            })
            .await;
        }
        assert_eq!(servers.started(), [5, 5], "{balance:?}");
        // One more: the two are level, so it goes to either.
        let client_ = client.clone();
        long.push(tokio::spawn(async move { client_.sleep(60_000).await }));
        cmdstream_tests::eventually("the eleventh call started", || {
            servers.started().iter().sum::<usize>() == 11
        })
        .await;
        let before = servers.started();
        let less = if before[0] < before[1] { 0 } else { 1 };
        // Every short call now goes to the member with fewer in flight.
        for _ in 0..10 {
            client.sleep(0).await.unwrap();
        }
        let after = servers.started();
        assert_eq!(after[1 - less], before[1 - less], "{balance:?}: {after:?}");
        assert_eq!(after[less], before[less] + 10, "{balance:?}: {after:?}");
        let loads: Vec<_> = client
            .inner()
            .members()
            .iter()
            .map(|m| m.in_flight)
            .collect();
        assert_eq!(loads.iter().sum::<u32>(), 11, "{loads:?}");
        for task in long {
            task.abort();
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_member_that_dies_is_skipped_and_its_calls_in_flight_fail_typed_or_move() {
    let servers = servers(3);
    let group = Group::new().balance(Balance::RoundRobin);
    let client = group_client(&servers, group, Reconnect::new())
        .await
        .unwrap();
    // One long call on each server, and one idempotent one on each.
    let plain: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.sleep(1_000).await })
        })
        .collect();
    let idempotent_client = client.with_options(CallOptions::new().idempotent(true));
    let idempotent: Vec<_> = (0..3)
        .map(|_| {
            let client = idempotent_client.clone();
            tokio::spawn(async move { client.sleep(1_000).await })
        })
        .collect();
    cmdstream_tests::eventually("six calls started", || {
        servers.started().iter().sum::<usize>() == 6
    })
    .await;
    assert_eq!(servers.started(), [2, 2, 2]);

    // Server 0 dies and stays down.
    servers.script(0).set([], Step::Refuse);
    servers.script(0).cut();

    let mut lost = 0;
    for call in plain {
        match bounded("a plain call", call).await.unwrap() {
            Ok(1_000) => {}
            Err(Error::ConnectionLost { sent: true, .. }) => lost += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(lost, 1, "only the call on the dead server is lost");
    for call in idempotent {
        assert_eq!(
            bounded("an idempotent call", call).await.unwrap().unwrap(),
            1_000
        );
    }
    // The idempotent call from server 0 ran again elsewhere.
    assert_eq!(servers.started()[1] + servers.started()[2], 5);

    let before = servers.started();
    for _ in 0..60 {
        client.sleep(0).await.unwrap();
    }
    let after = servers.started();
    assert_eq!(after[0], before[0], "nothing goes to the dead server");
    assert_eq!(after[1] + after[2], before[1] + before[2] + 60);
    let states: Vec<_> = client
        .inner()
        .members()
        .into_iter()
        .map(|m| m.state.is_open())
        .collect();
    assert_eq!(states, [false, true, true]);
    assert!(client.inner().state().is_open());
}

#[tokio::test(start_paused = true)]
async fn endpoints_added_and_removed_under_load_cost_no_call() {
    let servers = servers(2);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let feed = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    tx.send(Change::Insert(servers.endpoints[0].clone()))
        .unwrap();
    let client = Client::builder()
        .connector(servers.connector.clone())
        .keepalive(None)
        .timeout(Duration::from_secs(30))
        .connect_discovered(Group::new(), feed, &INFO)
        .await
        .unwrap();
    let client = CalcClient::new(client);

    // Eight callers, each with calls of 5 ms, without a pause.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let mut failed = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Err(e) = client.sleep(5).await {
                        failed.push(e);
                    }
                }
                failed
            })
        })
        .collect();
    cmdstream_tests::eventually("server 0 serves", || servers.started()[0] > 50).await;

    tx.send(Change::Insert(servers.endpoints[1].clone()))
        .unwrap();
    cmdstream_tests::eventually("server 1 serves", || servers.started()[1] > 50).await;

    tx.send(Change::Remove(servers.endpoints[0].clone()))
        .unwrap();
    cmdstream_tests::eventually("server 0 drained", || {
        client.inner().members().len() == 1
            && Probe::get(&servers.probes[0].started) == Probe::get(&servers.probes[0].finished)
    })
    .await;
    let removed_at = servers.started()[0];
    let serving_at = servers.started()[1];
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        servers.started()[0],
        removed_at,
        "a removed server gets no call"
    );
    assert!(servers.started()[1] > serving_at + 100);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for caller in callers {
        let failed = bounded("a caller", caller).await.unwrap();
        assert!(failed.is_empty(), "{failed:?}");
    }
    assert_eq!(
        Probe::get(&servers.probes[0].dropped),
        0,
        "nothing was cut short"
    );
    let members = client.inner().members();
    assert_eq!(members[0].endpoint, servers.endpoints[1]);
}

#[tokio::test(start_paused = true)]
async fn calls_wait_while_no_member_is_up_and_time_out_at_their_deadline() {
    let servers = servers(2);
    servers.script(0).set([], Step::Refuse);
    servers
        .script(1)
        .set([Step::Refuse, Step::Refuse], Step::Refuse);
    // Neither is up: the first connect fails fast, with the dial's error.
    let refused = group_client(&servers, Group::new(), Reconnect::new()).await;
    assert!(matches!(refused, Err(Error::Io(_))), "{refused:?}");

    // Lazily, calls wait; server 1 comes up after three refusals.
    let (server, _) = {
        let probe = Probe::default();
        let server = Server::builder().build(CalcServer::new(Calc::new(probe.clone())));
        (server, probe)
    };
    servers
        .script(1)
        .set([Step::Refuse, Step::Refuse], Step::serve(&server));
    let client = group_client(&servers, Group::new(), Reconnect::new().lazy(true))
        .await
        .unwrap();
    let hasty = client.with_options(CallOptions::new().timeout(Duration::from_millis(100)));
    assert!(matches!(hasty.add(1, 1).await, Err(Error::Timeout)));
    let patient = client.with_options(CallOptions::new().timeout(Duration::from_secs(60)));
    assert_eq!(patient.add(20, 22).await.unwrap(), 42);
    let members = client.inner().members();
    assert!(
        !members[0].state.is_open() && members[1].state.is_open(),
        "{members:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_group_of_servers_that_can_never_be_used_closes_with_their_error() {
    let other = cmdstream_tests::other::other_server();
    let endpoints = [Endpoint::host("a", 1), Endpoint::host("b", 1)];
    let connector = ByEndpoint::new(
        endpoints
            .iter()
            .map(|e| (e.clone(), Scripted::new([], Step::serve(&other)))),
    );
    let refused = Client::builder()
        .connector(connector.clone())
        .connect_group(Group::new(), endpoints.clone(), &INFO)
        .await;
    assert!(
        matches!(refused, Err(Error::Incompatible(_))),
        "{refused:?}"
    );

    let client = Client::builder()
        .connector(connector)
        .reconnect(Reconnect::new().lazy(true))
        .connect_group(Group::new(), endpoints, &INFO)
        .await
        .unwrap();
    let client = CalcClient::new(client);
    let err = client.add(1, 1).await.unwrap_err();
    assert!(matches!(err, Error::Incompatible(_)), "{err:?}");
    assert!(
        matches!(client.inner().state(), ConnectionState::Closed(_)),
        "{:?}",
        client.inner().state()
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_counts_in_its_members_calls_in_flight_while_it_lives() {
    let servers = servers(1);
    let client = group_client(&servers, Group::new(), Reconnect::new())
        .await
        .unwrap();
    let in_flight = |c: &CalcClient| c.inner().members()[0].in_flight;
    assert_eq!(in_flight(&client), 0);
    let mut stream = client.countdown(3).unwrap();
    assert_eq!(in_flight(&client), 1);
    assert_eq!(stream.next().await.unwrap().unwrap(), 3);
    drop(stream);
    assert_eq!(in_flight(&client), 0);
    let items: Vec<_> = client.countdown(2).unwrap().collect().await;
    assert_eq!(items.len(), 3);
    assert_eq!(in_flight(&client), 0);
}

#[tokio::test(start_paused = true)]
async fn the_state_watch_follows_the_group() {
    let servers = servers(2);
    let client = group_client(&servers, Group::new(), Reconnect::new())
        .await
        .unwrap();
    let mut states = client.inner().watch_state();
    assert_eq!(states.changed().await, Some(ConnectionState::Open));
    // One member down: the group stays open.
    servers.script(0).set([], Step::Refuse);
    servers.script(0).cut();
    // Both down: reconnecting.
    servers.script(1).set([], Step::Refuse);
    servers.script(1).cut();
    let next = bounded("a change", states.changed()).await.unwrap();
    assert!(
        matches!(next, ConnectionState::Reconnecting { .. }),
        "{next:?}"
    );
    client.inner().close().await;
    let mut last = None;
    while let Some(state) = bounded("the end", states.changed()).await {
        last = Some(state);
    }
    assert!(matches!(last, Some(ConnectionState::Closed(_))), "{last:?}");
}

#[tokio::test]
async fn a_dns_feed_finds_a_server_by_name() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = Server::builder().build(CalcServer::new(Calc::new(Probe::default())));
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    let feed = cmdstream::dns("localhost", port, Duration::from_secs(3_600));
    let client = Client::builder()
        .reconnect(Reconnect::new().backoff(cmdstream::Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(100),
        )))
        .connect_discovered(Group::new(), feed, &INFO)
        .await
        .unwrap();
    let client = CalcClient::new(client);
    let patient = client.with_options(CallOptions::new().timeout(Duration::from_secs(10)));
    assert_eq!(patient.add(2, 3).await.unwrap(), 5);
    let members = client.inner().members();
    assert!(
        members
            .iter()
            .any(|m| m.endpoint == Endpoint::Addr(([127, 0, 0, 1], port).into())),
        "{members:?}"
    );
    client.inner().close().await;
    server.shutdown().await;
    serving.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_member_that_comes_up_or_back_later_takes_calls_from_existing_handles() {
    let servers = servers(2);
    // Server 1 refuses the first dial: the group starts with one member up.
    let (server, probe) = {
        let probe = Probe::default();
        let server = Server::builder().build(CalcServer::new(Calc::new(probe.clone())));
        (server, probe)
    };
    servers.script(1).set([Step::Refuse], Step::serve(&server));
    let policy = Reconnect::new().backoff(cmdstream::Backoff::new(
        Duration::from_millis(100),
        Duration::from_secs(1),
    ));
    let client = group_client(&servers, Group::new().balance(Balance::RoundRobin), policy)
        .await
        .unwrap();
    let handle = client.clone();
    cmdstream_tests::eventually("member 1 up", || {
        client.inner().members()[1].state.is_open()
    })
    .await;
    for _ in 0..10 {
        handle.sleep(0).await.unwrap();
    }
    assert_eq!(
        Probe::get(&probe.started),
        5,
        "half the calls reach the late member"
    );

    // It goes down and comes back: the same handle reaches it again.
    servers.script(1).cut();
    cmdstream_tests::eventually("member 1 back", || {
        client.inner().members()[1].state.is_open() && servers.script(1).dials().len() >= 3
    })
    .await;
    for _ in 0..10 {
        handle.sleep(0).await.unwrap();
    }
    assert_eq!(Probe::get(&probe.started), 10);
}
