//! Graceful shutdown: clients are told, queues are flushed, `run` returns in time.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use chat_proto::server::NoticeCode;
use chat_proto::{ErrorCode, ServerMsg};
use support::{Client, TestServer, bounded, test_config};

#[tokio::test]
async fn clients_receive_the_shutdown_notice_and_run_returns() {
    bounded(15, async {
        let server = TestServer::start(test_config()).await;
        let mut clients = Vec::new();
        for nick in ["a", "b", "c"] {
            clients.push(Client::login(server.addr, nick).await);
        }
        // One connection mid-handshake and one that never reads are told too.
        let mut pending = Client::connect_framed(server.addr).await;
        let mut deaf = Client::login(server.addr, "deaf").await;
        // A message queued just before shutdown is flushed before the notice.
        clients[0].say("#lobby", "last words", "lw").await;
        clients[0].recv_ack().await;

        let took = server.stop().await;
        assert!(took < Duration::from_secs(5), "run returned after {took:?}");

        for c in clients.iter_mut().chain([&mut deaf]) {
            let got = c.expect_closed().await;
            let n = got.len();
            assert!(n >= 2, "{}: {got:?}", c.nick);
            assert!(
                matches!(&got[n - 2], ServerMsg::Notice(x) if x.code == NoticeCode::ShuttingDown),
                "{}: {got:?}",
                c.nick
            );
            assert!(
                matches!(&got[n - 1], ServerMsg::Error(e) if e.code == ErrorCode::ShuttingDown),
                "{}: {got:?}",
                c.nick
            );
            if c.nick != "a" {
                assert!(
                    got.iter()
                        .any(|m| matches!(m, ServerMsg::Message(x) if x.text == "last words")),
                    "{}: queued message flushed first",
                    c.nick
                );
            }
        }
        let got = pending.expect_closed().await;
        assert!(
            matches!(got.last(), Some(ServerMsg::Error(e)) if e.code == ErrorCode::ShuttingDown)
        );
    })
    .await;
}

#[tokio::test]
async fn new_connections_are_not_accepted_after_shutdown() {
    bounded(10, async {
        let server = TestServer::start(test_config()).await;
        let addr = server.addr;
        server.stop().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    })
    .await;
}
