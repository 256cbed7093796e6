//! Bad input on the wire, both ways: what a server does with bytes no
//! well-behaved client sends, what a client does with a server that
//! misbehaves, and that every other connection keeps working meanwhile.

use std::net::SocketAddr;
use std::time::Duration;

use cmdstream::{Client, CommandInfo, CommandKind, Error, Server, ServiceInfo};
use cmdstream_tests::calc::INFO;
use cmdstream_tests::raw::{self, kind, within, RawConn};
use cmdstream_tests::{connect, eventually, serve, serve_with, CalcClient, Probe, Running};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A well-behaved client, connected before anything bad happens.
async fn bystander(srv: &Running) -> CalcClient {
    within("the bystander connects", connect(srv.addr)).await
}

/// A raw connection that has completed the handshake correctly.
async fn handshaken(srv: &Running) -> RawConn {
    within("the raw client's handshake", RawConn::connect(srv.addr)).await
}

/// A raw connection that has read the server's hello and sent nothing.
async fn greeted(srv: &Running) -> RawConn {
    within("the server's hello", async {
        let mut conn = RawConn::open(srv.addr).await;
        assert_eq!(conn.read_server_hello().await, 0, "server refused");
        conn
    })
    .await
}

/// Asserts the server closes `raw` without sending anything but pings, then
/// frees its connection slot (the bystander keeps the only other one).
async fn assert_closed_silently(srv: &Running, raw: &mut RawConn) {
    let mut frames = raw.expect_closed().await;
    frames.retain(|f| f.kind != kind::PING);
    assert!(frames.is_empty(), "expected a bare close, got {frames:?}");
    eventually("the server frees the closed connection's slot", || {
        srv.server.connections() == 1
    })
    .await;
}

/// Asserts that well-behaved clients, the one connected before and a new
/// one, still get correct answers.
async fn assert_others_still_served(srv: &Running, early: &CalcClient) {
    let sum = within("the bystander's call", early.add(20, 22)).await;
    assert_eq!(sum.unwrap(), 42);
    let late = within("a new client connects", connect(srv.addr)).await;
    let sum = within("the new client's call", late.add(-5, 8)).await;
    assert_eq!(sum.unwrap(), 3);
}

/// Waits until `n` `sleep` commands have started on the server.
async fn started(probe: &Probe, n: usize) {
    eventually("the sleep commands start", || {
        Probe::get(&probe.started) == n
    })
    .await;
}

/// Sends `bytes` on a fresh, correctly handshaken raw connection and asserts
/// that the server closes it without answering, while others keep working.
async fn assert_bytes_close_the_connection(bytes: &[u8]) {
    let srv = serve().await;
    let early = bystander(&srv).await;
    let mut raw = handshaken(&srv).await;
    raw.send(bytes).await;
    assert_closed_silently(&srv, &mut raw).await;
    assert_others_still_served(&srv, &early).await;
}

/// The next frame that is not a PING; panics if the server closed instead.
async fn next_frame(raw: &mut RawConn) -> raw::RawFrame {
    raw.read_non_ping()
        .await
        .expect("the server closed a connection it should keep")
}

// ---------------------------------------------------------------------------
// Server side: handshake
// ---------------------------------------------------------------------------

