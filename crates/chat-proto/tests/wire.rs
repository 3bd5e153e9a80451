//! Wire-level behaviour of the protocol as a peer sees it: round trips, splits, hostile input.
//!
//! `cargo test` runs the proptests with at least 1,000 cases each (`PROPTEST_CASES` may raise it).
#![allow(clippy::unwrap_used)]

mod samples;

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use chat_proto::codec::{ClientCodec, ServerCodec};
use chat_proto::frame::{Frame, FrameDecoder, HEADER_LEN};
use chat_proto::{ClientMsg, FrameError, MessageError, ServerMsg, WireMessage, kind};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

use samples::{client_samples, server_samples};

const MAX: u32 = 64 * 1024;

fn frame_bytes(kind: u32, body: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    Frame {
        kind,
        body: Bytes::copy_from_slice(body),
    }
    .encode(&mut b)
    .unwrap();
    b
}

#[test]
fn every_kind_has_a_sample() {
    let client: BTreeSet<u32> = client_samples().iter().map(|m| m.kind()).collect();
    let server: BTreeSet<u32> = server_samples().iter().map(|m| m.kind()).collect();
    assert_eq!(client, ClientMsg::KINDS.iter().copied().collect());
    assert_eq!(server, ServerMsg::KINDS.iter().copied().collect());
}

#[test]
fn every_client_message_round_trips_through_the_codec() {
    let mut codec = ClientCodec::new(MAX);
    let mut server = ServerCodec::new(MAX);
    for msg in client_samples() {
        let mut buf = BytesMut::new();
        codec.encode(&msg, &mut buf).unwrap();
        let back = server.decode(&mut buf).unwrap().unwrap().unwrap();
        assert_eq!(back, msg);
        assert!(buf.is_empty());
    }
}

/// A guard on memory, not on speed: a JSON message that kept a piece of the read buffer would
/// pin a whole read's allocation for as long as it lives (a stored message, for hours), and a
/// chunk that copied its data would cost a copy per chunk relayed. (Whether a body is read in
/// place or cut off and dropped at once is not visible here; the proptests below hold the two
/// decoders to the same results.)
#[test]
fn no_decoded_json_message_holds_the_read_buffer_and_a_chunk_keeps_its_bytes_uncopied() {
    let mut codec = ClientCodec::new(MAX);
    let mut server = ServerCodec::new(MAX);
    for msg in client_samples() {
        let mut buf = BytesMut::with_capacity(8192);
        codec.encode(&msg, &mut buf).unwrap();
        let back = server.decode(&mut buf).unwrap().unwrap().unwrap();
        // The read buffer can take the next read into its own space only if no decoded
        // message still holds a piece of it.
        let reusable = buf.try_reclaim(8192);
        if let ClientMsg::FileChunk(chunk) = &back {
            assert!(
                !reusable,
                "a chunk's data is a view of the read buffer, not a copy"
            );
            assert!(!chunk.data.is_empty());
        } else {
            assert!(
                reusable,
                "kind {}: nothing holds the read buffer",
                msg.kind()
            );
        }
    }
}

#[test]
fn every_server_message_round_trips_through_the_codec() {
    let mut codec = ServerCodec::new(MAX);
    let mut client = ClientCodec::new(MAX);
    for msg in server_samples() {
        let mut buf = BytesMut::new();
        codec.encode(&msg, &mut buf).unwrap();
        let back = client.decode(&mut buf).unwrap().unwrap().unwrap();
        assert_eq!(back, msg);
    }
}

#[test]
fn shared_frame_bytes_equal_a_direct_encoding() {
    let msg = server_samples().remove(5);
    let shared = msg.to_frame_bytes().unwrap();
    let mut direct = BytesMut::new();
    ServerCodec::new(MAX).encode(&msg, &mut direct).unwrap();
    assert_eq!(&shared[..], &direct[..]);
    let mut passthrough = BytesMut::new();
    ServerCodec::new(MAX)
        .encode(shared.clone(), &mut passthrough)
        .unwrap();
    assert_eq!(&passthrough[..], &shared[..]);
}

#[test]
fn worked_example_from_protocol_md_decodes() {
    // The hex example in PROTOCOL.md, "Worked example".
    let body = br#"{"name":"alice"}"#;
    let mut bytes = BytesMut::from(&[0, 0, 0, 1, 0, 0, 0, 16, 0, 0, 0, 1][..]);
    bytes.extend_from_slice(body);
    let msg = ServerCodec::new(MAX).decode(&mut bytes).unwrap().unwrap();
    match msg.unwrap() {
        ClientMsg::Hello(h) => assert_eq!(h.name, "alice"),
        other => panic!("expected hello, got {other:?}"),
    }
}

