//! The limits on connections, on calls in flight and on what waits to be
//! written: what is refused or held back, how, and that such work never
//! hangs, gets lost or breaks anyone else.

use cmdstream::{Client, Error, Server};
use cmdstream_tests::calc::INFO;
use cmdstream_tests::raw::{self, kind, within, RawConn};
use cmdstream_tests::{connect, eventually, serve_with, CalcClient, Probe};

#[tokio::test]
async fn beyond_max_connections_a_client_is_refused_as_unavailable_until_a_slot_frees() {
    let srv = serve_with(Server::builder().max_connections(2)).await;
    let first = within("the first client connects", connect(srv.addr)).await;
    let second = within("the second client connects", connect(srv.addr)).await;
    assert_eq!(srv.server.connections(), 2);

    let third = within("the third connect", Client::connect(srv.addr, &INFO)).await;
    let err = third.expect_err("a third client got in beyond the limit of 2");
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");

    // The two inside are not disturbed by the refusal.
    assert_eq!(within("a call", first.add(1, 2)).await.unwrap(), 3);
    assert_eq!(within("a call", second.add(3, 4)).await.unwrap(), 7);

    drop(first);
    eventually("the server frees the dropped client's slot", || {
        srv.server.connections() == 1
    })
    .await;
    let fourth = within("a client connects into the freed slot", connect(srv.addr)).await;
    assert_eq!(within("a call", fourth.add(5, 6)).await.unwrap(), 11);
    assert_eq!(within("a call", second.add(7, 8)).await.unwrap(), 15);
}

#[tokio::test]
async fn a_connection_beyond_the_limit_is_refused_in_the_server_hello_and_closed() {
    let srv = serve_with(Server::builder().max_connections(1)).await;
    let inside = within("the first client connects", connect(srv.addr)).await;
    let mut raw = within("the raw client dials", RawConn::open(srv.addr)).await;
    let status = within("the server's hello", raw.read_server_hello()).await;
    assert_eq!(status, 1, "status 1: too many connections");
    assert!(raw.expect_closed().await.is_empty());
    assert_eq!(within("a call", inside.add(1, 2)).await.unwrap(), 3);
    assert_eq!(srv.server.connections(), 1);
}

#[tokio::test]
async fn a_command_beyond_max_in_flight_gets_error_5_while_the_others_complete() {
    let srv = serve_with(Server::builder().max_in_flight(2)).await;
    let mut raw = within("the raw client's handshake", RawConn::connect(srv.addr)).await;
    // All three in one write: the server reads them together, so the first
    // two are certainly still running when it reads the third.
    let mut three = raw::sleep(1, 500);
    three.extend(raw::sleep(2, 500));
    three.extend(raw::sleep(3, 500));
    raw.send(&three).await;

    let refused = raw.read_non_ping().await.expect("an answer");
    assert_eq!((refused.id, refused.error_code()), (3, 5), "{refused:?}");
    let mut done = Vec::new();
    for _ in 0..2 {
        let f = raw.read_non_ping().await.expect("an answer");
        assert_eq!(f.result::<u64>(), 500, "{f:?}");
        done.push(f.id);
    }
    done.sort_unstable();
    assert_eq!(done, [1, 2]);
    assert_eq!(Probe::get(&srv.probe.started), 2, "the refused call ran");

    // The connection lives, and the finished calls freed their slots.
    let mut two = raw::sleep(4, 1);
    two.extend(raw::sleep(5, 1));
    raw.send(&two).await;
    let mut done = Vec::new();
    for _ in 0..2 {
        let f = raw.read_non_ping().await.expect("an answer");
        assert_eq!(f.kind, kind::RESULT_LAST, "{f:?}");
        done.push(f.id);
    }
    done.sort_unstable();
    assert_eq!(done, [4, 5]);
}

#[tokio::test]
async fn a_client_queues_calls_beyond_the_servers_in_flight_limit_instead_of_failing_them() {
    let srv = serve_with(Server::builder().max_in_flight(2)).await;
    let client = within("the client connects", connect(srv.addr)).await;
    let calls = (0..20).map(|_| {
        let client: CalcClient = client.clone();
        async move { client.sleep(20).await }
    });
    let results = within(
        "twenty calls",
        futures_util::future::join_all(calls.collect::<Vec<_>>()),
    )
    .await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap_or_else(|e| panic!("call {i}: {e}")), 20);
    }
    assert_eq!(Probe::get(&srv.probe.finished), 20);
}