#[tokio::test]
async fn garbage_instead_of_a_client_hello_closes_the_connection() {
    let srv = serve().await;
    let early = bystander(&srv).await;
    let mut raw = greeted(&srv).await;
    raw.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    assert_closed_silently(&srv, &mut raw).await;
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn a_client_hello_with_the_wrong_fingerprint_is_refused_naming_both_fingerprints() {
    let srv = serve().await;
    let early = bystander(&srv).await;
    let wrong = cmdstream::fingerprint(b"Calc v2");
    let mut raw = greeted(&srv).await;
    raw.send(&raw::client_hello(wrong)).await;
    let (status, reason) = raw.read_ack().await;
    assert_eq!(status, 1, "{reason}");
    assert!(reason.contains(&format!("{wrong:#018x}")), "{reason}");
    assert!(
        reason.contains(&format!("{:#018x}", INFO.fingerprint)),
        "{reason}"
    );
    assert_closed_silently(&srv, &mut raw).await;
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn a_client_hello_with_another_protocol_version_is_refused() {
    let srv = serve().await;
    let early = bystander(&srv).await;
    let mut hello = raw::client_hello(INFO.fingerprint);
    hello[4..6].copy_from_slice(&2u16.to_be_bytes());
    let mut raw = greeted(&srv).await;
    raw.send(&hello).await;
    let (status, reason) = raw.read_ack().await;
    assert_eq!(status, 1, "{reason}");
    assert!(reason.contains("version"), "{reason}");
    assert_closed_silently(&srv, &mut raw).await;
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn a_client_hello_claiming_a_huge_body_closes_the_connection() {
    let srv = serve().await;
    let early = bystander(&srv).await;
    let mut raw = greeted(&srv).await;
    let mut hello = b"CMDC".to_vec();
    hello.extend_from_slice(&1u16.to_be_bytes());
    hello.extend_from_slice(&u32::MAX.to_be_bytes());
    hello.extend_from_slice(&[0; 16]);
    raw.send(&hello).await;
    assert_closed_silently(&srv, &mut raw).await;
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn a_malformed_client_hello_body_closes_the_connection() {
    let srv = serve().await;
    let early = bystander(&srv).await;
    let correct = raw::client_hello(INFO.fingerprint);
    // Too short to hold the fixed fields.
    let mut short = correct[..6].to_vec();
    short.extend_from_slice(&3u32.to_be_bytes());
    short.extend_from_slice(&[1, 2, 3]);
    // A stream window of 0 (body bytes 12..16, after the 10-byte header).
    let mut no_window = correct.clone();
    no_window[22..26].copy_from_slice(&0u32.to_be_bytes());
    // A service name longer than the body.
    let mut overlong_name = correct.clone();
    overlong_name[26..28].copy_from_slice(&u16::MAX.to_be_bytes());
    for hello in [short, no_window, overlong_name] {
        let mut raw = greeted(&srv).await;
        raw.send(&hello).await;
        assert_closed_silently(&srv, &mut raw).await;
    }
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn a_client_that_says_nothing_is_dropped_after_the_handshake_timeout() {
    let srv = serve_with(Server::builder().handshake_timeout(Duration::from_millis(200))).await;
    let early = bystander(&srv).await;
    let mut raw = greeted(&srv).await;
    assert_closed_silently(&srv, &mut raw).await;
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn a_client_that_stalls_halfway_through_its_hello_is_dropped_after_the_handshake_timeout() {
    let srv = serve_with(Server::builder().handshake_timeout(Duration::from_millis(200))).await;
    let early = bystander(&srv).await;
    let hello = raw::client_hello(INFO.fingerprint);
    // Half of the header, then the header and half of the body.
    for cut in [5, 10 + (hello.len() - 10) / 2] {
        let mut raw = greeted(&srv).await;
        raw.send(&hello[..cut]).await;
        assert_closed_silently(&srv, &mut raw).await;
    }
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn a_client_built_from_another_service_definition_fails_to_connect_as_incompatible() {
    static OTHER: ServiceInfo = ServiceInfo::new(
        "Calc",
        cmdstream::fingerprint(b"Calc v2"),
        &[CommandInfo::new(
            1,
            "add",
            CommandKind::Unary,
            cmdstream::fingerprint(b"add v2"),
        )],
    );
    let srv = serve().await;
    let early = bystander(&srv).await;
    let result = within("the connect", Client::connect(srv.addr, &OTHER)).await;
    let err = result.expect_err("connected to a server of another definition");
    let Error::Incompatible(message) = &err else {
        panic!("expected Incompatible, got {err:?}");
    };
    assert!(
        message.contains(&format!("{:#018x}", OTHER.fingerprint)),
        "{message}"
    );
    assert!(
        message.contains(&format!("{:#018x}", INFO.fingerprint)),
        "{message}"
    );
    eventually("the server frees the refused connection's slot", || {
        srv.server.connections() == 1
    })
    .await;
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn a_client_with_another_codec_fails_to_connect_as_incompatible() {
    let srv = serve().await;
    let early = bystander(&srv).await;
    let connecting = Client::builder()
        .codec(cmdstream::codec::Json)
        .connect(srv.addr, &INFO);
    let err = within("the connect", connecting)
        .await
        .expect_err("connected with another codec");
    assert!(matches!(err, Error::Incompatible(_)), "{err:?}");
    assert!(err.to_string().contains("codec"), "{err}");
    assert_others_still_served(&srv, &early).await;
}

// ---------------------------------------------------------------------------
// Server side: frames that break the byte stream
// ---------------------------------------------------------------------------

#[tokio::test]
async fn garbage_after_a_correct_handshake_closes_the_connection() {
    assert_bytes_close_the_connection(b"hello? is this thing on?\r\n\r\n").await;
}

#[tokio::test]
async fn an_absurd_length_prefix_closes_the_connection_without_waiting_for_the_body() {
    // Only a few bytes follow the prefix: a server that believed it would
    // wait for four gigabytes (or try to allocate them).
    let mut bytes = vec![0xFF; 4];
    bytes.push(kind::COMMAND);
    bytes.extend_from_slice(&1u64.to_be_bytes());
    assert_bytes_close_the_connection(&bytes).await;
}

#[tokio::test]
async fn a_length_prefix_below_the_nine_byte_minimum_closes_the_connection() {
    for len in [0u32, 1, 8] {
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend(std::iter::repeat_n(kind::CANCEL, len as usize));
        assert_bytes_close_the_connection(&bytes).await;
    }
}

#[tokio::test]
async fn an_unknown_frame_kind_closes_the_connection() {
    for unknown in [0x00, 0x0C, 0x7F, 0xFF] {
        assert_bytes_close_the_connection(&raw::frame(unknown, 1, &[])).await;
    }
}

#[tokio::test]
async fn a_truncated_frame_then_the_client_closing_its_side_closes_the_connection() {
    let srv = serve().await;
    let early = bystander(&srv).await;
    let mut raw = handshaken(&srv).await;
    let whole = raw::add(1, 1, 2);
    raw.send(&whole[..whole.len() - 3]).await;
    within("the half-close", raw.stream.shutdown())
        .await
        .unwrap();
    assert_closed_silently(&srv, &mut raw).await;
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn a_command_with_unknown_flag_bits_closes_the_connection() {
    for flags in [0x08u8, 0x80, 0xFF] {
        let mut body = 1u32.to_be_bytes().to_vec();
        body.push(flags);
        body.extend_from_slice(&raw::encode(&(1i64, 2i64)));
        assert_bytes_close_the_connection(&raw::frame(kind::COMMAND, 1, &body)).await;
    }
}

#[tokio::test]
async fn metadata_beyond_its_limits_closes_the_connection() {
    /// `add(1, 2)` with user metadata of `n` entries of `len`-byte values.
    fn with_metadata(n: u16, len: usize) -> Vec<u8> {
        let mut body = vec![0, 0, 0, 1, 0x04];
        body.extend_from_slice(&n.to_be_bytes());
        for i in 0..n {
            let key = format!("k{i}");
            body.extend_from_slice(&(key.len() as u16).to_be_bytes());
            body.extend_from_slice(key.as_bytes());
            body.extend_from_slice(&(len as u16).to_be_bytes());
            body.extend(std::iter::repeat_n(b'v', len));
        }
        body.extend(raw::encode(&(1i64, 2i64)));
        raw::frame(kind::COMMAND, 1, &body)
    }
    // Within the limits: answered.
    let srv = serve().await;
    let mut raw = handshaken(&srv).await;
    raw.send(&with_metadata(256, 200)).await;
    let answer = next_frame(&mut raw).await;
    assert_eq!(
        (answer.id, answer.kind),
        (1, kind::RESULT_LAST),
        "{answer:?}"
    );
    // 300 small entries; 4 entries of 20 000 bytes, 80 KB in all.
    for bytes in [with_metadata(300, 1), with_metadata(4, 20_000)] {
        assert_bytes_close_the_connection(&bytes).await;
    }
}

#[tokio::test]
async fn a_command_whose_head_is_cut_short_closes_the_connection() {
    // Shorter than command id and flags.
    let too_short = raw::frame(kind::COMMAND, 1, &[0, 0, 1]);
    // The deadline flag, then fewer than the deadline's four bytes.
    let no_deadline = raw::frame(kind::COMMAND, 1, &[0, 0, 0, 1, 0x01, 0, 0]);
    // The trace flag with a length running past the end of the body.
    let long_trace = raw::frame(kind::COMMAND, 1, &[0, 0, 0, 1, 0x02, 200, b'0']);
    for bytes in [too_short, no_deadline, long_trace] {
        assert_bytes_close_the_connection(&bytes).await;
    }
}

#[tokio::test]
async fn malformed_control_frame_bodies_close_the_connection() {
    let short_credit = raw::frame(kind::CREDIT, 1, &[0, 1]);
    let short_ping = raw::frame(kind::PING, 0, &[1, 2, 3]);
    let long_pong = raw::frame(kind::PONG, 0, &[0; 9]);
    for bytes in [short_credit, short_ping, long_pong] {
        assert_bytes_close_the_connection(&bytes).await;
    }
}

#[tokio::test]
async fn request_id_zero_closes_the_connection() {
    assert_bytes_close_the_connection(&raw::add(0, 1, 2)).await;
}

#[tokio::test]
async fn reusing_a_request_id_still_in_flight_closes_the_connection_and_stops_the_call() {
    let srv = serve().await;
    let early = bystander(&srv).await;
    let mut raw = handshaken(&srv).await;
    raw.send(&raw::sleep(1, 60_000)).await;
    started(&srv.probe, 1).await;
    raw.send(&raw::add(1, 1, 2)).await;
    assert_closed_silently(&srv, &mut raw).await;
    eventually("the sleep in flight is stopped", || {
        Probe::get(&srv.probe.dropped) == 1
    })
    .await;
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn frames_only_a_server_sends_close_the_connection() {
    let result = raw::frame(kind::RESULT, 1, &raw::encode(&3i64));
    let result_last = raw::frame(kind::RESULT_LAST, 1, &raw::encode(&3i64));
    let error = raw::frame(kind::ERROR, 1, b"\x00\x07nope");
    let go_away = raw::frame(kind::GO_AWAY, 0, b"leaving");
    for bytes in [result, result_last, error, go_away] {
        assert_bytes_close_the_connection(&bytes).await;
    }
}

#[tokio::test]
async fn frames_only_a_server_sends_close_the_connection_even_naming_a_call_in_flight() {
    let srv = serve().await;
    let early = bystander(&srv).await;
    let mut raw = handshaken(&srv).await;
    raw.send(&raw::sleep(1, 60_000)).await;
    started(&srv.probe, 1).await;
    raw.send(&raw::frame(kind::RESULT_LAST, 1, &raw::encode(&5u64)))
        .await;
    assert_closed_silently(&srv, &mut raw).await;
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn an_item_for_a_call_that_takes_no_items_closes_the_connection() {
    let srv = serve().await;
    let early = bystander(&srv).await;
    let mut raw = handshaken(&srv).await;
    raw.send(&raw::sleep(1, 60_000)).await;
    started(&srv.probe, 1).await;
    raw.send(&raw::frame(kind::ITEM, 1, &raw::encode(&7i64)))
        .await;
    assert_closed_silently(&srv, &mut raw).await;
    eventually("the sleep in flight is stopped", || {
        Probe::get(&srv.probe.dropped) == 1
    })
    .await;
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn items_beyond_the_granted_credit_close_the_connection() {
    let srv = serve_with(Server::builder().stream_window(2)).await;
    let early = bystander(&srv).await;
    let mut raw = handshaken(&srv).await;
    // `total` (id 4) takes no arguments besides its stream of i64.
    raw.send(&raw::command(1, 4, &raw::encode(&()))).await;
    let mut items = Vec::new();
    for n in 0..3i64 {
        items.extend(raw::frame(kind::ITEM, 1, &raw::encode(&n)));
    }
    raw.send(&items).await;
    let mut frames = raw.expect_closed().await;
    frames.retain(|f| f.kind != kind::PING && f.kind != kind::CREDIT);
    assert!(frames.is_empty(), "expected a bare close, got {frames:?}");
    assert_others_still_served(&srv, &early).await;
}

// ---------------------------------------------------------------------------
// Server side: bad calls on a good connection
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_command_id_gets_error_1_and_the_connection_lives() {
    let srv = serve().await;
    let early = bystander(&srv).await;
    let mut raw = handshaken(&srv).await;
    raw.send(&raw::command(1, 999, &[])).await;
    let err = next_frame(&mut raw).await;
    assert_eq!((err.id, err.error_code()), (1, 1), "{err:?}");
    raw.send(&raw::add(2, 40, 2)).await;
    let ok = next_frame(&mut raw).await;
    assert_eq!((ok.id, ok.i64_result()), (2, 42));
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn an_undecodable_payload_gets_error_2_and_the_connection_lives() {
    let srv = serve().await;
    let early = bystander(&srv).await;
    let mut raw = handshaken(&srv).await;
    let mut trailing = raw::encode(&(1i64, 2i64));
    trailing.extend_from_slice(b"junk");
    let payloads = [Vec::new(), b"\xff\xff\xff".to_vec(), trailing];
    for (id, payload) in (1u64..).zip(payloads) {
        raw.send(&raw::command(id, 1, &payload)).await;
        let err = next_frame(&mut raw).await;
        assert_eq!((err.id, err.error_code()), (id, 2), "{err:?}");
    }
    raw.send(&raw::add(10, 40, 2)).await;
    let ok = next_frame(&mut raw).await;
    assert_eq!((ok.id, ok.i64_result()), (10, 42));
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn an_undecodable_streamed_item_gets_error_2_and_the_connection_lives() {
    let srv = serve().await;
    let early = bystander(&srv).await;
    let mut raw = handshaken(&srv).await;
    let mut call = raw::command(1, 4, &raw::encode(&()));
    call.extend(raw::frame(kind::ITEM, 1, &raw::encode(&5i64)));
    call.extend(raw::frame(kind::ITEM, 1, b"\xff\xff\xff"));
    call.extend(raw::frame(kind::END, 1, &[]));
    raw.send(&call).await;
    let err = loop {
        let f = next_frame(&mut raw).await;
        if f.kind != kind::CREDIT {
            break f;
        }
    };
    assert_eq!((err.id, err.error_code()), (1, 2), "{err:?}");
    raw.send(&raw::add(2, 40, 2)).await;
    let ok = next_frame(&mut raw).await;
    assert_eq!((ok.id, ok.i64_result()), (2, 42));
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn cancel_credit_end_and_item_for_unknown_request_ids_are_ignored() {
    let srv = serve().await;
    let early = bystander(&srv).await;
    let mut raw = handshaken(&srv).await;
    // A call that completed, so its id is no longer in flight.
    raw.send(&raw::add(1, 1, 1)).await;
    assert_eq!(next_frame(&mut raw).await.i64_result(), 2);
    let mut stray = Vec::new();
    for id in [1u64, 77] {
        stray.extend(raw::frame(kind::CANCEL, id, &[]));
        stray.extend(raw::frame(kind::CREDIT, id, &8u32.to_be_bytes()));
        stray.extend(raw::frame(kind::END, id, &[]));
        stray.extend(raw::frame(kind::ITEM, id, &raw::encode(&3i64)));
    }
    raw.send(&stray).await;
    raw.send(&raw::add(2, 40, 2)).await;
    let ok = next_frame(&mut raw).await;
    assert_eq!((ok.kind, ok.id), (kind::RESULT_LAST, 2), "{ok:?}");
    assert_eq!(ok.i64_result(), 42);
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn cancel_and_end_frames_with_a_body_close_the_connection() {
    for kind in [kind::CANCEL, kind::END] {
        assert_bytes_close_the_connection(&raw::frame(kind, 1, b"x")).await;
    }
}

#[tokio::test]
async fn a_request_id_reused_right_after_its_cancel_belongs_to_the_new_call() {
    let srv = serve().await;
    let early = bystander(&srv).await;
    let mut raw = handshaken(&srv).await;
    // In one write: a long call, its cancel, and a new call with the same
    // id. Nothing of the cancelled call may reach the new one.
    let mut bytes = raw::sleep(51, 60_000);
    bytes.extend(raw::frame(kind::CANCEL, 51, &[]));
    bytes.extend(raw::sleep(51, 10));
    raw.send(&bytes).await;
    let answer = next_frame(&mut raw).await;
    assert_eq!(
        (answer.id, answer.kind),
        (51, kind::RESULT_LAST),
        "{answer:?}"
    );
    assert_eq!(answer.result::<u64>(), 10);
    eventually("the cancelled sleep is stopped", || {
        Probe::get(&srv.probe.dropped) == 1
    })
    .await;
    // Nothing else was sent for id 51: the next frame answers a ping.
    raw.send(&raw::frame(kind::PING, 0, &[7; 8])).await;
    let pong = next_frame(&mut raw).await;
    assert_eq!((pong.kind, pong.body), (kind::PONG, vec![7; 8]));
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn a_client_hello_whose_frame_limit_cannot_hold_an_answer_is_refused_naming_it() {
    let srv = serve().await;
    let early = bystander(&srv).await;
    let mut raw = greeted(&srv).await;
    raw.send(&raw::client_hello_with(INFO.fingerprint, 100, 32))
        .await;
    let (status, reason) = raw.read_ack().await;
    assert_eq!(status, 1, "{reason}");
    assert!(reason.contains("at most 100 bytes"), "{reason}");
    assert_closed_silently(&srv, &mut raw).await;
    assert_others_still_served(&srv, &early).await;
}

#[tokio::test]
async fn a_result_window_beyond_the_servers_limit_is_clamped_to_it() {
    let srv = serve_with(Server::builder().max_result_window(16)).await;
    let hello = raw::client_hello_with(INFO.fingerprint, 16 << 20, 1_000);
    let mut raw = within("the handshake", RawConn::connect_with(srv.addr, &hello)).await;

    /// Reads `n` results of call 1, then checks the server waits for
    /// credit: a ping is answered before any more.
    async fn results_then_a_pause(raw: &mut RawConn, n: usize, ping: u8) {
        for _ in 0..n {
            let f = next_frame(raw).await;
            assert_eq!((f.id, f.kind), (1, kind::RESULT), "{f:?}");
        }
        raw.send(&raw::frame(kind::PING, 0, &[ping; 8])).await;
        let f = next_frame(raw).await;
        assert_eq!(
            (f.kind, f.body),
            (kind::PONG, vec![ping; 8]),
            "more than {n} results"
        );
    }

    // The window of 1000 announced: 16 results.
    raw.send(&raw::command(1, 3, &raw::encode(&(100u32,))))
        .await;
    results_then_a_pause(&mut raw, 16, 1).await;
    // Credit of four billion, twice: 16 more, not four billion.
    let mut credit = raw::frame(kind::CREDIT, 1, &u32::MAX.to_be_bytes());
    credit.extend(raw::frame(kind::CREDIT, 1, &u32::MAX.to_be_bytes()));
    raw.send(&credit).await;
    results_then_a_pause(&mut raw, 16, 2).await;
    // Credit within the limit is granted as it is.
    raw.send(&raw::frame(kind::CREDIT, 1, &8u32.to_be_bytes()))
        .await;
    results_then_a_pause(&mut raw, 8, 3).await;
}

// ---------------------------------------------------------------------------
// Client side: a fake server driven by hand
// ---------------------------------------------------------------------------

/// A fake server on loopback that accepts one connection and runs `script`
/// on it.
async fn fake_server<F, Fut>(script: F) -> (SocketAddr, JoinHandle<()>)
where
    F: FnOnce(RawConn) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (stream, _) = within("the client dials", listener.accept()).await.unwrap();
        script(RawConn { stream }).await;
    });
    (addr, task)
}

/// Connects a `Calc` client to `addr`, bounded.
async fn connect_to_fake(addr: SocketAddr) -> CalcClient {
    let client = within("the connect", Client::connect(addr, &INFO)).await;
    CalcClient::new(client.expect("the fake server's handshake is correct"))
}

/// Asserts `client`'s connection is gone for good: it says so, and a new
/// call fails at once instead of hanging.
async fn assert_connection_gone(client: &CalcClient) {
    eventually("the client notices its connection is gone", || {
        client.inner().is_closed()
    })
    .await;
    let err = within("a call on a closed connection", client.add(1, 1))
        .await
        .expect_err("a call succeeded on a closed connection");
    assert!(matches!(err, Error::ConnectionLost { .. }), "{err:?}");
}

/// Runs one call against a fake server that answers its COMMAND with
/// `answer`; asserts the call fails as a broken connection, the client
/// closes its side, and the client's handle reports the connection gone.
async fn assert_answer_breaks_the_connection(answer: Vec<u8>) {
    let (addr, fake) = fake_server(move |mut conn| async move {
        conn.accept_handshake().await;
        let cmd = conn.read_frame().await.expect("a COMMAND");
        assert_eq!(cmd.kind, kind::COMMAND);
        conn.send(&answer).await;
        // The client has to close the connection by itself.
        conn.expect_closed().await;
    })
    .await;
    let client = connect_to_fake(addr).await;
    let err = within("the call", client.add(1, 2))
        .await
        .expect_err("a call succeeded on a broken connection");
    assert!(
        matches!(err, Error::ConnectionLost { .. } | Error::Protocol(_)),
        "{err:?}"
    );
    within("the fake server's script", fake).await.unwrap();
    assert_connection_gone(&client).await;
}

#[tokio::test]
async fn a_server_sending_garbage_instead_of_a_hello_fails_the_connect_as_incompatible() {
    let (addr, fake) = fake_server(|mut conn| async move {
        conn.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
        conn.expect_closed().await;
    })
    .await;
    let result = within("the connect", Client::connect(addr, &INFO)).await;
    let err = result.expect_err("connected to something that is not a server");
    assert!(matches!(err, Error::Incompatible(_)), "{err:?}");
    within("the fake server's script", fake).await.unwrap();
}

#[tokio::test]
async fn a_server_that_stalls_in_its_hello_fails_the_connect_after_the_handshake_timeout() {
    let (addr, fake) = fake_server(|mut conn| async move {
        let hello = raw::server_hello(INFO.fingerprint, 16 << 20, 1024);
        conn.send(&hello[..hello.len() / 2]).await;
        conn.expect_closed().await;
    })
    .await;
    let connecting = Client::builder()
        .handshake_timeout(Duration::from_millis(200))
        .connect(addr, &INFO);
    let err = within("the connect", connecting)
        .await
        .expect_err("connected to a server that never finished its hello");
    assert!(
        matches!(err, Error::ConnectionLost { .. } | Error::Timeout),
        "{err:?}"
    );
    within("the fake server's script", fake).await.unwrap();
}

#[tokio::test]
async fn a_frame_of_absurd_length_from_the_server_fails_the_pending_call() {
    let mut answer = vec![0xFF; 4];
    answer.push(kind::RESULT_LAST);
    answer.extend_from_slice(&1u64.to_be_bytes());
    assert_answer_breaks_the_connection(answer).await;
}

#[tokio::test]
async fn a_broken_frame_from_the_server_fails_the_pending_call() {
    let too_short = 3u32.to_be_bytes().into_iter().chain([1, 2, 3]).collect();
    let unknown_kind = raw::frame(0x7F, 1, &[]);
    let client_only_kind = raw::add(1, 1, 2);
    let short_error = raw::frame(kind::ERROR, 1, &[7]);
    for answer in [too_short, unknown_kind, client_only_kind, short_error] {
        assert_answer_breaks_the_connection(answer).await;
    }
}

#[tokio::test]
async fn an_error_code_8_too_short_for_its_sizes_fails_the_call_not_the_connection() {
    let (addr, fake) = fake_server(|mut conn| async move {
        conn.accept_handshake().await;
        let cmd = conn.read_frame().await.expect("a COMMAND");
        conn.send(&raw::frame(kind::ERROR, cmd.id, b"\x00\x08big"))
            .await;
        let cmd = conn.read_frame().await.expect("a second COMMAND");
        conn.send(&raw::frame(kind::RESULT_LAST, cmd.id, &raw::encode(&4i64)))
            .await;
        conn.expect_closed().await;
    })
    .await;
    let client = connect_to_fake(addr).await;
    let err = within("the call", client.add(1, 2)).await.unwrap_err();
    match &err {
        Error::Remote(remote) => {
            assert_eq!(remote.code, cmdstream::ErrorCode::FrameTooLarge);
            assert_eq!(remote.message.as_ref(), "big");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    assert_eq!(within("the next call", client.add(2, 2)).await.unwrap(), 4);
    drop(client);
    within("the fake server's script", fake).await.unwrap();
}

#[tokio::test]
async fn answers_for_requests_nobody_made_are_ignored() {
    let (addr, fake) = fake_server(|mut conn| async move {
        conn.accept_handshake().await;
        for _ in 0..2 {
            let cmd = conn.read_frame().await.expect("a COMMAND");
            assert_eq!(cmd.kind, kind::COMMAND);
            // Command id and flags, then the arguments of `add`.
            let (a, b): (i64, i64) =
                cmdstream::Codec::decode(&cmdstream::codec::Bincode, &cmd.body[5..]).unwrap();
            let stray = cmd.id + 1000;
            let mut out = Vec::new();
            out.extend(raw::frame(kind::RESULT_LAST, stray, &raw::encode(&99i64)));
            out.extend(raw::frame(kind::RESULT, stray, &raw::encode(&98i64)));
            out.extend(raw::frame(kind::ERROR, stray, b"\x00\x07stray"));
            out.extend(raw::frame(kind::END, stray, &[]));
            out.extend(raw::frame(kind::CREDIT, stray, &4u32.to_be_bytes()));
            out.extend(raw::frame(
                kind::RESULT_LAST,
                cmd.id,
                &raw::encode(&(a + b)),
            ));
            conn.send(&out).await;
        }
        conn.expect_closed().await;
    })
    .await;
    let client = connect_to_fake(addr).await;
    assert_eq!(within("the first call", client.add(2, 3)).await.unwrap(), 5);
    assert_eq!(
        within("the second call", client.add(7, 8)).await.unwrap(),
        15
    );
    assert!(!client.inner().is_closed());
    drop(client);
    within("the fake server's script", fake).await.unwrap();
}

#[tokio::test]
async fn a_server_closing_mid_frame_fails_every_pending_call_with_connection_lost() {
    let (addr, fake) = fake_server(|mut conn| async move {
        conn.accept_handshake().await;
        let first = conn.read_frame().await.expect("a COMMAND");
        let second = conn.read_frame().await.expect("a COMMAND");
        assert_eq!((first.kind, second.kind), (kind::COMMAND, kind::COMMAND));
        let whole = raw::frame(kind::RESULT_LAST, first.id, &raw::encode(&3i64));
        conn.send(&whole[..whole.len() / 2]).await;
        // Dropping the connection closes it mid-frame.
    })
    .await;
    let client = connect_to_fake(addr).await;
    let (a, b) = within("the two calls", async {
        tokio::join!(client.add(1, 2), client.add(3, 4))
    })
    .await;
    for result in [a, b] {
        let err = result.expect_err("a call succeeded on a cut connection");
        assert!(matches!(err, Error::ConnectionLost { .. }), "{err:?}");
    }
    within("the fake server's script", fake).await.unwrap();
    assert_connection_gone(&client).await;
}

/// Drains `stream`, bounded: its items, and the error it ended with.
async fn drain<T>(
    mut stream: cmdstream::ResultStream<T, cmdstream::codec::Bincode>,
) -> (Vec<T>, Option<Error>)
where
    T: serde::de::DeserializeOwned,
{
    within("the stream's end", async {
        let mut items = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(item) => items.push(item),
                Err(e) => return (items, Some(e)),
            }
        }
        (items, None)
    })
    .await
}

#[tokio::test]
async fn results_of_streams_interleaved_in_one_write_reach_each_its_own_consumer() {
    let (addr, fake) = fake_server(|mut conn| async move {
        conn.accept_handshake().await;
        // Call id by the `from` it asks for: the fake's items for stream
        // `from` are from * 100 + 0, 1, 2.
        let mut ids = [0u64; 3];
        for _ in 0..2 {
            let cmd = conn.read_frame().await.expect("a COMMAND");
            let (from,): (u32,) =
                cmdstream::Codec::decode(&cmdstream::codec::Bincode, &cmd.body[5..]).unwrap();
            ids[from as usize] = cmd.id;
        }
        let result = |from: u32, i: u32| {
            raw::frame(
                kind::RESULT,
                ids[from as usize],
                &raw::encode(&(from * 100 + i)),
            )
        };
        let mut out = Vec::new();
        for (from, i) in [(1, 0), (1, 1), (2, 0), (1, 2), (2, 1), (2, 2)] {
            out.extend(result(from, i));
            if (from, i) == (1, 1) {
                // A stray run in between, for a call nobody made.
                out.extend(raw::frame(kind::RESULT, ids[1] + 1000, &raw::encode(&7u32)));
                out.extend(raw::frame(kind::RESULT, ids[1] + 1000, &raw::encode(&7u32)));
            }
        }
        out.extend(raw::frame(kind::END, ids[2], &[]));
        out.extend(raw::frame(kind::END, ids[1], &[]));
        conn.send(&out).await;
        conn.expect_closed().await;
    })
    .await;
    let client = connect_to_fake(addr).await;
    let one = client.countdown(1).unwrap();
    let two = client.countdown(2).unwrap();
    let ((one, e1), (two, e2)) = tokio::join!(drain(one), drain(two));
    assert_eq!(
        (one, e1.map(|e| e.to_string())),
        (vec![100, 101, 102], None)
    );
    assert_eq!(
        (two, e2.map(|e| e.to_string())),
        (vec![200, 201, 202], None)
    );
    assert!(!client.inner().is_closed());
    drop(client);
    within("the fake server's script", fake).await.unwrap();
}

#[tokio::test]
async fn results_beyond_the_window_in_one_write_break_the_connection() {
    let (addr, fake) = fake_server(|mut conn| async move {
        conn.accept_handshake().await;
        let cmd = conn.read_frame().await.expect("a COMMAND");
        // The client's window is 4 items: the fifth has no credit.
        let mut out = Vec::new();
        for i in 0..5u32 {
            out.extend(raw::frame(kind::RESULT, cmd.id, &raw::encode(&i)));
        }
        conn.send(&out).await;
        conn.expect_closed().await;
    })
    .await;
    let client = within(
        "the connect",
        Client::builder().stream_window(4).connect(addr, &INFO),
    )
    .await
    .map(CalcClient::new)
    .expect("the fake server's handshake is correct");
    let (items, error) = drain(client.countdown(9).unwrap()).await;
    assert!(items.len() <= 4, "{items:?}");
    assert!(
        matches!(
            error,
            Some(Error::ConnectionLost { .. } | Error::Protocol(_))
        ),
        "{error:?}"
    );
    within("the fake server's script", fake).await.unwrap();
    assert_connection_gone(&client).await;
}

#[tokio::test]
async fn streamed_results_for_a_single_result_call_break_the_connection() {
    // Request id 1 is the client's first call.
    let mut answer = raw::frame(kind::RESULT, 1, &raw::encode(&3i64));
    answer.extend(raw::frame(kind::RESULT, 1, &raw::encode(&3i64)));
    assert_answer_breaks_the_connection(answer).await;
}

#[tokio::test]
async fn results_before_a_broken_frame_still_reach_the_consumer() {
    let (addr, fake) = fake_server(|mut conn| async move {
        conn.accept_handshake().await;
        let cmd = conn.read_frame().await.expect("a COMMAND");
        let mut out = Vec::new();
        for i in 0..3u32 {
            out.extend(raw::frame(kind::RESULT, cmd.id, &raw::encode(&i)));
        }
        out.extend(raw::frame(0xEE, cmd.id, &[]));
        conn.send(&out).await;
        conn.expect_closed().await;
    })
    .await;
    let client = connect_to_fake(addr).await;
    let (items, error) = drain(client.countdown(9).unwrap()).await;
    assert_eq!(items, [0, 1, 2]);
    assert!(
        matches!(
            error,
            Some(Error::ConnectionLost { .. } | Error::Protocol(_))
        ),
        "{error:?}"
    );
    within("the fake server's script", fake).await.unwrap();
    assert_connection_gone(&client).await;
}

#[tokio::test]
async fn an_end_frame_with_a_body_from_the_server_breaks_the_connection() {
    assert_answer_breaks_the_connection(raw::frame(kind::END, 1, b"x")).await;
}