#[test]
fn client_supplied_sender_and_sequence_fields_are_ignored() {
    let body = br##"{"to":"#lobby","text":"hi","from":"root","seq":1,"ts":5,"mid":7}"##;
    let mut buf = frame_bytes(kind::SEND, body);
    let msg = ServerCodec::new(MAX).decode(&mut buf).unwrap().unwrap();
    let ClientMsg::Send(send) = msg.unwrap() else {
        panic!("expected send")
    };
    // Send has no sender/seq fields at all: there is nothing for the server to trust.
    assert_eq!(send.to, "#lobby");
    assert_eq!(send.text, "hi");
}

#[test]
fn unknown_kind_is_a_recoverable_error_and_the_stream_stays_in_sync() {
    let mut buf = frame_bytes(999, b"{}");
    buf.extend_from_slice(&frame_bytes(kind::PING, b"{}"));
    let mut codec = ServerCodec::new(MAX);
    let first = codec.decode(&mut buf).unwrap().unwrap();
    assert!(matches!(
        first,
        Err(MessageError::UnknownKind { kind: 999 })
    ));
    let second = codec.decode(&mut buf).unwrap().unwrap().unwrap();
    assert!(matches!(second, ClientMsg::Ping(_)));
}

#[test]
fn a_server_kind_sent_by_a_client_is_unknown() {
    let mut buf = frame_bytes(kind::WELCOME, b"{}");
    let got = ServerCodec::new(MAX).decode(&mut buf).unwrap().unwrap();
    assert!(matches!(got, Err(MessageError::UnknownKind { .. })));
}

#[test]
fn malformed_bodies_give_typed_errors() {
    let deep = format!(
        "{{\"x\":{}{},\"name\":\"a\"}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    type Check = fn(&MessageError) -> bool;
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        ("invalid utf-8", b"{\"name\":\"\xff\xfe\"}".to_vec(), |e| {
            matches!(e, MessageError::InvalidUtf8 { .. })
        }),
        ("truncated json", br#"{"name":"al"#.to_vec(), |e| {
            matches!(e, MessageError::InvalidJson { .. })
        }),
        ("nested 10,000 deep", deep.into_bytes(), |e| {
            matches!(e, MessageError::InvalidJson { .. })
        }),
        ("wrong type", br#"{"name":5}"#.to_vec(), |e| {
            matches!(e, MessageError::InvalidFields { .. })
        }),
        ("missing field", br#"{}"#.to_vec(), |e| {
            matches!(e, MessageError::InvalidFields { .. })
        }),
        ("empty body", Vec::new(), |e| {
            matches!(e, MessageError::InvalidJson { .. })
        }),
        ("array instead of object", br#"["alice"]"#.to_vec(), |e| {
            matches!(e, MessageError::InvalidJson { .. })
        }),
        ("trailing garbage", br#"{"name":"a"} x"#.to_vec(), |e| {
            matches!(e, MessageError::InvalidJson { .. })
        }),
    ];
    for (what, body, expected) in cases {
        let mut buf = frame_bytes(kind::HELLO, &body);
        let got = ServerCodec::new(MAX).decode(&mut buf).unwrap().unwrap();
        let err = got.expect_err(what);
        assert!(expected(&err), "{what}: got {err:?}");
        assert_eq!(err.code(), chat_proto::ErrorCode::Malformed, "{what}");
        assert!(buf.is_empty(), "{what}: the bad frame is consumed");
    }
}

#[test]
fn short_binary_chunk_is_a_typed_error() {
    let mut buf = frame_bytes(kind::FILE_CHUNK, &[0; 15]);
    let got = ServerCodec::new(MAX).decode(&mut buf).unwrap().unwrap();
    assert!(matches!(
        got,
        Err(MessageError::BinaryTooShort {
            len: 15,
            min: 16,
            ..
        })
    ));
}

#[test]
fn hostile_lengths_end_the_stream_with_a_small_buffer() {
    for len in [MAX + 1, 1 << 31, u32::MAX] {
        let mut buf = BytesMut::with_capacity(HEADER_LEN);
        buf.extend_from_slice(&[0, 0, 0, 1]);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&kind::SEND.to_be_bytes());
        let err = ServerCodec::new(MAX).decode(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
        assert!(buf.capacity() <= 64, "capacity {}", buf.capacity());
    }
}

