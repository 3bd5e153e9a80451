//! The transfer state machine through `update`: offer, accept, progress, done; decline;
//! cancel; resume after a reconnect; oversize offers. No socket, no disk: the file IO's
//! reports are fed in as `Msg::File`.

use std::path::PathBuf;

use chat_proto::message::{FileChunk, FileDone};
use chat_proto::server::{
    FileAccepted, FileCancelled, FileDeclined, FileOffered, FileProgress, Welcome,
};
use chat_proto::{ClientMsg, ServerMsg, client};

use super::*;
use crate::app::App;
use crate::keymap::Action;
use crate::net::NetEvent;
use crate::update::{Msg, update};

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn connected(nick: &str) -> App {
    let mut app = App::new(nick, "test:1", "P");
    app.now_ms = 1_000_000;
    update(
        &mut app,
        Msg::Net(NetEvent::Connected(Welcome {
            nick: nick.into(),
            rooms: vec!["#lobby".into()],
            ..Welcome::default()
        })),
    );
    app
}

fn type_line(app: &mut App, text: &str) -> Vec<Command> {
    for c in text.chars() {
        update(app, Msg::Action(Action::Insert(c)));
    }
    update(app, Msg::Action(Action::Submit))
}

fn net(app: &mut App, msg: ServerMsg) -> Vec<Command> {
    update(app, Msg::Net(NetEvent::Message(msg)))
}

fn sent(cmds: &[Command]) -> Vec<ClientMsg> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Send(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn jobs(cmds: &[Command]) -> Vec<FileJob> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::File(j) => Some(j.clone()),
            _ => None,
        })
        .collect()
}

fn all_text(app: &App) -> String {
    app.buffers
        .iter()
        .flat_map(|b| b.lines.iter())
        .map(|l| format!("{:?}\n", l.body))
        .collect()
}

fn offered(file: u64, size: u64) -> ServerMsg {
    ServerMsg::FileOffered(FileOffered {
        id: None,
        file,
        from: "alice".into(),
        to: "bob".into(),
        name: "notes.txt".into(),
        size,
        sha256: SHA.into(),
        expires: 0,
    })
}

/// Alice's side up to the offer: returns the transfer key.
fn alice_offers(app: &mut App, size: u64) -> String {
    let cmds = type_line(app, "/send ~/notes.txt bob");
    let [FileJob::Hash { key, path }] = <[FileJob; 1]>::try_from(jobs(&cmds)).unwrap() else {
        panic!("no hash job")
    };
    assert_eq!(path, "~/notes.txt");
    let cmds = update(
        app,
        Msg::File(FileEvent::Hashed {
            key: key.clone(),
            path: PathBuf::from("/home/alice/notes.txt"),
            name: "notes.txt".into(),
            size,
            sha256: SHA.into(),
        }),
    );
    let offer = sent(&cmds);
    assert!(
        matches!(&offer[..], [ClientMsg::FileOffer(o)] if o.to == "bob" && o.size == size && o.sha256 == SHA && o.id.as_deref() == Some(key.as_str())),
        "{offer:?}"
    );
    net(
        app,
        ServerMsg::FileOffered(FileOffered {
            id: Some(key.clone()),
            file: 7,
            from: "alice".into(),
            to: "bob".into(),
            name: "notes.txt".into(),
            size,
            sha256: SHA.into(),
            expires: 0,
        }),
    );
    key
}

#[test]
fn sender_offers_streams_within_the_window_and_is_done_when_all_is_acknowledged() {
    let mut app = connected("alice");
    let size = 2 * 1024 * 1024;
    alice_offers(&mut app, size);
    assert!(all_text(&app).contains("offered notes.txt (2 MiB) to bob as file 7"));
    let cmds = net(
        &mut app,
        ServerMsg::FileAccepted(FileAccepted {
            file: 7,
            by: "bob".into(),
            offset: 0,
        }),
    );
    let [
        FileJob::Upload {
            file: 7,
            offset: 0,
            until,
            chunk,
            generation: 1,
            ..
        },
    ] = jobs(&cmds)[..]
    else {
        panic!("{cmds:?}")
    };
    assert_eq!(until, WINDOW);
    assert!(chunk + 16 <= u64::from(app.limits.max_body));
    assert_eq!(app.transfers[0].state, TransferState::Active);
    // Each progress moves the window on.
    let cmds = net(
        &mut app,
        ServerMsg::FileProgress(FileProgress {
            file: 7,
            offset: 128 * 1024,
        }),
    );
    assert_eq!(
        jobs(&cmds),
        vec![FileJob::Allow {
            file: 7,
            until: 128 * 1024 + WINDOW
        }]
    );
    let cmds = net(
        &mut app,
        ServerMsg::FileProgress(FileProgress {
            file: 7,
            offset: size,
        }),
    );
    assert!(jobs(&cmds).is_empty());
    assert_eq!(app.transfers[0].state, TransferState::Done);
    assert!(all_text(&app).contains("sent notes.txt to bob"));
}

