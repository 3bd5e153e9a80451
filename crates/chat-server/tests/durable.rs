//! Durability over real sockets, on the SQLite store: restart, resends, resume, lag recovery,
//! store failure, search. (`crash.rs` kills the real binary.)
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chat_proto::client::{Hello, History, Join, Search};
use chat_proto::server::{HistoryPage, NoticeCode};
use chat_proto::{ErrorCode, ServerMsg};
use chat_server::Config;
use chat_server::config::HistoryKind;
use chat_server::store::{SqliteStore, StoreControl, StoreOptions};
use support::{Client, TestServer, bounded, test_config};

/// The test config on SQLite in `dir`, with a rate limit that lets tests send quickly.
fn durable_config(dir: &Path) -> Config {
    Config {
        history: HistoryKind::Sqlite,
        data_dir: Some(dir.to_owned()),
        rate_burst: 100_000,
        rate_per_sec: 100_000.0,
        ..test_config()
    }
}

/// Says hello with `resume` and returns the welcome's rooms (the bursts are left unread).
async fn hello_resume(
    addr: SocketAddr,
    nick: &str,
    resume: &[(&str, u64)],
) -> (Client, Vec<String>) {
    let mut c = Client::connect(addr).await;
    c.nick = nick.to_owned();
    c.send(Hello {
        name: nick.into(),
        resume: resume.iter().map(|(r, s)| ((*r).to_owned(), *s)).collect(),
        ..Hello::default()
    })
    .await;
    match c.recv().await {
        ServerMsg::Welcome(w) => (c, w.rooms),
        other => panic!("expected welcome, got {other:?}"),
    }
}

fn seqs(page: &HistoryPage) -> Vec<u64> {
    page.messages.iter().map(|m| m.seq).collect()
}

/// Sends `n` messages `{prefix}{i}` to `room` and waits for every ack; returns the acked seqs.
async fn send_many(c: &mut Client, room: &str, prefix: &str, n: usize) -> Vec<u64> {
    for i in 0..n {
        let text = format!("{prefix}{i}");
        c.say(room, &text, &text).await;
    }
    let mut acked = Vec::new();
    while acked.len() < n {
        let ack = c.recv_ack().await;
        assert!(!ack.duplicate);
        acked.push(ack.seq);
    }
    acked
}

