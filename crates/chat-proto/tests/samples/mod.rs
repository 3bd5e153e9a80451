//! One sample of every message variant, shared by the wire tests.
//!
//! `every_kind_has_a_sample` fails when a variant is added without a sample here.

use std::collections::BTreeMap;

use bytes::Bytes;
use chat_proto::client::{self, ClientMsg};
use chat_proto::error::ErrorCode;
use chat_proto::limits::Limits;
use chat_proto::message::{FileChunk, FileDone, Ping, Pong};
use chat_proto::server::{self, ServerMsg};

fn id(s: &str) -> Option<String> {
    Some(s.to_owned())
}

/// One sample of every client message.
pub fn client_samples() -> Vec<ClientMsg> {
    vec![
        client::Hello {
            name: "alice".into(),
            password: id("hunter2"),
            server_password: None,
            client: id("chat-tui/0.1.0"),
            resume: BTreeMap::from([("#lobby".to_owned(), 41)]),
        }
        .into(),
        Ping { token: id("t1") }.into(),
        Pong { token: None }.into(),
        client::Quit { reason: id("bye") }.into(),
        client::Send {
            id: id("c1"),
            to: "#lobby".into(),
            text: "hello 世界 👋\nsecond line".into(),
            action: false,
        }
        .into(),
        client::Send {
            id: None,
            to: "bob".into(),
            text: "waves".into(),
            action: true,
        }
        .into(),
        client::Typing {
            to: "#lobby".into(),
            active: true,
        }
        .into(),
        client::Join {
            id: id("j1"),
            room: "#rust".into(),
        }
        .into(),
        client::Part {
            id: None,
            room: "#rust".into(),
            reason: id("later"),
        }
        .into(),
        client::Nick {
            id: id("n1"),
            nick: "alicia".into(),
        }
        .into(),
        client::Topic {
            id: None,
            room: "#rust".into(),
            topic: id("borrowck"),
            lock: Some(true),
        }
        .into(),
        client::ListRooms { id: id("l") }.into(),
        client::Names {
            id: None,
            room: "#lobby".into(),
        }
        .into(),
        client::History {
            id: id("h"),
            room: "#lobby".into(),
            before: Some(100),
            after: None,
            limit: Some(50),
        }
        .into(),
        client::Search {
            id: None,
            room: "#lobby".into(),
            query: "tokio select".into(),
            limit: None,
        }
        .into(),
        client::Register {
            id: None,
            password: "pw".into(),
        }
        .into(),
        client::Kick {
            id: None,
            room: "#lobby".into(),
            nick: "mallory".into(),
            reason: id("spam"),
        }
        .into(),
        client::Ban {
            id: None,
            target: "127.0.0.9".into(),
            duration_secs: Some(3600),
            reason: None,
        }
        .into(),
        client::Mute {
            id: None,
            nick: "mallory".into(),
            room: None,
            duration_secs: Some(60),
        }
        .into(),
        client::Unban {
            id: None,
            target: "mallory".into(),
        }
        .into(),
        client::FileOffer {
            id: id("f"),
            to: "bob".into(),
            name: "notes.txt".into(),
            size: 12,
            sha256: "ab".repeat(32),
        }
        .into(),
        client::FileAccept { file: 7, offset: 0 }.into(),
        client::FileDecline { file: 7 }.into(),
        FileChunk {
            file: 7,
            offset: 65536,
            data: Bytes::from_static(b"\x00\x01binary\xff"),
        }
        .into(),
        FileDone { file: 7 }.into(),
        client::FileCancel {
            file: 7,
            reason: None,
        }
        .into(),
        client::FileAck {
            file: 7,
            offset: 131072,
        }
        .into(),
    ]
}

/// A typical room message.
pub fn chat_message() -> server::ChatMessage {
    server::ChatMessage {
        mid: 9001,
        room: id("#lobby"),
        to: None,
        from: "alice".into(),
        seq: 42,
        ts: 1_763_778_000_000,
        text: "hello 世界".into(),
        action: false,
    }
}

/// One sample of every server message.
pub fn server_samples() -> Vec<ServerMsg> {
    vec![
        server::Welcome {
            session: 1,
            nick: "alice".into(),
            server: "chat-server/0.1.0".into(),
            limits: Limits::default(),
            rooms: vec!["#lobby".into()],
            motd: id("be nice"),
        }
        .into(),
        ServerMsg::error(id("c1"), ErrorCode::NickTaken, "nick alice is taken"),
        Ping { token: None }.into(),
        Pong { token: id("t1") }.into(),
        server::Notice {
            code: server::NoticeCode::Lagged,
            text: "you lagged".into(),
            seqs: BTreeMap::from([("#lobby".to_owned(), 41)]),
            id: None,
        }
        .into(),
        chat_message().into(),
        server::Ack {
            id: id("c1"),
            mid: 9001,
            room: id("#lobby"),
            to: None,
            seq: 42,
            ts: 1_763_778_000_000,
            duplicate: false,
        }
        .into(),
        server::TypingEvent {
            room: id("#lobby"),
            from: "bob".into(),
            active: false,
        }
        .into(),
        server::Joined {
            room: "#lobby".into(),
            nick: "bob".into(),
            ts: 1,
        }
        .into(),
        server::Parted {
            room: "#lobby".into(),
            nick: "bob".into(),
            reason: None,
            ts: 2,
        }
        .into(),
        server::NickChanged {
            old: "bob".into(),
            new: "robert".into(),
            ts: 3,
        }
        .into(),
        server::QuitEvent {
            nick: "bob".into(),
            reason: id("connection closed"),
            ts: 4,
        }
        .into(),
        server::TopicInfo {
            id: None,
            room: "#lobby".into(),
            topic: "welcome".into(),
            set_by: id("alice"),
            ts: Some(5),
            locked: false,
        }
        .into(),
        server::RoomList {
            id: None,
            rooms: vec![server::RoomSummary {
                name: "#lobby".into(),
                members: 2,
                topic: String::new(),
            }],
        }
        .into(),
        server::NameList {
            id: id("j1"),
            room: "#lobby".into(),
            members: vec!["alice".into(), "bob".into()],
            count: None,
        }
        .into(),
        server::HistoryPage {
            id: None,
            room: "#lobby".into(),
            messages: vec![chat_message()],
            more: true,
        }
        .into(),
        server::SearchResults {
            id: None,
            room: "#lobby".into(),
            query: "hello".into(),
            messages: vec![chat_message()],
            more: false,
        }
        .into(),
        server::FileOffered {
            id: None,
            file: 7,
            from: "alice".into(),
            to: "bob".into(),
            name: "notes.txt".into(),
            size: 12,
            sha256: "ab".repeat(32),
            expires: 6,
        }
        .into(),
        server::FileAccepted {
            file: 7,
            by: "bob".into(),
            offset: 0,
        }
        .into(),
        server::FileDeclined {
            file: 7,
            by: "bob".into(),
        }
        .into(),
        server::FileCancelled {
            file: 7,
            by: "server".into(),
            reason: id("expired"),
        }
        .into(),
        server::FileProgress {
            file: 7,
            offset: 4096,
        }
        .into(),
        FileChunk {
            file: 7,
            offset: 0,
            data: Bytes::new(),
        }
        .into(),
        FileDone { file: 7 }.into(),
    ]
}
