//! Every call shape through a real loopback connection, and many answers
//! arriving in one read from a scripted server.

use cmdstream::Error;
use cmdstream_tests::{connect, serve, DivError};
use futures_util::{stream, StreamExt};

#[tokio::test]
async fn unary_call_returns_its_result() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    assert_eq!(client.add(2, 3).await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_calling_at_once_each_get_their_own_result() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let mut tasks = Vec::new();
    for t in 0..64i64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200i64 {
                let (a, b) = (t * 1_000_000 + i, i * 7 - t);
                assert_eq!(client.add(a, b).await.unwrap(), a + b, "task {t} call {i}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn application_errors_arrive_typed() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    assert_eq!(client.div(7, 2).await.unwrap(), Ok(3));
    assert_eq!(client.div(7, 0).await.unwrap(), Err(DivError::DivideByZero));
}

#[tokio::test]
async fn server_stream_keeps_order_and_ends() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    // More items than the window, so credit has to flow back.
    let items: Vec<u32> = client
        .countdown(500)
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(items, (0..=500).rev().collect::<Vec<_>>());
}

#[tokio::test]
async fn client_stream_sums_every_item() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let total = client.total(stream::iter(1..=1000i64)).await.unwrap();
    assert_eq!(total, 500_500);
    assert_eq!(client.total(stream::empty()).await.unwrap(), 0);
}

#[tokio::test]
async fn bidi_streams_both_ways() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let lines = (0..300).map(|i| format!("line {i}")).collect::<Vec<_>>();
    let out: Vec<String> = client
        .echo(stream::iter(lines.clone()))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(
        out,
        lines.iter().map(|l| l.to_uppercase()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn unknown_command_fails_one_call_and_the_connection_lives() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let err = client.raw_unary::<_, i64>(999, &()).await.unwrap_err();
    assert!(matches!(err, Error::UnknownCommand { id: 999 }), "{err}");
    assert_eq!(client.add(1, 1).await.unwrap(), 2);
}

#[tokio::test]
async fn undecodable_arguments_fail_one_call_and_the_connection_lives() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    // `add` wants two i64s; send a string.
    let err = client
        .raw_unary::<_, i64>(1, &"not numbers")
        .await
        .unwrap_err();
    match err {
        Error::Remote(e) => assert_eq!(e.code, cmdstream::ErrorCode::BadPayload),
        other => panic!("{other}"),
    }
    assert_eq!(client.add(1, 1).await.unwrap(), 2);
}

