//! File transfer over real sockets: a relayed 10 MiB file arrives byte-identical while chat
//! keeps flowing, a broken transfer resumes after a reconnect, and bad offers and chunks are
//! refused.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chat_proto::client::{FileAccept, FileAck, FileDecline, FileOffer, Join};
use chat_proto::message::{FileChunk, FileDone};
use chat_proto::{ErrorCode, ServerMsg};
use sha2::{Digest, Sha256};
use support::{Client, TestServer, bounded, test_config};
use tokio::time::Instant;

/// The server's window: bytes relayed beyond the receiver's last ack.
const WINDOW: u64 = 512 * 1024;

/// The most data one chunk frame carries with the default `max_body`.
const CHUNK: usize = 65536 - 16;

/// Deterministic pseudo-random bytes (splitmix64).
fn random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Offers `data` to `to`; returns the transfer id from the sender's copy of `file_offered`.
async fn offer(sender: &mut Client, to: &str, name: &str, data: &[u8]) -> u64 {
    sender
        .send(FileOffer {
            id: Some(format!("offer-{name}")),
            to: to.into(),
            name: name.into(),
            size: data.len() as u64,
            sha256: sha256_hex(data),
        })
        .await;
    let want = format!("offer-{name}");
    sender
        .recv_until(|m| match m {
            ServerMsg::FileOffered(f) if f.id.as_deref() == Some(&want) => Some(f.file),
            ServerMsg::Error(e) => panic!("offer refused: {}", e.message),
            _ => None,
        })
        .await
}

/// Waits for the offer of `file` and accepts it from `offset`.
async fn accept(receiver: &mut Client, file: u64, offset: u64) {
    receiver
        .recv_until(|m| match m {
            ServerMsg::FileOffered(f) if f.file == file => Some(()),
            _ => None,
        })
        .await;
    receiver.send(FileAccept { file, offset }).await;
}

/// A sender as a client would write it: sends from each `file_accepted` offset while within
/// the window, `file_done` at the end, and stops once every byte is acknowledged. Returns the
/// offsets it was asked to (re)start from. Stops early once `stop_at` bytes are acknowledged.
async fn send_file(sender: &mut Client, file: u64, data: &[u8], stop_at: u64) -> Vec<u64> {
    let size = data.len() as u64;
    let (mut next, mut acked, mut done_sent) = (u64::MAX, 0u64, false);
    let mut starts = Vec::new();
    loop {
        while next < size && next < acked + WINDOW {
            let end = (next + CHUNK as u64).min(size).min(acked + WINDOW);
            let chunk = Bytes::copy_from_slice(&data[next as usize..end as usize]);
            sender
                .send(FileChunk {
                    file,
                    offset: next,
                    data: chunk,
                })
                .await;
            next = end;
        }
        if next == size && !done_sent {
            sender.send(FileDone { file }).await;
            done_sent = true;
        }
        if acked == size || acked >= stop_at {
            return starts;
        }
        match sender.recv().await {
            ServerMsg::FileAccepted(a) if a.file == file => {
                starts.push(a.offset);
                (next, acked, done_sent) = (a.offset, a.offset, false);
            }
            ServerMsg::FileProgress(p) if p.file == file => acked = acked.max(p.offset),
            _ => {}
        }
    }
}

/// Stores chunks of `file` in `stored`, acking each; returns `true` at `file_done`, or `false`
/// once `stop_at` bytes are stored.
async fn receive_file(
    receiver: &mut Client,
    file: u64,
    stored: &mut Vec<u8>,
    stop_at: usize,
) -> bool {
    loop {
        match receiver.recv().await {
            ServerMsg::FileChunk(c) if c.file == file => {
                assert_eq!(
                    c.offset,
                    stored.len() as u64,
                    "chunks arrive in order, no gap"
                );
                stored.extend_from_slice(&c.data);
                let offset = stored.len() as u64;
                receiver.send(FileAck { file, offset }).await;
                if stored.len() >= stop_at {
                    return false;
                }
            }
            ServerMsg::FileDone(d) if d.file == file => return true,
            ServerMsg::Error(e) => panic!("receiver got an error: {}", e.message),
            _ => {}
        }
    }
}

/// A config in which chat is not rate limited (the test measures chat next to a transfer).
fn fast_config() -> chat_server::Config {
    chat_server::Config {
        rate_burst: 10_000,
        rate_per_sec: 10_000.0,
        ..test_config()
    }
}