/// Every cut point of a three-frame stream, delivered in two reads, decodes to the same frames.
#[test]
fn every_single_cut_point_of_a_three_frame_stream_decodes_identically() {
    let msgs: Vec<ClientMsg> = client_samples().into_iter().take(3).collect();
    let mut stream = BytesMut::new();
    for m in &msgs {
        m.encode_frame(&mut stream).unwrap();
    }
    for cut in 0..=stream.len() {
        let mut codec = ServerCodec::new(MAX);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for part in [&stream[..cut], &stream[cut..]] {
            buf.extend_from_slice(part);
            while let Some(m) = codec.decode(&mut buf).unwrap() {
                got.push(m.unwrap());
            }
        }
        assert_eq!(got, msgs, "cut at {cut}");
    }
}

fn decode_in_chunks(stream: &[u8], cuts: &[usize]) -> Vec<Frame> {
    let mut dec = FrameDecoder::new(MAX);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&stream.len())) {
        buf.extend_from_slice(&stream[start..end]);
        start = end;
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            out.push(f);
        }
    }
    assert!(buf.is_empty());
    out
}

/// Bodies from 0 B to 64 KiB, mostly small so that 1-200 frames stay fast.
/// `M`'s two decoders make the same of `body` in a frame of one of its `kinds` (`pick`); only
/// a file chunk may decline to be read in place.
fn decoders_agree<M: WireMessage + std::fmt::Debug>(
    kinds: &[u32],
    pick: prop::sample::Index,
    body: &[u8],
) -> Result<(), TestCaseError> {
    let kind = kinds[pick.index(kinds.len())];
    let owned = M::decode(kind, Bytes::copy_from_slice(body));
    match M::decode_in_place(kind, body) {
        Some(in_place) => prop_assert_eq!(format!("{in_place:?}"), format!("{owned:?}")),
        None => prop_assert_eq!(kind, kind::FILE_CHUNK),
    }
    Ok(())
}

fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..64),
        2 => proptest::collection::vec(any::<u8>(), 0..4096),
        1 => (0usize..=65536).prop_map(|n| vec![0xA5; n]),
    ]
}

fn frames_strategy() -> impl Strategy<Value = Vec<(u32, Vec<u8>)>> {
    proptest::collection::vec((any::<u32>(), body_strategy()), 1..=200)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
    ))]

    /// 分包 and 粘包: however the stream is cut into reads, the same frames come out.
    #[test]
    fn split_invariance(frames in frames_strategy(), raw_cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..64)) {
        let mut stream = BytesMut::new();
        for (kind, body) in &frames {
            Frame { kind: *kind, body: Bytes::copy_from_slice(body) }.encode(&mut stream).unwrap();
        }
        let mut cuts: Vec<usize> = raw_cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cuts.sort_unstable();
        let expected: Vec<Frame> = frames
            .iter()
            .map(|(k, b)| Frame { kind: *k, body: Bytes::copy_from_slice(b) })
            .collect();
        prop_assert_eq!(&decode_in_chunks(&stream, &cuts), &expected);
        // Everything in one read.
        prop_assert_eq!(&decode_in_chunks(&stream, &[]), &expected);
    }

    /// One byte at a time, on smaller streams (a 64 KiB body one byte at a time is slow but fine).
    #[test]
    fn one_byte_at_a_time(frames in proptest::collection::vec((any::<u32>(), proptest::collection::vec(any::<u8>(), 0..256)), 1..20)) {
        let mut stream = BytesMut::new();
        for (kind, body) in &frames {
            Frame { kind: *kind, body: Bytes::copy_from_slice(body) }.encode(&mut stream).unwrap();
        }
        let cuts: Vec<usize> = (1..stream.len()).collect();
        let got = decode_in_chunks(&stream, &cuts);
        prop_assert_eq!(got.len(), frames.len());
        for (f, (k, b)) in got.iter().zip(&frames) {
            prop_assert_eq!(f.kind, *k);
            prop_assert_eq!(&f.body[..], &b[..]);
        }
    }

    /// Reading a body in place makes of it what reading it as `Bytes` makes, error and all,
    /// in both directions.
    #[test]
    fn in_place_and_owned_decoding_agree(
        pick in any::<prop::sample::Index>(),
        body in body_strategy(),
        json in "\\{[ -~]{0,60}\\}",
    ) {
        for body in [&body[..], json.as_bytes()] {
            decoders_agree::<ClientMsg>(ClientMsg::KINDS, pick, body)?;
            decoders_agree::<ServerMsg>(ServerMsg::KINDS, pick, body)?;
        }
    }

    /// Arbitrary bytes never panic the typed decoder.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut codec = ServerCodec::new(MAX);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = codec.decode(&mut buf) {}
    }
}
