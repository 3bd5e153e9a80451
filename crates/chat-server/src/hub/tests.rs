//! The hub on its own: registration, fan-out and the lag mechanism, with in-memory queues.

use std::collections::BTreeMap;

use bytes::BytesMut;
use chat_proto::ClientCodec;
use chat_proto::client::{Join, ListRooms, Send};
use tokio_util::codec::Decoder;

use super::*;
use crate::history::MemoryHistory;
use crate::writer::Item;

struct Peer {
    rx: queue::Receiver,
    kick: oneshot::Receiver<Kick>,
}

fn start() -> HubHandle {
    let tracker = TaskTracker::new();
    spawn(
        Arc::new(Config::default()),
        Box::new(MemoryHistory::new(1000)),
        CancellationToken::new(),
        &tracker,
    )
}

async fn connect(hub: &HubHandle, id: SessionId, nick: &str, queue: usize) -> Peer {
    let (out_tx, rx) = queue::channel(queue);
    let (kick_tx, kick) = oneshot::channel();
    let conn = ConnInfo {
        id,
        peer: SocketAddr::from(([127, 0, 0, 1], 1)),
        out_tx,
        kick_tx,
        batches: false,
    };
    let hello = Hello {
        name: nick.into(),
        ..Hello::default()
    };
    hub.register(conn, hello).await.unwrap().unwrap();
    Peer { rx, kick }
}

/// The one frame of an item queued to an unbatched peer.
fn decode(item: &Item) -> ServerMsg {
    let Item::One(frame) = item else {
        panic!("an unbatched peer gets one frame per item: {item:?}");
    };
    decode_frame(frame)
}

fn decode_frame(frame: &Bytes) -> ServerMsg {
    let mut buf = BytesMut::from(&frame[..]);
    ClientCodec::new(u32::MAX)
        .decode(&mut buf)
        .unwrap()
        .unwrap()
        .unwrap()
}

fn drain(rx: &mut queue::Receiver) -> Vec<ServerMsg> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .map(|f| decode(&f))
        .collect()
}

fn say(to: &str, text: &str) -> ClientMsg {
    ClientMsg::Send(Send {
        id: Some(text.into()),
        to: to.into(),
        text: text.into(),
        action: false,
    })
}

#[tokio::test]
async fn registration_sends_welcome_then_the_lobby_burst() {
    let hub = start();
    let mut alice = connect(&hub, 1, "alice", 64).await;
    hub.request(1, say("#lobby", "hi")).await.unwrap();
    // Registration answers through a oneshot, so once bob is in, alice's send was handled.
    let _bob = connect(&hub, 2, "bob", 64).await;
    let kinds: Vec<u32> = drain(&mut alice.rx).iter().map(WireMessage::kind).collect();
    use chat_proto::kind::*;
    assert_eq!(
        kinds,
        [
            WELCOME,
            JOINED,
            TOPIC_INFO,
            NAME_LIST,
            HISTORY_PAGE,
            ACK,
            JOINED
        ]
    );
}

#[tokio::test]
async fn taken_nicks_are_refused_by_their_fold() {
    let hub = start();
    let _alice = connect(&hub, 1, "alice", 64).await;
    for (i, nick) in ["ALICE", "ａｌｉｃｅ", "аlice"].into_iter().enumerate() {
        let (out_tx, _rx) = queue::channel(8);
        let (kick_tx, _kick) = oneshot::channel();
        let conn = ConnInfo {
            id: 10 + i as u64,
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            out_tx,
            kick_tx,
            batches: false,
        };
        let hello = Hello {
            name: nick.into(),
            ..Hello::default()
        };
        let refused = hub.register(conn, hello).await.unwrap().unwrap_err();
        assert_eq!(refused.code, ErrorCode::NickTaken, "{nick}");
    }
}

#[tokio::test]
async fn a_full_queue_is_kicked_with_its_last_seqs_and_never_grows() {
    const BOUND: usize = 8;
    let hub = start();
    let mut slow = connect(&hub, 1, "slow", BOUND).await;
    let mut fast = connect(&hub, 2, "fast", 1024).await;
    hub.request(
        2,
        ClientMsg::Join(Join {
            id: None,
            room: "#side".into(),
        }),
    )
    .await
    .unwrap();
    for i in 0..50 {
        hub.request(2, say("#lobby", &format!("m{i}")))
            .await
            .unwrap();
    }
    let Kick::Lagged { seqs } = (&mut slow.kick).await.unwrap() else {
        panic!("expected a lag kick");
    };
    assert!(slow.rx.len() <= BOUND, "queue stayed within its bound");
    let got = drain(&mut slow.rx);
    assert_eq!(
        got.len(),
        BOUND,
        "the queue filled up to its bound, no further"
    );
    let last_seq = got
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Message(c) => Some(c.seq),
            _ => None,
        })
        .max()
        .unwrap();
    assert_eq!(seqs, BTreeMap::from([("#lobby".to_owned(), last_seq)]));

    // The room never waited: the fast member got every ack, and heard that `slow` lagged.
    let fast_msgs = drain(&mut fast.rx);
    let acks = fast_msgs
        .iter()
        .filter(|m| matches!(m, ServerMsg::Ack(_)))
        .count();
    assert_eq!(acks, 50);
    assert!(fast_msgs.iter().any(|m| matches!(
        m,
        ServerMsg::Quit(q) if q.nick == "slow" && q.reason.as_deref() == Some("lagged")
    )));
    // And its nick is free again.
    let _again = connect(&hub, 3, "slow", 8).await;
}