#[test]
fn recipient_sees_the_offer_accepts_stores_acks_and_verifies() {
    let mut app = connected("bob");
    let size = 300 * 1024;
    net(&mut app, offered(7, size));
    assert!(
        all_text(&app).contains("alice offers notes.txt (300 KiB) — /accept 7 or /decline 7"),
        "{}",
        all_text(&app)
    );
    let dm = app.find_buffer("alice").unwrap();
    assert_eq!(
        app.buffers[dm].mentions, 1,
        "an offer off screen is flagged"
    );
    let cmds = type_line(&mut app, "/accept 7");
    assert!(matches!(&jobs(&cmds)[..], [FileJob::Open { file: 7, size: s, .. }] if *s == size));
    assert!(sent(&cmds).is_empty(), "accept waits for the .part");
    let cmds = update(
        &mut app,
        Msg::File(FileEvent::Opened { file: 7, offset: 0 }),
    );
    assert_eq!(
        sent(&cmds),
        vec![ClientMsg::FileAccept(client::FileAccept {
            file: 7,
            offset: 0
        })]
    );
    // Chunks go to the disk; acks follow what is stored, every ACK_EVERY bytes and at the end.
    let chunk = FileChunk {
        file: 7,
        offset: 0,
        data: vec![0u8; 10].into(),
    };
    let cmds = net(&mut app, ServerMsg::FileChunk(chunk.clone()));
    assert_eq!(jobs(&cmds), vec![FileJob::Write(chunk)]);
    let mut acks = Vec::new();
    for offset in [60 * 1024, 120 * 1024, 180 * 1024, 240 * 1024, size] {
        let cmds = update(&mut app, Msg::File(FileEvent::Stored { file: 7, offset }));
        acks.extend(sent(&cmds));
    }
    assert_eq!(
        acks,
        vec![
            ClientMsg::FileAck(client::FileAck {
                file: 7,
                offset: 180 * 1024
            }),
            ClientMsg::FileAck(client::FileAck {
                file: 7,
                offset: size
            }),
        ]
    );
    let cmds = net(&mut app, ServerMsg::FileDone(FileDone { file: 7 }));
    assert_eq!(jobs(&cmds), vec![FileJob::Finish { file: 7 }]);
    update(
        &mut app,
        Msg::File(FileEvent::Finished {
            file: 7,
            path: PathBuf::from("/dl/notes.txt"),
        }),
    );
    assert_eq!(app.transfers[0].state, TransferState::Done);
    assert!(all_text(&app).contains("saved as /dl/notes.txt (SHA-256 ok)"));
}

#[test]
fn a_checksum_mismatch_cancels_and_keeps_nothing() {
    let mut app = connected("bob");
    net(&mut app, offered(7, 10));
    type_line(&mut app, "/accept 7");
    update(
        &mut app,
        Msg::File(FileEvent::Opened { file: 7, offset: 0 }),
    );
    net(&mut app, ServerMsg::FileDone(FileDone { file: 7 }));
    let cmds = update(
        &mut app,
        Msg::File(FileEvent::Failed {
            file: 7,
            reason: "SHA-256 mismatch".into(),
        }),
    );
    assert!(matches!(&sent(&cmds)[..], [ClientMsg::FileCancel(c)] if c.file == 7));
    assert!(all_text(&app).contains("notes.txt failed: SHA-256 mismatch; nothing kept"));
}

#[test]
fn declining_sends_decline_and_touches_no_file() {
    let mut app = connected("bob");
    net(&mut app, offered(7, 10));
    let cmds = type_line(&mut app, "/decline 7");
    assert_eq!(
        sent(&cmds),
        vec![ClientMsg::FileDecline(client::FileDecline { file: 7 })]
    );
    assert!(jobs(&cmds).is_empty(), "no file IO for a declined offer");
    assert_eq!(app.transfers[0].state, TransferState::Declined);
    // The sender hears about it.
    let mut alice = connected("alice");
    alice_offers(&mut alice, 10);
    net(
        &mut alice,
        ServerMsg::FileDeclined(FileDeclined {
            file: 7,
            by: "bob".into(),
        }),
    );
    assert_eq!(alice.transfers[0].state, TransferState::Declined);
    assert!(all_text(&alice).contains("bob declined notes.txt"));
}

