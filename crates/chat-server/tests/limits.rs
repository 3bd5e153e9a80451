//! Limits over real sockets: slow consumers, hostile peers, rate, connection caps.
//!
//! Every hostile peer must get its error (or close) within its deadline while a control pair
//! of clients keeps chatting.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chat_proto::ClientCodec;
use chat_proto::server::NoticeCode;
use chat_proto::{ErrorCode, ServerMsg, kind};
use futures::{SinkExt, StreamExt};
use support::{Client, TestServer, bounded, test_config};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

/// Two clients that chat before, during and after an attack.
async fn control_pair(server: &TestServer) -> (Client, Client) {
    let mut a = Client::login(server.addr, "ctl_a").await;
    let mut b = Client::login(server.addr, "ctl_b").await;
    a.chat_with(&mut b, "before").await;
    (a, b)
}

/// Reads until the server closes, asserting that a fatal `code` arrives on the way and that it
/// all happens within `within`.
async fn expect_fatal(c: &mut Client, code: ErrorCode, within: Duration) {
    let started = Instant::now();
    let got = c.expect_closed().await;
    let errors: Vec<_> = got
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Error(e) => Some(e.code),
            _ => None,
        })
        .collect();
    assert_eq!(errors.last(), Some(&code), "frames: {got:?}");
    assert!(started.elapsed() <= within, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_reader_that_stalls_is_dropped_as_lagged_while_the_others_get_everything() {
    const N: u64 = 20_000;
    const QUEUE: usize = 256;
    bounded(60, async {
        let mut config = test_config();
        config.outbound_queue = QUEUE;
        config.rate_burst = 1_000_000;
        config.rate_per_sec = 1_000_000.0;
        config.max_text = 2048;
        // Long enough for the stalled client to come back and read its lag notice.
        config.close_timeout = Duration::from_secs(20);
        let server = TestServer::start(config).await;

        // The stalled client has a small receive buffer, so the server's queue fills quickly.
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stalled = Client::over(socket.connect(server.addr).await.unwrap());
        assert!(matches!(
            stalled.hello("stalled").await,
            ServerMsg::Welcome(_)
        ));
        stalled.expect_burst("#lobby").await;

        let lag_seen = Arc::new(Notify::new());
        let mut readers = Vec::new();
        let mut progress = Vec::new();
        for nick in ["reader1", "reader2"] {
            let mut c = Client::login(server.addr, nick).await;
            let done = Arc::new(AtomicU64::new(0));
            progress.push(done.clone());
            let lag_seen = lag_seen.clone();
            readers.push(tokio::spawn(async move {
                let mut texts = Vec::new();
                let mut seqs = Vec::new();
                let mut saw_lag = false;
                while (texts.len() as u64) < N {
                    match c.recv().await {
                        ServerMsg::Message(m) => {
                            texts.push(m.text[..m.text.find(':').unwrap()].parse::<u64>().unwrap());
                            seqs.push(m.seq);
                            done.store(texts.len() as u64, Ordering::Relaxed);
                        }
                        ServerMsg::Quit(q) if q.nick == "stalled" => {
                            assert_eq!(q.reason.as_deref(), Some("lagged"));
                            saw_lag = true;
                            lag_seen.notify_one();
                        }
                        _ => {}
                    }
                }
                (texts, seqs, saw_lag)
            }));
        }

        // The sender paces itself on the readers (a window of 200 messages), never on the
        // stalled client.
        let sender = Client::login(server.addr, "sender").await;
        let (mut sink, mut stream) = sender.framed.split();
        let acks = tokio::spawn(async move {
            let mut n = 0u64;
            while n < N {
                if let Some(Ok(Ok(ServerMsg::Ack(_)))) = stream.next().await {
                    n += 1;
                }
            }
        });
        let pad = "x".repeat(1000);
        for i in 0..N {
            while progress
                .iter()
                .map(|p| p.load(Ordering::Relaxed))
                .min()
                .unwrap()
                + 200
                < i
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let text = format!("{i}:{pad}");
            let msg = chat_proto::client::Send {
                id: None,
                to: "#lobby".into(),
                text,
                action: false,
            };
            sink.feed(chat_proto::ClientMsg::Send(msg)).await.unwrap();
            if i % 64 == 0 {
                sink.flush().await.unwrap();
            }
        }
        sink.flush().await.unwrap();

        // Once the readers heard that the stalled client lagged, it finally reads.
        lag_seen.notified().await;
        let got = stalled.expect_closed().await;
        let delivered: Vec<u64> = got
            .iter()
            .filter_map(|m| match m {
                ServerMsg::Message(m) => Some(m.seq),
                _ => None,
            })
            .collect();
        // The notice with the seqs comes before the fatal error: a client may stop there.
        let tail: Vec<&ServerMsg> = got.iter().rev().take(2).collect();
        assert!(
            matches!(tail[0], ServerMsg::Error(e) if e.code == ErrorCode::Lagged),
            "expected error lagged last, got {:?}",
            tail[0]
        );
        let ServerMsg::Notice(notice) = tail[1] else {
            panic!(
                "expected the lag notice before the error, got {:?}",
                tail[1]
            );
        };
        assert_eq!(notice.code, NoticeCode::Lagged);
        assert!(
            (delivered.len() as u64) < N / 2,
            "the server did not buffer everything for the stalled client: {} delivered",
            delivered.len()
        );
        assert!(
            delivered.windows(2).all(|w| w[1] == w[0] + 1),
            "what it got is in order"
        );
        assert_eq!(
            notice.seqs.get("#lobby"),
            delivered.last(),
            "the notice names the last seq queued to it"
        );
        eprintln!(
            "stalled client: {} messages delivered before the lag notice (queue bound {QUEUE})",
            delivered.len()
        );

        for reader in readers {
            let (texts, seqs, saw_lag) = reader.await.unwrap();
            assert_eq!(texts, (0..N).collect::<Vec<_>>(), "every message, in order");
            assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "contiguous seqs");
            assert!(saw_lag);
        }
        acks.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_oversize_header_gets_frame_too_large_and_is_closed() {
    bounded(10, async {
        let server = TestServer::start(test_config()).await;
        let (mut a, mut b) = control_pair(&server).await;
        // Before the handshake the limit is 4 KiB.
        let mut h = Client::connect(server.addr).await;
        h.send_raw(&[0, 0, 0, 1, 0, 0, 0x10, 1, 0, 0, 0, 1]).await;
        expect_fatal(&mut h, ErrorCode::FrameTooLarge, Duration::from_secs(2)).await;
        // After it, 64 KiB.
        let mut h = Client::login(server.addr, "big").await;
        h.send_raw(&[0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 10]).await;
        expect_fatal(&mut h, ErrorCode::FrameTooLarge, Duration::from_secs(2)).await;
        a.chat_with(&mut b, "after").await;
    })
    .await;
}

#[tokio::test]
async fn garbage_bytes_get_an_error_and_are_closed() {
    bounded(10, async {
        let server = TestServer::start(test_config()).await;
        let (mut a, mut b) = control_pair(&server).await;
        let mut h = Client::connect(server.addr).await;
        // A zero first byte makes it a framed connection (anything else is a text client).
        h.send_raw(b"\0GET / HTTP/1.1\r\nHost: chat\r\n\r\n").await;
        expect_fatal(
            &mut h,
            ErrorCode::UnsupportedVersion,
            Duration::from_secs(2),
        )
        .await;
        a.chat_with(&mut b, "after").await;
    })
    .await;
}

#[tokio::test]
async fn a_malformed_body_or_unknown_kind_is_refused_and_the_connection_goes_on() {
    bounded(10, async {
        let server = TestServer::start(test_config()).await;
        let (mut a, mut b) = control_pair(&server).await;
        let mut h = Client::login(server.addr, "sloppy").await;
        h.send_frame(kind::SEND, b"this is not json").await;
        h.expect_error(ErrorCode::Malformed).await;
        h.send_frame(kind::SEND, br#"{"text":"no recipient"}"#)
            .await;
        h.expect_error(ErrorCode::Malformed).await;
        h.send_frame(999, b"{}").await;
        h.expect_error(ErrorCode::UnknownKind).await;
        h.chat_with(&mut a, "still here").await;
        a.chat_with(&mut b, "after").await;
    })
    .await;
}

#[tokio::test]
async fn a_header_trickled_byte_by_byte_is_closed_as_a_slow_frame() {
    bounded(10, async {
        let mut config = test_config();
        config.handshake_timeout = Duration::from_secs(5);
        config.frame_timeout = Duration::from_millis(800);
        let server = TestServer::start(config).await;
        let (mut a, mut b) = control_pair(&server).await;
        let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let (rd, mut wr) = stream.into_split();
        let started = Instant::now();
        // One header byte every 200 ms: a whole frame would take 2.4 s.
        let trickle = tokio::spawn(async move {
            for byte in [0u8, 0, 0, 1, 0, 0, 0, 20, 0, 0, 0, 1] {
                if wr.write_all(&[byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let mut h = FramedRead::new(rd, ClientCodec::new(1 << 16));
        let watch = async {
            let mut last = None;
            while let Some(Ok(Ok(msg))) = h.next().await {
                last = Some(msg);
            }
            (last, started.elapsed())
        };
        let chat = async {
            for i in 0..3 {
                a.chat_with(&mut b, &format!("during {i}")).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        let ((last, took), ()) = tokio::join!(watch, chat);
        assert!(
            matches!(&last, Some(ServerMsg::Error(e)) if e.code == ErrorCode::SlowFrame),
            "{last:?}"
        );
        assert!(
            took >= Duration::from_millis(700),
            "not before its deadline: {took:?}"
        );
        assert!(
            took < Duration::from_millis(1600),
            "soon after its deadline: {took:?}"
        );
        trickle.abort();
        a.chat_with(&mut b, "after").await;
    })
    .await;
}

#[tokio::test]
async fn connections_that_never_say_hello_time_out() {
    bounded(10, async {
        let server = TestServer::start(test_config()).await;
        let (mut a, mut b) = control_pair(&server).await;
        let started = Instant::now();
        let mut silent = Vec::new();
        for _ in 0..5 {
            // A ping first: a connection that says nothing at all would be a text client.
            silent.push(Client::connect_framed(server.addr).await);
        }
        a.chat_with(&mut b, "during").await;
        for h in silent.iter_mut() {
            expect_fatal(h, ErrorCode::HandshakeTimeout, Duration::from_secs(3)).await;
        }
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(700) && took < Duration::from_secs(3),
            "{took:?}"
        );
        a.chat_with(&mut b, "after").await;
    })
    .await;
}

#[tokio::test]
async fn a_flood_beyond_the_rate_is_refused_with_errors_not_dropped() {
    bounded(10, async {
        let server = TestServer::start(test_config()).await;
        let (mut a, mut b) = control_pair(&server).await;
        let mut f = Client::login(server.addr, "flooder").await;
        for i in 0..50 {
            f.say("#lobby", &format!("flood {i}"), &format!("f{i}"))
                .await;
        }
        let (mut acked, mut refused) = (Vec::new(), Vec::new());
        while acked.len() + refused.len() < 50 {
            match f.recv().await {
                ServerMsg::Ack(x) => acked.push(x.id.unwrap()),
                ServerMsg::Error(e) => {
                    assert_eq!(e.code, ErrorCode::RateLimited);
                    refused.push(e.id.unwrap());
                }
                _ => {}
            }
        }
        // The burst is 10 and hello took one; a few more may refill meanwhile.
        assert!((9..=20).contains(&acked.len()), "acked {}", acked.len());
        // The control client sees exactly the accepted ones.
        for id in &acked {
            let m = a.recv_message().await;
            assert_eq!(format!("f{}", &m.text["flood ".len()..]), *id);
        }
        a.chat_with(&mut b, "after").await;
        // Once the bucket refills, the flooder may talk again.
        tokio::time::sleep(Duration::from_millis(400)).await;
        f.say("#lobby", "calm now", "calm").await;
        assert_eq!(f.recv_ack().await.id.as_deref(), Some("calm"));
    })
    .await;
}

#[tokio::test]
async fn too_many_connections_from_one_address_are_refused() {
    bounded(10, async {
        let mut config = test_config();
        config.max_conns_per_ip = 3;
        let server = TestServer::start(config).await;
        let mut a = Client::login(server.addr, "one").await;
        let mut b = Client::login(server.addr, "two").await;
        let _c = Client::login(server.addr, "three").await;
        let mut d = Client::connect(server.addr).await;
        expect_fatal(
            &mut d,
            ErrorCode::TooManyConnections,
            Duration::from_secs(1),
        )
        .await;
        a.chat_with(&mut b, "still fine").await;
        // A place frees when a connection ends.
        drop(a);
        let mut again = None;
        for _ in 0..50 {
            let mut e = Client::connect(server.addr).await;
            if let ServerMsg::Welcome(_) = e.hello("four").await {
                again = Some(e);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            again.is_some(),
            "a new connection is accepted after one closed"
        );
    })
    .await;
}

#[tokio::test]
async fn the_total_connection_cap_is_enforced() {
    bounded(10, async {
        let mut config = test_config();
        config.max_conns = 2;
        let server = TestServer::start(config).await;
        let _a = Client::login(server.addr, "one").await;
        let _b = Client::login(server.addr, "two").await;
        let mut c = Client::connect(server.addr).await;
        expect_fatal(
            &mut c,
            ErrorCode::TooManyConnections,
            Duration::from_secs(1),
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_client_that_ignores_pings_is_closed_as_idle() {
    bounded(10, async {
        let mut config = test_config();
        config.ping_interval = Duration::from_millis(300);
        let server = TestServer::start(config).await;
        let mut a = Client::login(server.addr, "quiet").await;
        let started = Instant::now();
        let got = a.expect_closed().await;
        let pings = got
            .iter()
            .filter(|m| matches!(m, ServerMsg::Ping(_)))
            .count();
        assert_eq!(pings, 2);
        assert!(
            matches!(got.last(), Some(ServerMsg::Error(e)) if e.code == ErrorCode::IdleTimeout)
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(850) && took < Duration::from_secs(2),
            "{took:?}"
        );
    })
    .await;
}