#[tokio::test]
async fn a_restart_keeps_history_and_sequence_numbers() {
    bounded(30, async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(durable_config(dir.path())).await;
        let mut ann = Client::login(server.addr, "ann").await;
        assert_eq!(
            send_many(&mut ann, "#lobby", "one-", 20).await,
            (1..=20).collect::<Vec<_>>()
        );
        ann.say("bob", "are you there", "dm-1").await;
        ann.expect_error(ErrorCode::NoSuchNick).await;
        drop(ann);
        server.stop().await;

        let server = TestServer::start(durable_config(dir.path())).await;
        let mut ann = Client::connect(server.addr).await;
        assert!(matches!(ann.hello("ann").await, ServerMsg::Welcome(_)));
        let page = ann.expect_burst("#lobby").await;
        assert_eq!(seqs(&page), (1..=20).collect::<Vec<_>>());
        assert_eq!(page.messages[19].text, "one-19");
        assert_eq!(page.messages[19].from, "ann");
        assert!(!page.more);
        let acked = send_many(&mut ann, "#lobby", "two-", 3).await;
        assert_eq!(
            acked,
            vec![21, 22, 23],
            "the sequence goes on after a restart"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_same_client_id_sent_five_times_is_stored_and_delivered_once() {
    bounded(30, async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(durable_config(dir.path())).await;
        let mut ann = Client::login(server.addr, "ann").await;
        let mut ben = Client::login(server.addr, "ben").await;
        for _ in 0..5 {
            ann.say("#lobby", "hello once", "id-1").await;
        }
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(ann.recv_ack().await);
        }
        assert!(!got[0].duplicate);
        assert!(got[1..].iter().all(|a| a.duplicate), "{got:?}");
        assert!(
            got.iter()
                .all(|a| a.seq == got[0].seq && a.mid == got[0].mid)
        );
        // Ben hears it once: the next message he gets is the one after it.
        ann.say("#lobby", "next", "id-2").await;
        let first = ben.recv_message().await;
        assert_eq!((first.text.as_str(), first.seq), ("hello once", got[0].seq));
        assert_eq!(ben.recv_message().await.text, "next");

        // After a restart, a reconnecting ann resends it: still a duplicate, not delivered.
        drop((ann, ben));
        server.stop().await;
        let server = TestServer::start(durable_config(dir.path())).await;
        let mut ben = Client::login(server.addr, "ben").await;
        let mut ann = Client::login(server.addr, "ANN").await;
        ann.say("#lobby", "hello once", "id-1").await;
        let again = ann.recv_ack().await;
        assert!(again.duplicate);
        assert_eq!((again.seq, again.mid), (got[0].seq, got[0].mid));
        ann.say("#lobby", "third", "id-3").await;
        let m = ben.recv_message().await;
        assert_eq!((m.text.as_str(), m.seq), ("third", got[0].seq + 2));
        // One stored row: the history holds it once.
        ann.send(History {
            id: Some("h".into()),
            room: "#lobby".into(),
            after: Some(0),
            limit: Some(200),
            ..History::default()
        })
        .await;
        let page = ann
            .recv_until(|m| match m {
                ServerMsg::History(h) if h.id.as_deref() == Some("h") => Some(h),
                _ => None,
            })
            .await;
        let texts: Vec<&str> = page.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["hello once", "next", "third"]);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_reader_offline_while_500_are_sent_gets_exactly_those_500_on_resume() {
    bounded(60, async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(durable_config(dir.path())).await;
        let mut ann = Client::login(server.addr, "ann").await;
        let mut bob = Client::login(server.addr, "bob").await;
        send_many(&mut ann, "#lobby", "early-", 7).await;
        let mut last = 0;
        while last < 7 {
            last = bob.recv_message().await.seq;
        }
        drop(bob);
        let sent = send_many(&mut ann, "#lobby", "missed-", 500).await;
        assert_eq!(sent, (8..=507).collect::<Vec<_>>());

        let (mut bob, rooms) = hello_resume(server.addr, "bob", &[("#lobby", last)]).await;
        assert_eq!(rooms, ["#lobby"]);
        let page = bob.expect_burst("#lobby").await;
        assert_eq!(seqs(&page), sent, "exactly the missed ones, in order");
        assert!(
            page.messages
                .iter()
                .enumerate()
                .all(|(i, m)| m.text == format!("missed-{i}"))
        );
        assert!(!page.more);
        // Then live, with nothing in between and nothing twice.
        ann.say("#lobby", "live", "live").await;
        let m = bob.recv_message().await;
        assert_eq!((m.seq, m.text.as_str()), (508, "live"));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_capped_replay_says_more_history_and_pages_forward_to_the_end() {
    bounded(30, async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = durable_config(dir.path());
        config.resume_max = 40;
        let server = TestServer::start(config).await;
        let mut ann = Client::login(server.addr, "ann").await;
        ann.send(Join {
            id: None,
            room: "#side".into(),
        })
        .await;
        ann.expect_burst("#side").await;
        send_many(&mut ann, "#side", "s-", 100).await;
        send_many(&mut ann, "#lobby", "l-", 3).await;

        // Resume two rooms: #side misses 90 (capped at 40), #lobby misses 1.
        let (mut bob, rooms) =
            hello_resume(server.addr, "bob", &[("#side", 10), ("#lobby", 2)]).await;
        assert_eq!(rooms, ["#lobby", "#side"]);
        let lobby = bob.expect_burst("#lobby").await;
        assert_eq!(seqs(&lobby), vec![3]);
        let side = bob.expect_burst("#side").await;
        assert_eq!(seqs(&side), (11..=50).collect::<Vec<_>>());
        assert!(side.more);
        let notice = bob
            .recv_until(|m| match m {
                ServerMsg::Notice(n) => Some(n),
                _ => None,
            })
            .await;
        assert_eq!(notice.code, NoticeCode::MoreHistory);
        assert_eq!(notice.seqs, BTreeMap::from([("#side".to_owned(), 50)]));
        let mut after = 50;
        let mut got = seqs(&side);
        loop {
            bob.send(History {
                id: Some(format!("p{after}")),
                room: "#side".into(),
                after: Some(after),
                limit: Some(25),
                ..History::default()
            })
            .await;
            let page = bob
                .recv_until(|m| match m {
                    ServerMsg::History(h) if h.id.is_some() => Some(h),
                    _ => None,
                })
                .await;
            got.extend(seqs(&page));
            after = *got.last().unwrap();
            if !page.more {
                break;
            }
        }
        assert_eq!(got, (11..=100).collect::<Vec<_>>());
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_slow_reader_cut_off_under_load_recovers_every_message_through_resume() {
    const N: u64 = 3000;
    bounded(60, async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = durable_config(dir.path());
        config.outbound_queue = 64;
        config.resume_max = 5000;
        config.close_timeout = Duration::from_secs(10);
        let server = TestServer::start(config).await;
        // A small receive buffer so the server's queue for it fills quickly.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut slow = Client::over(socket.connect(server.addr).await.unwrap());
        assert!(matches!(slow.hello("slow").await, ServerMsg::Welcome(_)));
        slow.expect_burst("#lobby").await;

        let mut ann = Client::login(server.addr, "ann").await;
        let text = "x".repeat(1000);
        // In windows of 32, so the sender's own queue (acks) never fills up.
        for chunk in (0..N).collect::<Vec<_>>().chunks(32) {
            for i in chunk {
                ann.say("#lobby", &format!("{i} {text}"), &format!("m{i}"))
                    .await;
            }
            for _ in chunk {
                ann.recv_ack().await;
            }
        }
        // Now read what the slow one was sent: some messages, then the lag notice.
        let mut seen = Vec::new();
        let mut lag_seqs = None;
        while let Some(m) = slow.next().await {
            match m {
                ServerMsg::Message(m) => seen.push(m.seq),
                ServerMsg::Notice(n) if n.code == NoticeCode::Lagged => lag_seqs = Some(n.seqs),
                _ => {}
            }
        }
        let lag_seqs = lag_seqs.expect("a lagged notice");
        let last = lag_seqs["#lobby"];
        assert_eq!(
            seen.last().copied().unwrap_or(0),
            last,
            "the notice names the last one queued"
        );
        assert!(last < N, "it did fall behind");
        assert_eq!(seen, (1..=last).collect::<Vec<_>>());

        let (mut again, _) = hello_resume(server.addr, "slow", &[("#lobby", last)]).await;
        let page = again.expect_burst("#lobby").await;
        seen.extend(seqs(&page));
        // A replay page stops at max_body: page forward until `more` is false.
        let mut more = page.more;
        while more {
            let after = *seen.last().unwrap();
            again
                .send(History {
                    id: Some(format!("p{after}")),
                    room: "#lobby".into(),
                    after: Some(after),
                    limit: Some(200),
                    ..History::default()
                })
                .await;
            let page = again
                .recv_until(|m| match m {
                    ServerMsg::History(h) if h.id.is_some() => Some(h),
                    _ => None,
                })
                .await;
            seen.extend(seqs(&page));
            more = page.more;
        }
        assert_eq!(
            seen,
            (1..=N).collect::<Vec<_>>(),
            "every message exactly once"
        );
        server.stop().await;
    })
    .await;
}

/// Starts a server on a store the test controls.
async fn start_controlled(dir: &Path) -> (TestServer, StoreControl) {
    let config = durable_config(dir);
    let store = SqliteStore::open(&StoreOptions {
        dir: dir.to_owned(),
        sync: config.sync,
        retention_count: config.retention_count,
        retention_days: config.retention_days,
        retention_interval: config.retention_interval,
    })
    .unwrap();
    let control = store.control().unwrap();
    (
        TestServer::start_with_history(config, Box::new(store)).await,
        control,
    )
}

#[tokio::test]
async fn a_full_disk_refuses_sends_without_ack_or_broadcast_and_recovers() {
    bounded(30, async {
        let dir = tempfile::tempdir().unwrap();
        let (server, control) = start_controlled(dir.path()).await;
        let mut ann = Client::login(server.addr, "ann").await;
        let mut ben = Client::login(server.addr, "ben").await;
        ann.chat_with(&mut ben, "before").await;

        control.set_max_page_count(1);
        let big = "y".repeat(16_000);
        for i in 0..3 {
            ann.say("#lobby", &big, &format!("full-{i}")).await;
        }
        for i in 0..3 {
            let e = ann.expect_error(ErrorCode::StoreUnavailable).await;
            assert_eq!(e.id.as_deref(), Some(format!("full-{i}").as_str()));
        }
        // Reads keep working.
        ben.send(History {
            id: Some("h".into()),
            room: "#lobby".into(),
            ..History::default()
        })
        .await;
        let page = ben
            .recv_until(|m| match m {
                ServerMsg::History(h) => Some(h),
                ServerMsg::Message(m) => panic!("a refused message was delivered: {m:?}"),
                _ => None,
            })
            .await;
        assert_eq!(seqs(&page), vec![1]);

        control.set_max_page_count(1 << 30);
        // The same id again: accepted now, with the next seq (no hole).
        ann.say("#lobby", "after", "full-0").await;
        let ack = ann.recv_ack().await;
        assert!(!ack.duplicate);
        assert_eq!(ack.seq, 2);
        let m = ben.recv_message().await;
        assert_eq!((m.seq, m.text.as_str()), (2, "after"));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn search_finds_words_for_members_only() {
    bounded(30, async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(durable_config(dir.path())).await;
        let mut ann = Client::login(server.addr, "ann").await;
        for (i, text) in [
            "tokio select is neat",
            "unrelated",
            "Select with TOKIO",
            "x\"y OR",
        ]
        .iter()
        .enumerate()
        {
            ann.say("#lobby", text, &format!("s{i}")).await;
            ann.recv_ack().await;
        }
        let search = |id: &str, room: &str, query: &str| Search {
            id: Some(id.into()),
            room: room.into(),
            query: query.into(),
            limit: None,
        };
        ann.send(search("q1", "#lobby", "tokio select")).await;
        let r = ann
            .recv_until(|m| match m {
                ServerMsg::SearchResults(r) => Some(r),
                _ => None,
            })
            .await;
        assert_eq!(r.id.as_deref(), Some("q1"));
        assert_eq!(r.query, "tokio select");
        let texts: Vec<&str> = r.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["tokio select is neat", "Select with TOKIO"]);
        assert!(!r.more);
        // FTS syntax in the query is only words.
        ann.send(search("q2", "#lobby", "\" OR ( *")).await;
        let r = ann
            .recv_until(|m| match m {
                ServerMsg::SearchResults(r) => Some(r),
                _ => None,
            })
            .await;
        assert_eq!(r.messages.len(), 1, "{r:?}");
        ann.send(search("q3", "#lobby", "*** ()")).await;
        assert_eq!(
            ann.expect_error(ErrorCode::BadRequest).await.id.as_deref(),
            Some("q3")
        );
        ann.send(search("q4", "#elsewhere", "tokio")).await;
        assert_eq!(
            ann.expect_error(ErrorCode::NotInRoom).await.id.as_deref(),
            Some("q4")
        );
        server.stop().await;
    })
    .await;
}

/// Acked messages per second from 10 concurrent senders, each keeping 64 sends in flight.
/// Prints the figure (run with `--release -- --nocapture` for the README); asserts no timing.
async fn acked_per_second(config: Config) -> f64 {
    const SENDERS: usize = 10;
    const EACH: usize = 1000;
    const WINDOW: usize = 64;
    let server = TestServer::start(config).await;
    let mut clients = Vec::new();
    for i in 0..SENDERS {
        clients.push(Client::login(server.addr, &format!("tp{i}")).await);
    }
    let started = std::time::Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                let (mut sent, mut acked) = (0, 0);
                while acked < EACH {
                    while sent < EACH && sent - acked < WINDOW {
                        let id = format!("{i}-{sent}");
                        c.say("#lobby", &id, &id).await;
                        sent += 1;
                    }
                    c.recv_ack().await;
                    acked += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (SENDERS * EACH) as f64 / started.elapsed().as_secs_f64();
    server.stop().await;
    rate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_of_acked_sends_from_ten_senders() {
    bounded(120, async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = durable_config(dir.path());
        // Nobody reads the broadcasts here; make room for them.
        config.outbound_queue = 100_000;
        let full = acked_per_second(config.clone()).await;
        let dir2 = tempfile::tempdir().unwrap();
        config.data_dir = Some(dir2.path().to_owned());
        config.sync = chat_server::config::SyncMode::Normal;
        let normal = acked_per_second(config.clone()).await;
        config.history = HistoryKind::Memory;
        let memory = acked_per_second(config).await;
        eprintln!(
            "acked msgs/s, 10 senders: sqlite synchronous=FULL {full:.0}, \
             synchronous=NORMAL {normal:.0}, memory {memory:.0}"
        );
    })
    .await;
}

#[tokio::test]
async fn direct_messages_are_stored_and_their_sequence_survives_a_restart() {
    bounded(30, async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(durable_config(dir.path())).await;
        let mut ann = Client::login(server.addr, "ann").await;
        let mut bob = Client::login(server.addr, "bob").await;
        for i in 0..2 {
            ann.say("bob", &format!("psst {i}"), &format!("d{i}")).await;
            assert_eq!(ann.recv_ack().await.seq, i + 1);
            assert_eq!(bob.recv_message().await.seq, i + 1);
        }
        drop((ann, bob));
        server.stop().await;

        let server = TestServer::start(durable_config(dir.path())).await;
        let mut bob = Client::login(server.addr, "bob").await;
        let mut ann = Client::login(server.addr, "ann").await;
        // A resend of a stored direct message is a duplicate, the next one goes on from 3.
        ann.say("bob", "psst 1", "d1").await;
        let dup = ann.recv_ack().await;
        assert!(dup.duplicate);
        assert_eq!((dup.seq, dup.to.as_deref()), (2, Some("bob")));
        bob.say("ann", "what", "b0").await;
        assert_eq!(bob.recv_ack().await.seq, 3);
        let m = ann.recv_message().await;
        assert_eq!(
            (m.seq, m.from.as_str(), m.text.as_str()),
            (3, "bob", "what")
        );
        server.stop().await;
    })
    .await;
}
