//! The metrics (feature `metrics`), read back from the `metrics` crate's
//! debugging recorder: names, labels, units and values for calls on both
//! sides, connections, bytes and frames, keepalive failures, reconnects,
//! the circuit breaker and the states of reconnecting connections.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use cmdstream::metrics as names;
use cmdstream::{CallOptions, CircuitBreaker, Client, Error, Reconnect, Server};
use cmdstream_tests::calc::INFO;
use cmdstream_tests::raw::pipe;
use cmdstream_tests::scripted::{Scripted, Step};
use cmdstream_tests::{serve, CalcClient};
use metrics::Unit;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};

/// A recorder for this thread (the tests' runtime runs client and server
/// on it), with the units described. The debugging recorder's snapshots
/// take what they read (counters and gauges go back to zero, histograms
/// are emptied), so every snapshot is added to what was read before.
struct Recorded {
    snapshotter: Snapshotter,
    read: RefCell<HashMap<CompositeKey, Read>>,
    _guard: metrics::LocalRecorderGuard<'static>,
}

/// All that was read of one metric.
#[derive(Default, Clone)]
struct Read {
    unit: Option<Unit>,
    count: u64,
    /// Gauges move by increments: their value is the sum of what each
    /// snapshot read. `last`: what the last snapshot read, for gauges
    /// that are set.
    sum: f64,
    last: f64,
    values: Vec<f64>,
}

impl Recorded {
    fn install() -> Self {
        let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
        let guard = metrics::set_default_local_recorder(recorder);
        names::describe();
        Recorded {
            snapshotter: recorder.snapshotter(),
            read: RefCell::default(),
            _guard: guard,
        }
    }

    /// Every metric named `name` whose labels include `labels`.
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(MetricKind, Read)> {
        let mut read = self.read.borrow_mut();
        for (key, unit, _, value) in self.snapshotter.snapshot().into_vec() {
            let entry = read.entry(key).or_default();
            entry.unit = unit.or(entry.unit);
            match value {
                DebugValue::Counter(n) => entry.count += n,
                DebugValue::Gauge(g) => {
                    entry.sum += g.0;
                    entry.last = g.0;
                }
                DebugValue::Histogram(values) => entry.values.extend(values.iter().map(|v| v.0)),
            }
        }
        read.iter()
            .filter(|(key, _)| {
                let key = key.key();
                key.name() == name
                    && labels
                        .iter()
                        .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
            })
            .map(|(key, read)| (key.kind(), read.clone()))
            .collect()
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.find(name, labels).iter().map(|(_, r)| r.count).sum()
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).iter().map(|(_, r)| r.sum).sum()
    }

    fn gauge_set(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).iter().map(|(_, r)| r.last).sum()
    }

    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.find(name, labels)
            .into_iter()
            .flat_map(|(_, r)| r.values)
            .collect()
    }

    fn unit(&self, name: &str) -> Option<Unit> {
        self.find(name, &[]).into_iter().find_map(|(_, r)| r.unit)
    }

    fn kind(&self, name: &str) -> Option<MetricKind> {
        self.find(name, &[]).first().map(|(kind, _)| *kind)
    }
}

fn calc_server() -> Server<cmdstream_tests::CalcServer> {
    Server::builder().build(cmdstream_tests::CalcServer::new(
        cmdstream_tests::calc::Calc::new(Default::default()),
    ))
}

/// A client builder dialing through `connector`, without keepalive.
fn over(connector: &Scripted) -> cmdstream::ClientBuilder {
    Client::builder()
        .connector(connector.clone())
        .keepalive(None)
}

const ADD: (&str, &str) = ("rpc.method", "Calc/add");
const SLEEP: (&str, &str) = ("rpc.method", "Calc/sleep");

