//! What a peer that announces absurd limits, or never reads, can make the
//! other side hold. Each test counts the live heap of the whole process
//! (client and server share it) with a counting allocator while a hostile
//! or careless peer does its worst, holds its growth to a bound that
//! follows from the documented limits, checks that a well-behaved client
//! is served meanwhile, and that the memory comes back once the peer is
//! gone. The heap is the process's, so the tests take turns.

use std::alloc::System;
use std::time::{Duration, Instant};

use cap::Cap;
use cmdstream::{Client, Server, ServerBuilder};
use cmdstream_tests::calc::INFO;
use cmdstream_tests::raw::{self, kind, within, RawConn};
use cmdstream_tests::{connect, serve, serve_with, CalcClient, Probe};
use tokio::net::TcpListener;

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// Held by the test running: the heap is the whole process's.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MIB: usize = 1 << 20;

/// How long a hostile peer is given to make the heap grow. A defect found
/// so far grew it by 0.5 GB/s; this is ample to see one.
const ATTACK: Duration = Duration::from_millis(1500);

/// Samples the heap for [`ATTACK`] and returns its peak growth over
/// `base`; fails as soon as the growth passes `bound`. A backstop limit
/// far above the bound keeps a regression from taking the machine's memory.
async fn peak_growth(what: &str, base: usize, bound: usize) -> usize {
    let _ = HEAP.set_limit(base + 2048 * MIB);
    let start = Instant::now();
    let mut peak = 0;
    while start.elapsed() < ATTACK {
        let growth = HEAP.allocated().saturating_sub(base);
        peak = peak.max(growth);
        assert!(
            growth <= bound,
            "{what}: the heap grew by {} MiB, above the bound of {} MiB",
            growth / MIB,
            bound / MIB
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = HEAP.set_limit(usize::MAX);
    peak
}

/// Waits until the heap is back within `slack` of `base` (for up to 30 s:
/// the closed connection's tasks are dropped by the runtime as it gets to
/// them).
async fn returns_to(base: usize, slack: usize) {
    let start = Instant::now();
    while HEAP.allocated() > base + slack {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the memory was not given back: {} KiB above the start",
            HEAP.allocated().saturating_sub(base) / 1024
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A `countdown` from `u32::MAX`: a stream that never ends by itself.
fn endless_countdown(id: u64) -> Vec<u8> {
    raw::command(id, 3, &raw::encode(&(u32::MAX,)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_announcing_a_window_of_four_billion_that_never_reads_holds_the_server_to_its_bounds(
) {
    let _turn = TURN.lock().await;
    let srv = serve().await;
    let bystander = connect(srv.addr).await;
    let base = HEAP.allocated();

    let hello = raw::client_hello_with(INFO.fingerprint, 16 << 20, u32::MAX);
    let mut hostile = within(
        "the hostile handshake",
        RawConn::connect_with(srv.addr, &hello),
    )
    .await;
    hostile.send(&endless_countdown(1)).await;

    // Bound: the server's 4 MiB output buffer and 1 MiB write buffer, the
    // stream's 32 KiB batch, a little for the connections themselves.
    let peak = peak_growth("window bomb", base, 16 * MIB).await;
    // The window was clamped to the server's 8192 results ahead: the stream
    // waits for credit there (plus one batch made before it looked).
    let produced = Probe::get(&srv.probe.produced);
    assert!(produced <= 8192 + 4096, "{produced} results produced");
    assert_eq!(
        within("the bystander's call", bystander.add(2, 3))
            .await
            .unwrap(),
        5
    );

    drop(hostile);
    returns_to(base, 2 * MIB).await;
    println!(
        "peak growth {} KiB, {produced} results produced",
        peak / 1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_client_with_a_huge_window_and_a_stream_it_never_polls_holds_both_sides_to_their_bounds(
) {
    let _turn = TURN.lock().await;
    let srv = serve().await;
    let bystander = connect(srv.addr).await;
    let base = HEAP.allocated();

    let careless = within(
        "the careless client connects",
        Client::builder()
            .stream_window(u32::MAX)
            .connect(srv.addr, &INFO),
    )
    .await
    .unwrap();
    let careless = CalcClient::new(careless);
    let mut stream = careless.countdown(u32::MAX).unwrap();
    let first = within("the first result", stream.next()).await;
    assert_eq!(first.unwrap().unwrap(), u32::MAX);

    // Bound: what the server clamps the window to (8192 small results,
    // held by the client) and the server's output buffers.
    let peak = peak_growth("unpolled stream", base, 16 * MIB).await;
    assert_eq!(
        within("the bystander's call", bystander.add(2, 3))
            .await
            .unwrap(),
        5
    );

    drop(stream);
    drop(careless);
    returns_to(base, 2 * MIB).await;
    println!("peak growth {} KiB", peak / 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_answers_with_commands_in_tasks_holds_the_server_to_its_bounds(
) {
    // Bound: the 4 MiB output buffer and 1 MiB write buffer, plus one
    // answer (a 1 MiB result, encoded into up to 2 MiB) for each command
    // that found room at the same moment: one per worker thread.
    a_client_that_never_reads_1000_blobs(
        Server::builder().run_ready_commands_inline(false),
        "unread answers",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_answers_with_commands_polled_inline_holds_the_server_to_its_bounds(
) {
    // All commands arrive in one write, so the server reads them in one
    // batch and answers each inline into the batch's collection. Bound: the
    // 1 MiB write buffer and the answer that took it past its high-water
    // mark (the collection goes to the write buffer once it holds 64 KiB,
    // so the batch stops there), the 4 MiB output buffer, a little for the
    // connections themselves.
    a_client_that_never_reads_1000_blobs(Server::builder(), "unread inline answers").await;
}

/// Sends 1000 commands that each answer 1 MiB in one write and never reads
/// an answer: the server's heap stays within 24 MiB, it runs fewer than one
/// in ten of them, a bystander is still served, and the memory comes back
/// once the hostile client is gone.
async fn a_client_that_never_reads_1000_blobs(builder: ServerBuilder, what: &str) {
    let _turn = TURN.lock().await;
    const CALLS: u64 = 1000;
    let srv = serve_with(builder).await;
    let bystander = connect(srv.addr).await;
    let base = HEAP.allocated();

    let mut hostile = within("the hostile handshake", RawConn::connect(srv.addr)).await;
    let mut commands = Vec::new();
    for id in 1..=CALLS {
        commands.extend(raw::blob(id, MIB));
    }
    hostile.send(&commands).await;

    let peak = peak_growth(what, base, 24 * MIB).await;
    let ran = Probe::get(&srv.probe.blobs) as u64;
    assert!(
        ran < CALLS / 10,
        "{ran} of {CALLS} blobs ran for a client that reads nothing"
    );
    assert_eq!(
        within("the bystander's call", bystander.add(2, 3))
            .await
            .unwrap(),
        5
    );

    drop(hostile);
    returns_to(base, 2 * MIB).await;
    println!("peak growth {} KiB, {ran} blobs run", peak / 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_announcing_a_huge_window_that_never_reads_holds_the_client_to_its_bounds() {
    let _turn = TURN.lock().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let fake = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = RawConn { stream };
        conn.send(&raw::server_hello_with(
            INFO.fingerprint,
            16 << 20,
            1024,
            0,
            u32::MAX,
        ))
        .await;
        assert_eq!(conn.read_client_hello().await, INFO.fingerprint);
        conn.send(&[0, 0, 0]).await;
        // Then reads nothing, until told to go.
        let _ = stopped.await;
    });
    let client = CalcClient::new(
        within("the connect", Client::connect(addr, &INFO))
            .await
            .unwrap(),
    );
    let base = HEAP.allocated();

    // A bidirectional call streaming 64 KiB lines as fast as credit allows.
    let line = "x".repeat(64 * 1024);
    let lines = futures_util::stream::repeat(line);
    let echo = client.echo(lines).unwrap();

    // Bound: the client's 1 MiB of streamed arguments not yet written and
    // its write buffer, plus what the sockets hold.
    let peak = peak_growth("unread arguments", base, 16 * MIB).await;

    drop(echo);
    drop(client);
    let _ = stop.send(());
    fake.await.unwrap();
    returns_to(base, 2 * MIB).await;
    println!("peak growth {} KiB", peak / 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_streamed_items_waiting_for_their_command_do_not_each_hold_a_read_buffer() {
    let _turn = TURN.lock().await;
    const CALLS: u64 = 16;
    const ITEMS: usize = 120;
    let srv = serve().await;
    let base = HEAP.allocated();

    // A result window of 1: each `echo` answers one line, then waits for
    // credit and takes no more of its items, which wait in its queue.
    let hello = raw::client_hello_with(INFO.fingerprint, 16 << 20, 1);
    let mut hostile = within("the handshake", RawConn::connect_with(srv.addr, &hello)).await;
    let mut commands = Vec::new();
    for id in 1..=CALLS {
        commands.extend(raw::command(id, 5, &raw::encode(&())));
    }
    hostile.send(&commands).await;
    // Each tiny item followed by 60 KiB the server reads and drops (an
    // item for no call), so that every item arrives in a read buffer of
    // its own.
    let junk = raw::frame(kind::ITEM, 999, &vec![0; 60 * 1024]);
    for _ in 0..ITEMS {
        for id in 1..=CALLS {
            let mut bytes = raw::frame(kind::ITEM, id, &raw::encode(&"x"));
            bytes.extend_from_slice(&junk);
            hostile.send(&bytes).await;
        }
    }
    // Everything was read once the ping is answered.
    hostile.send(&raw::frame(kind::PING, 0, &[7; 8])).await;
    loop {
        let f = within("the pong", hostile.read_frame())
            .await
            .expect("the server closed the connection");
        if f.kind == kind::PONG {
            break;
        }
    }
    // 1920 items waiting. Holding a 64 KiB buffer each, they would take
    // 120 MiB; copied out, a few hundred KiB.
    let growth = HEAP.allocated().saturating_sub(base);
    assert!(
        growth < 16 * MIB,
        "{} MiB held for {} small items",
        growth / MIB,
        CALLS as usize * ITEMS
    );
    drop(hostile);
    returns_to(base, 2 * MIB).await;
    println!("growth {} KiB", growth / 1024);
}