fn hello_as(id: SessionId, nick: &str, password: Option<&str>) -> (ConnInfo, Hello, Peer) {
    let (out_tx, rx) = queue::channel(64);
    let (kick_tx, kick) = oneshot::channel();
    let conn = ConnInfo {
        id,
        peer: SocketAddr::from(([127, 0, 0, 1], 1)),
        out_tx,
        kick_tx,
        batches: false,
    };
    let hello = Hello {
        name: nick.into(),
        password: password.map(str::to_owned),
        ..Hello::default()
    };
    (conn, hello, Peer { rx, kick })
}

#[tokio::test]
async fn a_registered_nick_and_its_confusables_need_the_password() {
    let hub = start();
    let mut alice = connect(&hub, 1, "alice", 64).await;
    let register = chat_proto::client::Register {
        id: Some("r1".into()),
        password: "correct horse".into(),
    };
    hub.request(1, ClientMsg::Register(register)).await.unwrap();
    let notice = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let frame = alice.rx.recv().await.unwrap();
            if let ServerMsg::Notice(n) = decode(&frame) {
                return n;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(notice.id.as_deref(), Some("r1"));
    assert_eq!(notice.text, "nick alice is now registered");
    hub.leave(1, "bye".into()).await.unwrap();

    let mut id = 10;
    for nick in ["alice", "Alice", "ALICE", "\u{430}lice", "alice\u{200b}"] {
        id += 1;
        let (conn, hello, _peer) = hello_as(id, nick, None);
        let refused = hub.register(conn, hello).await.unwrap().unwrap_err();
        assert_eq!(refused.code, ErrorCode::AuthFailed, "{nick:?}");
    }
    let (conn, hello, _peer) = hello_as(20, "\u{430}lice", Some("correct horse"));
    assert_eq!(
        hub.register(conn, hello).await.unwrap().unwrap(),
        "\u{430}lice"
    );
    hub.leave(20, "bye".into()).await.unwrap();
    for nick in ["ALICE", "\u{430}lice", "alice\u{200b}"] {
        id += 1;
        let (conn, hello, _peer) = hello_as(id, nick, Some("wrong horse"));
        let refused = hub.register(conn, hello).await.unwrap().unwrap_err();
        assert_eq!(refused.code, ErrorCode::AuthFailed, "{nick:?}");
        assert!(!refused.message.contains("horse"));
    }
    // The fourth attempt within the window is refused unchecked, even with the right password.
    let (conn, hello, _peer) = hello_as(30, "alice", Some("correct horse"));
    let refused = hub.register(conn, hello).await.unwrap().unwrap_err();
    assert_eq!(refused.code, ErrorCode::AuthThrottled);
    // A short register password is refused.
    let short = chat_proto::client::Register {
        id: Some("r2".into()),
        password: "short".into(),
    };
    let _bob = connect(&hub, 40, "bob", 64).await;
    hub.request(40, ClientMsg::Register(short)).await.unwrap();
}

#[tokio::test]
async fn the_password_logs_in_and_nick_changes_to_a_registered_nick_are_refused() {
    let tracker = TaskTracker::new();
    let config = Config {
        auth_window: std::time::Duration::from_secs(8),
        ..Config::default()
    };
    let hub = spawn(
        Arc::new(config),
        Box::new(MemoryHistory::new(100)),
        CancellationToken::new(),
        &tracker,
    );
    let mut alice = connect(&hub, 1, "alice", 64).await;
    let register = chat_proto::client::Register {
        id: None,
        password: "correct horse".into(),
    };
    hub.request(1, ClientMsg::Register(register)).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !matches!(
            decode(&alice.rx.recv().await.unwrap()),
            ServerMsg::Notice(_)
        ) {}
    })
    .await
    .unwrap();
    hub.request(
        1,
        ClientMsg::Nick(chat_proto::client::Nick {
            id: None,
            nick: "al".into(),
        }),
    )
    .await
    .unwrap();
    // Another session cannot change to the registered nick once alice left it.
    let mut bob = connect(&hub, 2, "bob", 64).await;
    drain(&mut bob.rx);
    let to_alice = chat_proto::client::Nick {
        id: Some("n1".into()),
        nick: "Alice".into(),
    };
    hub.request(2, ClientMsg::Nick(to_alice)).await.unwrap();
    let err = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            if let ServerMsg::Error(e) = decode(&bob.rx.recv().await.unwrap()) {
                return e;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(err.code, ErrorCode::AuthFailed);
    // Alice (as `al`) may take her account's nick back.
    drain(&mut alice.rx);
    let back = chat_proto::client::Nick {
        id: None,
        nick: "alice".into(),
    };
    hub.request(1, ClientMsg::Nick(back)).await.unwrap();
    hub.leave(1, "bye".into()).await.unwrap();
    // Three failures, throttled; after the window, the right password logs in.
    for id in 10..13 {
        let (conn, hello, _peer) = hello_as(id, "alice", Some("wrong horse"));
        let refused = hub.register(conn, hello).await.unwrap().unwrap_err();
        assert_eq!(refused.code, ErrorCode::AuthFailed);
    }
    let (conn, hello, _peer) = hello_as(13, "alice", Some("correct horse"));
    let refused = hub.register(conn, hello).await.unwrap().unwrap_err();
    assert_eq!(refused.code, ErrorCode::AuthThrottled);
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    let (conn, hello, _peer) = hello_as(14, "ALICE", Some("correct horse"));
    assert_eq!(hub.register(conn, hello).await.unwrap().unwrap(), "ALICE");
}