#[tokio::test]
async fn a_client_that_sends_without_reading_is_pushed_back_not_buffered_for() {
    // 2,000 calls for 64 KiB each: 125 MiB of answers if the server kept
    // reading commands while the client reads nothing.
    const CALLS: u64 = 2_000;
    const LEN: usize = 64 * 1024;
    let srv = serve_with(Server::builder()).await;
    let mut conn = RawConn::connect(srv.addr).await;
    let mut commands = Vec::new();
    for id in 1..=CALLS {
        commands.extend(raw::blob(id, LEN));
    }
    conn.send(&commands).await;

    // The server runs what fits under its write buffer's high-water mark
    // (plus what the socket buffers take), then stops reading.
    let blobs = srv.probe.blobs.clone();
    eventually("the server ran some blobs", || Probe::get(&blobs) > 0).await;
    let mut last = 0;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let now = Probe::get(&blobs);
        if now == last {
            break;
        }
        last = now;
    }
    assert!(
        (last as u64) < CALLS / 2,
        "{last} of {CALLS} blobs run for a client that reads nothing"
    );

    // Once the client reads, everything is answered, in full.
    for _ in 0..CALLS {
        let frame = within("a blob", conn.read_frame()).await.expect("a frame");
        assert_eq!(frame.kind, kind::RESULT_LAST);
        let blob: cmdstream::codec::ByteBuf = frame.result();
        assert_eq!(blob.0.len(), LEN);
    }
    assert_eq!(Probe::get(&blobs) as u64, CALLS);
}

#[tokio::test]
async fn calls_beyond_the_clients_write_high_water_wait_their_turn_and_all_complete() {
    // 200 calls whose COMMAND frames carry 32 KiB of metadata each: the
    // client's write buffer passes its 1 MiB high-water mark partway
    // through each batch of calls it takes, and must hold the rest back, in
    // order, for the next turn, losing none.
    let srv = serve_with(Server::builder()).await;
    let client = within("the client connects", connect(srv.addr)).await;
    let heavy = CalcClient::new(
        client
            .inner()
            .with_options(cmdstream::CallOptions::new().metadata("pad", "x".repeat(32 * 1024))),
    );
    let calls = (0..200i64).map(|i| {
        let heavy = heavy.clone();
        async move { (i, heavy.add(i, 1).await) }
    });
    let results = within(
        "two hundred heavy calls",
        futures_util::future::join_all(calls.collect::<Vec<_>>()),
    )
    .await;
    for (i, r) in results {
        assert_eq!(r.unwrap_or_else(|e| panic!("call {i}: {e}")), i + 1);
    }
}

#[tokio::test]
async fn connections_stalled_in_the_handshake_hold_at_most_their_own_smaller_share() {
    let srv = serve_with(
        Server::builder()
            .max_connections(8)
            .max_handshakes(2)
            .handshake_timeout(std::time::Duration::from_secs(60)),
    )
    .await;
    // Two connections that read the hello and then say nothing.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut raw = within("a stalling client dials", RawConn::open(srv.addr)).await;
        assert_eq!(within("its hello", raw.read_server_hello()).await, 0);
        stalled.push(raw);
    }
    // A third is refused at once, naming the limit, though there are
    // connection slots to spare.
    let mut third = within("a third dials", RawConn::open(srv.addr)).await;
    assert_eq!(within("its hello", third.read_server_hello()).await, 1);
    let err = within("a client connects", Client::connect(srv.addr, &INFO))
        .await
        .expect_err("a client got in past the handshake limit");
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("in the handshake"), "{err}");

    // Once the stalled ones are gone, clients connect again.
    drop(stalled);
    eventually("the stalled connections' slots are freed", || {
        srv.server.connections() == 0
    })
    .await;
    let client = within("a client connects", connect(srv.addr)).await;
    assert_eq!(within("a call", client.add(1, 2)).await.unwrap(), 3);
    // Completed handshakes do not count: more clients than the handshake
    // limit are served at once, connected one after another.
    let mut more = Vec::new();
    for _ in 0..3 {
        more.push(within("a client connects", connect(srv.addr)).await);
    }
    for c in &more {
        assert_eq!(within("a call", c.add(2, 2)).await.unwrap(), 4);
    }
}

