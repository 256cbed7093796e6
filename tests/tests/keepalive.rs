//! Keepalive and idle connections on paused time over in-memory pipes: each
//! side pings a silent peer and gives up on it when the ping goes unanswered,
//! a peer that answers is kept, and an idle connection is sent away.

use std::time::Duration;

use cmdstream::{Client, Error, Server};
use cmdstream_tests::calc::INFO;
use cmdstream_tests::raw::{self, kind, pipe, RawFrame};
use cmdstream_tests::{eventually, Calc, CalcClient, CalcServer, Probe};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

/// Far longer than any keepalive or idle timer in these tests. On paused
/// time a wait this long costs nothing: the clock jumps ahead as soon as
/// every task is idle, so a bug fails the test instead of hanging it.
const BOUND: Duration = Duration::from_secs(3_600);

async fn bounded<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(BOUND, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen"))
}

fn pipes() -> (DuplexStream, DuplexStream) {
    tokio::io::duplex(1 << 16)
}

/// A client with a 5 s keepalive on one end of a pipe, and the other end
/// after the handshake, for the test to play the server.
async fn client_with_fake_server() -> (CalcClient, DuplexStream) {
    let (ours, mut theirs) = pipes();
    let fake = tokio::spawn(async move {
        pipe::accept(&mut theirs, 0, 32).await;
        theirs
    });
    let client = Client::builder()
        .keepalive(Some(Duration::from_secs(5)))
        .connect_io(ours, &INFO, "fake")
        .await
        .unwrap();
    (CalcClient::new(client), fake.await.unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_client_gives_up_on_a_server_that_stops_answering() {
    let (client, mut server) = client_with_fake_server().await;

    // The fake server reads everything and answers nothing.
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<RawFrame>();
    let reader = tokio::spawn(async move {
        while let Some(frame) = pipe::read_frame(&mut server).await {
            let _ = seen_tx.send(frame);
        }
    });

    let err = bounded("the dead server was noticed", client.add(1, 2))
        .await
        .unwrap_err();

    // By then the server had been sent the call and a ping.
    let mut kinds = Vec::new();
    while let Ok(frame) = seen.try_recv() {
        kinds.push(frame.kind);
    }
    assert_eq!(kinds.first(), Some(&kind::COMMAND), "{kinds:?}");
    assert!(
        kinds.contains(&kind::PING),
        "no ping before giving up: {kinds:?}"
    );
    match &err {
        Error::ConnectionLost { reason, .. } => assert!(reason.contains("ping"), "{err}"),
        other => panic!("expected ConnectionLost, got {other:?}"),
    }

    // The connection is gone for good, and the pipe was closed.
    assert!(client.inner().is_closed());
    let again = client.add(1, 2).await.unwrap_err();
    assert!(matches!(again, Error::ConnectionLost { .. }), "{again:?}");
    bounded("the pipe closed", reader).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_client_keeps_a_server_that_answers_its_pings() {
    let (client, mut server) = client_with_fake_server().await;

    // The fake server answers pings, and answers the call only after it has
    // been pinged many times.
    let fake = tokio::spawn(async move {
        let mut pings = 0;
        let mut call = None;
        let mut answered = false;
        while let Some(frame) = pipe::read_frame(&mut server).await {
            match frame.kind {
                kind::PING => {
                    pings += 1;
                    let pong = raw::frame(kind::PONG, 0, &frame.body);
                    server.write_all(&pong).await.unwrap();
                }
                kind::COMMAND => call = Some(frame),
                other => panic!("unexpected frame kind {other}"),
            }
            if pings >= 6 && !answered {
                answered = true;
                let command = call.take().expect("the call arrived");
                // Command id 1 (`add`), no flags, then the two numbers.
                assert_eq!(command.body[..5], [0, 0, 0, 1, 0]);
                let (a, b): (i64, i64) =
                    cmdstream::Codec::decode(&cmdstream::codec::Bincode, &command.body[5..])
                        .unwrap();
                let answer = raw::frame(kind::RESULT_LAST, command.id, &raw::encode(&(a + b)));
                server.write_all(&answer).await.unwrap();
            }
        }
        pings
    });

    assert_eq!(bounded("the answer", client.add(20, 22)).await.unwrap(), 42);
    assert!(!client.inner().is_closed());
    drop(client);
    let pings = bounded("the client closed", fake).await.unwrap();
    assert!(pings >= 6, "{pings}");
}

#[tokio::test(start_paused = true)]
async fn any_frame_from_the_server_counts_as_alive() {
    let (client, mut server) = client_with_fake_server().await;

    // This server never answers a ping but streams a result every 3 s,
    // more often than the client's interval.
    let fake = tokio::spawn(async move {
        let command = loop {
            let frame = pipe::read_frame(&mut server).await.expect("a command");
            if frame.kind == kind::COMMAND {
                break frame;
            }
        };
        for n in (0..=20u32).rev() {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let kind = if n == 0 {
                kind::RESULT_LAST
            } else {
                kind::RESULT
            };
            let item = raw::frame(kind, command.id, &raw::encode(&n));
            if server.write_all(&item).await.is_err() {
                return;
            }
        }
        // Keep the pipe open; drain whatever the client sends.
        while pipe::read_frame(&mut server).await.is_some() {}
    });

    // A window of 32 covers all 21 results, so no credit is needed.
    let items: Vec<u32> = bounded(
        "the stream",
        futures_util::StreamExt::collect::<Vec<_>>(futures_util::StreamExt::map(
            client.countdown(20).unwrap(),
            |r| r.unwrap(),
        )),
    )
    .await;
    assert_eq!(items, (0..=20).rev().collect::<Vec<_>>());
    assert!(!client.inner().is_closed());
    drop(client);
    bounded("the client closed", fake).await.unwrap();
}

/// A `Calc` server with `builder`'s settings, serving one end of a pipe;
/// the test keeps the other end.
fn serve_pipe(
    builder: cmdstream::ServerBuilder,
) -> (
    Probe,
    DuplexStream,
    tokio::task::JoinHandle<Result<(), Error>>,
) {
    let probe = Probe::default();
    let server = builder.build(CalcServer::new(Calc::new(probe.clone())));
    let (ours, theirs) = pipes();
    let task = tokio::spawn(async move { server.serve_connection(theirs, None).await });
    (probe, ours, task)
}

#[tokio::test(start_paused = true)]
async fn a_server_gives_up_on_a_client_that_stops_answering() {
    let builder = Server::builder()
        .keepalive(Some(Duration::from_secs(5)))
        .idle_timeout(None);
    let (probe, mut client, task) = serve_pipe(builder);
    bounded("the handshake", pipe::connect(&mut client)).await;

    // A command that would run for a minute, then silence.
    client.write_all(&raw::sleep(1, 60_000)).await.unwrap();
    eventually("the sleep started", || Probe::get(&probe.started) == 1).await;

    let frames = bounded("the server gave up on the silent client", async {
        let mut frames = Vec::new();
        while let Some(frame) = pipe::read_frame(&mut client).await {
            frames.push(frame);
        }
        frames
    })
    .await;
    assert!(
        frames.iter().any(|f| f.kind == kind::PING),
        "the server closed without pinging: {frames:?}"
    );
    assert!(
        frames.iter().all(|f| f.kind == kind::PING),
        "the server answered something: {frames:?}"
    );

    let result = bounded("serve_connection returned", task).await.unwrap();
    match &result {
        Err(Error::ConnectionLost { .. }) => {}
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    eventually("the orphaned sleep was dropped", || {
        Probe::get(&probe.dropped) == 1
    })
    .await;
    assert_eq!(Probe::get(&probe.finished), 0);
}

#[tokio::test(start_paused = true)]
async fn a_server_keeps_a_client_that_reads_slowly_and_says_nothing() {
    // The client takes one result a second off a small pipe and sends
    // nothing at all: the server's pings wait behind its results, so the
    // client cannot answer them in time. It is alive all the same: the
    // server's writes go through.
    let probe = Probe::default();
    let server = Server::builder()
        .keepalive(Some(Duration::from_secs(5)))
        .idle_timeout(None)
        .build(CalcServer::new(Calc::new(probe.clone())));
    let (mut client, theirs) = tokio::io::duplex(4096);
    let task = tokio::spawn(async move { server.serve_connection(theirs, None).await });
    let hello = raw::client_hello_with(INFO.fingerprint, 16 << 20, 8192);
    bounded("the handshake", pipe::connect_with(&mut client, &hello)).await;
    client
        .write_all(&raw::command(1, 3, &raw::encode(&(1_000_000u32,))))
        .await
        .unwrap();

    let mut results = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let frame = pipe::read_frame(&mut client)
            .await
            .expect("the server gave up on a client that reads");
        match frame.kind {
            kind::RESULT => results += 1,
            kind::PING => {}
            other => panic!("unexpected frame {other:#x}: {frame:?}"),
        }
    }
    assert!(results > 50, "{results}");
    assert!(!task.is_finished());
    drop(client);
    let _ = bounded("serve_connection returned", task).await;
}

#[tokio::test(start_paused = true)]
async fn a_server_keeps_a_client_that_answers_its_pings() {
    let builder = Server::builder()
        .keepalive(Some(Duration::from_secs(5)))
        .idle_timeout(None);
    let (probe, mut client, task) = serve_pipe(builder);
    bounded("the handshake", pipe::connect(&mut client)).await;
    client.write_all(&raw::sleep(1, 60_000)).await.unwrap();

    // Answer every ping until the minute-long sleep is done.
    let (answer, pings) = bounded("the sleep's answer", async {
        let mut pings = 0;
        loop {
            let frame = pipe::read_frame(&mut client)
                .await
                .expect("the server closed the connection");
            if frame.kind != kind::PING {
                return (frame, pings);
            }
            pings += 1;
            client
                .write_all(&raw::frame(kind::PONG, 0, &frame.body))
                .await
                .unwrap();
        }
    })
    .await;
    assert_eq!(
        (answer.id, answer.kind),
        (1, kind::RESULT_LAST),
        "{answer:?}"
    );
    assert!(pings >= 5, "{pings}");
    assert_eq!(Probe::get(&probe.finished), 1);
    assert_eq!(Probe::get(&probe.dropped), 0);

    // A clean close from the client ends the connection without an error.
    drop(client);
    let result = bounded("serve_connection returned", task).await.unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_sent_away_and_closed() {
    let builder = Server::builder()
        .keepalive(None)
        .idle_timeout(Some(Duration::from_secs(60)));
    let (_probe, mut client, task) = serve_pipe(builder);
    bounded("the handshake", pipe::connect(&mut client)).await;

    let go_away = bounded("a frame", pipe::read_frame(&mut client))
        .await
        .expect("the server closed without a go-away");
    assert_eq!(
        (go_away.kind, go_away.id),
        (kind::GO_AWAY, 0),
        "{go_away:?}"
    );
    let reason = String::from_utf8(go_away.body).unwrap();
    assert!(reason.contains("idle"), "{reason}");
    assert!(
        bounded("the close", pipe::read_frame(&mut client))
            .await
            .is_none(),
        "the server sent more after going away"
    );
    let result = bounded("serve_connection returned", task).await.unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test(start_paused = true)]
async fn a_connection_with_a_command_running_is_not_idle() {
    let builder = Server::builder()
        .keepalive(None)
        .idle_timeout(Some(Duration::from_secs(60)));
    let (probe, mut client, task) = serve_pipe(builder);
    bounded("the handshake", pipe::connect(&mut client)).await;

    // Three idle periods' worth of sleep: the connection stays while it runs.
    client.write_all(&raw::sleep(1, 200_000)).await.unwrap();
    let first = bounded("a frame", pipe::read_frame(&mut client))
        .await
        .expect("the server closed the connection");
    assert_eq!((first.id, first.kind), (1, kind::RESULT_LAST), "{first:?}");
    assert_eq!(Probe::get(&probe.finished), 1);

    // Once nothing runs, the connection goes idle after all.
    let go_away = bounded("a frame", pipe::read_frame(&mut client))
        .await
        .expect("the server closed without a go-away");
    assert_eq!(go_away.kind, kind::GO_AWAY, "{go_away:?}");
    assert!(bounded("the close", pipe::read_frame(&mut client))
        .await
        .is_none());
    let result = bounded("serve_connection returned", task).await.unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test(start_paused = true)]
async fn a_real_client_sees_an_idle_go_away_as_unavailable() {
    let probe = Probe::default();
    let server = Server::builder()
        .keepalive(None)
        .idle_timeout(Some(Duration::from_secs(60)))
        .build(CalcServer::new(Calc::new(probe)));
    let (ours, theirs) = pipes();
    let task = tokio::spawn(async move { server.serve_connection(theirs, None).await });
    let client = pipe::calc_client(ours).await;
    assert_eq!(client.add(1, 2).await.unwrap(), 3);

    let result = bounded("the server closed the idle connection", task)
        .await
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    bounded("the client saw the close", async {
        while !client.inner().is_closed() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let err = client.add(1, 2).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn with_the_default_interval_both_sides_give_up_after_twenty_silent_seconds_and_say_so() {
    // The client: its server stops sending anything after the handshake.
    let (ours, mut theirs) = pipes();
    let fake = tokio::spawn(async move {
        pipe::accept(&mut theirs, 0, 32).await;
        theirs
    });
    let client = Client::builder()
        .connect_io(ours, &INFO, "fake")
        .await
        .unwrap();
    let client = CalcClient::new(client);
    let mut server = fake.await.unwrap();
    let reader =
        tokio::spawn(async move { while pipe::read_frame(&mut server).await.is_some() {} });
    let start = tokio::time::Instant::now();
    let err = bounded("the client gave up", client.add(1, 2))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(20));
    assert!(err.to_string().contains("sent nothing for 20.0s"), "{err}");
    drop(client);
    bounded("the pipe closed", reader).await.unwrap();

    // The server: its client sends one command and then nothing at all.
    let (probe, mut client, task) = serve_pipe(Server::builder().idle_timeout(None));
    bounded("the handshake", pipe::connect(&mut client)).await;
    client.write_all(&raw::sleep(1, 600_000)).await.unwrap();
    let start = tokio::time::Instant::now();
    eventually("the sleep started", || Probe::get(&probe.started) == 1).await;
    let result = bounded("the server gave up", task).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(20));
    let err = result.unwrap_err();
    assert!(err.to_string().contains("sent nothing for 20.0s"), "{err}");
}
