//! Text mode under the same limits as framed clients: line length, rate, lag, deadlines, TLS,
//! shutdown.
#![allow(clippy::unwrap_used)]

mod support;
mod text_support;

use std::time::Duration;

use chat_proto::ServerMsg;
use support::{Client, TestServer, bounded, test_config};
use text_support::TextClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

#[tokio::test]
async fn a_5_kib_line_gets_an_error_line_and_the_connection_goes_on() {
    bounded(20, async {
        let server = TestServer::start(test_config()).await;
        let mut alice = Client::login(server.addr, "alice").await;
        let mut t = TextClient::login(server.addr, "longwinded").await;
        let mut long = vec![b'x'; 5 * 1024];
        long.extend_from_slice(b"\r\nstill here\r\n");
        t.write(&long).await;
        let error = t.line_with("*** error").await;
        assert!(error.contains("longer than 4096 bytes"), "{error}");
        let m = alice.recv_message().await;
        assert_eq!(m.text, "still here", "the long line reached nobody");
        // A line of exactly 4096 bytes is fine.
        let mut max = vec![b'y'; 4096];
        max.extend_from_slice(b"\n");
        t.write(&max).await;
        assert_eq!(alice.recv_message().await.text.len(), 4096);
    })
    .await;
}

#[tokio::test]
async fn text_clients_over_the_rate_are_slowed_down_not_refused() {
    bounded(20, async {
        let mut config = test_config();
        // The name takes one token, then three lines pass at once, then one every 200 ms.
        config.rate_burst = 4;
        config.rate_per_sec = 5.0;
        let server = TestServer::start(config).await;
        let mut alice = Client::login(server.addr, "alice").await;
        let mut t = TextClient::login(server.addr, "flooder").await;
        let started = Instant::now();
        t.write(b"m0\nm1\nm2\nm3\nm4\nm5\n").await;
        for i in 0..6 {
            assert_eq!(alice.recv_message().await.text, format!("m{i}"));
        }
        assert!(
            started.elapsed() >= Duration::from_millis(550),
            "the last three waited for the rate: {:?}",
            started.elapsed()
        );
        t.send_line("after").await;
        assert_eq!(alice.recv_message().await.text, "after");
        assert!(
            !String::from_utf8_lossy(&t.raw).contains("too many lines"),
            "nothing was refused"
        );
    })
    .await;
}

#[tokio::test]
async fn a_text_client_that_stops_reading_is_dropped_as_lagged() {
    bounded(60, async {
        let mut config = test_config();
        config.outbound_queue = 16;
        config.rate_burst = 1_000_000;
        config.rate_per_sec = 1_000_000.0;
        // Long enough for the stalled client to come back and read its last line.
        config.close_timeout = Duration::from_secs(20);
        let server = TestServer::start(config).await;
        let mut alice = Client::login(server.addr, "alice").await;

        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut slow = TextClient::over(socket.connect(server.addr).await.unwrap());
        slow.name = "slow".into();
        slow.send_line("slow").await;
        slow.line_with("*** in #lobby").await;

        // Alice talks until the server gives up on the reader that does not read.
        let text = "z".repeat(8 * 1024);
        let mut dropped = None;
        for i in 0..4000 {
            alice.say("#lobby", &text, &format!("{i}")).await;
            let quit = alice
                .recv_until(|m| match m {
                    ServerMsg::Ack(_) => Some(None),
                    ServerMsg::Quit(q) if q.nick == "slow" => Some(Some(q.reason)),
                    _ => None,
                })
                .await;
            if let Some(reason) = quit {
                dropped = Some((i, reason));
                break;
            }
        }
        let (sent, reason) = dropped.expect("the stalled text client was never dropped");
        assert_eq!(reason.as_deref(), Some("lagged"), "after {sent} messages");
        // The quit came while alice waited for this ack.
        let last = sent.to_string();
        alice
            .recv_until(|m| match m {
                ServerMsg::Ack(a) if a.id.as_deref() == Some(last.as_str()) => Some(()),
                _ => None,
            })
            .await;

        let lines = slow.expect_closed().await;
        assert!(
            lines
                .last()
                .is_some_and(|l| l.starts_with("*** you fell behind")),
            "last lines: {:?}",
            &lines[lines.len().saturating_sub(2)..]
        );
        // The room goes on.
        let mut bob = Client::login(server.addr, "bob").await;
        alice.chat_with(&mut bob, "after").await;
    })
    .await;
}

