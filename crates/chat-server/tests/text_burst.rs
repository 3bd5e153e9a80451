//! A text client's pasted block: every line reaches the room, in order, none dropped.
#![allow(clippy::unwrap_used)]

mod support;
mod text_support;

use chat_proto::ServerMsg;
use support::{Client, TestServer, bounded, test_config};
use text_support::TextClient;

async fn burst_reaches_everyone(config: chat_server::Config, n: usize) {
    let server = TestServer::start(config).await;
    let mut alice = Client::login(server.addr, "alice").await;
    let mut paste = TextClient::login(server.addr, "paste").await;
    let mut block = String::new();
    for i in 0..n {
        block.push_str(&format!("line {i}\r\n"));
    }
    paste.write(block.as_bytes()).await;
    for i in 0..n {
        let text = alice
            .recv_until(|m| match m {
                ServerMsg::Message(x) if x.from == "paste" => Some(x.text),
                _ => None,
            })
            .await;
        assert_eq!(text, format!("line {i}"));
    }
    server.stop().await;
}

#[tokio::test]
async fn a_pasted_block_of_200_lines_reaches_the_room_in_order() {
    // A high rate, so only the session's own queues are in play.
    let config = chat_server::Config {
        rate_burst: 100_000,
        rate_per_sec: 100_000.0,
        ..test_config()
    };
    bounded(30, burst_reaches_everyone(config, 200)).await;
}

#[tokio::test]
async fn a_pasted_block_over_the_rate_is_slowed_down_not_dropped() {
    // Burst 10, then 100 lines a second: the rest waits in the socket.
    let config = chat_server::Config {
        rate_burst: 10,
        rate_per_sec: 100.0,
        ..test_config()
    };
    bounded(30, burst_reaches_everyone(config, 200)).await;
}