#[tokio::test]
async fn one_address_is_held_to_its_share_of_connections_when_configured() {
    let srv = serve_with(Server::builder().max_connections_per_ip(Some(2))).await;
    let first = within("the first client connects", connect(srv.addr)).await;
    let _second = within("the second client connects", connect(srv.addr)).await;
    let err = within("the third connect", Client::connect(srv.addr, &INFO))
        .await
        .expect_err("a third client from 127.0.0.1 got in");
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("from 127.0.0.1"), "{err}");
    drop(first);
    eventually("the dropped client's slot is freed", || {
        srv.server.connections() == 1
    })
    .await;
    let again = within("a client connects into the freed slot", connect(srv.addr)).await;
    assert_eq!(within("a call", again.add(5, 6)).await.unwrap(), 11);
}

#[tokio::test]
async fn durations_of_forever_mean_never_and_break_nothing() {
    use std::time::Duration;
    let forever = Duration::MAX;
    let srv = serve_with(
        Server::builder()
            .handshake_timeout(forever)
            .idle_timeout(Some(forever))
            .keepalive(Some(forever))
            .shutdown_grace(forever),
    )
    .await;
    let client = within(
        "a client with forever timeouts connects",
        Client::builder()
            .connect_timeout(forever)
            .handshake_timeout(forever)
            .keepalive(Some(forever))
            .timeout(forever)
            .connect(srv.addr, &INFO),
    )
    .await
    .unwrap();
    let client = CalcClient::new(client);
    assert_eq!(within("a call", client.add(2, 3)).await.unwrap(), 5);
    let items = within("a stream", async {
        use futures_util::StreamExt;
        client.countdown(3).unwrap().collect::<Vec<_>>().await
    })
    .await;
    assert_eq!(items.len(), 4);
    // Shutting down with nothing in flight does not wait out the grace.
    within("the shutdown", srv.server.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refused_connections_is_told_64_at_a_time_and_the_rest_closed_at_once() {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    let srv = serve_with(Server::builder().max_connections(1)).await;
    let inside = within("the one client connects", connect(srv.addr)).await;
    // Clients that never read the refusal nor close: each one told holds
    // a task and its socket until the handshake timeout.
    let mut flood = Vec::new();
    for _ in 0..150 {
        flood.push(
            within("a dial", TcpStream::connect(srv.addr))
                .await
                .unwrap(),
        );
    }
    let (mut told, mut closed) = (0, 0);
    for conn in &mut flood {
        let mut magic = [0u8; 4];
        match within("the server's answer", conn.read_exact(&mut magic)).await {
            Err(_) => closed += 1,
            Ok(_) => {
                assert_eq!(&magic, b"CMDS");
                told += 1;
            }
        }
    }
    assert!((1..=64).contains(&told), "{told} refusals told at once");
    assert_eq!(told + closed, 150);
    assert_eq!(within("a call", inside.add(1, 2)).await.unwrap(), 3);
}

// One thread: the commands' tasks run in the order they were spawned, so
// the first answer fills the queue before the others look for room.
#[tokio::test]
async fn a_command_whose_deadline_passed_while_it_waited_for_room_never_starts() {
    let srv = serve_with(
        Server::builder()
            .run_ready_commands_inline(false)
            .max_output_buffer(64 * 1024),
    )
    .await;
    let mut raw = within("the handshake", RawConn::connect(srv.addr)).await;
    // Answers the client does not read yet fill the sockets and the queue;
    // the commands arrive in one read, so all start (their tasks wait for
    // room) before any answers. The last has a 50 ms deadline, which
    // passes while it waits.
    const BLOBS: u64 = 24;
    let late = BLOBS + 1;
    let mut commands = Vec::new();
    for id in 1..=BLOBS {
        commands.extend(raw::blob(id, 1 << 20));
    }
    commands.extend(raw::command_with_deadline(
        late,
        6,
        50,
        &raw::encode(&(1u64,)),
    ));
    raw.send(&commands).await;
    eventually("the queue is full", || Probe::get(&srv.probe.blobs) >= 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // Now the client reads everything; the late command's turn comes.
    let answer = loop {
        let f = within("the answers", raw.read_non_ping())
            .await
            .expect("the server closed the connection");
        if f.id == late {
            break f;
        }
    };
    assert_eq!(answer.kind, kind::ERROR, "{answer:?}");
    assert_eq!(
        u16::from_be_bytes([answer.body[0], answer.body[1]]),
        cmdstream::ErrorCode::DeadlineExceeded.to_u16()
    );
    assert_eq!(
        Probe::get(&srv.probe.started),
        0,
        "the command ran past its deadline"
    );
}