#[tokio::test]
async fn calls_connections_and_bytes_are_counted_on_both_sides() {
    let m = Recorded::install();
    let srv = serve().await;
    let client = cmdstream_tests::connect(srv.addr).await;
    for i in 0..5 {
        assert_eq!(client.add(i, 1).await.unwrap(), i + 1);
    }
    let hasty = client.with_options(CallOptions::new().timeout(Duration::from_millis(20)));
    assert!(matches!(hasty.sleep(5_000).await, Err(Error::Timeout)));
    cmdstream_tests::eventually("the server saw every call end", || {
        m.counter(names::SERVER_CALLS_FINISHED, &[SLEEP]) == 1
            && m.counter(names::SERVER_CALLS_FINISHED, &[ADD]) == 5
    })
    .await;

    for (started, finished, duration) in [
        (
            names::CLIENT_CALLS_STARTED,
            names::CLIENT_CALLS_FINISHED,
            names::CLIENT_CALL_DURATION,
        ),
        (
            names::SERVER_CALLS_STARTED,
            names::SERVER_CALLS_FINISHED,
            names::SERVER_CALL_DURATION,
        ),
    ] {
        assert_eq!(m.counter(started, &[ADD]), 5, "{started}");
        assert_eq!(
            m.counter(finished, &[ADD, ("outcome", "ok")]),
            5,
            "{finished}"
        );
        assert_eq!(
            m.counter(finished, &[SLEEP, ("outcome", "timeout")]),
            1,
            "{finished}"
        );
        let seconds = m.histogram(duration, &[ADD, ("outcome", "ok")]);
        assert_eq!(seconds.len(), 5, "{duration}");
        assert!(
            seconds.iter().all(|s| (0.0..5.0).contains(s)),
            "{seconds:?}"
        );
        assert_eq!(m.unit(duration), Some(Unit::Seconds), "{duration}");
    }
    assert_eq!(m.gauge(names::CLIENT_CALLS_ACTIVE, &[ADD]), 0.0);
    assert_eq!(m.gauge(names::SERVER_CALLS_ACTIVE, &[ADD]), 0.0);
    assert_eq!(m.gauge(names::SERVER_CALLS_ACTIVE, &[SLEEP]), 0.0);

    for side in ["client", "server"] {
        let side = [("side", side)];
        assert_eq!(m.gauge(names::CONNECTIONS_OPEN, &side), 1.0, "{side:?}");
        assert_eq!(m.counter(names::CONNECTIONS_OPENED, &side), 1, "{side:?}");
        assert!(m.counter(names::BYTES_READ, &side) > 0, "{side:?}");
        assert!(m.counter(names::BYTES_WRITTEN, &side) > 0, "{side:?}");
        let frames = m.histogram(names::FRAMES_PER_WRITE, &side);
        assert!(
            !frames.is_empty() && frames.iter().all(|&n| n >= 1.0),
            "{frames:?}"
        );
    }
    assert_eq!(m.unit(names::BYTES_READ), Some(Unit::Bytes));
    assert_eq!(m.kind(names::CONNECTIONS_OPEN), Some(MetricKind::Gauge));

    client.inner().close().await;
    cmdstream_tests::eventually("both ends counted the close", || {
        m.gauge(names::CONNECTIONS_OPEN, &[("side", "client")]) == 0.0
            && m.gauge(names::CONNECTIONS_OPEN, &[("side", "server")]) == 0.0
    })
    .await;
    srv.server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_server_that_falls_silent_counts_a_keepalive_failure() {
    let m = Recorded::install();
    let (ours, mut theirs) = tokio::io::duplex(1 << 16);
    let fake = tokio::spawn(async move {
        pipe::accept(&mut theirs, 0, 32).await;
        // Reads everything, answers nothing.
        while pipe::read_frame(&mut theirs).await.is_some() {}
    });
    let client = Client::builder()
        .keepalive(Some(Duration::from_secs(5)))
        .connect_io(ours, &INFO, "fake")
        .await
        .unwrap();
    let client = CalcClient::new(client);
    let lost = client.add(1, 2).await.unwrap_err();
    assert!(matches!(lost, Error::ConnectionLost { .. }), "{lost:?}");
    assert_eq!(
        m.counter(names::KEEPALIVE_FAILURES, &[("side", "client")]),
        1
    );
    fake.await.unwrap();
}

#[tokio::test]
async fn reconnects_and_supervisor_states_are_counted() {
    let m = Recorded::install();
    let server = calc_server();
    let connector = Scripted::new([], Step::serve(&server));
    let client = over(&connector)
        .reconnect(Reconnect::new())
        .connect("scripted:1", &INFO)
        .await
        .unwrap();
    let client = CalcClient::new(client);
    assert_eq!(client.add(1, 1).await.unwrap(), 2);
    let states = |state| m.gauge(names::RECONNECTING_CONNECTIONS, &[("state", state)]);
    cmdstream_tests::eventually("the supervisor counted itself up", || states("up") == 1.0).await;

    connector.cut();
    cmdstream_tests::eventually("the client reconnected", || {
        m.counter(names::RECONNECTS, &[("server.address", "scripted:1")]) == 1
    })
    .await;
    assert_eq!(client.add(2, 2).await.unwrap(), 4);
    assert_eq!(states("up"), 1.0);
    assert_eq!(states("connecting"), 0.0);

    client.inner().close().await;
    cmdstream_tests::eventually("the supervisor is gone from the count", || {
        ["connecting", "up", "draining", "backing_off", "closed"]
            .iter()
            .all(|s| states(s) == 0.0)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn breaker_transitions_set_its_state() {
    let m = Recorded::install();
    let server = calc_server();
    let connector = Scripted::new([], Step::serve(&server));
    let client = over(&connector)
        .circuit_breaker(
            CircuitBreaker::new()
                .consecutive_failures(2)
                .open_for(Duration::from_secs(5)),
        )
        .connect("scripted:1", &INFO)
        .await
        .unwrap();
    let client = CalcClient::new(client);
    let hasty = client.with_options(CallOptions::new().timeout(Duration::from_millis(100)));
    let state = || m.gauge_set(names::BREAKER_STATE, &[("server.address", "scripted:1")]);
    for _ in 0..2 {
        assert!(matches!(hasty.sleep(60_000).await, Err(Error::Timeout)));
    }
    assert!(matches!(
        client.add(1, 1).await,
        Err(Error::CircuitOpen { .. })
    ));
    assert_eq!(state(), 2.0, "open");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(client.add(2, 3).await.unwrap(), 5);
    assert_eq!(state(), 0.0, "closed after the probe");
}

/// Unary commands of a generated service, answered at once (without a
/// `Call`) or after a wait (through one).
#[cmdstream::receiver]
pub trait Tally {
    /// `n`, at once.
    async fn now(&self, n: u32) -> u32;
    /// `n`, after a millisecond.
    async fn later(&self, n: u32) -> u32;
    /// Panics.
    async fn broken(&self) -> u32;
    /// 4 KiB, more than the client takes.
    async fn large(&self) -> Vec<u8>;
}

struct TallyImpl;

impl Tally for TallyImpl {
    async fn now(&self, n: u32) -> u32 {
        n
    }

    async fn later(&self, n: u32) -> u32 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        n
    }

    async fn broken(&self) -> u32 {
        panic!("broken on purpose")
    }

    async fn large(&self) -> Vec<u8> {
        vec![1; 4096]
    }
}

#[tokio::test]
async fn unary_commands_answered_at_once_or_after_a_wait_are_counted_alike() {
    let m = Recorded::install();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(TallyServer::new(TallyImpl));
    tokio::spawn(async move { server.serve(listener).await });
    let client = TallyClient::from_client(
        Client::builder()
            .max_frame_size(1024)
            .connect(addr, <TallyServer<TallyImpl> as cmdstream::Dispatch>::INFO)
            .await
            .unwrap(),
    );
    for n in 0..3 {
        assert_eq!(client.now(n).await.unwrap(), n);
        assert_eq!(client.later(n).await.unwrap(), n);
    }
    assert!(matches!(client.broken().await, Err(Error::Remote(_))));
    assert!(matches!(
        client.large().await,
        Err(Error::FrameTooLarge { .. })
    ));

    let finished = |method: &str, outcome: &str| {
        let method = format!("Tally/{method}");
        m.counter(
            names::SERVER_CALLS_FINISHED,
            &[("rpc.method", method.as_str()), ("outcome", outcome)],
        )
    };
    cmdstream_tests::eventually("the server saw every call end", || {
        finished("now", "ok") == 3
            && finished("later", "ok") == 3
            && finished("broken", "error") == 1
            && finished("large", "error") == 1
    })
    .await;
    for method in ["Tally/now", "Tally/later", "Tally/broken", "Tally/large"] {
        let method = [("rpc.method", method)];
        assert_eq!(
            m.counter(names::SERVER_CALLS_STARTED, &method),
            m.counter(names::SERVER_CALLS_FINISHED, &method),
            "{method:?}"
        );
        assert_eq!(
            m.gauge(names::SERVER_CALLS_ACTIVE, &method),
            0.0,
            "{method:?}"
        );
    }
    assert_eq!(
        m.histogram(names::SERVER_CALL_DURATION, &[("rpc.method", "Tally/now")])
            .len(),
        3
    );
}