fn hub_with(config: Config, history: Box<dyn HistoryStore>) -> HubHandle {
    spawn(
        Arc::new(config),
        history,
        CancellationToken::new(),
        &TaskTracker::new(),
    )
}

/// Waits (bounded) for the next frame on `rx` that `f` picks.
async fn wait_for<T>(rx: &mut queue::Receiver, mut f: impl FnMut(ServerMsg) -> Option<T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Some(t) = f(decode(&rx.recv().await.unwrap())) {
                return t;
            }
        }
    })
    .await
    .unwrap()
}

fn error_code(m: ServerMsg) -> Option<ErrorCode> {
    match m {
        ServerMsg::Error(e) => Some(e.code),
        _ => None,
    }
}

fn notice_text(m: ServerMsg) -> Option<String> {
    match m {
        ServerMsg::Notice(n) => Some(n.text),
        _ => None,
    }
}

/// Makes the account of the admin `root` in the store under `dir`, as
/// `chat-server account add root` does (admin nicks cannot be registered over the network).
fn add_root_account(dir: &std::path::Path) {
    use crate::accounts_cmd::{AccountAction, PasswordSource, run};
    let config = Config {
        data_dir: Some(dir.to_owned()),
        ..admin_config()
    };
    let mut password = std::io::Cursor::new("operator password\n");
    let add = AccountAction::Add {
        nick: "root".into(),
    };
    run(&config, &add, PasswordSource::Lines(&mut password)).unwrap();
}

/// Store options for a test store under `dir`.
fn store_opts(dir: &std::path::Path) -> crate::store::StoreOptions {
    crate::store::StoreOptions {
        dir: dir.to_owned(),
        sync: crate::config::SyncMode::Normal,
        retention_count: 1000,
        retention_days: 0,
        retention_interval: std::time::Duration::from_secs(60),
    }
}

/// Logs in `nick` with the operator password.
async fn registered(hub: &HubHandle, id: SessionId, nick: &str) -> Peer {
    let (conn, hello, mut peer) = hello_as(id, nick, Some("operator password"));
    hub.register(conn, hello).await.unwrap().unwrap();
    drain(&mut peer.rx);
    peer
}

fn admin_config() -> Config {
    Config {
        admins: vec!["root".into()],
        ..Config::default()
    }
}

#[tokio::test]
async fn operators_kick_mute_and_lock_topics_and_others_are_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    add_root_account(dir.path());
    let store = crate::store::SqliteStore::open(&store_opts(dir.path())).unwrap();
    let hub = hub_with(admin_config(), Box::new(store));
    // The admin nick cannot be used without its password (tests/accounts.rs shows an admin
    // nick with no account yet has no powers).
    let (conn, hello, _fake) = hello_as(9, "Root", None);
    let refused = hub.register(conn, hello).await.unwrap().unwrap_err();
    assert_eq!(refused.code, ErrorCode::AuthFailed);
    let kick = |id: &str| {
        ClientMsg::Kick(chat_proto::client::Kick {
            id: Some(id.into()),
            room: "#lobby".into(),
            nick: "mallory".into(),
            reason: Some("spam".into()),
        })
    };

    let mut root = registered(&hub, 1, "root").await;
    let mut mallory = connect(&hub, 2, "mallory", 256).await;
    drain(&mut mallory.rx);
    // Mallory may not kick, mute or lock.
    hub.request(2, kick("k1")).await.unwrap();
    assert_eq!(
        wait_for(&mut mallory.rx, error_code).await,
        ErrorCode::Forbidden
    );
    let lock = |id: SessionId, lock: bool| {
        ClientMsg::Topic(chat_proto::client::Topic {
            id: Some(format!("t{id}")),
            room: "#lobby".into(),
            topic: Some("official".into()),
            lock: Some(lock),
        })
    };
    hub.request(2, lock(2, true)).await.unwrap();
    assert_eq!(
        wait_for(&mut mallory.rx, error_code).await,
        ErrorCode::Forbidden
    );
    // Root locks the topic; mallory may no longer change it.
    hub.request(1, lock(1, true)).await.unwrap();
    let info = wait_for(&mut mallory.rx, |m| match m {
        ServerMsg::Topic(t) => Some(t),
        _ => None,
    })
    .await;
    assert!(info.locked);
    let change = ClientMsg::Topic(chat_proto::client::Topic {
        id: Some("t3".into()),
        room: "#lobby".into(),
        topic: Some("mine".into()),
        lock: None,
    });
    hub.request(2, change).await.unwrap();
    assert_eq!(
        wait_for(&mut mallory.rx, error_code).await,
        ErrorCode::Forbidden
    );
    // Muted: sends are refused.
    let mute = ClientMsg::Mute(chat_proto::client::Mute {
        id: Some("m1".into()),
        nick: "mallory".into(),
        room: Some("#lobby".into()),
        duration_secs: Some(60),
    });
    hub.request(1, mute).await.unwrap();
    wait_for(&mut root.rx, notice_text).await;
    hub.request(2, say("#lobby", "spam")).await.unwrap();
    assert_eq!(
        wait_for(&mut mallory.rx, error_code).await,
        ErrorCode::Forbidden
    );
    // Kicked: mallory hears `parted` with the reason and is out of the room.
    hub.request(1, kick("k2")).await.unwrap();
    let parted = wait_for(&mut mallory.rx, |m| match m {
        ServerMsg::Parted(p) => Some(p),
        _ => None,
    })
    .await;
    assert_eq!(parted.nick, "mallory");
    assert_eq!(parted.reason.as_deref(), Some("kicked by root: spam"));
    hub.request(2, say("#lobby", "still here?")).await.unwrap();
    assert_eq!(
        wait_for(&mut mallory.rx, error_code).await,
        ErrorCode::NotInRoom
    );
}