#[tokio::test]
async fn a_panicking_command_fails_one_call_and_the_connection_lives() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let err = client.boom().await.unwrap_err();
    match err {
        Error::Remote(e) => {
            assert_eq!(e.code, cmdstream::ErrorCode::Internal);
            assert!(e.message.contains("panicked"), "{e}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(client.add(1, 1).await.unwrap(), 2);
}

#[tokio::test]
async fn metadata_and_deadline_reach_the_command() {
    let srv = serve().await;
    let client = cmdstream_tests::CalcClient::new(
        cmdstream::Client::builder()
            .connection_metadata("app", "tests")
            .connect(srv.addr, &cmdstream_tests::calc::INFO)
            .await
            .unwrap(),
    );
    assert_eq!(
        client.whoami().await.unwrap(),
        (None, Some("tests".into()), None, false)
    );
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let opts = cmdstream::CallOptions::new()
        .metadata("user", "ada")
        .traceparent(tp)
        .timeout(std::time::Duration::from_secs(30));
    let got = client.with_options(opts).whoami().await.unwrap();
    assert_eq!(
        got,
        (
            Some("ada".into()),
            Some("tests".into()),
            Some(tp.into()),
            true
        )
    );
}

#[tokio::test]
async fn a_result_too_large_for_the_client_fails_that_call_only() {
    let srv = serve().await;
    let client = cmdstream_tests::CalcClient::new(
        cmdstream::Client::builder()
            .max_frame_size(1024)
            .connect(srv.addr, &cmdstream_tests::calc::INFO)
            .await
            .unwrap(),
    );
    let err = client.blob(4096).await.unwrap_err();
    // Both numbers come from the server, as numbers.
    assert!(
        matches!(err, Error::FrameTooLarge { size, max: 1024 } if size > 4096),
        "{err:?}"
    );
    assert_eq!(client.blob(100).await.unwrap(), vec![7; 100]);
}

#[tokio::test]
async fn arguments_too_large_for_the_server_fail_locally() {
    let srv = serve_small_frames().await;
    let client = connect(srv.addr).await;
    let big = vec![1i64; 10_000];
    let err = client.raw_unary::<_, i64>(1, &big).await.unwrap_err();
    assert!(
        matches!(err, Error::FrameTooLarge { max: 4096, .. }),
        "{err:?}"
    );
    assert_eq!(client.add(1, 2).await.unwrap(), 3);
}

async fn serve_small_frames() -> cmdstream_tests::Running {
    cmdstream_tests::serve_with(cmdstream::Server::builder().max_frame_size(4096)).await
}

#[tokio::test]
async fn clones_share_one_connection() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let clones: Vec<_> = (0..8).map(|_| client.clone()).collect();
    let results = futures_util::future::join_all(clones.iter().map(|c| c.add(1, 2))).await;
    assert!(results.into_iter().all(|r| r.unwrap() == 3));
    assert_eq!(srv.server.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_can_run_in_its_own_task_instead_of_inline() {
    let srv =
        cmdstream_tests::serve_with(cmdstream::Server::builder().run_ready_commands_inline(false))
            .await;
    let client = connect(srv.addr).await;
    assert_eq!(client.add(2, 3).await.unwrap(), 5);
    let err = client.boom().await.unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    let items: Vec<u32> = client
        .countdown(3)
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(items, [3, 2, 1, 0]);
    assert_eq!(client.sleep(5).await.unwrap(), 5);
    // Commands that finish at once and commands that wait, interleaved on
    // one connection (the server reuses a finished command's memory).
    let (slow, fast) = tokio::join!(client.sleep(20), client.add(4, 4));
    assert_eq!((slow.unwrap(), fast.unwrap()), (20, 8));
    assert_eq!(client.add(5, 5).await.unwrap(), 10);
}

#[tokio::test]
async fn commands_that_wait_and_commands_that_do_not_interleave_on_one_connection() {
    // By default a command that finishes at once leaves its memory to the
    // next; one that waits takes it along into its task.
    let srv = serve().await;
    let client = connect(srv.addr).await;
    for round in 0..3i64 {
        assert_eq!(client.add(round, 1).await.unwrap(), round + 1);
        let (slow, fast) = tokio::join!(client.sleep(10), client.add(4, 4));
        assert_eq!((slow.unwrap(), fast.unwrap()), (10, 8));
        let err = client.boom().await.unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
    }
    assert_eq!(client.add(5, 5).await.unwrap(), 10);
}

#[tokio::test]
async fn metadata_too_large_to_send_fails_the_call_typed_and_sends_nothing() {
    let srv = serve().await;
    let client = connect(srv.addr).await;
    let oversized = cmdstream::CallOptions::new().metadata("pad", "x".repeat(70_000));
    let heavy = cmdstream_tests::CalcClient::new(client.inner().with_options(oversized));
    let err = heavy
        .add(1, 2)
        .await
        .expect_err("an unsendable call was sent");
    assert!(matches!(err, Error::InvalidMetadata(_)), "{err:?}");
    // Too many entries, each small.
    let mut many = cmdstream::CallOptions::new();
    for i in 0..300 {
        many = many.metadata(format!("k{i}"), "v");
    }
    let chatty = cmdstream_tests::CalcClient::new(client.inner().with_options(many));
    let err = chatty
        .add(1, 2)
        .await
        .expect_err("an unsendable call was sent");
    assert!(matches!(err, Error::InvalidMetadata(_)), "{err:?}");
    // The connection is unharmed.
    assert_eq!(client.add(1, 2).await.unwrap(), 3);
}

#[tokio::test]
async fn connection_metadata_too_large_to_send_fails_the_connect_typed() {
    let srv = serve().await;
    let err = cmdstream::Client::builder()
        .connection_metadata("pad", "x".repeat(70_000))
        .connect(srv.addr, &cmdstream_tests::calc::INFO)
        .await
        .expect_err("an unsendable hello was sent");
    assert!(matches!(err, Error::InvalidMetadata(_)), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn answers_arriving_in_one_read_all_reach_their_callers_however_many() {
    use cmdstream::codec::{Bincode, Codec};
    use cmdstream_tests::raw::{self, kind, pipe};
    use tokio::io::AsyncWriteExt;

    // Far more answers than the client routes between two yields, all in
    // one write, in reverse order, and then nothing more: the rest of the
    // read is routed without waiting for the socket.
    const CALLS: i64 = 300;
    let (ours, mut theirs) = tokio::io::duplex(1 << 20);
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let fake = tokio::spawn(async move {
        pipe::accept(&mut theirs, 0, 32).await;
        let mut answers = Vec::new();
        for _ in 0..CALLS {
            let call = pipe::read_frame(&mut theirs).await.expect("a COMMAND");
            assert_eq!(call.kind, kind::COMMAND);
            // After the command id and the flags (none set): `(a, b)`.
            assert_eq!(call.body[4], 0, "no head fields");
            let (a, b): (i64, i64) = Codec::decode(&Bincode, &call.body[5..]).unwrap();
            answers.push(raw::frame(
                kind::RESULT_LAST,
                call.id,
                &raw::encode(&(a + b)),
            ));
        }
        theirs.write_all(&answers.concat()).await.unwrap();
        let _ = finished.await;
    });
    let client = pipe::calc_client(ours).await;
    let calls = (0..CALLS).map(|i| {
        let client = client.clone();
        async move { client.add(i, 1000).await }
    });
    let results = tokio::time::timeout(
        std::time::Duration::from_secs(3_600),
        futures_util::future::join_all(calls),
    )
    .await
    .expect("every call answered");
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap(), i as i64 + 1000, "call {i}");
    }
    let _ = done.send(());
    fake.await.unwrap();
}
