//! Render benchmark: one full frame at 200×60 with 100,000 messages in the active buffer
//! (issue 8's goal: ≤ 2 ms). `cargo bench -p chat-tui --bench render`.
// criterion's macros generate undocumented public items.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use chat_proto::ServerMsg;
use chat_proto::server::{ChatMessage, NameList, Welcome};
use chat_tui::app::App;
use chat_tui::net::NetEvent;
use chat_tui::ui;
use chat_tui::update::{Msg, update};
use criterion::{Criterion, criterion_group, criterion_main};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const T0: i64 = 1_795_338_000_000;
const NICKS: [&str; 6] = [
    "bob",
    "carol",
    "李雷",
    "dave_the_long_nick",
    "eve",
    "mallory",
];

/// alice in #lobby with 100,000 messages of mixed length, CJK and emoji.
fn busy_app() -> App {
    let mut app = App::new("alice", "chat.example.org:6666", "B");
    app.now_ms = T0;
    update(&mut app, Msg::Resize(200, 60));
    update(
        &mut app,
        Msg::Net(NetEvent::Connected(Welcome {
            session: 1,
            nick: "alice".into(),
            server: "chat-server/bench".into(),
            rooms: vec!["#lobby".into()],
            ..Welcome::default()
        })),
    );
    let members = NICKS.iter().map(|n| (*n).to_owned()).collect();
    let names = NameList {
        id: None,
        room: "#lobby".into(),
        members,
        count: None,
    };
    update(
        &mut app,
        Msg::Net(NetEvent::Message(ServerMsg::Names(names))),
    );
    for seq in 1..=100_000u64 {
        let i = usize::try_from(seq).unwrap();
        let text = match seq % 4 {
            0 => "short".to_owned(),
            1 => "a somewhat longer line about tokio, select! and bounded channels".repeat(3),
            2 => "你好，世界 👋 mixed width text with emoji 🎉".to_owned(),
            _ => format!("message number {seq} with alice mentioned"),
        };
        let msg = ChatMessage {
            mid: seq,
            room: Some("#lobby".into()),
            from: NICKS[i % NICKS.len()].into(),
            seq,
            ts: T0 + i64::try_from(seq).unwrap() * 1000,
            text,
            ..ChatMessage::default()
        };
        update(
            &mut app,
            Msg::Net(NetEvent::Message(ServerMsg::Message(msg))),
        );
    }
    app
}

fn render(c: &mut Criterion) {
    let app = busy_app();
    let mut term = Terminal::new(TestBackend::new(200, 60)).unwrap();
    c.bench_function("draw 200x60, 100k messages, at the bottom", |b| {
        b.iter(|| {
            term.draw(|f| ui::draw(black_box(&app), f)).unwrap();
        });
    });
}

criterion_group!(benches, render);
criterion_main!(benches);