#[test]
fn oversize_offers_are_declined_with_a_message() {
    let mut app = connected("bob");
    app.max_download = 1024;
    let cmds = net(&mut app, offered(7, 4096));
    assert_eq!(
        sent(&cmds),
        vec![ClientMsg::FileDecline(client::FileDecline { file: 7 })]
    );
    assert!(all_text(&app).contains("declined, larger than 1 KiB allowed"));
}

#[test]
fn cancel_stops_both_sides() {
    let mut app = connected("bob");
    net(&mut app, offered(7, 10_000));
    type_line(&mut app, "/accept 7");
    update(
        &mut app,
        Msg::File(FileEvent::Opened { file: 7, offset: 0 }),
    );
    let cmds = type_line(&mut app, "/cancel 7");
    assert!(matches!(&sent(&cmds)[..], [ClientMsg::FileCancel(c)] if c.file == 7));
    assert_eq!(jobs(&cmds), vec![FileJob::Stop { file: 7 }]);
    // The sender is told by the server.
    let mut alice = connected("alice");
    alice_offers(&mut alice, 10_000);
    net(
        &mut alice,
        ServerMsg::FileAccepted(FileAccepted {
            file: 7,
            by: "bob".into(),
            offset: 0,
        }),
    );
    let cmds = net(
        &mut alice,
        ServerMsg::FileCancelled(FileCancelled {
            file: 7,
            by: "bob".into(),
            reason: None,
        }),
    );
    assert_eq!(jobs(&cmds), vec![FileJob::Stop { file: 7 }]);
    assert!(matches!(
        alice.transfers[0].state,
        TransferState::Cancelled(_)
    ));
}

#[test]
fn a_reconnect_resumes_from_what_the_part_holds() {
    let mut bob = connected("bob");
    net(&mut bob, offered(7, 1_000_000));
    type_line(&mut bob, "/accept 7");
    update(
        &mut bob,
        Msg::File(FileEvent::Opened { file: 7, offset: 0 }),
    );
    update(
        &mut bob,
        Msg::File(FileEvent::Stored {
            file: 7,
            offset: 300_000,
        }),
    );
    update(
        &mut bob,
        Msg::Net(NetEvent::Disconnected {
            reason: "gone".into(),
            retry_in: None,
        }),
    );
    assert_eq!(bob.transfers[0].state, TransferState::Interrupted);
    let cmds = update(
        &mut bob,
        Msg::Net(NetEvent::Connected(Welcome {
            nick: "bob".into(),
            rooms: vec!["#lobby".into()],
            ..Welcome::default()
        })),
    );
    assert_eq!(jobs(&cmds), vec![FileJob::Resume { file: 7 }]);
    let cmds = update(
        &mut bob,
        Msg::File(FileEvent::Opened {
            file: 7,
            offset: 300_000,
        }),
    );
    assert_eq!(
        sent(&cmds),
        vec![ClientMsg::FileAccept(client::FileAccept {
            file: 7,
            offset: 300_000
        })]
    );

    // The sender continues from the offset the recipient asks for, on the new connection.
    let mut alice = connected("alice");
    alice_offers(&mut alice, 1_000_000);
    net(
        &mut alice,
        ServerMsg::FileAccepted(FileAccepted {
            file: 7,
            by: "bob".into(),
            offset: 0,
        }),
    );
    update(
        &mut alice,
        Msg::Net(NetEvent::Disconnected {
            reason: "gone".into(),
            retry_in: None,
        }),
    );
    update(
        &mut alice,
        Msg::Net(NetEvent::Connected(Welcome {
            nick: "alice".into(),
            rooms: vec!["#lobby".into()],
            ..Welcome::default()
        })),
    );
    let cmds = net(
        &mut alice,
        ServerMsg::FileAccepted(FileAccepted {
            file: 7,
            by: "bob".into(),
            offset: 300_000,
        }),
    );
    let [
        FileJob::Upload {
            offset,
            until,
            generation,
            ..
        },
    ] = jobs(&cmds)[..]
    else {
        panic!("{cmds:?}")
    };
    assert_eq!((offset, until, generation), (300_000, 300_000 + WINDOW, 2));
    assert!(all_text(&alice).contains("bob resumes notes.txt from 293 KiB"));
}

