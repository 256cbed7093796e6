//! Shutdown and the connection life cycle: graceful drain, the grace
//! period, connect/disconnect hooks, closing on the last handle, and Unix
//! sockets.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmdstream::{Client, Error, Server};
use cmdstream_tests::calc::INFO;
use cmdstream_tests::raw::{self, pipe, RawConn};
use cmdstream_tests::{
    connect, eventually, serve, serve_with, Calc, CalcClient, CalcServer, Probe,
};
use futures_util::StreamExt;

/// Bounds a wait so that a bug fails the test instead of hanging it.
async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within 10 s"))
}

/// A client that gives up quickly on a server that does not answer.
async fn try_connect(addr: SocketAddr) -> Result<Client, Error> {
    Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .handshake_timeout(Duration::from_secs(2))
        .connect(addr, &INFO)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_calls_in_flight_and_refuses_new_work() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let probe = srv.probe.clone();

    let in_flight: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.sleep(300).await })
        })
        .collect();
    eventually("the sleeps started", || Probe::get(&probe.started) == 4).await;

    let shutdown = tokio::spawn({
        let server = srv.server.clone();
        async move { server.shutdown().await }
    });

    // New calls are turned away once the go-away is in; until then a call
    // may still slip in and succeed.
    let mut refused = None;
    for _ in 0..1_000 {
        match within("a call during shutdown", client.add(1, 1)).await {
            Ok(2) => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(e) => {
                refused = Some(e);
                break;
            }
            Ok(other) => panic!("1 + 1 = {other}"),
        }
    }
    let refused = refused.expect("calls were still accepted during shutdown");
    assert!(matches!(refused, Error::Unavailable(_)), "{refused:?}");
    let again = client.add(1, 1).await.unwrap_err();
    assert!(matches!(again, Error::Unavailable(_)), "{again:?}");
    // This handle can never work again: the error must not say to retry it.
    let text = again.to_string();
    assert!(!text.contains("retry"), "{text}");
    assert!(text.contains("connect again"), "{text}");

    // Every call in flight completes with its result.
    for call in in_flight {
        assert_eq!(
            within("a call in flight", call).await.unwrap().unwrap(),
            300
        );
    }
    assert_eq!(Probe::get(&probe.finished), 4);
    assert_eq!(Probe::get(&probe.dropped), 0);

    within("shutdown returned", shutdown).await.unwrap();
    within("serve returned", srv.task).await.unwrap().unwrap();
    assert_eq!(srv.server.connections(), 0);

    // The client knows, and so does anyone trying to connect.
    let after = client.add(1, 1).await.unwrap_err();
    assert!(matches!(after, Error::Unavailable(_)), "{after:?}");
    assert!(try_connect(srv.addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_while_the_server_drains_is_refused_not_left_hanging() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let probe = srv.probe.clone();

    // A long call keeps the server draining (the default grace is 30 s).
    let long = tokio::spawn({
        let client = client.clone();
        async move { client.sleep(60_000).await }
    });
    eventually("the sleep started", || Probe::get(&probe.started) == 1).await;
    tokio::spawn({
        let server = srv.server.clone();
        async move { server.shutdown().await }
    });

    // Poll for the go-away so that the shutdown has surely begun.
    for _ in 0..1_000 {
        if client.add(1, 1).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    // The handshake timeout (2 s) is far shorter than the drain: a refusal
    // has to come from the server, not from the client giving up.
    let err = try_connect(srv.addr).await.unwrap_err();
    assert!(
        matches!(err, Error::Unavailable(_) | Error::Io(_)),
        "a connection during the drain was not refused: {err:?}"
    );
    long.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_ends_by_stopping_the_commands_still_running() {
    let srv = serve_with(Server::builder().shutdown_grace(Duration::from_millis(100))).await;
    let client = connect(srv.addr).await;
    let probe = srv.probe.clone();

    let long = tokio::spawn({
        let client = client.clone();
        async move { client.sleep(60_000).await }
    });
    eventually("the sleep started", || Probe::get(&probe.started) == 1).await;

    within("shutdown returned", srv.server.shutdown()).await;
    within("serve returned", srv.task).await.unwrap().unwrap();

    let err = within("the call ended", long).await.unwrap().unwrap_err();
    assert!(matches!(err, Error::ConnectionLost { .. }), "{err:?}");
    eventually("the sleep was stopped", || Probe::get(&probe.dropped) == 1).await;
    assert_eq!(Probe::get(&probe.finished), 0);
    assert_eq!(srv.server.connections(), 0);
}

/// Hands the server in-memory pipes as if it had accepted them.
struct PipeListener(tokio::sync::mpsc::UnboundedReceiver<tokio::io::DuplexStream>);

impl cmdstream::Listener for PipeListener {
    type Io = tokio::io::DuplexStream;

    async fn accept(&mut self) -> std::io::Result<(Self::Io, cmdstream::PeerAddr)> {
        match self.0.recv().await {
            Some(io) => Ok((io, cmdstream::PeerAddr::from("pipe"))),
            None => std::future::pending().await,
        }
    }
}

/// A server with a 5 s grace period, serving the in-memory pipes sent on
/// `pipes`.
struct PipeServer {
    probe: Probe,
    server: Server<CalcServer>,
    pipes: tokio::sync::mpsc::UnboundedSender<tokio::io::DuplexStream>,
    serving: tokio::task::JoinHandle<cmdstream::Result<()>>,
}

fn pipe_server() -> PipeServer {
    let probe = Probe::default();
    let server = Server::builder()
        .shutdown_grace(Duration::from_secs(5))
        .build(CalcServer::new(Calc::new(probe.clone())));
    let (pipes, accepted) = tokio::sync::mpsc::unbounded_channel();
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve(PipeListener(accepted)).await }
    });
    PipeServer {
        probe,
        server,
        pipes,
        serving,
    }
}