#[tokio::test]
async fn a_ban_drops_the_user_refuses_its_hello_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    add_root_account(dir.path());
    let opts = store_opts(dir.path());
    {
        let store = crate::store::SqliteStore::open(&opts).unwrap();
        let hub = hub_with(admin_config(), Box::new(store));
        let mut root = registered(&hub, 1, "root").await;
        let mut mallory = connect(&hub, 2, "mallory", 256).await;
        let ban = ClientMsg::Ban(chat_proto::client::Ban {
            id: Some("b1".into()),
            target: "Mallory".into(),
            duration_secs: None,
            reason: Some("spam".into()),
        });
        hub.request(1, ban).await.unwrap();
        assert_eq!(
            wait_for(&mut root.rx, notice_text).await,
            "Mallory is banned"
        );
        // Kicked: the session writes the text in `error banned` and closes.
        let kick = (&mut mallory.kick).await.unwrap();
        assert_eq!(
            kick,
            Kick::Banned {
                text: "you are banned permanently: spam".into()
            }
        );
        // Dropped from the hub: its requests go nowhere.
        hub.request(2, say("#lobby", "hi")).await.unwrap();
        // Nor can anyone change to the banned nick.
        hub.request(
            1,
            ClientMsg::Nick(chat_proto::client::Nick {
                id: None,
                nick: "mallory".into(),
            }),
        )
        .await
        .unwrap();
        assert_eq!(
            wait_for(&mut root.rx, error_code).await,
            ErrorCode::Forbidden
        );
        let (conn, hello, _p) = hello_as(3, "MALLORY", None);
        let refused = hub.register(conn, hello).await.unwrap().unwrap_err();
        assert_eq!(refused.code, ErrorCode::Banned);
        assert_eq!(refused.message, "you are banned permanently: spam");
    }
    // A restart: the account and the ban are still there.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let store = crate::store::SqliteStore::open(&opts).unwrap();
    let hub = hub_with(admin_config(), Box::new(store));
    let (conn, hello, _p) = hello_as(3, "mallory", None);
    let refused = hub.register(conn, hello).await.unwrap().unwrap_err();
    assert_eq!(refused.code, ErrorCode::Banned);
    let (conn, hello, _p) = hello_as(4, "root", None);
    let refused = hub.register(conn, hello).await.unwrap().unwrap_err();
    assert_eq!(refused.code, ErrorCode::AuthFailed);
    let (conn, hello, _p) = hello_as(5, "root", Some("operator password"));
    let mut root = _p;
    hub.register(conn, hello).await.unwrap().unwrap();
    let unban = ClientMsg::Unban(chat_proto::client::Unban {
        id: Some("u1".into()),
        target: "mallory".into(),
    });
    hub.request(5, unban).await.unwrap();
    assert_eq!(
        wait_for(&mut root.rx, notice_text).await,
        "mallory is no longer banned"
    );
    let (conn, hello, _p) = hello_as(6, "mallory", None);
    hub.register(conn, hello).await.unwrap().unwrap();
}

/// Every frame up to and including the first that `stop` picks.
async fn frames_until(
    rx: &mut queue::Receiver,
    stop: impl Fn(&ServerMsg) -> bool,
) -> Vec<ServerMsg> {
    let mut seen = Vec::new();
    wait_for(rx, |m| {
        let done = stop(&m);
        seen.push(m);
        done.then_some(())
    })
    .await;
    seen
}

#[tokio::test]
async fn a_large_room_hears_no_presence_and_its_burst_gives_only_the_count() {
    let config = Config {
        presence_limit: 2,
        ..Config::default()
    };
    let hub = hub_with(config, Box::new(MemoryHistory::new(100)));
    let mut alice = connect(&hub, 1, "alice", 256).await;
    let mut bob = connect(&hub, 2, "bob", 256).await;
    // Two members: a small room, so alice hears bob arrive.
    wait_for(&mut alice.rx, |m| match m {
        ServerMsg::Joined(j) if j.nick == "bob" => Some(()),
        _ => None,
    })
    .await;

    // A third member makes the room large: carol's burst has her own `joined` and the count.
    let mut carol = connect(&hub, 3, "carol", 256).await;
    let burst = frames_until(&mut carol.rx, |m| matches!(m, ServerMsg::History(_))).await;
    assert!(
        burst
            .iter()
            .any(|m| matches!(m, ServerMsg::Joined(j) if j.nick == "carol"))
    );
    let names = burst.iter().find_map(|m| match m {
        ServerMsg::Names(n) => Some(n.clone()),
        _ => None,
    });
    let names = names.unwrap();
    assert_eq!(names.count, Some(3));
    assert!(names.members.is_empty(), "{:?}", names.members);

    // Asked for, the names are all there, with the count.
    let ask = chat_proto::client::Names {
        id: Some("n1".into()),
        room: "#lobby".into(),
    };
    hub.request(3, ClientMsg::Names(ask)).await.unwrap();
    let listed = wait_for(&mut carol.rx, |m| match m {
        ServerMsg::Names(n) if n.id.as_deref() == Some("n1") => Some(n),
        _ => None,
    })
    .await;
    assert_eq!(listed.members, ["alice", "bob", "carol"]);
    assert_eq!(listed.count, Some(3));

    // carol parts: only she hears it. Then bob speaks, so alice's queue up to his message is
    // everything the hub sent her meanwhile.
    let part = chat_proto::client::Part {
        id: None,
        room: "#lobby".into(),
        reason: None,
    };
    hub.request(3, ClientMsg::Part(part)).await.unwrap();
    wait_for(&mut carol.rx, |m| match m {
        ServerMsg::Parted(p) if p.nick == "carol" => Some(()),
        _ => None,
    })
    .await;
    hub.request(2, say("#lobby", "still here")).await.unwrap();
    let meanwhile = frames_until(&mut alice.rx, |m| matches!(m, ServerMsg::Message(_))).await;
    assert_eq!(
        meanwhile.len(),
        1,
        "no joined or parted for carol: {meanwhile:?}"
    );

    // Small again (two members): bob's quit reaches alice.
    hub.leave(2, "bye".into()).await.unwrap();
    drain(&mut bob.rx);
    let quit = wait_for(&mut alice.rx, |m| match m {
        ServerMsg::Quit(q) => Some(q.nick),
        _ => None,
    })
    .await;
    assert_eq!(quit, "bob");
}

