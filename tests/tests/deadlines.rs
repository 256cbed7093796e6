//! Every call shape ends at its deadline, whatever the network does: a
//! server that reads and never answers, one that stops reading altogether,
//! one whose answers come too late. The client's keepalive is off, so only
//! the deadline can end a call. On paused time over in-memory pipes: the
//! deadlines cost no real time, and the moment a call ends is exact.

use std::future::Future;
use std::time::Duration;

use cmdstream::{CallOptions, Client, Error};
use cmdstream_tests::calc::INFO;
use cmdstream_tests::raw::{self, kind, pipe, RawFrame};
use cmdstream_tests::CalcClient;
use futures_util::{stream, StreamExt};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Far longer than any deadline here; on paused time it costs nothing.
const BOUND: Duration = Duration::from_secs(3_600);
const DEADLINE: Duration = Duration::from_secs(2);

async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(BOUND, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} never ended"))
}

/// A client on one end of a pipe of `capacity` bytes, without keepalive,
/// whose calls time out after [`DEADLINE`]; the other end, after the
/// handshake, for the test to play the server.
async fn client_with_fake_server(capacity: usize) -> (CalcClient, DuplexStream) {
    let (ours, mut theirs) = tokio::io::duplex(capacity);
    let fake = tokio::spawn(async move {
        pipe::accept(&mut theirs, 0, 32).await;
        theirs
    });
    let client = Client::builder()
        .keepalive(None)
        .connect_io(ours, &INFO, "fake")
        .await
        .unwrap();
    let client = client.with_options(CallOptions::new().timeout(DEADLINE));
    (CalcClient::new(client), fake.await.unwrap())
}

/// Runs `call` and asserts it fails with `Timeout` exactly at the deadline.
async fn times_out_at_the_deadline<T: std::fmt::Debug>(
    shape: &str,
    call: impl Future<Output = Option<Result<T, Error>>>,
) {
    let start = Instant::now();
    let outcome = bounded(shape, call).await;
    assert!(
        matches!(outcome, Some(Err(Error::Timeout))),
        "{shape}: expected a timeout, got {outcome:?}"
    );
    assert_eq!(start.elapsed(), DEADLINE, "{shape} ended off its deadline");
}

/// Calls each of the four shapes in turn; each must end at its deadline.
async fn every_shape_times_out(client: &CalcClient) {
    times_out_at_the_deadline("unary", async { Some(client.sleep(10).await) }).await;
    times_out_at_the_deadline("client-streaming", async {
        Some(client.total(stream::pending()).await)
    })
    .await;
    let mut results = client.countdown(10).unwrap();
    times_out_at_the_deadline("server-streaming", results.next()).await;
    assert!(
        results.next().await.is_none(),
        "the stream goes on after its timeout"
    );
    let mut results = client.echo(stream::pending()).unwrap();
    times_out_at_the_deadline("bidirectional", results.next()).await;
    assert!(
        results.next().await.is_none(),
        "the stream goes on after its timeout"
    );
}

#[tokio::test(start_paused = true)]
async fn every_call_shape_ends_at_its_deadline_when_the_server_never_answers_and_is_told_to_stop() {
    let (client, mut server) = client_with_fake_server(1 << 16).await;
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<RawFrame>();
    let reader = tokio::spawn(async move {
        while let Some(frame) = pipe::read_frame(&mut server).await {
            let _ = seen_tx.send(frame);
        }
    });

    every_shape_times_out(&client).await;
    drop(client);
    bounded("the pipe closed", reader).await.unwrap();

    // Each call was cancelled on the server when it timed out.
    let mut commands = Vec::new();
    let mut cancels = Vec::new();
    while let Ok(frame) = seen.try_recv() {
        match frame.kind {
            kind::COMMAND => commands.push(frame.id),
            kind::CANCEL => cancels.push(frame.id),
            _ => {}
        }
    }
    assert_eq!(commands.len(), 4, "{commands:?}");
    assert_eq!(
        cancels, commands,
        "every timed-out call is cancelled, in order"
    );
}

#[tokio::test(start_paused = true)]
async fn every_call_shape_ends_at_its_deadline_when_the_server_stops_reading() {
    // A pipe of 64 bytes that nobody reads after the handshake: a COMMAND
    // or two fill it, and then nothing the client writes gets through.
    let (client, server) = client_with_fake_server(64).await;
    every_shape_times_out(&client).await;
    drop(server);
}

#[tokio::test(start_paused = true)]
async fn answers_that_come_after_the_deadline_do_not_end_a_call_well() {
    let (client, server) = client_with_fake_server(1 << 16).await;
    // This server answers `add` and `countdown` correctly, each three
    // seconds after it arrived (a slow link): past a 2 s deadline, within a
    // 5 s one.
    let (mut reader, mut writer) = tokio::io::split(server);
    let (answers, mut to_write) = mpsc::unbounded_channel::<Vec<u8>>();
    let answering = tokio::spawn(async move {
        while let Some(frame) = pipe::read_frame(&mut reader).await {
            if frame.kind != kind::COMMAND {
                continue;
            }
            let mut answer = Vec::new();
            match u32::from_be_bytes(frame.body[..4].try_into().unwrap()) {
                1 => answer.extend(raw::frame(kind::RESULT_LAST, frame.id, &raw::encode(&5i64))),
                3 => {
                    for n in [2u32, 1, 0] {
                        answer.extend(raw::frame(kind::RESULT, frame.id, &raw::encode(&n)));
                    }
                    answer.extend(raw::frame(kind::END, frame.id, &[]));
                }
                other => panic!("unexpected command {other}"),
            }
            let answers = answers.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let _ = answers.send(answer);
            });
        }
    });
    let writing = tokio::spawn(async move {
        while let Some(answer) = to_write.recv().await {
            if writer.write_all(&answer).await.is_err() {
                return;
            }
        }
    });

    times_out_at_the_deadline("unary", async { Some(client.add(2, 3).await) }).await;
    let mut results = client.countdown(2).unwrap();
    times_out_at_the_deadline("server-streaming", results.next()).await;
    assert!(results.next().await.is_none());

    // With room for the slow link, the same calls succeed.
    let patient = CalcClient::new(
        client
            .inner()
            .with_options(CallOptions::new().timeout(Duration::from_secs(5))),
    );
    assert_eq!(
        bounded("a patient add", patient.add(2, 3)).await.unwrap(),
        5
    );
    let items: Vec<u32> = bounded(
        "a patient countdown",
        patient.countdown(2).unwrap().map(Result::unwrap).collect(),
    )
    .await;
    assert_eq!(items, [2, 1, 0]);
    drop((client, patient));
    bounded("the fake server", answering).await.unwrap();
    bounded("the fake server's writer", writing).await.unwrap();
}
