//! Behaviour of `update`: typing, sending, receiving, scrolling, the outbox, reconnecting,
//! completion and input history, all without a terminal or a socket.

use std::time::Duration;

use chat_proto::client;
use chat_proto::server::{Ack, ChatMessage, Error, HistoryPage, Joined, NameList, Welcome};
use chat_proto::{ClientMsg, ErrorCode, ServerMsg};

use super::*;
use crate::app::{App, BufferKind, ConnState, Delivery, InputMode, LineBody};
use crate::keymap::Action;
use crate::net::NetEvent;

fn welcome(nick: &str, rooms: &[&str]) -> NetEvent {
    NetEvent::Connected(Welcome {
        session: 1,
        nick: nick.into(),
        server: "chat-server/test".into(),
        rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
        ..Welcome::default()
    })
}

fn net(app: &mut App, msg: ServerMsg) -> Vec<Command> {
    update(app, Msg::Net(NetEvent::Message(msg)))
}

fn msg(room: &str, from: &str, seq: u64, text: &str) -> ServerMsg {
    ServerMsg::Message(ChatMessage {
        mid: seq,
        room: Some(room.into()),
        from: from.into(),
        seq,
        ts: 1_700_000_000_000 + seq as i64 * 1000,
        text: text.into(),
        ..ChatMessage::default()
    })
}

/// A message with its own `mid` and `ts`: the same `seq` can be a different message.
fn msg_at(to: &str, from: &str, seq: u64, mid: u64, ts: i64, text: &str) -> ServerMsg {
    let (room, to) = if to.starts_with('#') {
        (Some(to.into()), None)
    } else {
        (None, Some(to.into()))
    };
    ServerMsg::Message(ChatMessage {
        mid,
        room,
        to,
        from: from.into(),
        seq,
        ts,
        text: text.into(),
        ..ChatMessage::default()
    })
}

