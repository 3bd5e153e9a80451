//! The server never sends a frame body above the `max_body` it announces: refused sends, pages
//! cut short with `more`, capped lists, cut reasons.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;

use chat_proto::client::{History, Join, ListRooms, Names, Part, Topic};
use chat_proto::{ClientCodec, ErrorCode, ServerMsg};
use chat_server::Config;
use support::{Client, TestServer, bounded, test_config};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// A client whose decoder refuses bodies over `limit`, as a strict client would (a frame over
/// it reads as the end of the stream, which `recv` reports as a closed connection).
async fn strict_login(addr: SocketAddr, nick: &str, limit: u32) -> Client {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut c = Client {
        framed: Framed::new(Box::new(stream), ClientCodec::new(limit)),
        nick: String::new(),
    };
    match c.hello(nick).await {
        ServerMsg::Welcome(w) => assert_eq!(w.limits.max_body, limit),
        other => panic!("{nick}: expected welcome, got {other:?}"),
    }
    c.expect_burst("#lobby").await;
    c
}

fn roomy(config: Config) -> Config {
    Config {
        rate_burst: 10_000,
        rate_per_sec: 10_000.0,
        max_conns_per_ip: 1000,
        ..config
    }
}

#[tokio::test]
async fn escaped_text_over_max_body_is_refused_and_lobby_stays_open() {
    bounded(20, async {
        let server = TestServer::start(test_config()).await;
        let limit = server_limit();
        let nick = "a".repeat(32);
        let mut alice = strict_login(server.addr, &nick, limit).await;
        let mut bob = strict_login(server.addr, "bob", limit).await;
        // 10,915 control characters: within max_text, 65,638 bytes once JSON-escaped.
        let text = "\u{1}".repeat(10_915);
        alice.say("#lobby", &text, "big").await;
        let e = alice.expect_error(ErrorCode::TextInvalid).await;
        assert_eq!(e.id.as_deref(), Some("big"));
        assert!(e.message.contains("encoded"), "{}", e.message);
        // Nobody got it, and a newcomer's join burst fits its decoder.
        alice.chat_with(&mut bob, "still here").await;
        let mut carol = strict_login(server.addr, "carol", limit).await;
        bob.chat_with(&mut carol, "welcome carol").await;
        server.stop().await;
    })
    .await;
}

fn server_limit() -> u32 {
    test_config().max_body
}

#[tokio::test]
async fn join_bursts_and_pages_of_long_messages_stay_within_max_body() {
    bounded(30, async {
        let server = TestServer::start(roomy(test_config())).await;
        let limit = server_limit();
        let mut alice = strict_login(server.addr, "alice", limit).await;
        let max_text = test_config().max_text as usize;
        for i in 0..5 {
            let text = format!("{i}{}", "\"".repeat(max_text - 1));
            alice.say("#lobby", &text, &format!("m{i}")).await;
            alice.recv_ack().await;
        }
        // A fresh client: its burst must fit, holding the newest messages and `more`.
        let stream = TcpStream::connect(server.addr).await.unwrap();
        let mut bob = Client {
            framed: Framed::new(Box::new(stream), ClientCodec::new(limit)),
            nick: String::new(),
        };
        assert!(matches!(bob.hello("bob").await, ServerMsg::Welcome(_)));
        let page = bob.expect_burst("#lobby").await;
        assert!(page.more, "a cut page says more");
        assert!(!page.messages.is_empty());
        assert_eq!(page.messages.last().unwrap().seq, 5);
        // Paging back also fits, and reaches the first message.
        let mut before = page.messages[0].seq;
        let mut seen = page.messages.len();
        while before > 1 {
            bob.send(History {
                id: Some("h".into()),
                room: "#lobby".into(),
                before: Some(before),
                ..History::default()
            })
            .await;
            let page = bob
                .recv_until(|m| match m {
                    ServerMsg::History(h) => Some(h),
                    _ => None,
                })
                .await;
            assert!(!page.messages.is_empty());
            before = page.messages[0].seq;
            seen += page.messages.len();
        }
        assert_eq!(seen, 5);
        // The burst of a joined room fits too.
        bob.send(Join {
            id: Some("j".into()),
            room: "#lobby".into(),
        })
        .await;
        bob.expect_burst("#lobby").await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn long_room_and_name_lists_and_reasons_stay_within_max_body() {
    bounded(60, async {
        // A small limit, so a few rooms and members exceed it.
        let limit = 4096;
        let config = Config {
            max_body: limit,
            max_text: 1024,
            max_rooms_per_user: 100,
            ..roomy(test_config())
        };
        let server = TestServer::start(config).await;
        let mut alice = strict_login(server.addr, "alice", limit).await;
        for i in 0..20 {
            let room = format!("#room{i:02}");
            alice
                .send(Join {
                    id: None,
                    room: room.clone(),
                })
                .await;
            alice.expect_burst(&room).await;
            alice
                .send(Topic {
                    id: Some(format!("t{i}")),
                    room: room.clone(),
                    topic: Some("\\".repeat(500)),
                    lock: None,
                })
                .await;
            alice
                .recv_until(|m| match m {
                    ServerMsg::Topic(t) if t.room == room => Some(()),
                    _ => None,
                })
                .await;
        }
        alice
            .send(ListRooms {
                id: Some("l".into()),
            })
            .await;
        let list = alice
            .recv_until(|m| match m {
                ServerMsg::RoomList(l) => Some(l),
                _ => None,
            })
            .await;
        assert!(list.rooms.len() < 21, "capped: {}", list.rooms.len());
        assert_eq!(list.rooms.last().unwrap().name, "…");
        // Many members with long nicks.
        let mut others = Vec::new();
        for i in 0..120 {
            let nick = format!("{i:03}{}", "n".repeat(29));
            others.push(Client::login(server.addr, &nick).await);
        }
        alice
            .send(Names {
                id: Some("w".into()),
                room: "#lobby".into(),
            })
            .await;
        let names = alice
            .recv_until(|m| match m {
                ServerMsg::Names(n) if n.id.as_deref() == Some("w") => Some(n),
                _ => None,
            })
            .await;
        assert!(names.members.last().unwrap().contains("more"));
        // A newcomer's join burst fits.
        let _dave = strict_login(server.addr, "dave", limit).await;
        // A long part reason is cut.
        let mut bob = others.pop().unwrap();
        bob.send(Part {
            id: None,
            room: "#lobby".into(),
            reason: Some("r".repeat(3000)),
        })
        .await;
        let parted = bob
            .recv_until(|m| match m {
                ServerMsg::Parted(p) => Some(p),
                _ => None,
            })
            .await;
        assert!(parted.reason.unwrap().len() <= 256);
        server.stop().await;
    })
    .await;
}
