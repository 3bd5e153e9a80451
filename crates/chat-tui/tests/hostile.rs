#![allow(clippy::unwrap_used)]
//! Hostile text through the whole screen: whatever peers send as message bodies, nicks, topics,
//! room names, error or notice text, and whatever is pasted, no cell of the drawn screen holds
//! a control character, an escape introducer or a bidi control.

use chat_proto::ErrorCode;
use chat_proto::ServerMsg;
use chat_proto::sanitize::is_unsafe_char;
use chat_proto::server::{
    ChatMessage, Error, Joined, NameList, Notice, NoticeCode, RoomList, RoomSummary, TopicInfo,
    Welcome,
};
use chat_tui::app::App;
use chat_tui::keymap::Action;
use chat_tui::net::NetEvent;
use chat_tui::ui;
use chat_tui::update::{Msg, update};
use proptest::prelude::*;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// At least fifty payloads that try to reach the terminal.
fn payloads() -> Vec<String> {
    let mut p: Vec<String> = [
        "\x1b[2J",                                                // CSI erase display
        "\x1b[H\x1b[2J\x1b[3J",                                   // home + clear + scrollback
        "\x1b[6n",            // CSI device status report (answer injected as input)
        "\x1b[c",             // primary device attributes
        "\x1b[>c",            // secondary device attributes
        "\x1b[21t",           // report window title
        "\x1b[8;100;100t",    // resize window
        "\x1b]0;pwned\x07",   // OSC 0 set title, BEL terminated
        "\x1b]0;pwned\x1b\\", // OSC 0, ST terminated
        "\x1b]2;title\x07",   // OSC 2
        "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\", // OSC 8 hyperlink
        "\x1b]52;c;cm0gLXJmIH4=\x07", // OSC 52 clipboard write
        "\x1b]52;c;?\x07",    // OSC 52 clipboard read
        "\x1b]4;1;rgb:ff/00/00\x07", // OSC 4 palette
        "\x1b]10;?\x07",      // OSC 10 query fg
        "\x1b]1337;File=inline=1:AAAA\x07", // iTerm2 image
        "\x1bP+q544e\x1b\\",  // DCS XTGETTCAP
        "\x1bPq#0;2;0;0;0#0~~@@vv\x1b\\", // DCS sixel
        "\x1b_Gf=100;AAAA\x1b\\", // APC kitty graphics
        "\x1b^privacy\x1b\\", // PM
        "\x1bX sos \x1b\\",   // SOS
        "\x1bc",              // RIS full reset
        "\x1b7\x1b8",         // save / restore cursor
        "\x1b(0lqqk\x1b(B",   // DEC line drawing charset
        "\x1b#8",             // DECALN fill screen with E
        "\x1b[?1049h",        // alternate screen
        "\x1b[?25l",          // hide cursor
        "\x1b[?1000h",        // mouse reporting
        "\x1b[?2004l",        // bracketed paste off
        "\x1b[201~rm -rf ~\n", // fake paste end
        "\x1b[31mred\x1b[0m", // SGR colour
        "\x1b[5m\x1b[8mhidden", // blink + conceal
        "\u{9b}2J",           // C1 CSI
        "\u{9d}0;title\u{9c}", // C1 OSC ... ST
        "\u{90}q\u{9c}",      // C1 DCS
        "\u{85}next line",    // C1 NEL
        "\u{8d}reverse index", // C1 RI
        "bell\x07bell\x07",   // BEL
        "back\x08\x08\x08\x08over", // BS
        "over\rwrite",        // CR
        "nul\0byte",          // NUL
        "del\x7fete",         // DEL
        "tab\tvtab\x0bff\x0c", // HT VT FF
        "\x0e\x0fshift",      // SO SI
        "\x1a\x1c\x1d\x1e\x1f", // other C0
        "admin\u{202e}txt.exe", // RLO
        "\u{202d}\u{202a}\u{202b}\u{202c}", // LRO LRE RLE PDF
        "\u{2066}\u{2067}\u{2068}\u{2069}", // isolates
        "\u{200e}\u{200f}\u{61c}marks", // LRM RLM ALM
        "line\u{2028}sep\u{2029}para", // separators
        "zero\u{200b}width\u{feff}bom\u{2060}",
        "soft\u{ad}hyphen",
        "tag\u{e0001}\u{e0041}\u{e0042}",
        "\u{200d}\u{200d}\u{200d}lonely joiners",
        "\x1b\x1b\x1b[[[",
        "\x1b",
        "\u{9b}",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    p.push(format!("e{}", "\u{301}".repeat(10_000))); // 10,000 combining marks
    p.push(format!("{}x", "\u{20d7}".repeat(10_000)));
    p.push("\x1b[2J".repeat(500));
    p.push("A\u{0}".repeat(3000));
    p
}

fn connected() -> App {
    let mut app = App::new("alice", "h:1", "S");
    update(
        &mut app,
        Msg::Net(NetEvent::Connected(Welcome {
            nick: "alice".into(),
            rooms: vec!["#lobby".into()],
            ..Welcome::default()
        })),
    );
    app
}

fn net(app: &mut App, msg: ServerMsg) {
    update(app, Msg::Net(NetEvent::Message(msg)));
}

/// Delivers `payload` in every place a peer or the server can put text.
fn deliver(app: &mut App, payload: &str, seq: u64) {
    let room = format!("#r{payload}");
    net(
        app,
        ServerMsg::Message(ChatMessage {
            room: Some("#lobby".into()),
            from: format!("n{payload}"),
            seq,
            text: payload.to_owned(),
            ..ChatMessage::default()
        }),
    );
    net(
        app,
        ServerMsg::Message(ChatMessage {
            room: Some("#lobby".into()),
            from: "bob".into(),
            seq: seq + 100_000,
            text: payload.to_owned(),
            action: true,
            ..ChatMessage::default()
        }),
    );
    net(
        app,
        ServerMsg::Message(ChatMessage {
            to: Some("alice".into()),
            from: payload.to_owned(),
            seq,
            text: payload.to_owned(),
            ..ChatMessage::default()
        }),
    );
    net(
        app,
        ServerMsg::Topic(TopicInfo {
            room: "#lobby".into(),
            topic: payload.to_owned(),
            set_by: Some(payload.to_owned()),
            ..TopicInfo::default()
        }),
    );
    net(
        app,
        ServerMsg::Joined(Joined {
            room: room.clone(),
            nick: "alice".into(),
            ts: 0,
        }),
    );
    net(
        app,
        ServerMsg::Joined(Joined {
            room: "#lobby".into(),
            nick: payload.to_owned(),
            ts: 0,
        }),
    );
    net(
        app,
        ServerMsg::Names(NameList {
            id: None,
            room: "#lobby".into(),
            members: vec![payload.to_owned(), "alice".into()],
            count: None,
        }),
    );
    net(
        app,
        ServerMsg::Error(Error {
            id: None,
            code: ErrorCode::Other,
            message: payload.to_owned(),
        }),
    );
    net(
        app,
        ServerMsg::Notice(Notice {
            code: NoticeCode::Info,
            text: payload.to_owned(),
            seqs: Default::default(),
            id: None,
        }),
    );
    net(
        app,
        ServerMsg::RoomList(RoomList {
            id: None,
            rooms: vec![RoomSummary {
                name: room,
                members: 1,
                topic: payload.to_owned(),
            }],
        }),
    );
    if !app.input.value().is_empty() {
        update(app, Msg::Action(Action::Interrupt));
    }
    update(app, Msg::Paste(payload.to_owned()));
}

/// Draws every buffer at a few sizes and checks every cell.
fn assert_screen_clean(app: &mut App) {
    for (w, h) in [(80, 24), (120, 40), (40, 12)] {
        for i in 0..app.buffers.len() {
            app.active = i;
            update(app, Msg::Resize(w, h));
            let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
            term.draw(|f| ui::draw(app, f)).unwrap();
            for cell in term.backend().buffer().content() {
                let sym = cell.symbol();
                for c in sym.chars() {
                    assert!(
                        !is_unsafe_char(c) && c != '\u{1b}' && !('\u{80}'..='\u{9f}').contains(&c),
                        "unsafe char {c:?} in cell {sym:?} (buffer {i}, {w}x{h})"
                    );
                }
                assert!(
                    sym.chars().count() <= 1 + 2 * chat_proto::sanitize::MAX_COMBINING + 8,
                    "smeared cell {sym:?}"
                );
            }
        }
    }
}

#[test]
fn at_least_fifty_hostile_payloads_never_reach_a_cell_raw() {
    let payloads = payloads();
    assert!(payloads.len() >= 50, "only {} payloads", payloads.len());
    for (k, payload) in payloads.iter().enumerate() {
        let mut app = connected();
        deliver(&mut app, payload, k as u64 + 1);
        assert_screen_clean(&mut app);
    }
}

#[test]
fn all_payloads_together_in_one_session() {
    let mut app = connected();
    for (k, payload) in payloads().iter().enumerate() {
        deliver(&mut app, payload, k as u64 + 1);
    }
    assert_screen_clean(&mut app);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_strings_never_reach_a_cell_raw(s in "(\\PC|\\p{Cc}|\\p{Cf}|[\u{80}-\u{9f}\u{1b}\u{202a}-\u{202e}\u{2066}-\u{2069}\u{300}-\u{36f}])*") {
        let mut app = connected();
        deliver(&mut app, &s, 1);
        assert_screen_clean(&mut app);
    }
}