#[tokio::test(start_paused = true)]
async fn the_grace_period_bounds_shutdown_even_when_a_client_stops_reading() {
    // Paused time: waits this long cost nothing, and fire only when every
    // task is stuck.
    const BOUND: Duration = Duration::from_secs(3_600);
    let PipeServer {
        probe,
        server,
        pipes,
        serving,
    } = pipe_server();

    // A small pipe, so that what the server writes backs up at once.
    let (mut client, theirs) = tokio::io::duplex(256);
    pipes.send(theirs).unwrap();
    tokio::time::timeout(BOUND, pipe::connect(&mut client))
        .await
        .expect("the handshake");

    // Ask for a long stream, never read again, but keep pinging so that the
    // server sees a live client.
    let payload = raw::encode(&(1_000_000u32,));
    let countdown = raw::command(1, 3, &payload);
    let pinger = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        client.write_all(&countdown).await.unwrap();
        for n in 0u64.. {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let ping = raw::frame(raw::kind::PING, 0, &n.to_be_bytes());
            if client.write_all(&ping).await.is_err() {
                return;
            }
        }
    });
    eventually("the stream filled its window", || {
        Probe::get(&probe.produced) >= 32
    })
    .await;

    tokio::time::timeout(BOUND, server.shutdown()).await.expect(
        "shutdown never returned: a connection that cannot be written to outlived the grace period",
    );
    tokio::time::timeout(BOUND, serving)
        .await
        .expect("serve never returned")
        .unwrap()
        .unwrap();
    assert_eq!(server.connections(), 0);
    pinger.abort();
}

#[tokio::test(start_paused = true)]
async fn a_client_that_hangs_up_without_reading_does_not_hold_the_server() {
    const BOUND: Duration = Duration::from_secs(3_600);
    let PipeServer {
        probe,
        server,
        pipes,
        serving,
    } = pipe_server();

    let (mut client, theirs) = tokio::io::duplex(256);
    pipes.send(theirs).unwrap();
    tokio::time::timeout(BOUND, pipe::connect(&mut client))
        .await
        .expect("the handshake");

    // Ask for a long stream, then hang up (closing only the sending side)
    // without reading any of it.
    let payload = raw::encode(&(1_000_000u32,));
    {
        use tokio::io::AsyncWriteExt;
        client
            .write_all(&raw::command(1, 3, &payload))
            .await
            .unwrap();
        eventually("the stream filled its window", || {
            Probe::get(&probe.produced) >= 32
        })
        .await;
        client.shutdown().await.unwrap();
    }

    // Nobody is left to answer: the connection ends, by itself or at the
    // latest when the server shuts down.
    tokio::time::timeout(BOUND, server.shutdown())
        .await
        .expect("shutdown never returned: a hung-up client kept its connection");
    tokio::time::timeout(BOUND, serving)
        .await
        .expect("serve never returned")
        .unwrap()
        .unwrap();
    assert_eq!(server.connections(), 0);
    drop(client);
}

