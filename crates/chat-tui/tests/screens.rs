#![allow(clippy::unwrap_used)]
//! Whole screens as text, on ratatui's `TestBackend`, at 80×24 and 120×40.
//!
//! Timestamps are deterministic: every app here shows time in UTC.

use std::time::Duration;

use chat_proto::ServerMsg;
use chat_proto::server::{ChatMessage, Joined, NameList, TopicInfo, Welcome};
use chat_tui::app::App;
use chat_tui::keymap::Action;
use chat_tui::net::NetEvent;
use chat_tui::ui;
use chat_tui::update::{Msg, update};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// 2026-11-22 09:00:00 UTC.
const T0: i64 = 1_795_338_000_000;

fn render(app: &mut App, w: u16, h: u16) -> String {
    update(app, Msg::Resize(w, h));
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| ui::draw(app, f)).unwrap();
    term.backend().to_string()
}

fn net(app: &mut App, msg: ServerMsg) {
    update(app, Msg::Net(NetEvent::Message(msg)));
}

fn say(app: &mut App, room: &str, from: &str, seq: u64, text: &str) {
    net(
        app,
        ServerMsg::Message(ChatMessage {
            mid: seq,
            room: Some(room.into()),
            from: from.into(),
            seq,
            ts: T0 + seq as i64 * 37_000,
            text: text.into(),
            ..ChatMessage::default()
        }),
    );
}

fn type_and_send(app: &mut App, text: &str) {
    for c in text.chars() {
        update(app, Msg::Action(Action::Insert(c)));
    }
    update(app, Msg::Action(Action::Submit));
}

fn fresh() -> App {
    let mut app = App::new("alice", "chat.example.org:6666", "S");
    app.now_ms = T0;
    app
}

fn connected(members: &[&str]) -> App {
    let mut app = fresh();
    update(
        &mut app,
        Msg::Net(NetEvent::Connected(Welcome {
            session: 1,
            nick: "alice".into(),
            server: "chat-server/0.1.0".into(),
            rooms: vec!["#lobby".into(), "#rust".into()],
            motd: Some("welcome to the test server".into()),
            ..Welcome::default()
        })),
    );
    net(
        &mut app,
        ServerMsg::Topic(TopicInfo {
            room: "#lobby".into(),
            topic: "general chat · be kind".into(),
            ..TopicInfo::default()
        }),
    );
    net(
        &mut app,
        ServerMsg::Names(NameList {
            id: None,
            room: "#lobby".into(),
            members: members.iter().map(|m| (*m).to_owned()).collect(),
            count: None,
        }),
    );
    app
}

fn busy() -> App {
    let mut app = connected(&["alice", "bob", "carol", "dave", "erin"]);
    net(
        &mut app,
        ServerMsg::Joined(Joined {
            room: "#lobby".into(),
            nick: "dave".into(),
            ts: T0,
        }),
    );
    net(
        &mut app,
        ServerMsg::Joined(Joined {
            room: "#lobby".into(),
            nick: "erin".into(),
            ts: T0 + 1000,
        }),
    );
    let lines = [
        ("bob", "morning all"),
        ("carol", "hi bob"),
        ("dave", "has anyone tried the new release?"),
        ("bob", "alice: you did, right?"),
        ("erin", "it's fast"),
        ("carol", "the reconnect logic is much better now"),
    ];
    for (i, (from, text)) in lines.iter().enumerate() {
        say(&mut app, "#lobby", from, i as u64 + 1, text);
    }
    say(&mut app, "#rust", "dave", 1, "borrowck question");
    say(&mut app, "#rust", "dave", 2, "alice: got a minute?");
    app.now_ms = T0 + 400_000;
    type_and_send(&mut app, "yes, and it reconnects by itself");
    app
}

fn check(name: &str, mut app: App) {
    for (w, h) in [(80, 24), (120, 40)] {
        let screen = render(&mut app, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), screen);
    }
}

#[test]
fn empty_screen_while_connecting() {
    check("empty", fresh());
}

#[test]
fn busy_room() {
    check("busy", busy());
}

#[test]
fn cjk_and_emoji_keep_the_columns_aligned() {
    let mut app = connected(&["alice", "田中", "😀smile"]);
    say(
        &mut app,
        "#lobby",
        "田中",
        1,
        "こんにちは、皆さん。今日はいい天気ですね。漢字とかなの混ざった長い文章が折り返されても列がずれないことを確かめます。",
    );
    say(
        &mut app,
        "#lobby",
        "😀smile",
        2,
        "👩‍💻 coding 🎉🎉🎉 with 🇯🇵 flags and e\u{301} accents",
    );
    say(&mut app, "#lobby", "bob", 3, "한국어도 됩니다 👍");
    check("cjk_emoji", app);
}

#[test]
fn long_lines_wrap_under_the_text_column() {
    let mut app = connected(&["alice", "bob"]);
    say(
        &mut app,
        "#lobby",
        "bob",
        1,
        &"lorem ipsum dolor sit amet ".repeat(12),
    );
    say(&mut app, "#lobby", "bob", 2, &"x".repeat(150));
    say(
        &mut app,
        "#lobby",
        "bob",
        3,
        "first line\nsecond line\n\nfourth after a blank",
    );
    check("long_lines", app);
}