/// Every frame of every queued item (an item may carry several frames).
fn drain_items(rx: &mut queue::Receiver) -> (usize, Vec<ServerMsg>) {
    let mut items = 0;
    let mut frames = Vec::new();
    while let Ok(item) = rx.try_recv() {
        items += 1;
        frames.extend(item.into_frames().iter().map(decode_frame));
    }
    (items, frames)
}

async fn connect_batched(hub: &HubHandle, id: SessionId, nick: &str, queue: usize) -> Peer {
    let (out_tx, rx) = queue::channel(queue);
    let (kick_tx, kick) = oneshot::channel();
    let conn = ConnInfo {
        id,
        peer: SocketAddr::from(([127, 0, 0, 1], 1)),
        out_tx,
        kick_tx,
        batches: true,
    };
    let hello = Hello {
        name: nick.into(),
        ..Hello::default()
    };
    hub.register(conn, hello).await.unwrap().unwrap();
    Peer { rx, kick }
}

#[tokio::test]
async fn batched_frames_keep_their_order_and_the_bound_counts_frames_not_items() {
    const BOUND: usize = 8;
    let hub = start();
    let mut slow = connect_batched(&hub, 1, "slow", BOUND).await;
    let mut fast = connect_batched(&hub, 2, "fast", 1024).await;
    // Queued without waiting for the hub, so several land in one turn.
    let sends: Vec<_> = (0..50)
        .map(|i| hub.request(2, say("#lobby", &format!("m{i}"))))
        .collect();
    for send in sends {
        send.await.unwrap();
    }
    let Kick::Lagged { seqs } = (&mut slow.kick).await.unwrap() else {
        panic!("the slow reader must be kicked for lagging");
    };
    let (_, got) = drain_items(&mut slow.rx);
    assert_eq!(got.len(), BOUND, "frames up to the bound, not items");
    let last_seq = got
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Message(c) => Some(c.seq),
            _ => None,
        })
        .max()
        .unwrap();
    assert_eq!(seqs, BTreeMap::from([("#lobby".to_owned(), last_seq)]));

    // The sender's acks arrive in order, all of them, in fewer items than frames.
    let _sync = connect(&hub, 3, "sync", 64).await;
    let (items, frames) = drain_items(&mut fast.rx);
    let acks: Vec<u64> = frames
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Ack(a) => Some(a.seq),
            _ => None,
        })
        .collect();
    assert_eq!(acks, (1..=50).collect::<Vec<u64>>());
    assert!(items <= frames.len());
    assert!(frames.iter().any(|m| matches!(
        m,
        ServerMsg::Quit(q) if q.nick == "slow" && q.reason.as_deref() == Some("lagged")
    )));
}

#[tokio::test]
async fn any_spelling_of_a_room_reaches_it_until_the_sender_parts() {
    let hub = start();
    let mut alice = connect(&hub, 1, "alice", 256).await;
    let mut bob = connect(&hub, 2, "bob", 256).await;
    // The same spelling twice (the folded name is remembered), then another spelling.
    for (to, text) in [("#LOBBY", "a"), ("#LOBBY", "b"), ("#lobby", "c")] {
        hub.request(2, say(to, text)).await.unwrap();
    }
    for want in ["a", "b", "c"] {
        let text = wait_for(&mut alice.rx, |m| match m {
            ServerMsg::Message(c) => Some(c.text),
            _ => None,
        })
        .await;
        assert_eq!(text, want);
    }
    let part = chat_proto::client::Part {
        id: None,
        room: "#lobby".into(),
        reason: None,
    };
    hub.request(2, ClientMsg::Part(part)).await.unwrap();
    hub.request(2, say("#LOBBY", "d")).await.unwrap();
    let code = wait_for(&mut bob.rx, error_code).await;
    assert_eq!(
        code,
        ErrorCode::NotInRoom,
        "the remembered spelling is no way back in"
    );
}