#[tokio::test]
async fn shutting_down_an_idle_server_returns_at_once() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    assert_eq!(client.add(1, 2).await.unwrap(), 3);
    within("shutdown returned", srv.server.shutdown()).await;
    within("serve returned", srv.task).await.unwrap().unwrap();
    let err = client.add(1, 2).await.unwrap_err();
    assert!(
        matches!(err, Error::Unavailable(_) | Error::ConnectionLost { .. }),
        "{err:?}"
    );
}

/// A connection as `on_connect` saw it: its id and peer.
type Connected = (u64, Option<SocketAddr>);
/// A connection as `on_disconnect` saw it: its id, peer and error.
type Disconnected = (u64, Option<SocketAddr>, Option<String>);

/// What the hooks saw.
#[derive(Default, Clone)]
struct Seen {
    connected: Arc<Mutex<Vec<Connected>>>,
    disconnected: Arc<Mutex<Vec<Disconnected>>>,
}

impl Seen {
    fn builder(&self) -> cmdstream::ServerBuilder {
        let connected = self.connected.clone();
        let disconnected = self.disconnected.clone();
        Server::builder()
            .on_connect(move |info| connected.lock().unwrap().push((info.id(), info.peer())))
            .on_disconnect(move |info, err| {
                disconnected.lock().unwrap().push((
                    info.id(),
                    info.peer(),
                    err.map(|e| e.to_string()),
                ))
            })
    }

    fn connects(&self) -> Vec<Connected> {
        self.connected.lock().unwrap().clone()
    }

    fn disconnects(&self) -> Vec<Disconnected> {
        self.disconnected.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn hooks_see_each_connection_once_with_its_peer_and_a_clean_close() {
    let seen = Seen::default();
    let srv = serve_with(seen.builder()).await;

    let a = connect(srv.addr).await;
    let b = connect(srv.addr).await;
    assert_eq!(a.add(1, 1).await.unwrap(), 2);
    assert_eq!(b.add(2, 2).await.unwrap(), 4);

    let connects = seen.connects();
    assert_eq!(connects.len(), 2, "{connects:?}");
    assert_ne!(connects[0].0, connects[1].0, "connection ids are unique");
    for (_, peer) in &connects {
        let peer = peer.expect("a TCP connection has a peer address");
        assert!(peer.ip().is_loopback(), "{peer}");
        assert_ne!(peer.port(), srv.addr.port(), "the peer is the client");
    }
    assert!(seen.disconnects().is_empty());

    drop(a);
    drop(b);
    eventually("both connections closed", || seen.disconnects().len() == 2).await;
    eventually("the server counts no connection", || {
        srv.server.connections() == 0
    })
    .await;

    let mut disconnects = seen.disconnects();
    disconnects.sort_by_key(|d| d.0);
    let mut connects = seen.connects();
    connects.sort_by_key(|c| c.0);
    for ((id, peer), (d_id, d_peer, err)) in connects.iter().zip(&disconnects) {
        assert_eq!((id, peer), (d_id, d_peer));
        assert_eq!(err, &None, "a clean close reported an error");
    }
    assert_eq!(seen.connects().len(), 2, "on_connect ran again");
}

#[tokio::test]
async fn a_connection_that_breaks_reports_its_error_to_on_disconnect() {
    let seen = Seen::default();
    let srv = serve_with(seen.builder()).await;

    let mut conn = RawConn::connect(srv.addr).await;
    eventually("the connection was seen", || seen.connects().len() == 1).await;
    // Half a frame, then hang up.
    conn.send(&[0, 0, 0, 40, 1, 0, 0]).await;
    drop(conn);

    eventually("the disconnect was seen", || seen.disconnects().len() == 1).await;
    let (id, _, err) = seen.disconnects().remove(0);
    assert_eq!(id, seen.connects()[0].0);
    assert!(err.is_some(), "a broken connection reported a clean close");
}

#[tokio::test]
async fn a_connection_refused_in_the_handshake_runs_no_hook() {
    let seen = Seen::default();
    let srv = serve_with(seen.builder().max_connections(1)).await;
    let first = connect(srv.addr).await;
    let err = try_connect(srv.addr).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert_eq!(first.add(1, 1).await.unwrap(), 2);
    assert_eq!(seen.connects().len(), 1);
    assert!(seen.disconnects().is_empty());
}

#[tokio::test]
async fn dropping_the_last_client_handle_closes_the_connection() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let clone = client.clone();
    assert_eq!(client.add(1, 2).await.unwrap(), 3);
    assert_eq!(srv.server.connections(), 1);

    drop(client);
    // The clone still holds the connection open.
    assert_eq!(clone.add(3, 4).await.unwrap(), 7);
    assert_eq!(srv.server.connections(), 1);

    drop(clone);
    eventually("the server saw the connection close", || {
        srv.server.connections() == 0
    })
    .await;
}

#[tokio::test]
async fn a_stream_outliving_its_client_handle_still_completes() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let items = client.countdown(200).unwrap();
    drop(client);

