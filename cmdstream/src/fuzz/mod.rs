//! Checks for every decoder that takes network input, each a function of
//! arbitrary bytes that panics when an invariant breaks. The fuzz targets
//! under `fuzz/` feed them coverage-guided input (nightly, cargo-fuzz); the
//! property tests below feed them generated input on stable, in
//! `cargo test`. Not part of the public API: behind the `fuzzing` feature.
//!
//! The invariants: decoding never panics and never reads past its input;
//! what a decoder consumed plus what it left is the input; what decodes
//! encodes back to the same bytes (or, where the wire allows two spellings
//! of one value, to bytes that decode to the same value); nothing is
//! reserved beyond what the input holds or the frame limit allows.

mod connection;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

pub use self::connection::{client_connection, server_connection};
use crate::error::ErrorCode;
use crate::wire::command::{self, parse, put_head};
use crate::wire::compat::{put_table, take_table};
use crate::wire::frame::{self, Frame, FrameDecoder, Kind, HEADER_SIZE, LEN_SIZE};
use crate::wire::hello::{
    decode_client_head, decode_server_head, ClientHello, ServerHello, CLIENT_HEAD, MAX_BODY,
    SERVER_HEAD,
};
use crate::wire::primitives::{put_metadata, take_metadata};
use crate::wire::results::Incoming;

/// The frame limit the frame checks decode with: small, so that inputs
/// reach it.
const MAX_FRAME: usize = 4096;

/// Cuts a byte stream into frames and runs of results, as both drivers
/// do: every frame is whole, within the limit, and re-encodes to exactly
/// the bytes it was cut from; runs hold as many bodies as they say.
pub fn frames(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let mut dec = FrameDecoder::new(MAX_FRAME);
    let mut consumed = 0;
    loop {
        let at = consumed;
        match dec.decode_incoming(&mut buf) {
            Ok(Some(Incoming::Frame(f))) => {
                let size = LEN_SIZE + HEADER_SIZE + f.body.len();
                assert!(size - LEN_SIZE <= MAX_FRAME, "a frame above the limit");
                let mut again = BytesMut::new();
                frame::put(&mut again, f.kind, f.id, &f.body);
                assert_eq!(&again[..], &data[at..at + size], "a frame re-encodes alike");
                consumed += size;
            }
            Ok(Some(Incoming::Results(mut run))) => {
                let (count, size, id) = (run.count(), run.size(), run.id());
                let mut bodies = 0u32;
                let mut again = BytesMut::new();
                while let Some(body) = run.next_body() {
                    frame::put(&mut again, Kind::Result, id, body);
                    bodies += 1;
                }
                assert_eq!(bodies, count, "a run holds the results it counts");
                assert_eq!(&again[..], &data[at..at + size], "a run re-encodes alike");
                consumed += size;
            }
            Ok(None) | Err(_) => break,
        }
    }
    assert_eq!(consumed + buf.len(), data.len(), "consumed + rest = input");
    // The same bytes cut one frame at a time agree on where frames end.
    let mut buf = BytesMut::from(data);
    let mut one_by_one = 0;
    while let Ok(Some(f)) = dec.decode(&mut buf) {
        one_by_one += LEN_SIZE + HEADER_SIZE + f.body.len();
    }
    assert_eq!(one_by_one, consumed, "runs and single frames cut alike");
}