#[test]
fn an_offer_refused_by_the_server_fails_with_its_reason() {
    let mut app = connected("alice");
    let cmds = type_line(&mut app, "/send a.bin bob");
    let [FileJob::Hash { key, .. }] = <[FileJob; 1]>::try_from(jobs(&cmds)).unwrap() else {
        panic!()
    };
    update(
        &mut app,
        Msg::File(FileEvent::Hashed {
            key: key.clone(),
            path: "/a.bin".into(),
            name: "a.bin".into(),
            size: 5,
            sha256: SHA.into(),
        }),
    );
    net(
        &mut app,
        ServerMsg::Error(chat_proto::server::Error {
            id: Some(key),
            code: chat_proto::ErrorCode::FileRefused,
            message: "files are not relayed".into(),
        }),
    );
    assert!(matches!(app.transfers[0].state, TransferState::Failed(_)));
    assert!(all_text(&app).contains("cannot send a.bin: file_refused: files are not relayed"));
}

#[test]
fn send_from_the_server_buffer_needs_a_target() {
    let mut app = connected("alice");
    update(&mut app, Msg::Action(Action::GoToBuffer(1)));
    let cmds = type_line(&mut app, "/send a.bin");
    assert!(cmds.is_empty());
    assert!(all_text(&app).contains("no one to send to"));
}

#[test]
fn sizes_read_like_people_write_them() {
    assert_eq!(human_size(12), "12 B");
    assert_eq!(human_size(12 * 1024), "12 KiB");
    assert_eq!(human_size(4_718_592), "4.5 MiB");
    assert_eq!(human_size(1 << 30), "1 GiB");
}

#[test]
fn a_new_offer_reusing_the_number_of_a_finished_one_is_shown() {
    let mut app = connected("bob");
    net(&mut app, offered(7, 10));
    type_line(&mut app, "/decline 7");
    assert_eq!(app.transfers[0].state, TransferState::Declined);
    // The same offer re-announced while open is ignored; a new one after the old is over is not.
    net(&mut app, offered(7, 20));
    assert_eq!(
        app.transfers.len(),
        2,
        "a finished transfer does not swallow a new offer"
    );
    assert_eq!(app.transfers[1].state, TransferState::Offered);
    net(&mut app, offered(7, 20));
    assert_eq!(
        app.transfers.len(),
        2,
        "an open one re-announced is the same transfer"
    );
}

#[test]
fn answers_to_file_commands_show_where_they_were_typed() {
    let mut app = connected("bob");
    let lobby = app.active;
    assert_ne!(lobby, 0, "typed in #lobby, not in the server buffer");
    type_line(&mut app, "/accept 99");
    assert!(
        matches!(
            &app.buffers[lobby].lines.last().unwrap().body,
            LineBody::Error(e) if e == "no offer 99 to accept"
        ),
        "the error is in the buffer on screen"
    );
}

/// A reconnect to `rooms`, then each room's join-burst page.
fn reconnect_with_bursts(app: &mut App, nick: &str, rooms: &[&str]) -> Vec<Command> {
    update(
        app,
        Msg::Net(NetEvent::Disconnected {
            reason: "server restarted".into(),
            retry_in: None,
        }),
    );
    let mut cmds = update(
        app,
        Msg::Net(NetEvent::Connected(Welcome {
            nick: nick.into(),
            rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
            ..Welcome::default()
        })),
    );
    for room in rooms {
        cmds.extend(net(
            app,
            ServerMsg::History(chat_proto::server::HistoryPage {
                room: (*room).into(),
                ..Default::default()
            }),
        ));
    }
    cmds
}

#[test]
fn transfers_the_server_did_not_re_announce_after_a_restart_fail_instead_of_hanging() {
    // The sender, interrupted mid-upload; the restarted server announces nothing.
    let mut alice = connected("alice");
    alice_offers(&mut alice, 1_000_000);
    net(
        &mut alice,
        ServerMsg::FileAccepted(FileAccepted {
            file: 7,
            by: "bob".into(),
            offset: 0,
        }),
    );
    let cmds = reconnect_with_bursts(&mut alice, "alice", &["#lobby"]);
    assert_eq!(
        alice.transfers[0].state,
        TransferState::Failed(FORGOTTEN.into())
    );
    assert!(jobs(&cmds).contains(&FileJob::Stop { file: 7 }));
    assert!(all_text(&alice).contains("send it again"));

    // A transfer the server re-announces right after welcome carries on.
    let mut carol = connected("alice");
    alice_offers(&mut carol, 1_000_000);
    update(
        &mut carol,
        Msg::Net(NetEvent::Disconnected {
            reason: "gone".into(),
            retry_in: None,
        }),
    );
    update(
        &mut carol,
        Msg::Net(NetEvent::Connected(Welcome {
            nick: "alice".into(),
            rooms: vec!["#lobby".into()],
            ..Welcome::default()
        })),
    );
    net(&mut carol, offered(7, 1_000_000));
    net(
        &mut carol,
        ServerMsg::History(chat_proto::server::HistoryPage {
            room: "#lobby".into(),
            ..Default::default()
        }),
    );
    assert!(!carol.transfers[0].state.is_final());
}

