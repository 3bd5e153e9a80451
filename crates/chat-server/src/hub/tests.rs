//! The hub on its own: registration, fan-out and the lag mechanism, with in-memory queues.

use std::collections::BTreeMap;

use bytes::BytesMut;
use chat_proto::ClientCodec;
use chat_proto::client::{Join, Send};
use tokio_util::codec::Decoder;

use super::*;
use crate::history::MemoryHistory;

struct Peer {
    rx: mpsc::Receiver<Bytes>,
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
    let (out_tx, rx) = mpsc::channel(queue);
    let (kick_tx, kick) = oneshot::channel();
    let conn = ConnInfo {
        id,
        peer: SocketAddr::from(([127, 0, 0, 1], 1)),
        out_tx,
        kick_tx,
    };
    let hello = Hello {
        name: nick.into(),
        ..Hello::default()
    };
    hub.register(conn, hello).await.unwrap().unwrap();
    Peer { rx, kick }
}

fn decode(frame: &Bytes) -> ServerMsg {
    let mut buf = BytesMut::from(&frame[..]);
    ClientCodec::new(u32::MAX)
        .decode(&mut buf)
        .unwrap()
        .unwrap()
        .unwrap()
}

fn drain(rx: &mut mpsc::Receiver<Bytes>) -> Vec<ServerMsg> {
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
        let (out_tx, _rx) = mpsc::channel(8);
        let (kick_tx, _kick) = oneshot::channel();
        let conn = ConnInfo {
            id: 10 + i as u64,
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            out_tx,
            kick_tx,
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
    let Kick::Lagged { seqs } = (&mut slow.kick).await.unwrap();
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