fn texts(app: &App) -> Vec<String> {
    app.active_buffer()
        .lines
        .iter()
        .filter_map(|l| match &l.body {
            LineBody::Chat { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// alice, connected, in #lobby with bob and carol.
fn online() -> App {
    let mut app = App::new("alice", "test:1", "T");
    app.size = (80, 24);
    update(&mut app, Msg::Net(welcome("alice", &["#lobby"])));
    net(
        &mut app,
        ServerMsg::Names(NameList {
            id: None,
            room: "#lobby".into(),
            members: vec!["alice".into(), "bob".into(), "carol".into()],
            count: None,
        }),
    );
    app
}

fn type_str(app: &mut App, s: &str) {
    for c in s.chars() {
        update(app, Msg::Action(Action::Insert(c)));
    }
}

fn sends(cmds: &[Command]) -> Vec<ClientMsg> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Send(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn last_body(app: &App) -> &LineBody {
    &app.active_buffer().lines.last().unwrap().body
}

#[test]
fn first_welcome_opens_and_shows_the_room() {
    let app = online();
    assert_eq!(app.conn, ConnState::Connected);
    assert_eq!(app.active_buffer().kind, BufferKind::Room("#lobby".into()));
}

#[test]
fn typing_edits_the_input_with_readline_keys() {
    let mut app = online();
    type_str(&mut app, "hello world");
    update(&mut app, Msg::Action(Action::KillWordBack));
    assert_eq!(app.input.value(), "hello ");
    update(&mut app, Msg::Action(Action::LineStart));
    type_str(&mut app, ">");
    assert_eq!(app.input.value(), ">hello ");
    update(&mut app, Msg::Action(Action::KillToEnd));
    update(&mut app, Msg::Action(Action::LineEnd));
    update(&mut app, Msg::Action(Action::Yank));
    assert_eq!(app.input.value(), ">hello ");
}

#[test]
fn enter_sends_with_a_client_id_and_shows_pending_until_the_ack() {
    let mut app = online();
    type_str(&mut app, "hi all");
    let cmds = update(&mut app, Msg::Action(Action::Submit));
    let sent = sends(&cmds);
    let ClientMsg::Send(client::Send {
        id: Some(id),
        to,
        text,
        ..
    }) = &sent[0]
    else {
        panic!("expected a send, got {sent:?}");
    };
    assert_eq!((to.as_str(), text.as_str()), ("#lobby", "hi all"));
    assert!(app.input.value().is_empty());
    assert!(matches!(
        last_body(&app),
        LineBody::Chat {
            delivery: Delivery::Pending,
            ..
        }
    ));
    assert_eq!(app.outbox.len(), 1);

    net(
        &mut app,
        ServerMsg::Ack(Ack {
            id: Some(id.clone()),
            mid: 5,
            room: Some("#lobby".into()),
            seq: 5,
            ts: 1_700_000_000_000,
            ..Ack::default()
        }),
    );
    assert!(app.outbox.is_empty());
    let line = app.active_buffer().lines.last().unwrap();
    assert_eq!(line.seq, Some(5));
    assert!(matches!(
        line.body,
        LineBody::Chat {
            delivery: Delivery::Acked,
            ..
        }
    ));
}

#[test]
fn message_typed_offline_waits_and_is_sent_once_on_reconnect_with_the_same_id() {
    let mut app = online();
    update(
        &mut app,
        Msg::Net(NetEvent::Disconnected {
            reason: "server closed the connection".into(),
            retry_in: Some(Duration::from_secs(1)),
        }),
    );
    type_str(&mut app, "are you there?");
    let cmds = update(&mut app, Msg::Action(Action::Submit));
    assert!(sends(&cmds).is_empty(), "nothing is sent while offline");
    assert!(matches!(
        last_body(&app),
        LineBody::Chat {
            delivery: Delivery::Pending,
            ..
        }
    ));
    let id = app.outbox[0].id.clone();

    update(&mut app, Msg::Net(NetEvent::Connecting { attempt: 1 }));
    let cmds = update(&mut app, Msg::Net(welcome("alice", &["#lobby"])));
    let sent = sends(&cmds);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].request_id(), Some(id.as_str()));
    // Another welcome on the same generation would not resend: the item is marked sent.
    assert_eq!(app.outbox[0].sent_on, Some(app.generation));
}

#[test]
fn unacked_message_is_resent_with_its_original_id_after_a_drop() {
    let mut app = online();
    type_str(&mut app, "one");
    let first = sends(&update(&mut app, Msg::Action(Action::Submit)));
    update(
        &mut app,
        Msg::Net(NetEvent::Disconnected {
            reason: "reset".into(),
            retry_in: Some(Duration::from_secs(1)),
        }),
    );
    let again = sends(&update(&mut app, Msg::Net(welcome("alice", &["#lobby"]))));
    assert_eq!(first, again, "same id and text; never a second id");
    assert_eq!(app.next_id, 2);
}

#[test]
fn disconnect_shows_the_reason_and_a_countdown() {
    let mut app = online();
    app.now_ms = 1000;
    update(
        &mut app,
        Msg::Net(NetEvent::Disconnected {
            reason: "refused\u{1b}[2J".into(),
            retry_in: Some(Duration::from_secs(4)),
        }),
    );
    assert_eq!(
        app.conn,
        ConnState::Disconnected {
            reason: "refused␛[2J".into(),
            retry_at: Some(5000)
        }
    );
    assert_eq!(update(&mut app, Msg::Tick), vec![Command::Render]);
}

#[test]
fn receiving_in_another_buffer_counts_unread_and_mentions_and_rings() {
    let mut app = online();
    net(
        &mut app,
        ServerMsg::Joined(Joined {
            room: "#rust".into(),
            nick: "alice".into(),
            ts: 0,
        }),
    );
    assert_eq!(app.active_buffer().kind, BufferKind::Room("#lobby".into()));
    net(&mut app, msg("#rust", "bob", 1, "plain"));
    let cmds = net(&mut app, msg("#rust", "bob", 2, "alice: look"));
    assert_eq!(cmds, vec![Command::Bell]);
    let rust = app.find_buffer("#rust").unwrap();
    assert_eq!(
        (app.buffers[rust].unread, app.buffers[rust].mentions),
        (2, 1)
    );
    update(&mut app, Msg::Action(Action::NextActivity));
    assert_eq!(app.active, rust);
    assert_eq!(app.buffers[rust].unread, 0);
}

#[test]
fn duplicate_sequence_numbers_are_stored_once() {
    let mut app = online();
    net(&mut app, msg("#lobby", "bob", 3, "x"));
    net(
        &mut app,
        ServerMsg::History(HistoryPage {
            id: None,
            room: "#lobby".into(),
            messages: vec![
                match msg("#lobby", "bob", 2, "w") {
                    ServerMsg::Message(m) => m,
                    _ => unreachable!(),
                },
                match msg("#lobby", "bob", 3, "x") {
                    ServerMsg::Message(m) => m,
                    _ => unreachable!(),
                },
            ],
            more: false,
        }),
    );
    let seqs: Vec<_> = app
        .active_buffer()
        .lines
        .iter()
        .filter_map(|l| l.seq)
        .collect();
    assert_eq!(seqs, vec![2, 3]);
}

#[test]
fn new_messages_do_not_move_a_scrolled_view_and_are_counted_below() {
    let mut app = online();
    for seq in 1..=60 {
        net(&mut app, msg("#lobby", "bob", seq, &format!("line {seq}")));
    }
    update(&mut app, Msg::Action(Action::PageUp));
    let scroll = app.active_buffer().scroll;
    assert!(scroll > 0);
    net(&mut app, msg("#lobby", "bob", 61, "new"));
    assert_eq!(app.active_buffer().scroll, scroll + 1);
    assert_eq!(app.active_buffer().unseen_below, 1);
    update(&mut app, Msg::Action(Action::ScrollBottom));
    assert_eq!(
        (app.active_buffer().scroll, app.active_buffer().unseen_below),
        (0, 0)
    );
}

#[test]
fn scrolling_to_the_top_asks_for_older_history_once() {
    let mut app = online();
    for seq in 100..=140 {
        net(&mut app, msg("#lobby", "bob", seq, "x"));
    }
    let cmds = update(&mut app, Msg::Action(Action::ScrollTop));
    let sent = sends(&cmds);
    assert!(
        matches!(
            &sent[..],
            [ClientMsg::History(client::History {
                before: Some(100),
                ..
            })]
        ),
        "{sent:?}"
    );
    assert!(sends(&update(&mut app, Msg::Action(Action::PageUp))).is_empty());
}

#[test]
fn home_and_end_scroll_only_when_the_input_is_empty() {
    let mut app = online();
    for seq in 1..=60 {
        net(&mut app, msg("#lobby", "bob", seq, "x"));
    }
    type_str(&mut app, "abc");
    update(&mut app, Msg::Action(Action::Home));
    assert_eq!(app.active_buffer().scroll, 0);
    assert_eq!(app.input.cursor(), 0);
    update(&mut app, Msg::Action(Action::Interrupt));
    update(&mut app, Msg::Action(Action::Home));
    assert!(app.active_buffer().scroll > 0);
}

#[test]
fn tab_completes_nicks_with_a_colon_at_line_start_and_cycles() {
    let mut app = online();
    type_str(&mut app, "c");
    update(&mut app, Msg::Action(Action::Complete));
    assert_eq!(app.input.value(), "carol: ");
    let mut app = online();
    type_str(&mut app, "hi b");
    update(&mut app, Msg::Action(Action::Complete));
    assert_eq!(app.input.value(), "hi bob ");
}

#[test]
fn tab_cycles_through_matching_commands() {
    let mut app = online();
    type_str(&mut app, "/n");
    update(&mut app, Msg::Action(Action::Complete));
    assert_eq!(app.input.value(), "/nick ");
    update(&mut app, Msg::Action(Action::Complete));
    assert_eq!(app.input.value(), "/names ");
}

#[test]
fn up_and_down_walk_the_buffers_input_history_and_keep_the_draft() {
    let mut app = online();
    for s in ["one", "two"] {
        type_str(&mut app, s);
        update(&mut app, Msg::Action(Action::Submit));
    }
    type_str(&mut app, "dra");
    update(&mut app, Msg::Action(Action::HistoryPrev));
    assert_eq!(app.input.value(), "two");
    update(&mut app, Msg::Action(Action::HistoryPrev));
    assert_eq!(app.input.value(), "one");
    update(&mut app, Msg::Action(Action::HistoryNext));
    update(&mut app, Msg::Action(Action::HistoryNext));
    assert_eq!(app.input.value(), "dra");
}

#[test]
fn paste_inserts_literally_and_long_input_asks_before_sending() {
    let mut app = online();
    update(&mut app, Msg::Paste("a\r\nb\nc\nd\ne\nf\u{1b}[2J".into()));
    assert_eq!(app.input.value(), "a\nb\nc\nd\ne\nf\u{1b}[2J");
    let cmds = update(&mut app, Msg::Action(Action::Submit));
    assert!(cmds.is_empty());
    assert_eq!(app.mode, InputMode::ConfirmSend);
    update(&mut app, Msg::Action(Action::Cancel));
    assert_eq!(app.mode, InputMode::Normal);
    assert!(!app.input.value().is_empty());
    update(&mut app, Msg::Action(Action::Submit));
    let sent = sends(&update(&mut app, Msg::Action(Action::Confirm)));
    assert_eq!(sent.len(), 1);
}

#[test]
fn unknown_command_is_a_hint_and_double_slash_is_text() {
    let mut app = online();
    type_str(&mut app, "/frob");
    let cmds = update(&mut app, Msg::Action(Action::Submit));
    assert!(sends(&cmds).is_empty());
    assert!(matches!(last_body(&app), LineBody::Error(t) if t.contains("/frob")));
    type_str(&mut app, "//frob");
    let sent = sends(&update(&mut app, Msg::Action(Action::Submit)));
    assert!(matches!(&sent[..], [ClientMsg::Send(s)] if s.text == "/frob"));
}

#[test]
fn msg_opens_a_dm_buffer_and_dms_arrive_there() {
    let mut app = online();
    type_str(&mut app, "/msg bob psst");
    let sent = sends(&update(&mut app, Msg::Action(Action::Submit)));
    assert!(matches!(&sent[..], [ClientMsg::Send(s)] if s.to == "bob"));
    assert_eq!(app.active_buffer().kind, BufferKind::Dm("bob".into()));
    update(&mut app, Msg::Action(Action::GoToBuffer(2)));
    net(
        &mut app,
        ServerMsg::Message(ChatMessage {
            to: Some("alice".into()),
            from: "bob".into(),
            seq: 1,
            text: "yes?".into(),
            ..ChatMessage::default()
        }),
    );
    let dm = app.find_buffer("bob").unwrap();
    assert_eq!(app.buffers[dm].lines.len(), 2);
    assert_eq!(app.buffers[dm].mentions, 1);
}

#[test]
fn rate_limited_send_stays_pending_and_goes_again_with_the_same_id() {
    let mut app = online();
    app.now_ms = 10_000;
    type_str(&mut app, "quick");
    let sent = sends(&update(&mut app, Msg::Action(Action::Submit)));
    net(
        &mut app,
        ServerMsg::Error(Error {
            id: sent[0].request_id().map(str::to_owned),
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
        }),
    );
    assert!(matches!(
        last_body(&app),
        LineBody::Chat {
            delivery: Delivery::Pending,
            ..
        }
    ));
    assert!(app.needs_tick());
    assert!(sends(&update(&mut app, Msg::Tick)).is_empty(), "not yet");
    app.now_ms = 20_000;
    assert_eq!(sends(&update(&mut app, Msg::Tick)), sent);
    assert!(!app.needs_tick());
}

fn sent_texts(cmds: &[Command]) -> Vec<String> {
    sends(cmds)
        .into_iter()
        .filter_map(|m| match m {
            ClientMsg::Send(s) => Some(s.text),
            _ => None,
        })
        .collect()
}

#[test]
fn a_burst_of_typed_lines_goes_out_paced_and_in_the_order_typed() {
    let mut app = online();
    let mut sent = Vec::new();
    for i in 0..20 {
        type_str(&mut app, &format!("line {i}"));
        sent.extend(sent_texts(&update(&mut app, Msg::Action(Action::Submit))));
    }
    assert_eq!(sent.len(), 8, "a burst a little under the server's 10");
    assert!(app.needs_tick(), "the rest waits for the pacer");
    let mut t = 0;
    while sent.len() < 20 {
        t += 1000;
        assert!(t <= 5000, "all 20 go within a few seconds at 4.5/s");
        app.now_ms = t;
        sent.extend(sent_texts(&update(&mut app, Msg::Tick)));
    }
    let expected: Vec<String> = (0..20).map(|i| format!("line {i}")).collect();
    assert_eq!(sent, expected);
    assert!(!app.needs_tick());
}

#[test]
fn a_rate_limited_send_holds_back_the_ones_after_it() {
    let mut app = online();
    let mut first = Vec::new();
    for text in ["one", "two", "three"] {
        type_str(&mut app, text);
        first.extend(sends(&update(&mut app, Msg::Action(Action::Submit))));
    }
    net(
        &mut app,
        ServerMsg::Error(Error {
            id: first[1].request_id().map(str::to_owned),
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
        }),
    );
    type_str(&mut app, "four");
    assert!(
        sent_texts(&update(&mut app, Msg::Action(Action::Submit))).is_empty(),
        "four waits behind two"
    );
    app.now_ms = 5_000;
    assert_eq!(
        sent_texts(&update(&mut app, Msg::Tick)),
        ["two", "three", "four"],
        "same order, and three (maybe already taken) again for a duplicate ack"
    );
}

#[test]
fn failed_send_is_marked_and_leaves_the_outbox() {
    let mut app = online();
    type_str(&mut app, "spam");
    let sent = sends(&update(&mut app, Msg::Action(Action::Submit)));
    net(
        &mut app,
        ServerMsg::Error(Error {
            id: sent[0].request_id().map(str::to_owned),
            code: ErrorCode::TextInvalid,
            message: "too long".into(),
        }),
    );
    assert!(app.outbox.is_empty());
    assert!(matches!(
        last_body(&app),
        LineBody::Chat {
            delivery: Delivery::Failed(_),
            ..
        }
    ));
}

#[test]
fn joins_and_parts_in_a_row_collapse_into_one_line() {
    let mut app = online();
    for nick in ["dave", "erin"] {
        net(
            &mut app,
            ServerMsg::Joined(Joined {
                room: "#lobby".into(),
                nick: nick.into(),
                ts: 1,
            }),
        );
    }
    net(
        &mut app,
        ServerMsg::Parted(chat_proto::server::Parted {
            room: "#lobby".into(),
            nick: "bob".into(),
            reason: None,
            ts: 2,
        }),
    );
    assert_eq!(
        last_body(&app),
        &LineBody::Membership {
            joined: vec!["dave".into(), "erin".into()],
            parted: vec!["bob".into()]
        }
    );
    assert!(app.active_buffer().members.iter().any(|m| m == "erin"));
    assert!(!app.active_buffer().members.iter().any(|m| m == "bob"));
}

#[test]
fn ctrl_c_clears_then_quits() {
    let mut app = online();
    type_str(&mut app, "x");
    assert!(update(&mut app, Msg::Action(Action::Interrupt)).is_empty());
    assert!(app.input.value().is_empty());
    assert_eq!(
        update(&mut app, Msg::Action(Action::Interrupt)),
        vec![Command::Quit(None)]
    );
    assert!(app.quit);
}

#[test]
fn returning_to_a_buffer_shows_an_unread_marker_at_the_first_new_line() {
    let mut app = online();
    net(&mut app, msg("#lobby", "bob", 1, "seen"));
    update(&mut app, Msg::Action(Action::GoToBuffer(1)));
    net(&mut app, msg("#lobby", "bob", 2, "unseen"));
    update(&mut app, Msg::Action(Action::GoToBuffer(2)));
    let buf = app.active_buffer();
    let marker = buf.read_marker.unwrap();
    assert_eq!(buf.lines[marker].seq, Some(2));
}

#[test]
fn a_restarted_server_whose_numbers_start_over_does_not_hide_new_messages() {
    let mut app = online();
    net(
        &mut app,
        msg_at("#lobby", "bob", 1, 11, 1_000, "before the restart"),
    );
    net(
        &mut app,
        msg_at("#lobby", "bob", 2, 12, 2_000, "still before"),
    );
    update(
        &mut app,
        Msg::Net(NetEvent::Disconnected {
            reason: "gone".into(),
            retry_in: None,
        }),
    );
    update(&mut app, Msg::Net(welcome("alice", &["#lobby"])));
    net(
        &mut app,
        msg_at("#lobby", "bob", 1, 1, 9_000, "after the restart"),
    );
    assert_eq!(
        texts(&app),
        vec!["before the restart", "still before", "after the restart"]
    );
}

#[test]
fn a_dm_after_a_nick_change_starts_at_seq_1_again_and_is_shown() {
    let mut app = online();
    net(&mut app, msg_at("alice", "bob", 1, 21, 1_000, "hi"));
    net(
        &mut app,
        ServerMsg::NickChanged(chat_proto::server::NickChanged {
            old: "bob".into(),
            new: "robert".into(),
            ts: 1_500,
        }),
    );
    net(
        &mut app,
        msg_at("alice", "robert", 1, 22, 2_000, "it's robert now"),
    );
    let i = app.find_buffer("robert").unwrap();
    update(&mut app, Msg::Action(Action::GoToBuffer(i + 1)));
    assert_eq!(texts(&app), vec!["hi", "it's robert now"]);
}

#[test]
fn a_clean_resume_with_nothing_missed_keeps_the_numbers_for_paging_back() {
    let mut app = online();
    for seq in 100..=140 {
        net(&mut app, msg("#lobby", "bob", seq, "x"));
    }
    update(
        &mut app,
        Msg::Net(NetEvent::Disconnected {
            reason: "gone".into(),
            retry_in: None,
        }),
    );
    update(&mut app, Msg::Net(welcome("alice", &["#lobby"])));
    net(
        &mut app,
        ServerMsg::History(HistoryPage {
            id: None,
            room: "#lobby".into(),
            messages: vec![],
            more: false,
        }),
    );
    assert!(
        !app.active_buffer()
            .lines
            .iter()
            .any(|l| matches!(&l.body, LineBody::Info(t) if t.contains("reset"))),
        "no false alarm"
    );
    let sent = sends(&update(&mut app, Msg::Action(Action::ScrollTop)));
    assert!(
        matches!(&sent[..], [ClientMsg::History(h)] if h.before == Some(100)),
        "{sent:?}"
    );
}

#[test]
fn older_history_loaded_at_the_top_keeps_the_view_in_place() {
    let mut app = online();
    app.size = (100, 24);
    for seq in 71..=120 {
        net(&mut app, msg("#lobby", "bob", seq, &format!("line {seq}")));
    }
    let sent = sends(&update(&mut app, Msg::Action(Action::Home)));
    let before_scroll = app.active_buffer().scroll;
    let id = sent[0].request_id().unwrap().to_owned();
    let page: Vec<ChatMessage> = (21..=70)
        .map(
            |seq| match msg("#lobby", "bob", seq, &format!("line {seq}")) {
                ServerMsg::Message(m) => m,
                _ => unreachable!(),
            },
        )
        .collect();
    net(
        &mut app,
        ServerMsg::History(HistoryPage {
            id: Some(id),
            room: "#lobby".into(),
            messages: page,
            more: true,
        }),
    );
    assert_eq!(app.active_buffer().scroll, before_scroll);
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(100, 24)).unwrap();
    term.draw(|f| crate::ui::draw(&app, f)).unwrap();
    let top: String = (0..100)
        .map(|x| term.backend().buffer()[(x, 1)].symbol().to_owned())
        .collect();
    assert!(top.contains("line 71"), "{top}");
}

/// The whole screen as text, rows joined by newlines.
fn screen_text(app: &App) -> String {
    let (w, h) = app.size;
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).unwrap();
    term.draw(|f| crate::ui::draw(app, f)).unwrap();
    let buf = term.backend().buffer();
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_owned())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn reconnect(app: &mut App, rooms: &[&str]) -> Vec<Command> {
    update(
        app,
        Msg::Net(NetEvent::Disconnected {
            reason: "gone".into(),
            retry_in: Some(Duration::from_secs(1)),
        }),
    );
    update(app, Msg::Net(welcome("alice", rooms)))
}

#[test]
fn a_room_not_restored_on_reconnect_is_rejoined_with_an_id_and_a_refusal_marks_it() {
    let mut app = online();
    net(
        &mut app,
        ServerMsg::Joined(Joined {
            room: "#rust".into(),
            nick: "alice".into(),
            ts: 0,
        }),
    );
    let sent = sends(&reconnect(&mut app, &["#lobby"]));
    let [ClientMsg::Join(client::Join { id: Some(id), room })] = &sent[..] else {
        panic!("expected one join with an id, got {sent:?}");
    };
    assert_eq!(room, "#rust");
    net(
        &mut app,
        ServerMsg::Error(Error {
            id: Some(id.clone()),
            code: ErrorCode::RoomInvalid,
            message: "no such room".into(),
        }),
    );
    let rust = app.find_buffer("#rust").unwrap();
    assert!(!app.buffers[rust].joined);
    assert!(matches!(
        &app.buffers[rust].lines.last().unwrap().body,
        LineBody::Error(t) if t.contains("cannot join #rust")
    ));
}

#[test]
fn more_history_after_a_resume_pages_forward_through_the_pacer_until_done() {
    let mut app = online();
    reconnect(&mut app, &["#lobby"]);
    let cmds = net(
        &mut app,
        ServerMsg::Notice(chat_proto::server::Notice {
            code: chat_proto::server::NoticeCode::MoreHistory,
            text: "more history".into(),
            seqs: [("#lobby".to_owned(), 500)].into_iter().collect(),
            id: None,
        }),
    );
    let sent = sends(&cmds);
    let [ClientMsg::History(h)] = &sent[..] else {
        panic!("expected a history request, got {sent:?}");
    };
    assert_eq!((h.after, h.before), (Some(500), None));
    let page = |id: &str, from: u64, more: bool| {
        ServerMsg::History(HistoryPage {
            id: Some(id.to_owned()),
            room: "#lobby".into(),
            messages: (from..from + 50)
                .map(|seq| match msg("#lobby", "bob", seq, "m") {
                    ServerMsg::Message(m) => m,
                    _ => unreachable!(),
                })
                .collect(),
            more,
        })
    };
    let sent = sends(&net(&mut app, page(h.id.as_deref().unwrap(), 501, true)));
    let [ClientMsg::History(h2)] = &sent[..] else {
        panic!("expected the next page, got {sent:?}");
    };
    assert_eq!(h2.after, Some(550));
    assert!(sends(&net(&mut app, page(h2.id.as_deref().unwrap(), 551, false))).is_empty());
    assert_eq!(
        app.active_buffer()
            .lines
            .iter()
            .filter(|l| l.seq.is_some())
            .count(),
        100
    );
}

#[test]
fn join_opens_the_buffer_only_when_the_server_says_joined() {
    let mut app = online();
    type_str(&mut app, "/join #a,b");
    let sent = sends(&update(&mut app, Msg::Action(Action::Submit)));
    let [ClientMsg::Join(client::Join { id: Some(id), .. })] = &sent[..] else {
        panic!("expected a join with an id, got {sent:?}");
    };
    assert!(app.find_buffer("#a,b").is_none(), "no buffer before joined");
    net(
        &mut app,
        ServerMsg::Error(Error {
            id: Some(id.clone()),
            code: ErrorCode::RoomInvalid,
            message: "bad room name".into(),
        }),
    );
    assert!(app.find_buffer("#a,b").is_none(), "no dead buffer");
    assert!(matches!(last_body(&app), LineBody::Error(t) if t.contains("cannot join")));

    type_str(&mut app, "/join #rust");
    update(&mut app, Msg::Action(Action::Submit));
    net(
        &mut app,
        ServerMsg::Joined(Joined {
            room: "#rust".into(),
            nick: "alice".into(),
            ts: 0,
        }),
    );
    assert_eq!(app.active_buffer().kind, BufferKind::Room("#rust".into()));
}

#[test]
fn nick_while_offline_sets_the_name_for_the_next_attempt() {
    let mut app = App::new("a b", "test:1", "T");
    update(
        &mut app,
        Msg::Net(NetEvent::Disconnected {
            reason: "nick refused: no spaces".into(),
            retry_in: None,
        }),
    );
    type_str(&mut app, &format!("/nick {}", "x".repeat(40)));
    let cmds = update(&mut app, Msg::Action(Action::Submit));
    assert!(!cmds.iter().any(|c| matches!(c, Command::SetNick(_))));
    type_str(&mut app, "/nick alice");
    let cmds = update(&mut app, Msg::Action(Action::Submit));
    assert_eq!(cmds, vec![Command::SetNick("alice".into())]);
    assert_eq!(app.me, "alice");
}

#[test]
fn me_and_msg_text_are_length_checked_like_plain_text() {
    let mut app = online();
    let long = "x".repeat(app.limits.max_text as usize + 1);
    for input in [format!("/me {long}"), format!("/msg bob {long}")] {
        type_str(&mut app, &input);
        let sent = sends(&update(&mut app, Msg::Action(Action::Submit)));
        assert!(sent.is_empty(), "{input:.20} was sent");
        assert!(matches!(last_body(&app), LineBody::Error(t) if t.contains("too long")));
        app.input = tui_input::Input::default();
    }
}

#[test]
fn part_and_quit_reasons_are_shown() {
    let mut app = online();
    net(
        &mut app,
        ServerMsg::Parted(chat_proto::server::Parted {
            room: "#lobby".into(),
            nick: "bob".into(),
            reason: Some("lunch".into()),
            ts: 1,
        }),
    );
    assert!(matches!(last_body(&app), LineBody::Info(t) if t == "bob left (lunch)"));
    net(
        &mut app,
        ServerMsg::Quit(chat_proto::server::QuitEvent {
            nick: "carol".into(),
            reason: Some("bye".into()),
            ts: 2,
        }),
    );
    assert!(matches!(last_body(&app), LineBody::Info(t) if t == "carol left (bye)"));
}

#[test]
fn a_topic_re_sent_after_a_reconnect_is_not_reported_as_a_change() {
    let mut app = online();
    let topic = |text: &str, set_by: Option<&str>, ts: Option<i64>| {
        ServerMsg::Topic(chat_proto::server::TopicInfo {
            id: None,
            room: "#lobby".into(),
            topic: text.into(),
            set_by: set_by.map(Into::into),
            ts,
            locked: false,
        })
    };
    net(
        &mut app,
        ServerMsg::Joined(Joined {
            room: "#lobby".into(),
            nick: "alice".into(),
            ts: 0,
        }),
    );
    net(&mut app, topic("rust", Some("bob"), Some(1_000)));
    net(&mut app, msg("#lobby", "bob", 1, "hi"));
    let before = app.active_buffer().lines.len();
    reconnect(&mut app, &["#lobby"]);
    let after_reconnect = app.active_buffer().lines.len();
    net(&mut app, topic("rust", Some("bob"), Some(1_000)));
    net(&mut app, topic("", None, None));
    assert_eq!(
        app.active_buffer().lines.len(),
        after_reconnect,
        "no topic lines"
    );
    assert!(after_reconnect > before);
    net(&mut app, topic("new", Some("carol"), Some(5_000)));
    assert!(matches!(last_body(&app), LineBody::Info(t) if t == "carol set the topic: new"));
}

#[test]
fn join_burst_history_goes_above_the_you_joined_line() {
    let mut app = online();
    type_str(&mut app, "/join #rust");
    update(&mut app, Msg::Action(Action::Submit));
    net(
        &mut app,
        ServerMsg::Joined(Joined {
            room: "#rust".into(),
            nick: "alice".into(),
            ts: 1_800_000_000_000,
        }),
    );
    net(
        &mut app,
        ServerMsg::History(HistoryPage {
            id: None,
            room: "#rust".into(),
            messages: (1..=3)
                .map(|seq| match msg("#rust", "bob", seq, "old") {
                    ServerMsg::Message(m) => m,
                    _ => unreachable!(),
                })
                .collect(),
            more: false,
        }),
    );
    let ts: Vec<i64> = app.active_buffer().lines.iter().map(|l| l.ts).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    assert!(matches!(last_body(&app), LineBody::Info(t) if t.starts_with("you joined")));
}

#[test]
fn a_paste_during_the_send_prompt_does_not_edit_the_input() {
    let mut app = online();
    update(&mut app, Msg::Paste("1\n2\n3\n4\n5\n6".into()));
    update(&mut app, Msg::Action(Action::Submit));
    assert_eq!(app.mode, InputMode::ConfirmSend);
    update(&mut app, Msg::Paste("sneaky".into()));
    assert_eq!(app.input.value(), "1\n2\n3\n4\n5\n6");
}

#[test]
fn search_asks_the_server_and_shows_marked_results_with_time_and_nick() {
    let mut app = online();
    type_str(&mut app, "/search tokio select");
    let sent = sends(&update(&mut app, Msg::Action(Action::Submit)));
    let [ClientMsg::Search(q)] = &sent[..] else {
        panic!("expected a search, got {sent:?}");
    };
    assert_eq!(
        (q.room.as_str(), q.query.as_str()),
        ("#lobby", "tokio select")
    );
    let hit = match msg("#lobby", "bob", 7, "tokio select! is neat") {
        ServerMsg::Message(m) => m,
        _ => unreachable!(),
    };
    net(
        &mut app,
        ServerMsg::SearchResults(chat_proto::server::SearchResults {
            id: q.id.clone(),
            room: "#lobby".into(),
            query: "tokio select".into(),
            messages: vec![hit],
            more: false,
        }),
    );
    let lines: Vec<String> = app
        .active_buffer()
        .lines
        .iter()
        .filter_map(|l| match &l.body {
            LineBody::Info(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert!(
        lines
            .iter()
            .any(|t| t == "search \"tokio select\": 1 result"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|t| t.contains("2023-11-14 22:13") && t.contains("<bob> tokio select! is neat")),
        "{lines:?}"
    );
    assert!(texts(&app).is_empty(), "results are not chat lines");
}

#[test]
fn a_duplicate_ack_after_a_reconnect_marks_the_line_acked_and_adds_none() {
    let mut app = online();
    type_str(&mut app, "once");
    let first = sends(&update(&mut app, Msg::Action(Action::Submit)));
    let again = sends(&reconnect(&mut app, &["#lobby"]));
    assert_eq!(first, again);
    let id = again[0].request_id().unwrap().to_owned();
    net(
        &mut app,
        ServerMsg::Ack(Ack {
            id: Some(id),
            mid: 9,
            room: Some("#lobby".into()),
            seq: 9,
            ts: 1_700_000_009_000,
            duplicate: true,
            ..Ack::default()
        }),
    );
    // The resume page holds the same message (it was stored before the drop).
    net(
        &mut app,
        ServerMsg::History(HistoryPage {
            id: None,
            room: "#lobby".into(),
            messages: vec![ChatMessage {
                mid: 9,
                room: Some("#lobby".into()),
                from: "alice".into(),
                seq: 9,
                ts: 1_700_000_009_000,
                text: "once".into(),
                ..ChatMessage::default()
            }],
            more: false,
        }),
    );
    assert_eq!(texts(&app), vec!["once"]);
    assert!(app.outbox.is_empty());
    assert!(app.active_buffer().lines.iter().any(|l| matches!(
        l.body,
        LineBody::Chat {
            delivery: Delivery::Acked,
            ..
        }
    )));
}

#[test]
fn register_sends_the_password_but_history_and_screen_keep_it_masked() {
    let mut app = online();
    type_str(&mut app, "/register hunter22 horse");
    let cmds = update(&mut app, Msg::Action(Action::Submit));
    let sent = sends(&cmds);
    assert!(
        matches!(&sent[..], [ClientMsg::Register(r)] if r.password == "hunter22 horse" && r.id.is_some()),
        "{sent:?}"
    );
    assert!(app.input.value().is_empty());
    let history = &app.active_buffer().history.entries;
    assert_eq!(
        history.last().map(String::as_str),
        Some("/register ********")
    );
    for buf in &app.buffers {
        for line in &buf.lines {
            assert!(!format!("{:?}", line.body).contains("hunter22"));
        }
    }
    update(&mut app, Msg::Action(Action::HistoryPrev));
    assert_eq!(app.input.value(), "/register ********");
}

#[test]
fn a_refused_login_shows_the_servers_message_and_how_to_give_the_password() {
    let mut app = App::new("alice", "test:1", "T");
    app.size = (80, 24);
    net(
        &mut app,
        ServerMsg::Error(Error {
            id: None,
            code: ErrorCode::AuthFailed,
            message: "nick alice is registered: wrong or missing password".into(),
        }),
    );
    let lines: Vec<String> = app.buffers[0]
        .lines
        .iter()
        .map(|l| format!("{:?}", l.body))
        .collect();
    let all = lines.join("\n");
    assert!(all.contains("wrong or missing password"), "{all}");
    assert!(
        all.contains("CHAT_PASSWORD") && all.contains("--password-cmd"),
        "{all}"
    );
}

#[test]
fn a_refused_login_prompts_for_the_password_and_sends_it_with_the_next_hello() {
    use crate::net::{PasswordFor, Secret};
    let mut app = App::new("alice", "test:1", "T");
    app.size = (80, 24);
    update(&mut app, Msg::Action(Action::Insert('x')));
    net(
        &mut app,
        ServerMsg::Error(Error {
            id: None,
            code: ErrorCode::AuthFailed,
            message: "nick alice is registered: wrong or missing password".into(),
        }),
    );
    assert_eq!(app.mode, InputMode::Password(PasswordFor::Nick));
    let mut out = Vec::new();
    for c in "hunter22".chars() {
        out.extend(update(&mut app, Msg::Action(Action::Insert(c))));
    }
    assert!(out.is_empty());
    // Typed apart from the input line: the draft is untouched, the screen shows stars.
    assert_eq!(app.input.value(), "x");
    let screen = screen_text(&app);
    assert!(screen.contains("password for alice: ********"), "{screen}");
    assert!(!screen.contains("hunter22"), "{screen}");
    assert_eq!(
        update(&mut app, Msg::Action(Action::Submit)),
        vec![Command::SetPassword(
            PasswordFor::Nick,
            Secret("hunter22".into())
        )]
    );
    assert_eq!(app.mode, InputMode::Normal);
    assert_eq!(app.answer, "");
    update(&mut app, Msg::Action(Action::HistoryPrev));
    assert!(!app.input.value().contains("hunter22"));

    // A private server's password is asked for as such; Esc leaves the prompt.
    net(
        &mut app,
        ServerMsg::Error(Error {
            id: None,
            code: ErrorCode::AuthFailed,
            message: "this server needs its server password in hello".into(),
        }),
    );
    assert_eq!(app.mode, InputMode::Password(PasswordFor::Server));
    assert!(update(&mut app, Msg::Action(Action::Cancel)).is_empty());
    assert_eq!(app.mode, InputMode::Normal);
}

#[test]
fn a_ban_shows_the_reason_and_says_the_client_stops_reconnecting() {
    let mut app = App::new("eve", "test:1", "T");
    app.size = (80, 24);
    net(
        &mut app,
        ServerMsg::Error(Error {
            id: None,
            code: ErrorCode::Banned,
            message: "you are banned until 2026-11-22 06:10 UTC: spam".into(),
        }),
    );
    let all: Vec<String> = app.buffers[0]
        .lines
        .iter()
        .map(|l| format!("{:?}", l.body))
        .collect();
    let all = all.join("\n");
    assert!(
        all.contains("banned: you are banned until 2026-11-22 06:10 UTC: spam"),
        "{all}"
    );
    assert!(all.contains("not reconnecting"), "{all}");
}

/// The texts of the info and error lines of the server buffer.
fn server_notes(app: &App) -> Vec<String> {
    app.buffers[0]
        .lines
        .iter()
        .filter_map(|l| match &l.body {
            LineBody::Info(t) | LineBody::Error(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_untrusted_certificate_asks_with_its_fingerprint_and_only_a_typed_yes_trusts() {
    use crate::known_hosts::Fingerprint;
    let mut app = App::new("alice", "chat.example.org:6697", "T");
    app.size = (80, 24);
    let fingerprint = Fingerprint([0xAB; 32]);
    let event = NetEvent::UntrustedCertificate {
        server: "chat.example.org:6697".into(),
        fingerprint,
    };
    let typed = |app: &mut App, text: &str| -> Vec<Command> {
        let mut out = Vec::new();
        for c in text.chars() {
            out.extend(update(app, Msg::Action(Action::Insert(c))));
        }
        out.extend(update(app, Msg::Action(Action::Submit)));
        out
    };
    // Keys typed before the question appeared do not count towards the answer.
    update(&mut app, Msg::Action(Action::Insert('y')));
    assert!(update(&mut app, Msg::Net(event.clone())).is_empty());
    assert_eq!(app.mode, InputMode::TrustCertificate);
    assert_eq!(app.answer, "");
    let notes = server_notes(&app).join("\n");
    assert!(
        notes.contains(&format!("SHA-256 fingerprint: {fingerprint}")),
        "{notes}"
    );
    assert!(notes.contains("chat.example.org:6697"), "{notes}");
    // A paste does not answer the question.
    update(&mut app, Msg::Paste("yes\n".into()));
    assert_eq!(app.mode, InputMode::TrustCertificate);
    assert_eq!(app.answer, "");
    // A bare `y` is not yes: refused, and said why.
    assert_eq!(typed(&mut app, "y"), vec![Command::TrustCertificate(false)]);
    assert_eq!(app.mode, InputMode::Normal);
    assert!(server_notes(&app).join("\n").contains("only the word yes"));

    update(&mut app, Msg::Net(event.clone()));
    assert_eq!(
        typed(&mut app, "yes"),
        vec![Command::TrustCertificate(true)]
    );
    assert_eq!(app.mode, InputMode::Normal);

    update(&mut app, Msg::Net(event));
    assert_eq!(
        update(&mut app, Msg::Action(Action::Cancel)),
        vec![Command::TrustCertificate(false)]
    );
    assert!(server_notes(&app).join("\n").contains("stays offline"));
}

#[test]
fn a_changed_certificate_is_refused_loudly_with_both_fingerprints_and_the_line_to_edit() {
    use crate::known_hosts::Fingerprint;
    let mut app = online();
    update(
        &mut app,
        Msg::Net(NetEvent::Disconnected {
            reason: "server closed the connection".into(),
            retry_in: Some(Duration::from_secs(1)),
        }),
    );
    let (pinned, presented) = (Fingerprint([1; 32]), Fingerprint([2; 32]));
    update(
        &mut app,
        Msg::Net(NetEvent::CertificateChanged {
            server: "test:1".into(),
            pinned,
            presented,
            file: "/home/a/.local/share/chat/known_hosts".into(),
            line: 4,
        }),
    );
    let notes = server_notes(&app).join("\n");
    assert!(notes.contains("HAS CHANGED"), "{notes}");
    assert!(notes.contains(&pinned.to_string()), "{notes}");
    assert!(notes.contains(&presented.to_string()), "{notes}");
    assert!(
        notes.contains("delete line 4 of /home/a/.local/share/chat/known_hosts"),
        "{notes}"
    );
    assert_eq!(app.active, 0, "the warning is on screen");
    assert!(matches!(
        app.conn,
        ConnState::Disconnected { retry_at: None, .. }
    ));
}