#[test]
fn a_resumed_download_the_server_refuses_as_unknown_fails() {
    let mut bob = connected("bob");
    net(&mut bob, offered(7, 1_000_000));
    type_line(&mut bob, "/accept 7");
    update(
        &mut bob,
        Msg::File(FileEvent::Opened { file: 7, offset: 0 }),
    );
    update(
        &mut bob,
        Msg::Net(NetEvent::Disconnected {
            reason: "gone".into(),
            retry_in: None,
        }),
    );
    // No join burst yet: the refusal of the resumed accept is what tells.
    update(
        &mut bob,
        Msg::Net(NetEvent::Connected(Welcome {
            nick: "bob".into(),
            rooms: vec![],
            ..Welcome::default()
        })),
    );
    update(
        &mut bob,
        Msg::File(FileEvent::Opened {
            file: 7,
            offset: 300_000,
        }),
    );
    assert_eq!(bob.transfers[0].state, TransferState::Active);
    let cmds = net(
        &mut bob,
        ServerMsg::Error(chat_proto::server::Error {
            id: None,
            code: chat_proto::ErrorCode::FileRefused,
            message: "no file 7 (unknown or expired)".into(),
        }),
    );
    assert_eq!(
        bob.transfers[0].state,
        TransferState::Failed(FORGOTTEN.into())
    );
    assert_eq!(jobs(&cmds), vec![FileJob::Stop { file: 7 }]);
    // A refusal naming another file changes nothing here.
    assert_eq!(file_in_message("no file 12 (unknown or expired)"), Some(12));
    assert_eq!(file_in_message("nothing to see"), None);
}

fn notice(text: &str) -> ServerMsg {
    ServerMsg::Notice(chat_proto::server::Notice {
        code: chat_proto::server::NoticeCode::Info,
        text: text.into(),
        seqs: Default::default(),
        id: None,
    })
}

#[test]
fn the_other_side_leaving_pauses_the_gauge_and_says_so_in_the_conversation() {
    // The recipient: the sender went away mid-download.
    let mut bob = connected("bob");
    net(&mut bob, offered(7, 1_000_000));
    type_line(&mut bob, "/accept 7");
    update(
        &mut bob,
        Msg::File(FileEvent::Opened { file: 7, offset: 0 }),
    );
    bob.active = 0;
    let text = "alice disconnected: file 7 (notes.txt) is paused until they return";
    net(&mut bob, notice(text));
    assert_eq!(bob.transfers[0].state, TransferState::Paused);
    let i = bob.find_buffer("alice").unwrap();
    assert!(
        bob.buffers[i]
            .lines
            .iter()
            .any(|l| format!("{:?}", l.body).contains("is paused until they return"))
    );
    bob.now_ms += 60_000;
    let (_, tail) = crate::ui::gauge::row_text(&bob.transfers[0], bob.now_ms);
    assert!(
        tail.contains("paused") && !tail.contains("ETA") && !tail.contains("/s"),
        "{tail}"
    );
    // The sender is back: data flows again.
    let cmds = net(
        &mut bob,
        ServerMsg::FileChunk(FileChunk {
            file: 7,
            offset: 0,
            data: vec![1, 2, 3].into(),
        }),
    );
    assert_eq!(bob.transfers[0].state, TransferState::Active);
    assert_eq!(jobs(&cmds).len(), 1);

    // The sender: the recipient went away; its accept again resumes.
    let mut alice = connected("alice");
    alice_offers(&mut alice, 1_000_000);
    net(
        &mut alice,
        ServerMsg::FileAccepted(FileAccepted {
            file: 7,
            by: "bob".into(),
            offset: 0,
        }),
    );
    net(
        &mut alice,
        notice(
            "bob disconnected: file 7 (notes.txt) is paused; it resumes if they accept it again before it expires",
        ),
    );
    assert_eq!(alice.transfers[0].state, TransferState::Paused);
    assert_eq!(alice.transfers[0].state.label(), "paused");
    net(
        &mut alice,
        ServerMsg::FileAccepted(FileAccepted {
            file: 7,
            by: "bob".into(),
            offset: 0,
        }),
    );
    assert_eq!(alice.transfers[0].state, TransferState::Active);
}