#[tokio::test]
async fn a_big_rooms_message_is_one_buffer_shared_by_every_member() {
    let hub = start();
    let members = 300;
    let mut peers = Vec::new();
    for i in 0..members as u64 {
        peers.push(connect_batched(&hub, i + 1, &format!("user{i}"), 2048).await);
    }
    for peer in &mut peers {
        drain_items(&mut peer.rx);
    }
    let sends: Vec<_> = (0..5)
        .map(|i| hub.request(1, say("#lobby", &format!("m{i}"))))
        .collect();
    for send in sends {
        send.await.unwrap();
    }
    // Once a late joiner is in, every message was handled.
    let _sync = connect(&hub, 10_000, "sync", 64).await;
    let mut firsts: Vec<Bytes> = Vec::new();
    for p in &mut peers[1..] {
        let frames: Vec<Bytes> = std::iter::from_fn(|| p.rx.try_recv().ok())
            .flat_map(Item::into_frames)
            .filter(|f| matches!(decode_frame(f), ServerMsg::Message(_)))
            .collect();
        let texts: Vec<String> = frames
            .iter()
            .filter_map(|f| match decode_frame(f) {
                ServerMsg::Message(c) => Some(c.text),
                _ => None,
            })
            .collect();
        assert_eq!(texts, ["m0", "m1", "m2", "m3", "m4"], "all, in order");
        firsts.push(frames[0].clone());
    }
    assert!(
        firsts.iter().all(|f| f.as_ptr() == firsts[0].as_ptr()),
        "every member's queue holds the one encoded frame, not a copy"
    );
}

/// Sends `text` to `#lobby` as `from`, 300 µs after the last one (paused time).
async fn say_soon(hub: &HubHandle, from: SessionId, text: &str) {
    hub.request(from, say("#lobby", text)).await.unwrap();
    tokio::time::advance(std::time::Duration::from_micros(300)).await;
}

/// Lets the hub finish whatever turn it is in (paused time runs on while it waits).
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
}

