//! Every refusal is answered, and fatal errors say what actually happened.
#![allow(clippy::unwrap_used)]

mod support;

use chat_proto::client::Hello;
use chat_proto::{ErrorCode, ServerMsg};
use support::{Client, TestServer, bounded, test_config};

#[tokio::test]
async fn bad_frames_over_the_rate_are_still_answered() {
    bounded(10, async {
        let config = chat_server::Config {
            rate_burst: 2,
            rate_per_sec: 0.01,
            ..test_config()
        };
        let server = TestServer::start(config).await;
        let mut alice = Client::login(server.addr, "alice").await;
        // Malformed bodies and unknown kinds, well over the burst.
        for _ in 0..4 {
            alice.send_frame(10, b"not json").await;
            alice.send_frame(9999, b"{}").await;
        }
        for _ in 0..4 {
            alice.expect_error(ErrorCode::Malformed).await;
            alice.expect_error(ErrorCode::UnknownKind).await;
        }
        // They counted toward the limit: the next request is refused as such.
        alice.say("#lobby", "hi", "m1").await;
        let e = alice.expect_error(ErrorCode::RateLimited).await;
        assert_eq!(e.id.as_deref(), Some("m1"));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_handshake_timeout_names_a_refused_hello_accurately() {
    bounded(10, async {
        let server = TestServer::start(test_config()).await;
        let mut c = Client::connect_framed(server.addr).await;
        assert!(matches!(c.recv().await, ServerMsg::Pong(_)));
        c.send(Hello {
            name: "#bad".into(),
            ..Hello::default()
        })
        .await;
        c.expect_error(ErrorCode::NickInvalid).await;
        let e = c.expect_error(ErrorCode::HandshakeTimeout).await;
        assert!(e.message.contains("no accepted hello"), "{}", e.message);
        server.stop().await;
    })
    .await;
}