/// Reads the first byte as a frame kind and the rest as its body, and runs
/// the body parser of that kind: a body that parses encodes back to itself.
pub fn frame_bodies(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let kinds = [
        Kind::Cancel,
        Kind::End,
        Kind::Credit,
        Kind::Ping,
        Kind::Pong,
        Kind::Error,
    ];
    let kind = kinds[kind as usize % kinds.len()];
    let f = Frame {
        kind,
        id: 1,
        body: Bytes::copy_from_slice(body),
    };
    let mut again = BytesMut::new();
    match kind {
        Kind::Cancel | Kind::End => assert_eq!(f.expect_empty().is_ok(), body.is_empty()),
        Kind::Credit => {
            if let Ok(n) = f.credit() {
                frame::put_credit(&mut again, 1, n);
                assert_eq!(&again[LEN_SIZE + HEADER_SIZE..], body);
            }
        }
        Kind::Ping | Kind::Pong => {
            if let Ok(payload) = f.ping_payload() {
                frame::put_ping(&mut again, kind, payload);
                assert_eq!(&again[LEN_SIZE + HEADER_SIZE..], body);
            }
        }
        _ => {
            if let Ok(e) = f.error() {
                let raw = u16::from_be_bytes([body[0], body[1]]);
                assert_eq!(ErrorCode::from_u16(raw).to_u16(), raw);
                assert_eq!(
                    e.too_large.is_some(),
                    e.code == ErrorCode::FrameTooLarge && body.len() >= 10
                );
                let text = &body[if e.too_large.is_some() { 10 } else { 2 }..];
                if e.too_large.is_none() && std::str::from_utf8(text).is_ok() {
                    frame::put_error(&mut again, 1, e.code, &e.message, usize::MAX);
                    assert_eq!(&again[LEN_SIZE + HEADER_SIZE..], body);
                }
            }
        }
    }
}

/// Splits a COMMAND body into its head and payload: the payload is the
/// input's tail, and the head, encoded again, parses to the same head.
pub fn command_head(data: &[u8]) {
    let Ok((head, payload)) = parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    assert!(payload.len() <= data.len());
    assert_eq!(&payload[..], &data[data.len() - payload.len()..]);
    let mut again = BytesMut::new();
    put_head(
        &mut again,
        head.command,
        head.deadline,
        command::traceparent(&head.extras),
        Some(command::metadata(&head.extras)),
    )
    .expect("a head that was read can be written");
    let (back, rest) = parse(again.freeze()).expect("a head written parses");
    assert!(rest.is_empty());
    assert_eq!(back.command, head.command);
    // A zero deadline is written as 1 ms: it must not expire at once.
    let floor =
        |d: Option<std::time::Duration>| d.map(|d| d.max(std::time::Duration::from_millis(1)));
    assert_eq!(back.deadline, floor(head.deadline));
    assert_eq!(
        command::traceparent(&back.extras),
        command::traceparent(&head.extras)
    );
    assert_eq!(
        command::metadata(&back.extras),
        command::metadata(&head.extras)
    );
}

/// Reads the first byte as which hello, the rest as its head and body: a
/// hello that decodes encodes back to one that decodes the same.
pub fn hellos(data: &[u8]) {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    if data.len() > MAX_BODY {
        // Bodies are never read beyond the bound.
        return;
    }
    if which & 1 == 0 {
        if let Some(head) = data.first_chunk::<SERVER_HEAD>() {
            if let Ok(head) = decode_server_head(head) {
                assert!(head.len <= MAX_BODY);
            }
        }
        if let Ok(hello) = ServerHello::decode_body(data) {
            let mut again = BytesMut::new();
            hello
                .encode(&mut again)
                .expect("a hello that was read can be written");
            let back = ServerHello::decode_body(&again[SERVER_HEAD..]).unwrap();
            assert_eq!(back, hello);
        }
    } else {
        if let Some(head) = data.first_chunk::<CLIENT_HEAD>() {
            if let Ok(head) = decode_client_head(head) {
                assert!(head.len <= MAX_BODY);
            }
        }
        if let Ok(hello) = ClientHello::decode_body(data) {
            let mut again = BytesMut::new();
            hello
                .encode(&mut again)
                .expect("a hello that was read can be written");
            let back = ClientHello::decode_body(&again[CLIENT_HEAD..]).unwrap();
            assert_eq!(back, hello);
        }
    }
}