fn texts(frames: &[ServerMsg]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Message(c) => Some(c.text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn messages_to_a_big_room_within_a_millisecond_share_one_item_per_member() {
    let hub = start();
    let mut alice = connect_batched(&hub, 1, "alice", 4096).await;
    let mut members = Vec::new();
    for i in 0..LINGER_CONNS as u64 {
        members.push(connect_batched(&hub, 10 + i, &format!("m{i}"), 4096).await);
    }
    settle().await;
    drain_items(&mut alice.rx);
    for m in &mut members {
        drain_items(&mut m.rx);
    }
    say_soon(&hub, 1, "one").await;
    say_soon(&hub, 1, "two").await;
    settle().await;
    let last = members.len() - 1;
    for i in [0, last] {
        let (items, frames) = drain_items(&mut members[i].rx);
        assert_eq!(texts(&frames), ["one", "two"]);
        assert_eq!(items, 1, "both messages in one queue item, so one write");
    }
    let (_, frames) = drain_items(&mut alice.rx);
    let acks = frames
        .iter()
        .filter(|m| matches!(m, ServerMsg::Ack(_)))
        .count();
    assert_eq!(acks, 2, "the sender's acks go out with the turn");
}

#[tokio::test(start_paused = true)]
async fn messages_to_a_small_room_go_out_at_once() {
    let hub = start();
    let _alice = connect_batched(&hub, 1, "alice", 4096).await;
    let mut bob = connect_batched(&hub, 2, "bob", 4096).await;
    settle().await;
    drain_items(&mut bob.rx);
    hub.request(1, say("#lobby", "one")).await.unwrap();
    // No time passes: the first message is queued before the second is even sent.
    let first = tokio::time::timeout(std::time::Duration::from_micros(10), bob.rx.recv())
        .await
        .expect("queued at once, without waiting for more")
        .unwrap();
    assert_eq!(
        texts(
            &first
                .into_frames()
                .iter()
                .map(decode_frame)
                .collect::<Vec<_>>()
        ),
        ["one"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_burst_to_a_big_room_goes_out_at_once() {
    let hub = start();
    let _alice = connect_batched(&hub, 1, "alice", 4096).await;
    let mut members = Vec::new();
    for i in 0..LINGER_CONNS as u64 {
        members.push(connect_batched(&hub, 10 + i, &format!("m{i}"), 4096).await);
    }
    settle().await;
    for m in &mut members {
        drain_items(&mut m.rx);
    }
    // Three sends in one command: the turn already has several frames per member.
    let burst = ["one", "two", "three"].map(|t| say("#lobby", t)).to_vec();
    hub.requests(1, burst).await.unwrap();
    // No time passes: a sender waiting for its deliveries is not kept waiting.
    let first = tokio::time::timeout(std::time::Duration::from_micros(10), members[0].rx.recv())
        .await
        .expect("queued at once, without waiting for more")
        .unwrap();
    let frames: Vec<_> = first.into_frames().iter().map(decode_frame).collect();
    assert_eq!(texts(&frames), ["one", "two", "three"]);
}

/// The frames in one buffer of an item.
fn frames_in(buf: &Bytes) -> Vec<Bytes> {
    let mut frames = Vec::new();
    crate::writer::split_frames(buf.clone(), &mut frames);
    frames
}

/// The items queued to `peer`, each as (buffers, frames, the frames decoded).
fn drain_runs(rx: &mut queue::Receiver) -> Vec<(Vec<Bytes>, usize, Vec<ServerMsg>)> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .map(|item| {
            let frames = item.frames();
            let bufs = match &item {
                Item::One(b) => vec![b.clone()],
                Item::Many { bufs, .. } => bufs.clone(),
            };
            let msgs = item.into_frames().iter().map(decode_frame).collect();
            (bufs, frames, msgs)
        })
        .collect()
}

#[tokio::test]
async fn a_reads_sends_reach_every_member_as_one_shared_buffer_and_the_sender_as_one() {
    let hub = start();
    let mut alice = connect_batched(&hub, 1, "alice", 4096).await;
    let mut others = Vec::new();
    for i in 0..3 {
        others.push(connect_batched(&hub, 10 + i, &format!("m{i}"), 4096).await);
    }
    let _sync = connect(&hub, 99, "sync", 64).await;
    drain_runs(&mut alice.rx);
    for m in &mut others {
        drain_runs(&mut m.rx);
    }
    let burst = ["a", "b", "c", "d", "e"].map(|t| say("#lobby", t)).to_vec();
    hub.requests(1, burst).await.unwrap();
    let _sync2 = connect(&hub, 98, "sync2", 64).await;
    let mut buffers = Vec::new();
    for m in &mut others {
        let items = drain_runs(&mut m.rx);
        let (bufs, _, msgs) = &items[0];
        assert_eq!(texts(msgs), ["a", "b", "c", "d", "e"], "all, in order");
        assert_eq!(frames_in(&bufs[0]).len(), 5, "in one buffer");
        buffers.push(bufs[0].clone());
    }
    assert!(
        buffers.iter().all(|b| b.as_ptr() == buffers[0].as_ptr()),
        "every member's queue holds the same buffer, not a copy"
    );
    let items = drain_runs(&mut alice.rx);
    let acks: Vec<u64> = frames_in(&items[0].0[0])
        .iter()
        .map(decode_frame)
        .filter_map(|m| match m {
            ServerMsg::Ack(a) => Some(a.seq),
            _ => None,
        })
        .collect();
    assert_eq!(acks.len(), 5, "the acks in one buffer too");
    assert!(acks.windows(2).all(|w| w[1] == w[0] + 1), "{acks:?}");
}

#[tokio::test]
async fn frames_between_a_reads_sends_keep_their_place() {
    let hub = start();
    let mut alice = connect_batched(&hub, 1, "alice", 4096).await;
    let mut bob = connect_batched(&hub, 2, "bob", 4096).await;
    let _sync = connect(&hub, 99, "sync", 64).await;
    drain_runs(&mut alice.rx);
    drain_runs(&mut bob.rx);
    let burst = vec![
        say("#lobby", "one"),
        say("bob", "direct"),
        say("#lobby", "two"),
        say("#nowhere", "refused"),
        say("#lobby", "three"),
    ];
    hub.requests(1, burst).await.unwrap();
    let _sync2 = connect(&hub, 98, "sync2", 64).await;
    let bob_saw: Vec<String> = drain_runs(&mut bob.rx)
        .into_iter()
        .flat_map(|(_, _, msgs)| texts(&msgs))
        .collect();
    assert_eq!(bob_saw, ["one", "direct", "two", "three"]);
    let alice_saw: Vec<String> = drain_runs(&mut alice.rx)
        .into_iter()
        .flat_map(|(_, _, msgs)| msgs)
        .map(|m| match m {
            ServerMsg::Ack(a) => format!("ack {}", a.id.unwrap_or_default()),
            ServerMsg::Error(e) => format!("error {}", e.code),
            other => other.kind().to_string(),
        })
        .filter(|s| s.starts_with("ack") || s.starts_with("error"))
        .collect();
    assert_eq!(
        alice_saw,
        [
            "ack one",
            "ack direct",
            "ack two",
            &format!("error {}", ErrorCode::NotInRoom),
            "ack three"
        ]
    );
}

#[tokio::test]
async fn a_text_session_gets_a_reads_messages_one_frame_per_item() {
    let hub = start();
    let _alice = connect_batched(&hub, 1, "alice", 4096).await;
    let mut text = connect(&hub, 2, "text", 4096).await;
    let _sync = connect(&hub, 99, "sync", 64).await;
    drain(&mut text.rx);
    let burst = ["a", "b", "c"].map(|t| say("#lobby", t)).to_vec();
    hub.requests(1, burst).await.unwrap();
    let _sync2 = connect(&hub, 98, "sync2", 64).await;
    // `drain` insists on one frame per item.
    assert_eq!(texts(&drain(&mut text.rx)), ["a", "b", "c"]);
}

#[tokio::test]
async fn a_read_of_sends_counts_as_its_frames_against_the_bound() {
    // Above the seven frames registration and the next two joins leave in the queue, or
    // `slow` would be lagged before the test begins.
    const BOUND: usize = 8;
    let hub = start();
    let _alice = connect_batched(&hub, 1, "alice", 4096).await;
    let mut slow = connect_batched(&hub, 2, "slow", BOUND).await;
    let mut fast = connect_batched(&hub, 3, "fast", 4096).await;
    let mut sync = connect(&hub, 99, "sync", 64).await;
    // An empty queue: its whole bound is free.
    drain_runs(&mut slow.rx);
    drain_runs(&mut fast.rx);
    let names = |r: std::ops::Range<usize>| -> Vec<String> { r.map(|i| format!("m{i}")).collect() };
    let burst = |from: usize, n: usize| -> Vec<ClientMsg> {
        (from..from + n)
            .map(|i| say("#lobby", &format!("m{i}")))
            .collect()
    };
    // Exactly the bound fits: one item of eight frames, and no kick.
    hub.requests(1, burst(0, BOUND)).await.unwrap();
    // A barrier that puts nothing in `slow`'s queue (a join would).
    hub.request(99, ClientMsg::ListRooms(ListRooms { id: None }))
        .await
        .unwrap();
    wait_for(&mut sync.rx, |m| {
        matches!(m, ServerMsg::RoomList(_)).then_some(())
    })
    .await;
    assert!(
        matches!(
            slow.kick.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ),
        "eight frames fit a bound of eight"
    );
    let held = drain_runs(&mut slow.rx);
    assert_eq!(held.len(), 1, "one item");
    assert_eq!(texts(&held[0].2), names(0..BOUND));
    drain_runs(&mut slow.rx);
    // One more than the bound does not.
    hub.requests(1, burst(BOUND, BOUND + 1)).await.unwrap();
    let Kick::Lagged { .. } = (&mut slow.kick).await.unwrap() else {
        panic!("nine frames do not fit a bound of eight");
    };
    let _sync3 = connect(&hub, 97, "sync3", 64).await;
    let got: Vec<ServerMsg> = drain_runs(&mut fast.rx)
        .into_iter()
        .flat_map(|(_, _, msgs)| msgs)
        .collect();
    assert_eq!(texts(&got), names(0..2 * BOUND + 1), "the others get all");
    let (_, frames) = drain_items(&mut slow.rx);
    assert!(frames.len() <= BOUND, "{} frames queued", frames.len());
}

#[tokio::test]
async fn a_small_run_after_a_large_one_holds_only_its_own_bytes() {
    let hub = start();
    let _alice = connect_batched(&hub, 1, "alice", 4096).await;
    let mut bob = connect_batched(&hub, 2, "bob", 4096).await;
    let mut sync = connect(&hub, 99, "sync", 4096).await;
    let big = "x".repeat(1000);
    let burst = (0..30)
        .map(|i| {
            ClientMsg::Send(Send {
                id: Some(format!("big{i}")),
                to: "#lobby".into(),
                text: big.clone(),
                action: false,
            })
        })
        .collect();
    hub.requests(1, burst).await.unwrap();
    hub.request(1, say("#lobby", "tiny")).await.unwrap();
    let _sync2 = connect(&hub, 98, "sync2", 64).await;
    // `sync`, a text session, holds slices of the same buffers: let them go.
    while sync.rx.try_recv().is_ok() {}
    let buf = drain_runs(&mut bob.rx)
        .into_iter()
        .flat_map(|(bufs, _, _)| bufs)
        .find(|b| texts(&frames_in(b).iter().map(decode_frame).collect::<Vec<_>>()) == ["tiny"])
        .expect("bob got tiny in a buffer of its own");
    let len = buf.len();
    let capacity = buf
        .try_into_mut()
        .expect("nobody else holds the buffer")
        .capacity();
    // Bytes held for a queued 95-byte message, not the 30 KB of the run before it.
    assert!(capacity < 2 * len + 1024, "len {len}, capacity {capacity}");
}

#[tokio::test]
async fn in_durable_mode_others_see_a_senders_last_words_before_it_parts_and_quits() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::SqliteStore::open(&store_opts(dir.path())).unwrap();
    let control = store.control().unwrap();
    let hub = hub_with(Config::default(), Box::new(store));
    let _alice = connect(&hub, 1, "alice", 256).await;
    let mut bob = connect(&hub, 2, "bob", 256).await;
    let join = |room: &str| {
        ClientMsg::Join(Join {
            id: None,
            room: room.into(),
        })
    };
    hub.request(1, join("#side")).await.unwrap();
    hub.request(2, join("#side")).await.unwrap();
    wait_for(&mut bob.rx, |m| match m {
        ServerMsg::Joined(j) if j.nick == "bob" && j.room == "#side" => Some(()),
        _ => None,
    })
    .await;
    // The store commits nothing until `held` is dropped: alice's messages are pending when
    // she parts and quits, as when a bot sends and disconnects at once.
    let held = control.hold();
    hub.request(1, say("#lobby", "last in lobby"))
        .await
        .unwrap();
    let part = ClientMsg::Part(chat_proto::client::Part {
        id: None,
        room: "#lobby".into(),
        reason: None,
    });
    hub.request(1, part).await.unwrap();
    hub.request(1, say("#side", "last in side")).await.unwrap();
    hub.leave(1, "done".into()).await.unwrap();
    drop(held);
    let mut seen = Vec::new();
    while seen.last().is_none_or(|s: &String| !s.starts_with("quit")) {
        let label = wait_for(&mut bob.rx, |m| match m {
            ServerMsg::Message(m) => Some(format!("{}: {}", m.from, m.text)),
            ServerMsg::Parted(p) => Some(format!("parted {} {}", p.nick, p.room)),
            ServerMsg::Quit(q) => Some(format!("quit {}", q.nick)),
            _ => None,
        })
        .await;
        seen.push(label);
    }
    assert_eq!(
        seen,
        [
            "alice: last in lobby",
            "parted alice #lobby",
            "alice: last in side",
            "quit alice"
        ]
    );
}

#[tokio::test]
async fn in_durable_mode_a_nick_that_quits_and_comes_back_is_seen_leaving_then_joining() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::SqliteStore::open(&store_opts(dir.path())).unwrap();
    let control = store.control().unwrap();
    let hub = hub_with(Config::default(), Box::new(store));
    let _alice = connect(&hub, 1, "alice", 256).await;
    let mut bob = connect(&hub, 2, "bob", 256).await;
    drain(&mut bob.rx);
    let held = control.hold();
    hub.request(1, say("#lobby", "brb")).await.unwrap();
    hub.leave(1, "reconnecting".into()).await.unwrap();
    // The same nick again while "brb" is still with the store.
    let _again = connect(&hub, 3, "alice", 256).await;
    drop(held);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let label = wait_for(&mut bob.rx, |m| match m {
            ServerMsg::Message(m) => Some(format!("{}: {}", m.from, m.text)),
            ServerMsg::Quit(q) => Some(format!("quit {}", q.nick)),
            ServerMsg::Joined(j) => Some(format!("joined {}", j.nick)),
            _ => None,
        })
        .await;
        seen.push(label);
    }
    assert_eq!(seen, ["alice: brb", "quit alice", "joined alice"]);
}