    let got: Vec<u32> = within("the stream", items.map(|r| r.unwrap()).collect()).await;
    assert_eq!(got, (0..=200).rev().collect::<Vec<_>>());
    eventually("the server saw the connection close", || {
        srv.server.connections() == 0
    })
    .await;
}

/// Removes a socket file when the test ends, passed or failed.
#[cfg(unix)]
struct RemoveOnDrop(std::path::PathBuf);

#[cfg(unix)]
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_server_on_a_unix_socket_answers_calls() {
    let path = std::env::temp_dir().join(format!(
        "cmdstream-tests-{}-{}.sock",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let socket = RemoveOnDrop(path);
    let seen = Seen::default();
    let server = seen
        .builder()
        .build(CalcServer::new(Calc::new(Probe::default())));
    let task = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });

    let client = CalcClient::new(
        within(
            "the connection",
            Client::builder().connect_unix(&socket.0, &INFO),
        )
        .await
        .expect("connect over the Unix socket"),
    );
    assert_eq!(within("a call", client.add(20, 22)).await.unwrap(), 42);
    let items: Vec<u32> = within(
        "a stream",
        client.countdown(100).unwrap().map(|r| r.unwrap()).collect(),
    )
    .await;
    assert_eq!(items, (0..=100).rev().collect::<Vec<_>>());
    // Unix sockets have no peer address.
    assert_eq!(seen.connects().len(), 1);
    assert_eq!(seen.connects()[0].1, None);

    drop(client);
    within("shutdown returned", server.shutdown()).await;
    within("serve returned", task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_go_away_the_client_says_it_is_draining_and_its_calls_fail_as_it_says() {
    let srv = serve_with(Server::builder().shutdown_grace(Duration::from_secs(5))).await;
    let client = connect(srv.addr).await;
    assert_eq!(client.inner().state(), cmdstream::ConnectionState::Open);
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.sleep(300).await }
    });
    eventually("the sleep started", || Probe::get(&srv.probe.started) == 1).await;
    let shutdown = tokio::spawn({
        let server = srv.server.clone();
        async move { server.shutdown().await }
    });
    within("the client hears the go-away", async {
        while client.inner().state().is_open() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(
        matches!(
            client.inner().state(),
            cmdstream::ConnectionState::Draining(_)
        ),
        "{}",
        client.inner().state()
    );
    assert!(client.inner().is_closed(), "new calls fail, so it says so");
    let refused = within("a call while draining", client.add(1, 1)).await;
    assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
    assert_eq!(
        within("the call in flight", in_flight)
            .await
            .unwrap()
            .unwrap(),
        300
    );
    within("the shutdown", shutdown).await.unwrap();
    within("the connection closes", async {
        while !matches!(
            client.inner().state(),
            cmdstream::ConnectionState::Closed(_)
        ) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let after = within("a call after the close", client.add(1, 1)).await;
    assert!(matches!(after, Err(Error::Unavailable(_))), "{after:?}");
}

#[tokio::test]
async fn a_command_sent_as_the_server_goes_away_is_refused_not_lost() {
    let srv = serve().await;
    let mut conn = RawConn::connect(srv.addr).await;
    let shutdown = tokio::spawn({
        let server = srv.server.clone();
        async move { server.shutdown().await }
    });
    let go_away = within("the go-away", conn.read_non_ping()).await.unwrap();
    assert_eq!(go_away.kind, raw::kind::GO_AWAY);
    // The client had sent this before it read the go-away: the server, with
    // nothing left to run, must still read it and say it never ran, rather
    // than close the socket on it.
    conn.send(&raw::add(7, 1, 2)).await;
    let answer = within("an answer", conn.read_non_ping())
        .await
        .expect("the server closed on a command it never answered");
    assert_eq!(
        (answer.kind, answer.id),
        (raw::kind::ERROR, 7),
        "{answer:?}"
    );
    assert_eq!(answer.error_code(), 6, "ShuttingDown: nothing ran");
    drop(conn);
    within("shutdown returned", shutdown).await.unwrap();
    assert_eq!(Probe::get(&srv.probe.started), 0);
}