#[test]
fn narrow_terminal_hides_the_side_lists() {
    let mut app = busy();
    for (w, h) in [(40, 16), (59, 20)] {
        let screen = render(&mut app, w, h);
        insta::assert_snapshot!(format!("narrow_{w}x{h}"), screen);
    }
}

#[test]
fn scrolled_up_with_new_messages_below_and_unread_marker() {
    for (w, h) in [(80, 24), (120, 40)] {
        let mut app = connected(&["alice", "bob"]);
        for seq in 1..=40 {
            say(
                &mut app,
                "#lobby",
                "bob",
                seq,
                &format!("message number {seq}"),
            );
        }
        update(&mut app, Msg::Action(Action::GoToBuffer(1)));
        for seq in 41..=45 {
            say(
                &mut app,
                "#lobby",
                "bob",
                seq,
                &format!("while you were away {seq}"),
            );
        }
        update(&mut app, Msg::Action(Action::GoToBuffer(2)));
        update(&mut app, Msg::Resize(w, h));
        update(&mut app, Msg::Action(Action::ScrollUp));
        say(&mut app, "#lobby", "bob", 46, "arrives below the view");
        say(&mut app, "#lobby", "bob", 47, "and another");
        let screen = render(&mut app, w, h);
        insta::assert_snapshot!(format!("scrolled_{w}x{h}"), screen);
    }
}

#[test]
fn disconnected_with_pending_outbox() {
    let mut app = busy();
    app.now_ms = T0 + 500_000;
    update(
        &mut app,
        Msg::Net(NetEvent::Disconnected {
            reason: "server closed the connection".into(),
            retry_in: Some(Duration::from_secs(4)),
        }),
    );
    app.now_ms = T0 + 501_000;
    type_and_send(&mut app, "this waits in the outbox");
    type_and_send(&mut app, "so does this one");
    update(&mut app, Msg::Action(Action::Insert('h')));
    update(&mut app, Msg::Action(Action::Insert('m')));
    check("disconnected", app);
}

#[test]
fn help_lists_commands_and_keys() {
    let mut app = connected(&["alice"]);
    type_and_send(&mut app, "/help");
    let screen = render(&mut app, 120, 40);
    insta::assert_snapshot!("help_120x40", screen);
}

#[test]
fn file_transfers_show_a_gauge_each() {
    use chat_proto::server::{FileAccepted, FileOffered};
    use chat_tui::transfer::FileEvent;
    let mut app = connected(&["alice", "bob", "carol"]);
    // carol offers a 10 MiB file to the room; we accept it and 4 MiB are in after 2 s.
    net(
        &mut app,
        ServerMsg::FileOffered(FileOffered {
            id: None,
            file: 7,
            from: "carol".into(),
            to: "#lobby".into(),
            name: "holiday-photos.tar".into(),
            size: 10 << 20,
            sha256: "ab".repeat(32),
            expires: T0 + 600_000,
        }),
    );
    type_and_send(&mut app, "/accept 7");
    update(
        &mut app,
        Msg::File(FileEvent::Opened { file: 7, offset: 0 }),
    );
    // We send notes.txt to bob, who has acknowledged a quarter of it.
    type_and_send(&mut app, "/send notes.txt bob");
    let key = app.transfers[1].key.clone();
    update(
        &mut app,
        Msg::File(FileEvent::Hashed {
            key: key.clone(),
            path: "/home/alice/notes.txt".into(),
            name: "notes.txt".into(),
            size: 400 << 10,
            sha256: "cd".repeat(32),
        }),
    );
    net(
        &mut app,
        ServerMsg::FileOffered(FileOffered {
            id: Some(key),
            file: 8,
            from: "alice".into(),
            to: "bob".into(),
            name: "notes.txt".into(),
            size: 400 << 10,
            sha256: "cd".repeat(32),
            expires: T0 + 600_000,
        }),
    );
    net(
        &mut app,
        ServerMsg::FileAccepted(FileAccepted {
            file: 8,
            by: "bob".into(),
            offset: 0,
        }),
    );
    app.now_ms = T0 + 2_000;
    update(
        &mut app,
        Msg::File(FileEvent::Stored {
            file: 7,
            offset: 4 << 20,
        }),
    );
    net(
        &mut app,
        ServerMsg::FileProgress(chat_proto::server::FileProgress {
            file: 8,
            offset: 100 << 10,
        }),
    );
    update(&mut app, Msg::Action(Action::GoToBuffer(2)));
    check("file_gauges", app);
}

#[test]
fn a_large_room_shows_its_member_count_without_a_list() {
    // A large room's join burst gives only the count (PROTOCOL.md 7.3).
    let mut app = connected(&["alice", "bob"]);
    net(
        &mut app,
        ServerMsg::Names(NameList {
            id: None,
            room: "#lobby".into(),
            members: Vec::new(),
            count: Some(5000),
        }),
    );
    let screen = render(&mut app, 120, 40);
    assert!(screen.contains("5000 users"), "{screen}");
    assert!(!screen.contains(" bob "), "{screen}");
}