#[tokio::test]
async fn a_text_client_that_gives_no_name_or_goes_idle_is_closed() {
    bounded(20, async {
        let mut config = test_config();
        config.text_name_timeout = Duration::from_millis(800);
        config.text_idle_timeout = Duration::from_millis(1200);
        let server = TestServer::start(config).await;
        let mut alice = Client::login(server.addr, "alice").await;

        let started = Instant::now();
        let mut nameless = TextClient::connect(server.addr).await;
        let lines = nameless.expect_closed().await;
        let took = started.elapsed();
        assert_eq!(
            lines.last().map(String::as_str),
            Some("*** no name within 800 ms; bye")
        );
        assert!(
            took >= Duration::from_millis(750) && took < Duration::from_secs(3),
            "{took:?}"
        );

        let mut idle = TextClient::login(server.addr, "sleepy").await;
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(600)).await;
        idle.send_line("still awake").await;
        let lines = idle.expect_closed().await;
        let took = started.elapsed();
        assert_eq!(
            lines.last().map(String::as_str),
            Some("*** nothing typed for 1 s; disconnecting"),
            "{lines:?}"
        );
        assert!(
            took >= Duration::from_millis(1700),
            "a line resets the clock: {took:?}"
        );
        let reason = alice
            .recv_until(|m| match m {
                ServerMsg::Quit(q) if q.nick == "sleepy" => Some(q.reason),
                _ => None,
            })
            .await;
        assert_eq!(reason.as_deref(), Some("idle_timeout"));
    })
    .await;
}

#[tokio::test]
async fn a_tls_handshake_gets_a_plain_text_answer() {
    bounded(10, async {
        let server = TestServer::start(test_config()).await;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        // The start of a TLS 1.2 ClientHello record.
        s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x03])
            .await
            .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        assert_eq!(
            answer,
            "TLS is not enabled on this server: connect without TLS\r\n"
        );
    })
    .await;
}

#[tokio::test]
async fn text_clients_hear_the_shutdown_and_their_pending_lines() {
    bounded(20, async {
        let server = TestServer::start(test_config()).await;
        let mut alice = Client::login(server.addr, "alice").await;
        let mut t = TextClient::login(server.addr, "tess").await;
        let mut greeted = TextClient::connect(server.addr).await;
        greeted.line_with("what is your name?").await;
        alice.say("#lobby", "last words", "lw").await;
        alice.recv_ack().await;
        server.stop().await;
        let lines = t.expect_closed().await;
        assert!(
            lines.iter().any(|l| l.ends_with("<alice> last words")),
            "{lines:?}"
        );
        assert_eq!(
            lines.last().map(String::as_str),
            Some("*** the server is shutting down; bye")
        );
        let lines = greeted.expect_closed().await;
        assert_eq!(
            lines.last().map(String::as_str),
            Some("*** the server is shutting down; bye")
        );
    })
    .await;
}

#[tokio::test]
async fn an_http_request_is_answered_in_text_and_nobody_joins() {
    bounded(10, async {
        let server = TestServer::start(test_config()).await;
        let mut t = TextClient::connect(server.addr).await;
        t.write(b"GET / HTTP/1.1\r\nHost: chat\r\n\r\n").await;
        let first = t.line().await;
        assert!(
            first.starts_with("*** error:") && first.contains("whitespace"),
            "{first}"
        );
        t.line_with("choose another name").await;
        let mut alice = Client::login(server.addr, "alice").await;
        alice
            .send(chat_proto::client::Names {
                id: None,
                room: "#lobby".into(),
            })
            .await;
        let names = alice
            .recv_until(|m| match m {
                ServerMsg::Names(n) => Some(n.members),
                _ => None,
            })
            .await;
        assert_eq!(names, ["alice"]);
    })
    .await;
}