/// Reads a command table from the front: what was read encodes back to
/// exactly the bytes consumed.
pub fn command_table(data: &[u8]) {
    let mut src = data;
    let Some(table) = take_table(&mut src) else {
        return;
    };
    let consumed = data.len() - src.len();
    let mut again = BytesMut::new();
    put_table(&mut again, &table).expect("a table that was read can be written");
    assert_eq!(&again[..], &data[..consumed]);
}

/// Reads a metadata list from the front: what was read encodes back to
/// exactly the bytes consumed.
pub fn metadata(data: &[u8]) {
    let mut src = data;
    let Some(md) = take_metadata(&mut src) else {
        return;
    };
    let consumed = data.len() - src.len();
    md.fits_wire()
        .expect("metadata that was read fits the wire");
    let mut again = BytesMut::new();
    put_metadata(&mut again, &md);
    assert_eq!(&again[..], &data[..consumed]);
}

/// A few valid inputs for each check, the fuzz targets' seed corpus
/// (`fuzz/corpus/<target>/`), by target name.
pub fn seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let frame = |kind: Kind, id: u64, body: &[u8]| {
        let mut out = BytesMut::new();
        frame::put(&mut out, kind, id, body);
        out.to_vec()
    };
    let md: crate::Metadata = [("tenant", "acme"), ("k", "")].into_iter().collect();
    let mut head = BytesMut::new();
    put_head(
        &mut head,
        7,
        Some(std::time::Duration::from_millis(1500)),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        Some(&md),
    )
    .unwrap();
    head.extend_from_slice(b"payload");
    let mut plain = BytesMut::new();
    put_head(&mut plain, 1, None, None, None).unwrap();
    plain.extend_from_slice(&[4, 6]);
    let mut server = BytesMut::new();
    crate::wire::hello::tests_support::server_hello()
        .encode(&mut server)
        .unwrap();
    let mut client = BytesMut::new();
    crate::wire::hello::tests_support::client_hello()
        .encode(&mut client)
        .unwrap();
    let mut table = BytesMut::new();
    put_table(
        &mut table,
        &crate::wire::hello::tests_support::server_hello().commands,
    )
    .unwrap();
    let mut list = BytesMut::new();
    put_metadata(&mut list, &md);
    vec![
        (
            "frames",
            vec![
                [
                    frame(Kind::Result, 3, b"ab"),
                    frame(Kind::Result, 3, b""),
                    frame(Kind::ResultLast, 3, b"c"),
                    frame(Kind::Credit, 3, &9u32.to_be_bytes()),
                    frame(Kind::Ping, 0, &[1; 8]),
                ]
                .concat(),
                frame(Kind::Command, 1, &plain),
                [frame(Kind::Error, 2, b"\0\x07nope"), vec![0, 0, 0]].concat(),
            ],
        ),
        (
            "frame_bodies",
            vec![
                vec![0],
                vec![2, 0, 0, 0, 9],
                vec![3, 1, 2, 3, 4, 5, 6, 7, 8],
                [&[5u8, 0, 7][..], b"an application error"].concat(),
            ],
        ),
        ("command_head", vec![head.to_vec(), plain.to_vec()]),
        (
            "hellos",
            vec![
                [&[0u8][..], &server[SERVER_HEAD..]].concat(),
                [&[1u8][..], &client[CLIENT_HEAD..]].concat(),
                [&[0u8][..], &server].concat(),
                [&[1u8][..], &client].concat(),
            ],
        ),
        ("command_table", vec![table.to_vec()]),
        ("metadata", vec![list.to_vec()]),
        ("server_connection", connection::server_seeds()),
        ("client_connection", connection::client_seeds()),
    ]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Bytes that look like frames often enough to get past the length
    /// check: a few real frame heads, with arbitrary bodies and kinds.
    fn frame_like() -> impl Strategy<Value = Vec<u8>> {
        let one = (0u8..14, 0u64..4, prop::collection::vec(any::<u8>(), 0..40)).prop_map(
            |(kind, id, body)| {
                let mut out = ((HEADER_SIZE + body.len()) as u32).to_be_bytes().to_vec();
                out.push(kind);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&body);
                out
            },
        );
        (
            prop::collection::vec(one, 0..12),
            prop::collection::vec(any::<u8>(), 0..8),
        )
            .prop_map(|(frames, tail)| {
                let mut out: Vec<u8> = frames.concat();
                out.extend(tail);
                out
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn frames_of_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
            frames(&data);
        }

        #[test]
        fn frames_of_frame_like_bytes(data in frame_like()) {
            frames(&data);
        }

        #[test]
        fn frame_bodies_of_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..16)) {
            frame_bodies(&data);
        }

        #[test]
        fn command_heads_of_arbitrary_bytes(
            flags in 0u8..8,
            data in prop::collection::vec(any::<u8>(), 0..120),
        ) {
            // Mostly valid flag bits, so that the fields behind them are read.
            let mut body = vec![0, 0, 0, 1, flags];
            body.extend(data);
            command_head(&body);
        }

        #[test]
        fn hellos_of_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
            hellos(&data);
        }

        #[test]
        fn tables_of_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..120)) {
            command_table(&data);
        }

        #[test]
        fn metadata_of_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..120)) {
            metadata(&data);
        }
    }

    proptest! {
        // Each case runs a connection on its own runtime: fewer of them.
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn a_server_connection_fed_arbitrary_frames(data in connection::script()) {
            server_connection(&data);
        }

        #[test]
        fn a_client_connection_fed_arbitrary_frames(data in connection::script()) {
            client_connection(&data);
        }
    }

    #[test]
    fn every_seed_passes_its_check() {
        type Check = (&'static str, fn(&[u8]));
        let checks: [Check; 8] = [
            ("frames", frames),
            ("frame_bodies", frame_bodies),
            ("command_head", command_head),
            ("hellos", hellos),
            ("command_table", command_table),
            ("metadata", metadata),
            ("server_connection", server_connection),
            ("client_connection", client_connection),
        ];
        let seeds = seeds();
        assert_eq!(seeds.len(), checks.len());
        for ((name, inputs), (check_name, check)) in seeds.iter().zip(checks) {
            assert_eq!(*name, check_name);
            assert!(!inputs.is_empty());
            for input in inputs {
                check(input);
            }
        }
    }

    /// Writes the seed corpus of every fuzz target, from [`seeds`]:
    /// `cargo test -p cmdstream --features fuzzing -- --ignored write_seed_corpus`.
    #[test]
    #[ignore = "writes fuzz/corpus; run by hand when the seeds change"]
    fn write_seed_corpus() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        for (name, inputs) in seeds() {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            for (i, input) in inputs.iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i}")), input).unwrap();
            }
        }
    }

    #[test]
    fn valid_inputs_round_trip() {
        // The checks accept what the encoders write.
        let mut buf = BytesMut::new();
        frame::put(&mut buf, Kind::Result, 3, b"ab");
        frame::put(&mut buf, Kind::Result, 3, b"c");
        frame::put_credit(&mut buf, 3, 9);
        frames(&buf);
        let mut head = BytesMut::new();
        let md: crate::Metadata = [("k", "v")].into_iter().collect();
        put_head(
            &mut head,
            7,
            Some(std::time::Duration::ZERO),
            Some("tp"),
            Some(&md),
        )
        .unwrap();
        head.extend_from_slice(b"payload");
        command_head(&head);
        let mut hello = BytesMut::from(&[0u8][..]);
        crate::wire::hello::tests_support::server_hello()
            .encode(&mut hello)
            .unwrap();
        hellos(&hello[..]);
        let body = hello.split_off(1 + SERVER_HEAD);
        hellos(&[&[0u8][..], &body].concat());
    }
}