#[tokio::test]
async fn ten_mib_arrive_identical_while_chat_keeps_flowing() {
    bounded(60, async {
        let server = TestServer::start(fast_config()).await;
        let mut alice = Client::login(server.addr, "alice").await;
        let mut bob = Client::login(server.addr, "bob").await;
        let mut carol = Client::login(server.addr, "carol").await;
        let mut dave = Client::login(server.addr, "dave").await;
        for c in [&mut carol, &mut dave] {
            c.send(Join {
                id: None,
                room: "#side".into(),
            })
            .await;
            c.expect_burst("#side").await;
        }
        let data = random_bytes(10 << 20, 7);
        let file = offer(&mut alice, "bob", "big.bin", &data).await;
        accept(&mut bob, file, 0).await;

        let done = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let sending = async {
            let starts = send_file(&mut alice, file, &data, u64::MAX).await;
            assert_eq!(starts, [0]);
        };
        let receiving = async {
            let mut stored = Vec::new();
            assert!(receive_file(&mut bob, file, &mut stored, usize::MAX).await);
            let elapsed = started.elapsed();
            done.store(true, Ordering::SeqCst);
            (stored, elapsed)
        };
        let chatting = async {
            let mut latencies = Vec::new();
            let mut last_seq = 0;
            let mut during = 0;
            for i in 0.. {
                if done.load(Ordering::SeqCst) && i >= 50 {
                    break;
                }
                let text = format!("m{i}");
                let sent = Instant::now();
                carol.say("#side", &text, &text).await;
                let msg = dave.recv_message().await;
                latencies.push(sent.elapsed());
                if !done.load(Ordering::SeqCst) {
                    during += 1;
                }
                assert_eq!(msg.text, text, "every message, in order");
                assert!(msg.seq > last_seq);
                last_seq = msg.seq;
                carol.recv_ack().await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (latencies, during)
        };
        let ((), (stored, elapsed), (mut latencies, during)) =
            tokio::join!(sending, receiving, chatting);
        assert_eq!(stored.len(), data.len());
        assert_eq!(sha256_hex(&stored), sha256_hex(&data));
        assert!(stored == data, "bytes identical");
        latencies.sort();
        let mib = data.len() as f64 / f64::from(1 << 20);
        println!(
            "10 MiB relayed in {elapsed:?}: {:.1} MiB/s; chat during it: {during} messages, \
             latency p50 {:?}, max {:?} ({} in all)",
            mib / elapsed.as_secs_f64(),
            latencies[latencies.len() / 2],
            latencies[latencies.len() - 1],
            latencies.len(),
        );
        server.stop().await;
    })
    .await;
}

/// Logs in as `nick` again, waiting until the server has let go of the old connection.
async fn relogin(addr: std::net::SocketAddr, nick: &str) -> Client {
    loop {
        let mut c = Client::connect(addr).await;
        match c.hello(nick).await {
            ServerMsg::Welcome(_) => {
                c.expect_burst("#lobby").await;
                return c;
            }
            ServerMsg::Error(e) if e.code == ErrorCode::NickTaken => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("expected welcome, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_cut_connection_resumes_from_the_acked_offset() {
    bounded(60, async {
        let server = TestServer::start(test_config()).await;
        let addr = server.addr;
        let mut alice = Client::login(addr, "alice").await;
        let mut bob = Client::login(addr, "bob").await;
        let data = Arc::new(random_bytes(6 << 20, 11));
        let file = offer(&mut alice, "bob", "resume.bin", &data).await;
        accept(&mut bob, file, 0).await;
        let sender_data = data.clone();
        let sender =
            tokio::spawn(async move { send_file(&mut alice, file, &sender_data, u64::MAX).await });

        let mut stored = Vec::new();
        assert!(!receive_file(&mut bob, file, &mut stored, 2 << 20).await);
        let cut_at = stored.len() as u64;
        drop(bob);

        let mut bob = relogin(addr, "bob").await;
        // The server repeats the offer; the receiver resumes from what it stored.
        accept(&mut bob, file, cut_at).await;
        assert!(receive_file(&mut bob, file, &mut stored, usize::MAX).await);
        assert!(stored.as_slice() == data.as_slice(), "bytes identical");
        assert_eq!(sha256_hex(&stored), sha256_hex(&data));
        let starts = sender.await.unwrap();
        assert_eq!(starts, [0, cut_at]);
        println!("cut at {cut_at} bytes, resumed and completed");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bad_offers_and_stray_chunks_are_refused() {
    bounded(20, async {
        let server = TestServer::start(chat_server::Config {
            max_file_size: 4 << 20,
            ..test_config()
        })
        .await;
        let mut alice = Client::connect(server.addr).await;
        match alice.hello("alice").await {
            ServerMsg::Welcome(w) => assert_eq!(w.limits.max_file_size, 4 << 20),
            other => panic!("expected welcome, got {other:?}"),
        }
        alice.expect_burst("#lobby").await;
        let mut bob = Client::login(server.addr, "bob").await;

        // Too large.
        let good_sha = sha256_hex(b"x");
        alice
            .send(FileOffer {
                id: Some("big".into()),
                to: "bob".into(),
                name: "big.iso".into(),
                size: (4 << 20) + 1,
                sha256: good_sha.clone(),
            })
            .await;
        let e = alice.expect_error(ErrorCode::FileRefused).await;
        assert_eq!(e.id.as_deref(), Some("big"));
        // Not a SHA-256.
        alice
            .send(FileOffer {
                id: Some("sha".into()),
                to: "bob".into(),
                name: "a".into(),
                size: 1,
                sha256: good_sha.to_uppercase(),
            })
            .await;
        assert_eq!(
            alice
                .expect_error(ErrorCode::FileRefused)
                .await
                .id
                .as_deref(),
            Some("sha")
        );

        // Declined: the sender is told, and chunks for it are refused.
        let data = random_bytes(2 << 20, 3);
        let file = offer(&mut alice, "bob", "no.bin", &data).await;
        bob.recv_until(|m| matches!(m, ServerMsg::FileOffered(f) if f.file == file).then_some(()))
            .await;
        bob.send(FileDecline { file }).await;
        let declined = alice
            .recv_until(|m| match m {
                ServerMsg::FileDeclined(d) => Some(d),
                _ => None,
            })
            .await;
        assert_eq!((declined.file, declined.by.as_str()), (file, "bob"));
        let chunk = |file, offset, len: usize| FileChunk {
            file,
            offset,
            data: Bytes::copy_from_slice(&data[offset as usize..offset as usize + len]),
        };
        alice.send(chunk(file, 0, 100)).await;
        alice.expect_error(ErrorCode::FileRefused).await;
        // Unknown file.
        alice.send(chunk(999, 0, 100)).await;
        alice.expect_error(ErrorCode::FileRefused).await;

        // Not yet accepted, then beyond the window.
        let file = offer(&mut alice, "bob", "window.bin", &data).await;
        alice.send(chunk(file, 0, 100)).await;
        alice.expect_error(ErrorCode::FileRefused).await;
        accept(&mut bob, file, 0).await;
        alice
            .recv_until(|m| matches!(m, ServerMsg::FileAccepted(a) if a.file == file).then_some(()))
            .await;
        // Wrong offset.
        alice.send(chunk(file, 4096, 100)).await;
        alice.expect_error(ErrorCode::FileRefused).await;
        let mut offset = 0;
        while offset + CHUNK as u64 <= WINDOW {
            alice.send(chunk(file, offset, CHUNK)).await;
            offset += CHUNK as u64;
        }
        alice.send(chunk(file, offset, CHUNK)).await;
        let e = alice.expect_error(ErrorCode::FileRefused).await;
        assert!(e.message.contains("window"), "{}", e.message);
        // The receiver got exactly the chunks within the window; its ack opens it again.
        let mut got = 0;
        while got < offset {
            match bob.recv().await {
                ServerMsg::FileChunk(c) if c.file == file => got += c.data.len() as u64,
                _ => {}
            }
        }
        bob.send(FileAck { file, offset }).await;
        let progress = alice
            .recv_until(|m| match m {
                ServerMsg::FileProgress(p) => Some(p),
                _ => None,
            })
            .await;
        assert_eq!(progress.offset, offset);
        alice.send(chunk(file, offset, CHUNK)).await;
        let c = bob
            .recv_until(|m| match m {
                ServerMsg::FileChunk(c) => Some(c),
                _ => None,
            })
            .await;
        assert_eq!(c.offset, offset);
        // Past the size.
        let past = FileChunk {
            file,
            offset: data.len() as u64 - 10,
            data: Bytes::from_static(&[0; 20]),
        };
        alice.send(past).await;
        alice.expect_error(ErrorCode::FileRefused).await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_returning_sender_is_asked_to_continue_where_relaying_stopped() {
    bounded(60, async {
        let server = TestServer::start(test_config()).await;
        let addr = server.addr;
        let mut alice = Client::login(addr, "alice").await;
        let mut bob = Client::login(addr, "bob").await;
        let data = Arc::new(random_bytes(3 << 20, 5));
        let file = offer(&mut alice, "bob", "sender.bin", &data).await;
        accept(&mut bob, file, 0).await;
        let expected = data.clone();
        let receiver = tokio::spawn(async move {
            let mut stored = Vec::new();
            assert!(receive_file(&mut bob, file, &mut stored, usize::MAX).await);
            assert!(stored == *expected, "bytes identical");
            bob
        });
        assert_eq!(send_file(&mut alice, file, &data, 1 << 20).await, [0]);
        drop(alice);

        let mut alice = relogin(addr, "alice").await;
        // The server repeats the offer and says where to go on from.
        let starts = send_file(&mut alice, file, &data, u64::MAX).await;
        assert_eq!(starts.len(), 1);
        assert!(starts[0] >= 1 << 20, "{starts:?}");
        receiver.await.unwrap();
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn expired_offers_are_cancelled_by_the_server() {
    bounded(20, async {
        let server = TestServer::start(chat_server::Config {
            file_offer_ttl: Duration::from_millis(300),
            ..test_config()
        })
        .await;
        let mut alice = Client::login(server.addr, "alice").await;
        let mut bob = Client::login(server.addr, "bob").await;
        let file = offer(&mut alice, "bob", "late.txt", b"hello").await;
        for c in [&mut alice, &mut bob] {
            let cancelled = c
                .recv_until(|m| match m {
                    ServerMsg::FileCancelled(x) => Some(x),
                    _ => None,
                })
                .await;
            assert_eq!(cancelled.file, file);
            assert_eq!(cancelled.by, "server");
            assert_eq!(cancelled.reason.as_deref(), Some("expired"));
        }
        bob.send(FileAccept { file, offset: 0 }).await;
        bob.expect_error(ErrorCode::FileRefused).await;
        server.stop().await;
    })
    .await;
}
