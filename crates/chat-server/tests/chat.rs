//! Chat behaviour over real sockets: delivery, order, nicks, rooms, topics, direct messages.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use chat_proto::client::{History, Join, ListRooms, Names, Nick, Part, Topic};
use chat_proto::message::Ping;
use chat_proto::{ErrorCode, ServerMsg, kind};
use support::{Client, TestServer, bounded, test_config};

/// Pings and reads up to the pong; fails if a chat message arrives on the way.
async fn assert_no_message(c: &mut Client) {
    c.send(Ping {
        token: Some("sync".into()),
    })
    .await;
    loop {
        match c.recv().await {
            ServerMsg::Pong(_) => return,
            ServerMsg::Message(m) => panic!("{} got an unexpected message: {m:?}", c.nick),
            _ => {}
        }
    }
}

#[tokio::test]
async fn three_clients_each_message_reaches_the_others_once_in_order() {
    bounded(20, async {
        let server = TestServer::start(test_config()).await;
        let mut clients = Vec::new();
        for nick in ["ann", "ben", "cat"] {
            clients.push(Client::login(server.addr, nick).await);
        }
        // Interleave sends: ann-0, ben-0, cat-0, ann-1, ...
        for i in 0..5 {
            for c in clients.iter_mut() {
                let text = format!("{}-{i}", c.nick);
                c.say("#lobby", &text, &text).await;
            }
        }
        // Per client: the seq of each own message (from acks), and the messages of others.
        let mut acked: BTreeMap<String, u64> = BTreeMap::new();
        let mut received = Vec::new();
        for c in clients.iter_mut() {
            let mut got = Vec::new();
            let mut acks = 0;
            while acks < 5 || got.len() < 10 {
                match c.recv().await {
                    ServerMsg::Ack(a) => {
                        let id = a.id.unwrap();
                        assert!(id.starts_with(&c.nick), "ack for someone else's id {id}");
                        acked.insert(id, a.seq);
                        acks += 1;
                    }
                    ServerMsg::Message(m) => {
                        assert_ne!(m.from, c.nick, "the sender does not get its own message");
                        got.push(m);
                    }
                    ServerMsg::Joined(_) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_no_message(c).await;
            received.push((c.nick.clone(), got));
        }
        for (nick, got) in &received {
            for sender in ["ann", "ben", "cat"].iter().filter(|s| *s != nick) {
                let texts: Vec<&str> = got
                    .iter()
                    .filter(|m| m.from == *sender)
                    .map(|m| m.text.as_str())
                    .collect();
                let want: Vec<String> = (0..5).map(|i| format!("{sender}-{i}")).collect();
                assert_eq!(
                    texts, want,
                    "{nick} got {sender}'s messages once each, in order"
                );
            }
            for m in got {
                assert_eq!(m.room.as_deref(), Some("#lobby"));
                assert_eq!(
                    Some(&m.seq),
                    acked.get(&m.text),
                    "same seq as the sender's ack"
                );
            }
            let seqs: Vec<u64> = got.iter().map(|m| m.seq).collect();
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs increase");
        }
        let all: BTreeSet<u64> = acked.values().copied().collect();
        assert_eq!(all, (1..=15).collect(), "seqs are contiguous from 1");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn fifty_clients_twenty_messages_each_all_arrive() {
    const CLIENTS: usize = 50;
    const EACH: usize = 20;
    bounded(60, async {
        let mut config = test_config();
        config.rate_burst = 1000;
        config.rate_per_sec = 1000.0;
        config.max_conns_per_ip = 100;
        let server = TestServer::start(config).await;
        let mut clients = Vec::new();
        for i in 0..CLIENTS {
            clients.push(Client::login(server.addr, &format!("user{i}")).await);
        }
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|mut c| {
                tokio::spawn(async move {
                    for i in 0..EACH {
                        let text = format!("{}:{i}", c.nick);
                        c.say("#lobby", &text, &text).await;
                    }
                    let mut acks = Vec::new();
                    let mut msgs = Vec::new();
                    while acks.len() + msgs.len() < CLIENTS * EACH {
                        match c.recv().await {
                            ServerMsg::Ack(a) => acks.push(a),
                            ServerMsg::Message(m) => msgs.push(m),
                            ServerMsg::Joined(_) => {}
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                    (c.nick.clone(), acks, msgs)
                })
            })
            .collect();
        for task in tasks {
            let (nick, acks, msgs) = task.await.unwrap();
            let own: Vec<String> = acks.iter().map(|a| a.id.clone().unwrap()).collect();
            let want: Vec<String> = (0..EACH).map(|i| format!("{nick}:{i}")).collect();
            assert_eq!(own, want, "{nick}: acks in send order");
            let mut by_sender: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for m in &msgs {
                by_sender.entry(&m.from).or_default().push(&m.text);
            }
            assert_eq!(by_sender.len(), CLIENTS - 1);
            for (sender, texts) in by_sender {
                let want: Vec<String> = (0..EACH).map(|i| format!("{sender}:{i}")).collect();
                assert_eq!(texts, want, "{nick} got {sender}'s messages in order");
            }
            let seqs: Vec<u64> = acks
                .iter()
                .map(|a| a.seq)
                .chain(msgs.iter().map(|m| m.seq))
                .collect();
            assert_eq!(seqs.len(), CLIENTS * EACH);
            let set: BTreeSet<u64> = seqs.iter().copied().collect();
            assert_eq!(
                set,
                (1..=(CLIENTS * EACH) as u64).collect(),
                "{nick}: contiguous"
            );
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_stream_interleaves_acks_and_messages_in_seq_order() {
    bounded(20, async {
        let mut config = test_config();
        config.rate_burst = 100;
        let server = TestServer::start(config).await;
        let mut a = Client::login(server.addr, "a").await;
        let mut b = Client::login(server.addr, "b").await;
        for i in 0..20 {
            a.say("#lobby", &format!("a{i}"), &format!("a{i}")).await;
            b.say("#lobby", &format!("b{i}"), &format!("b{i}")).await;
        }
        for c in [&mut a, &mut b] {
            let mut seqs = Vec::new();
            while seqs.len() < 40 {
                match c.recv().await {
                    ServerMsg::Ack(x) => seqs.push(x.seq),
                    ServerMsg::Message(m) => seqs.push(m.seq),
                    _ => {}
                }
            }
            assert_eq!(
                seqs,
                (1..=40).collect::<Vec<u64>>(),
                "{}: the ack takes the message's place",
                c.nick
            );
        }
    })
    .await;
}

#[tokio::test]
async fn sends_written_at_once_are_all_carried_out_in_order() {
    bounded(20, async {
        let mut config = test_config();
        config.rate_burst = 1000;
        let server = TestServer::start(config).await;
        let mut a = Client::login(server.addr, "a").await;
        let mut b = Client::login(server.addr, "b").await;
        // One write, so the server reads many frames at once: 100 sends (more than go to the
        // hub as one batch), with a malformed frame and a ping among them.
        let frame = |msg: chat_proto::ClientMsg| {
            use chat_proto::WireMessage;
            msg.to_frame_bytes().unwrap().to_vec()
        };
        let mut burst = Vec::new();
        for i in 0..100 {
            let text = format!("s{i}");
            burst.extend(frame(chat_proto::ClientMsg::from(
                chat_proto::client::Send {
                    id: Some(text.clone()),
                    to: "#lobby".into(),
                    text,
                    action: false,
                },
            )));
            if i == 40 {
                burst.extend([0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 4, b'{', b'!']);
            }
            if i == 70 {
                let ping = Ping {
                    token: Some("p".into()),
                };
                burst.extend(frame(chat_proto::ClientMsg::Ping(ping)));
            }
        }
        a.send_raw(&burst).await;
        let expected: Vec<String> = (0..100).map(|i| format!("s{i}")).collect();
        let (mut acks, mut errors, mut pongs) = (Vec::new(), 0, 0);
        while acks.len() < 100 || errors == 0 || pongs == 0 {
            match a.recv().await {
                ServerMsg::Ack(x) => acks.push(x.id.unwrap_or_default()),
                ServerMsg::Error(e) => {
                    assert_eq!(e.id, None, "only the malformed frame is refused");
                    errors += 1;
                }
                ServerMsg::Pong(_) => pongs += 1,
                _ => {}
            }
        }
        assert_eq!(acks, expected, "every send acked once, in order");
        assert_eq!((errors, pongs), (1, 1));
        let mut heard = Vec::new();
        while heard.len() < 100 {
            heard.push(b.recv_message().await.text);
        }
        assert_eq!(heard, expected, "the room hears them all, in order");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_taken_nick_is_refused_then_another_succeeds_on_the_same_connection() {
    bounded(10, async {
        let server = TestServer::start(test_config()).await;
        let _alice = Client::login(server.addr, "alice").await;
        let mut c = Client::connect(server.addr).await;
        match c.hello("alice").await {
            ServerMsg::Error(e) => assert_eq!(e.code, ErrorCode::NickTaken),
            other => panic!("expected nick_taken, got {other:?}"),
        }
        match c.hello("bob").await {
            ServerMsg::Welcome(w) => assert_eq!(w.nick, "bob"),
            other => panic!("expected welcome, got {other:?}"),
        }
        c.expect_burst("#lobby").await;
    })
    .await;
}

#[tokio::test]
async fn impersonation_attempts_are_refused() {
    bounded(10, async {
        let server = TestServer::start(test_config()).await;
        let _alice = Client::login(server.addr, "alice").await;
        let mut m = Client::connect(server.addr).await;
        for nick in [
            "Alice",
            "ALICE",
            "alice ",
            "alice\u{200b}",
            "ａｌｉｃｅ",
            "аlice",
            "al\u{202e}ice",
        ] {
            match m.hello(nick).await {
                ServerMsg::Error(e) => assert!(
                    matches!(e.code, ErrorCode::NickTaken | ErrorCode::NickInvalid),
                    "{nick:?}: {e:?}"
                ),
                other => panic!("{nick:?} was accepted: {other:?}"),
            }
        }
        assert!(matches!(m.hello("mallory").await, ServerMsg::Welcome(_)));
    })
    .await;
}

#[tokio::test]
async fn a_sender_field_supplied_by_the_client_is_ignored() {
    bounded(10, async {
        let server = TestServer::start(test_config()).await;
        let mut alice = Client::login(server.addr, "alice").await;
        let mut mallory = Client::login(server.addr, "mallory").await;
        let body = br##"{"id":"x","to":"#lobby","text":"trust me","from":"alice","seq":999,"mid":1,"ts":0}"##;
        mallory.send_frame(kind::SEND, body).await;
        let ack = mallory.recv_ack().await;
        let msg = alice.recv_message().await;
        assert_eq!(msg.from, "mallory");
        assert_eq!(msg.seq, ack.seq);
        assert_eq!(msg.seq, 1);
        assert_ne!(msg.ts, 0);
    })
    .await;
}

#[tokio::test]
async fn rooms_keep_messages_apart_and_announce_joins_parts_and_topics() {
    bounded(15, async {
        let server = TestServer::start(test_config()).await;
        let mut a = Client::login(server.addr, "a").await;
        let mut b = Client::login(server.addr, "b").await;
        let mut c = Client::login(server.addr, "c").await;
        a.send(Join {
            id: Some("j1".into()),
            room: "#a".into(),
        })
        .await;
        a.expect_burst("#a").await;
        b.send(Join {
            id: None,
            room: "#b".into(),
        })
        .await;
        b.expect_burst("#b").await;
        c.send(Join {
            id: None,
            room: "#A".into(),
        })
        .await;
        // Room names fold like nicks: #A is #a, shown as first created.
        c.expect_burst("#a").await;
        let joined = a
            .recv_until(|m| match m {
                ServerMsg::Joined(j) if j.room == "#a" => Some(j),
                _ => None,
            })
            .await;
        assert_eq!(joined.nick, "c");

        a.say("#a", "only for #a", "m1").await;
        a.recv_ack().await;
        let m = c.recv_message().await;
        assert_eq!(
            (m.room.as_deref(), m.text.as_str()),
            (Some("#a"), "only for #a")
        );
        assert_no_message(&mut b).await;

        // Topic: set by a, seen by c, read back by c.
        a.send(Topic {
            id: Some("t1".into()),
            room: "#a".into(),
            topic: Some("rust".into()),
            lock: None,
        })
        .await;
        let answer = a
            .recv_until(|m| match m {
                ServerMsg::Topic(t) => Some(t),
                _ => None,
            })
            .await;
        assert_eq!(
            (answer.id.as_deref(), answer.topic.as_str()),
            (Some("t1"), "rust")
        );
        let event = c
            .recv_until(|m| match m {
                ServerMsg::Topic(t) => Some(t),
                _ => None,
            })
            .await;
        assert_eq!(
            (event.topic.as_str(), event.set_by.as_deref()),
            ("rust", Some("a"))
        );
        c.send(Topic {
            id: Some("t2".into()),
            room: "#a".into(),
            topic: None,
            lock: None,
        })
        .await;
        let read = c
            .recv_until(|m| match m {
                ServerMsg::Topic(t) => Some(t),
                _ => None,
            })
            .await;
        assert_eq!(
            (read.id.as_deref(), read.topic.as_str()),
            (Some("t2"), "rust")
        );
        b.send(Topic {
            id: Some("t3".into()),
            room: "#a".into(),
            topic: Some("x".into()),
            lock: None,
        })
        .await;
        assert_eq!(
            b.expect_error(ErrorCode::NotInRoom).await.id.as_deref(),
            Some("t3")
        );

        // Names and room list.
        b.send(Names {
            id: Some("n1".into()),
            room: "#a".into(),
        })
        .await;
        let names = b
            .recv_until(|m| match m {
                ServerMsg::Names(n) => Some(n),
                _ => None,
            })
            .await;
        assert_eq!(
            (names.id.as_deref(), names.members),
            (Some("n1"), vec!["a".to_owned(), "c".to_owned()])
        );
        b.send(ListRooms {
            id: Some("l1".into()),
        })
        .await;
        let list = b
            .recv_until(|m| match m {
                ServerMsg::RoomList(l) => Some(l),
                _ => None,
            })
            .await;
        let rooms: Vec<(&str, u32, &str)> = list
            .rooms
            .iter()
            .map(|r| (r.name.as_str(), r.members, r.topic.as_str()))
            .collect();
        assert_eq!(rooms, [("#a", 2, "rust"), ("#b", 1, ""), ("#lobby", 3, "")]);

        // Part: both the leaver and the remaining member hear it; then c is out of #a.
        c.send(Part {
            id: None,
            room: "#a".into(),
            reason: Some("later".into()),
        })
        .await;
        for x in [&mut a, &mut c] {
            let p = x
                .recv_until(|m| match m {
                    ServerMsg::Parted(p) => Some(p),
                    _ => None,
                })
                .await;
            assert_eq!(
                (p.room.as_str(), p.nick.as_str(), p.reason.as_deref()),
                ("#a", "c", Some("later"))
            );
        }
        c.say("#a", "am I in?", "m2").await;
        assert_eq!(
            c.expect_error(ErrorCode::NotInRoom).await.id.as_deref(),
            Some("m2")
        );
        // b never saw anything from #a.
        assert_no_message(&mut b).await;
    })
    .await;
}

#[tokio::test]
async fn a_direct_message_reaches_only_its_target() {
    bounded(10, async {
        let server = TestServer::start(test_config()).await;
        let mut a = Client::login(server.addr, "a").await;
        let mut b = Client::login(server.addr, "Bea").await;
        let mut c = Client::login(server.addr, "c").await;
        a.say("bea", "psst", "d1").await;
        let ack = a.recv_ack().await;
        assert_eq!((ack.to.as_deref(), ack.seq), (Some("Bea"), 1));
        let m = b.recv_message().await;
        assert_eq!(
            (m.from.as_str(), m.to.as_deref(), m.text.as_str(), m.room),
            ("a", Some("Bea"), "psst", None)
        );
        b.say("a", "hi back", "d2").await;
        assert_eq!(b.recv_ack().await.seq, 2, "one sequence per pair of users");
        assert_eq!(a.recv_message().await.text, "hi back");
        assert_no_message(&mut c).await;
        a.say("nobody", "hello?", "d3").await;
        assert_eq!(
            a.expect_error(ErrorCode::NoSuchNick).await.id.as_deref(),
            Some("d3")
        );
    })
    .await;
}

#[tokio::test]
async fn direct_message_partners_hear_nick_changes_and_quits_without_sharing_a_room() {
    bounded(10, async {
        let server = TestServer::start(test_config()).await;
        let mut a = Client::login(server.addr, "amy").await;
        let mut b = Client::login(server.addr, "ben").await;
        // ben leaves #lobby: from now on the two share no room.
        b.send(Part {
            id: None,
            room: "#lobby".into(),
            reason: None,
        })
        .await;
        b.recv_until(|m| matches!(m, ServerMsg::Parted(_)).then_some(()))
            .await;
        a.say("ben", "psst", "d1").await;
        a.recv_ack().await;
        assert_eq!(b.recv_message().await.text, "psst");
        a.send(Nick {
            id: None,
            nick: "amelia".into(),
        })
        .await;
        let changed = b
            .recv_until(|m| match m {
                ServerMsg::NickChanged(n) => Some(n),
                _ => None,
            })
            .await;
        assert_eq!(
            (changed.old.as_str(), changed.new.as_str()),
            ("amy", "amelia")
        );
        drop(a);
        let quit = b
            .recv_until(|m| match m {
                ServerMsg::Quit(q) => Some(q),
                _ => None,
            })
            .await;
        assert_eq!(
            quit.nick, "amelia",
            "the partner is followed across the rename"
        );
    })
    .await;
}

#[tokio::test]
async fn nick_changes_reach_everyone_sharing_a_room() {
    bounded(10, async {
        let server = TestServer::start(test_config()).await;
        let mut a = Client::login(server.addr, "a").await;
        let mut b = Client::login(server.addr, "b").await;
        a.send(Nick {
            id: Some("n".into()),
            nick: "b".into(),
        })
        .await;
        assert_eq!(
            a.expect_error(ErrorCode::NickTaken).await.id.as_deref(),
            Some("n")
        );
        a.send(Nick {
            id: Some("n".into()),
            nick: "alpha".into(),
        })
        .await;
        for x in [&mut a, &mut b] {
            let ev = x
                .recv_until(|m| match m {
                    ServerMsg::NickChanged(n) => Some(n),
                    _ => None,
                })
                .await;
            assert_eq!((ev.old.as_str(), ev.new.as_str()), ("a", "alpha"));
        }
        a.nick = "alpha".into();
        a.chat_with(&mut b, "renamed").await;
        // The old nick is free again.
        let _a2 = Client::login(server.addr, "a").await;
    })
    .await;
}

#[tokio::test]
async fn each_message_carries_the_names_it_was_sent_under() {
    // The server shares one copy of a sender's names among its messages: a rename or a
    // re-created room must still show in the very next message, and history keeps the old.
    bounded(10, async {
        let server = TestServer::start(test_config()).await;
        let mut a = Client::login(server.addr, "amy").await;
        let mut b = Client::login(server.addr, "ben").await;
        a.chat_with(&mut b, "before").await;
        a.rename("amelia").await;
        a.chat_with(&mut b, "after").await;

        for c in [&mut a, &mut b] {
            c.send(Join {
                id: None,
                room: "#tmp".into(),
            })
            .await;
            c.expect_burst("#tmp").await;
        }
        a.say("#tmp", "first", "t1").await;
        a.recv_ack().await;
        assert_eq!(b.recv_message().await.room.as_deref(), Some("#tmp"));
        for c in [&mut a, &mut b] {
            c.send(Part {
                id: None,
                room: "#tmp".into(),
                reason: None,
            })
            .await;
            let me = c.nick.clone();
            c.recv_until(|m| matches!(m, ServerMsg::Parted(p) if p.nick == me).then_some(()))
                .await;
        }
        // Emptied, the room is gone; joined again under another spelling, it is that room.
        for c in [&mut a, &mut b] {
            c.send(Join {
                id: None,
                room: "#TMP".into(),
            })
            .await;
            c.expect_burst("#TMP").await;
        }
        a.say("#tmp", "second", "t2").await;
        let ack = a.recv_ack().await;
        assert_eq!((ack.room.as_deref(), ack.seq), (Some("#TMP"), 2));
        let m = b.recv_message().await;
        assert_eq!(
            (m.room.as_deref(), m.from.as_str(), m.text.as_str()),
            (Some("#TMP"), "amelia", "second")
        );

        b.send(History {
            id: None,
            room: "#lobby".into(),
            before: None,
            after: None,
            limit: Some(10),
        })
        .await;
        let page = b
            .recv_until(|m| match m {
                ServerMsg::History(p) => Some(p),
                _ => None,
            })
            .await;
        let said: Vec<(&str, &str)> = page
            .messages
            .iter()
            .map(|m| (m.from.as_str(), m.text.as_str()))
            .collect();
        assert_eq!(said, [("amy", "before"), ("amelia", "after")]);
    })
    .await;
}

#[tokio::test]
async fn case_only_renames_and_renamed_recipients_show_in_the_next_message() {
    bounded(10, async {
        let server = TestServer::start(test_config()).await;
        let mut a = Client::login(server.addr, "amelia").await;
        let mut b = Client::login(server.addr, "ben").await;
        a.chat_with(&mut b, "lower").await;
        // A rename in case only keeps the folded nick: the spelling still changes.
        a.rename("Amelia").await;
        a.chat_with(&mut b, "capital").await;

        // A direct message names its recipient as they are called now.
        a.say("ben", "psst", "d1").await;
        assert_eq!(a.recv_ack().await.to.as_deref(), Some("ben"));
        b.recv_message().await;
        b.rename("Ben").await;
        a.say("ben", "psst again", "d2").await;
        assert_eq!(a.recv_ack().await.to.as_deref(), Some("Ben"));
        let m = b.recv_message().await;
        assert_eq!(
            (m.from.as_str(), m.to.as_deref(), m.text.as_str()),
            ("Amelia", Some("Ben"), "psst again")
        );
    })
    .await;
}

#[tokio::test]
async fn joining_sends_recent_history_and_older_pages_on_request() {
    bounded(15, async {
        let mut config = test_config();
        config.rate_burst = 100;
        config.history_on_join = 5;
        let server = TestServer::start(config).await;
        let mut a = Client::login(server.addr, "a").await;
        for i in 1..=12 {
            a.say("#lobby", &format!("m{i}"), &format!("m{i}")).await;
            a.recv_ack().await;
        }
        let mut late = Client::connect(server.addr).await;
        assert!(matches!(late.hello("late").await, ServerMsg::Welcome(_)));
        let page = late.expect_burst("#lobby").await;
        let seqs: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
        assert_eq!((seqs, page.more), (vec![8, 9, 10, 11, 12], true));
        late.send(History {
            id: Some("h".into()),
            room: "#lobby".into(),
            before: Some(8),
            after: None,
            limit: Some(10),
        })
        .await;
        let older = late
            .recv_until(|m| match m {
                ServerMsg::History(h) => Some(h),
                _ => None,
            })
            .await;
        let seqs: Vec<u64> = older.messages.iter().map(|m| m.seq).collect();
        assert_eq!(
            (older.id.as_deref(), seqs, older.more),
            (Some("h"), (1..=7).collect(), false)
        );
        // A resend with an accepted id is acknowledged again, not delivered twice.
        a.say("#lobby", "m12", "m12").await;
        let dup = a.recv_ack().await;
        assert!(dup.duplicate);
        assert_eq!(dup.seq, 12);
        assert_no_message(&mut late).await;
    })
    .await;
}

#[tokio::test]
async fn an_emptied_room_is_removed_but_keeps_its_history_and_sequence() {
    bounded(10, async {
        let mut config = test_config();
        config.max_rooms_per_user = 2;
        let server = TestServer::start(config).await;
        let mut a = Client::login(server.addr, "a").await;
        a.send(Join {
            id: None,
            room: "#tmp".into(),
        })
        .await;
        a.expect_burst("#tmp").await;
        for i in 1..=2 {
            a.say("#tmp", &format!("t{i}"), &format!("t{i}")).await;
            assert_eq!(a.recv_ack().await.seq, i);
        }
        // The room cap (lobby + #tmp) and the room-name rules.
        a.send(Join {
            id: Some("j".into()),
            room: "#third".into(),
        })
        .await;
        assert_eq!(
            a.expect_error(ErrorCode::BadRequest).await.id.as_deref(),
            Some("j")
        );
        a.send(Join {
            id: Some("k".into()),
            room: "no hash".into(),
        })
        .await;
        assert_eq!(
            a.expect_error(ErrorCode::RoomInvalid).await.id.as_deref(),
            Some("k")
        );

        a.send(Part {
            id: None,
            room: "#tmp".into(),
            reason: None,
        })
        .await;
        a.recv_until(|m| match m {
            ServerMsg::Parted(p) => Some(p),
            _ => None,
        })
        .await;
        a.send(ListRooms { id: None }).await;
        let list = a
            .recv_until(|m| match m {
                ServerMsg::RoomList(l) => Some(l),
                _ => None,
            })
            .await;
        assert_eq!(list.rooms.len(), 1, "only #lobby is left: {list:?}");

        a.send(Join {
            id: None,
            room: "#tmp".into(),
        })
        .await;
        let page = a.expect_burst("#tmp").await;
        let texts: Vec<&str> = page.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["t1", "t2"]);
        a.send(chat_proto::client::Send {
            id: Some("t3".into()),
            to: "#tmp".into(),
            text: "waves".into(),
            action: true,
        })
        .await;
        assert_eq!(a.recv_ack().await.seq, 3, "the sequence continues");
        let mut b = Client::login(server.addr, "b").await;
        b.send(Join {
            id: None,
            room: "#tmp".into(),
        })
        .await;
        let page = b.expect_burst("#tmp").await;
        let last = page.messages.last().unwrap();
        assert!(last.action, "/me actions keep their flag");
        assert_eq!(last.from, "a");
    })
    .await;
}

#[tokio::test]
async fn a_room_over_the_presence_limit_gives_a_count_and_announces_no_joins() {
    bounded(20, async {
        let config = chat_server::config::Config {
            presence_limit: 2,
            ..test_config()
        };
        let server = TestServer::start(config).await;
        let mut alice = Client::login(server.addr, "alice").await;
        let mut bob = Client::login(server.addr, "bob").await;
        // carol makes #lobby large: her burst's name_list has the count and no names.
        let mut carol = Client::connect(server.addr).await;
        assert!(matches!(carol.hello("carol").await, ServerMsg::Welcome(_)));
        let names = carol
            .recv_until(|m| match m {
                ServerMsg::Names(n) => Some(n),
                _ => None,
            })
            .await;
        assert_eq!((names.count, names.members.len()), (Some(3), 0));
        // Everything the hub sent alice before bob's message: bob's join, not carol's.
        bob.say("#lobby", "after carol", "b1").await;
        let mut seen = Vec::new();
        let text = alice
            .recv_until(|m| match m {
                ServerMsg::Message(m) => Some(m.text),
                other => {
                    seen.push(other);
                    None
                }
            })
            .await;
        assert_eq!(text, "after carol");
        assert!(
            !seen
                .iter()
                .any(|m| matches!(m, ServerMsg::Joined(j) if j.nick == "carol")),
            "{seen:?}"
        );
        // Messages still reach everyone, and names still lists the room.
        carol.say("#lobby", "hi", "c1").await;
        assert_eq!(alice.recv_message().await.text, "hi");
        alice
            .send(Names {
                id: Some("w".into()),
                room: "#lobby".into(),
            })
            .await;
        let listed = alice
            .recv_until(|m| match m {
                ServerMsg::Names(n) if n.id.as_deref() == Some("w") => Some(n),
                _ => None,
            })
            .await;
        assert_eq!(listed.members, ["alice", "bob", "carol"]);
        assert_eq!(listed.count, Some(3));
        server.stop().await;
    })
    .await;
}
